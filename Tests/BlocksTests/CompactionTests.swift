import Blocks
import Foundation
import Logging
import ObjectStore
import ProfileModel
import TestSupport
import Testing

/// Cuts `batches` into one level-0 block per element.
func uploadL0(_ groups: [[SampleBatch]], tenant: String = "t1", to store: any ObjectStore) async throws -> [BlockMeta] {
    var metas: [BlockMeta] = []
    for g in groups {
        var head = Head(tenant: tenant)
        for b in g { head.append(b) }
        let ulid = ULID.make()
        let block = try BlockWriter().encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: []))
        try await BlockWriter.upload(block, to: store)
        metas.append(block.meta)
    }
    return metas
}

func liveTotals(_ store: any ObjectStore, tenant: String = "t1") async throws -> [String: Int64] {
    var t: [String: Int64] = [:]
    for m in try await BlockIndex.liveBlocks(store, tenant: tenant) { for (k, v) in m.totalsByProfileType { t[k, default: 0] &+= v } }
    return t
}

let hourNanos: Int64 = 3_600_000_000_000
/// An hour boundary, so test data falls in known windows.
let baseHour: Int64 = 1_700_000_000_000_000_000 / hourNanos * hourNanos

struct CompactionTests {
    let logger = Logger(label: "test.compaction")

    @Test(arguments: Backend.allCases)
    func mergesLevelsAndNeverDoubleCounts(backend: Backend) async throws {
        try await withStore(backend, "compact") { store, _ in
            // Hours 0 and 1 of an 8 h window: three L0 blocks each.
            var sent: [SampleBatch] = []
            var groups: [[SampleBatch]] = []
            for hour in 0..<2 {
                for blockIndex in 0..<3 {
                    let g = (0..<4).map { k in
                        makeBatch(
                            offset: Int64(hour * 100 + blockIndex * 4 + k), samples: 150, baseTimeNanos: baseHour + Int64(hour) * hourNanos)
                    }
                    sent += g
                    groups.append(g)
                }
            }
            let l0 = try await uploadL0(groups, to: store)
            #expect(try await liveTotals(store) == totals(sent))

            let compactor = Compactor(store: store, config: CompactionConfig(), logger: logger)
            // Before the windows close, nothing happens.
            let early = Date(timeIntervalSince1970: Double(baseHour + hourNanos) / 1e9)
            let before = try await compactor.pass(tenant: "t1", now: early)
            #expect(before.compacted == 0 && before.backlogBlocks == 0)

            // After the 8 h window closes: two L1 merges, then one L2 merge of those. The backlog it found:
            // the six level-0 blocks the first round merged.
            let late = Date(timeIntervalSince1970: Double(baseHour + 9 * hourNanos) / 1e9)
            let result = try await compactor.pass(tenant: "t1", now: late)
            #expect(result.compacted == 3)
            #expect(result.backlogBlocks == l0.count)
            let live = try await BlockIndex.liveBlocks(store, tenant: "t1")
            #expect(live.count == 1)
            let top = try #require(live.first)
            #expect(top.compaction.level == 2)
            #expect(Set(top.compaction.sources) == Set(l0.map(\.ulid)))
            #expect(try await liveTotals(store) == totals(sent))
            // The raw provenance of every batch travels into the compacted block.
            #expect(top.kafka.rawByPartition[PartitionKey(topic: "raw", partition: 0)]?.count == Int64(sent.count))
            // Stacks were deduplicated again: fewer nodes than the L0 blocks together.
            #expect(top.stats.stacks < l0.reduce(0) { $0 + $1.stats.stacks })
            let reader = BlockReader(store: store, meta: top)
            #expect(try await flatten(reader).sorted() == sent.flatMap(flatten).sorted())
            #expect(await reader.verify() == [])

            // Sources are still in the store (marked) until the deletion delay has passed.
            var listing = try await BlockIndex.list(store, tenant: "t1")
            #expect(listing.metas.count == l0.count + 3)
            #expect(listing.deletionMarks.count == l0.count + 2)
            let afterDelay = late.addingTimeInterval(3 * 3600)
            let cleanup = try await compactor.pass(tenant: "t1", now: afterDelay)
            #expect(cleanup.deleted == l0.count + 2)
            listing = try await BlockIndex.list(store, tenant: "t1")
            #expect(listing.metas.map(\.ulid) == [top.ulid])
            #expect(listing.keys.count == 1)
            #expect(try await liveTotals(store) == totals(sent))
        }
    }

    /// A memory budget smaller than the window: the window ends up as several level-1 blocks, no job's
    /// sources exceed the budget, queries count everything once, and the result is stable.
    @Test(arguments: Backend.allCases)
    func boundedMergesSplitAWindowAndNeverDoubleCount(backend: Backend) async throws {
        try await withStore(backend, "bounded") { store, _ in
            var sent: [SampleBatch] = []
            var groups: [[SampleBatch]] = []
            for blockIndex in 0..<6 {
                let g = (0..<3).map { k in makeBatch(offset: Int64(blockIndex * 3 + k), samples: 200, baseTimeNanos: baseHour) }
                sent += g
                groups.append(g)
            }
            let l0 = try await uploadL0(groups, to: store)
            let perBlock = try #require(l0.map(\.estimatedHeadBytes).max())
            var config = CompactionConfig()
            // Room for two blocks, not three, beside what encoding always holds.
            config.maxHeadBytes = Head.encodingReserveBytes + perBlock * 5 / 2
            let late = Date(timeIntervalSince1970: Double(baseHour + 9 * hourNanos) / 1e9)
            let jobs = CompactionPlanner.plan(tenant: "t1", live: l0, config: config, now: late)
            #expect(jobs.count == 3)
            for job in jobs {
                #expect(job.level == 1)
                #expect(job.sources.reduce(0) { $0 + $1.estimatedHeadBytes } + Head.encodingReserveBytes <= config.maxHeadBytes)
            }
            let compactor = Compactor(store: store, config: config, logger: logger)
            #expect(try await compactor.pass(tenant: "t1", now: late).compacted == 3)
            let live = try await BlockIndex.liveBlocks(store, tenant: "t1")
            #expect(live.count == 3 && live.allSatisfy { $0.compaction.level == 1 })
            #expect(try await liveTotals(store) == totals(sent))
            var all: [FlatSample] = []
            for m in live {
                let reader = BlockReader(store: store, meta: m)
                #expect(await reader.verify() == [])
                all += try await flatten(reader)
            }
            #expect(all.sorted() == sent.flatMap(flatten).sorted())
            // Level-1 blocks at the budget are final: no further merge in this window, nor into level 2
            // (two of them exceed the budget).
            #expect(try await compactor.pass(tenant: "t1", now: late).compacted == 0)

            // A late level-0 block joins a level-1 block it fits beside, not all of them.
            let lateBatch = makeBatch(offset: 100, samples: 50, baseTimeNanos: baseHour)
            sent.append(lateBatch)
            _ = try await uploadL0([[lateBatch]], to: store)
            #expect(try await compactor.pass(tenant: "t1", now: late).compacted == 1)
            #expect(try await BlockIndex.liveBlocks(store, tenant: "t1").count == 3)
            #expect(try await liveTotals(store) == totals(sent))
        }
    }

    /// A job that died after uploading its block and before marking its sources: the sources are hidden
    /// (superseded) and the next pass marks them, so they are deleted after the delay.
    @Test func supersededSourcesWithoutMarksGetMarked() async throws {
        try await withStore(.file, "unmarked") { store, _ in
            let batches = (0..<4).map { makeBatch(offset: Int64($0), samples: 100, baseTimeNanos: baseHour) }
            let l0 = try await uploadL0(batches.map { [$0] }, to: store)
            var head = Head(tenant: "t1")
            for b in batches { head.append(b) }
            let merged = ULID.make()
            let block = try BlockWriter().encode(
                head, ulid: merged, compaction: .init(level: 1, sources: l0.map(\.ulid), parents: l0.map(\.ulid)))
            try await BlockWriter.upload(block, to: store)
            #expect(try await BlockIndex.liveBlocks(store, tenant: "t1").map(\.ulid) == [merged])
            var config = CompactionConfig()
            config.deletionDelay = .seconds(0)
            let r = try await Compactor(store: store, config: config, logger: logger).pass(tenant: "t1", now: Date())
            #expect(r.deleted == l0.count)
            let listing = try await BlockIndex.list(store, tenant: "t1")
            #expect(listing.metas.map(\.ulid) == [merged])
            #expect(listing.keys.count == 1)
            #expect(try await liveTotals(store) == totals(batches))
        }
    }

    @Test func liveListingHidesSupersededBlocksEvenWithoutMarks() throws {
        func meta(_ u: ULID, level: Int, sources: [ULID]) -> BlockMeta {
            BlockMeta(
                ulid: u, tenant: "t", minTime: 0, maxTime: 0, createdAt: 0, compaction: .init(level: level, sources: sources, parents: []),
                kafka: KafkaProvenance(), stats: .init(samples: 1, series: 1, stacks: 1, frames: 1, functions: 1, profileTypes: [:]),
                files: [])
        }
        let a = ULID.make(timestampMillis: 1)
        let b = ULID.make(timestampMillis: 2)
        let c = ULID.make(timestampMillis: 3)
        let merged1 = ULID.make(timestampMillis: 4)
        let merged2 = ULID.make(timestampMillis: 5)
        let metas = [
            meta(a, level: 0, sources: [a]), meta(b, level: 0, sources: [b]), meta(c, level: 0, sources: [c]),
            meta(merged1, level: 1, sources: [a, b]), meta(merged2, level: 1, sources: [a, b]),
        ]
        let live = BlockIndex.live(metas, deletionMarks: [:]).map(\.ulid)
        // A and B are inside merged1; merged2 duplicates merged1 (a raced job) and loses to the smaller ULID.
        #expect(live == [c, merged1])
        let marked = BlockIndex.live(
            metas, deletionMarks: [c: DeletionMark(ulid: c, deletionTime: 0, reason: "retention", supersededBy: nil)])
        #expect(marked.map(\.ulid) == [merged1])
    }

    @Test(arguments: Backend.allCases)
    func partialFoldersAreRemovedAfterGrace(backend: Backend) async throws {
        try await withStore(backend, "partial") { store, _ in
            let kept = try await uploadL0([[makeBatch(offset: 1)]], to: store)
            // A crash after uploading tables but before meta.json.
            var head = Head(tenant: "t1")
            head.append(makeBatch(offset: 2))
            let ulid = ULID.make()
            let block = try BlockWriter().encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: []))
            for f in block.files.prefix(3) { try await store.put(BlockFile.key(tenant: "t1", ulid: ulid, f.name), f.bytes) }
            #expect(try await BlockIndex.liveBlocks(store, tenant: "t1").map(\.ulid) == kept.map(\.ulid))
            let compactor = Compactor(store: store, config: CompactionConfig(), logger: Logger(label: "t"))
            // Within the grace period the folder may still be uploading: kept.
            #expect(try await compactor.pass(tenant: "t1", now: Date()).partialRemoved == 0)
            #expect(try await BlockIndex.list(store, tenant: "t1").partial.keys.contains(ulid))
            let r = try await compactor.pass(tenant: "t1", now: Date().addingTimeInterval(2 * 3600))
            #expect(r.partialRemoved == 1)
            let listing = try await BlockIndex.list(store, tenant: "t1")
            #expect(listing.partial.isEmpty)
            #expect(listing.metas.map(\.ulid) == kept.map(\.ulid))
        }
    }

    @Test func retentionRemovesWholeExpiredBlocks() async throws {
        try await withStore(.file, "retention") { store, _ in
            let old = try await uploadL0([[makeBatch(offset: 1, baseTimeNanos: baseHour)]], to: store)
            let recent = try await uploadL0([[makeBatch(offset: 2, baseTimeNanos: baseHour + 48 * hourNanos)]], to: store)
            var config = CompactionConfig()
            config.retention = .seconds(24 * 3600)
            config.deletionDelay = .seconds(0)
            let now = Date(timeIntervalSince1970: Double(baseHour + 49 * hourNanos) / 1e9)
            // Off by default: nothing expires.
            #expect(
                try await Compactor(store: store, config: CompactionConfig(), logger: Logger(label: "t")).pass(tenant: "t1", now: now)
                    .expired == 0)
            let r = try await Compactor(store: store, config: config, logger: Logger(label: "t")).pass(tenant: "t1", now: now)
            #expect(r.expired == 1 && r.deleted == 1)
            let listing = try await BlockIndex.list(store, tenant: "t1")
            #expect(listing.metas.map(\.ulid) == recent.map(\.ulid))
            #expect(listing.keys[old[0].ulid] == nil)
        }
    }

    @Test func leaseHasOneOwnerUntilItExpiresAndEachNewOwnerGetsTheNextToken() async throws {
        try await withStore(.file, "lease") { store, _ in
            let now = Date()
            func acquire(_ holder: String, at: Date) async throws -> HeldLease? {
                try await TenantLease.acquire(store: store, tenant: "t1", holder: holder, duration: .seconds(60), now: at)
            }
            let a1 = try await acquire("a", at: now)
            let b1 = try await acquire("b", at: now)
            let a2 = try await acquire("a", at: now)
            let b2 = try await acquire("b", at: now.addingTimeInterval(61))
            #expect(a1?.token == 1 && b1 == nil && a2?.token == 1 && b2?.token == 2)
            #expect(try await acquire("a", at: now.addingTimeInterval(62)) == nil)
            #expect(try await BlockIndex.tenants(in: store).isEmpty)  // leases are not tenants
        }
    }

    @Test(arguments: Backend.allCases)
    func aLeaseTakenOverOrRunOutFencesEveryWrite(kind: Backend) async throws {
        try await withStore(kind, "fence") { store, _ in
            let duration = Duration.seconds(10)
            let a = try #require(try await TenantLease.acquire(store: store, tenant: "t1", holder: "a", duration: duration))
            let fenced = FencedObjectStore(store, lease: a)
            // Fresh: writes pass without touching the lease.
            try await fenced.put("t1/x", [1])
            // Past half its time the next write renews it by compare-and-swap: the token stays, the expiry moves.
            let before = try JSONDecoder().decode(TenantLease.self, from: Data(try await store.get("_kiln/leases/t1.json")))
            try await a.check(now: .now + .seconds(6))
            let renewed = try JSONDecoder().decode(TenantLease.self, from: Data(try await store.get("_kiln/leases/t1.json")))
            #expect(renewed.token == 1 && renewed.holder == "a" && renewed.expiresAt >= before.expiresAt)

            // Another replica judges it expired (its clock says so) and takes it: token 2. The next renewal of
            // the old holder fails its swap, and from then on every write through the old lease is refused.
            let b = try #require(
                try await TenantLease.acquire(
                    store: store, tenant: "t1", holder: "b", duration: duration, now: Date().addingTimeInterval(30)))
            #expect(b.token == 2)
            // (The renewal above moved the local deadline to about 14 s from now: 12 s is past its half.)
            await #expect(throws: LeaseLost.self) { try await a.check(now: .now + .seconds(12)) }
            await #expect(throws: LeaseLost.self) { try await fenced.put("t1/y", [2]) }
            await #expect(throws: LeaseLost.self) { try await fenced.delete("t1/x") }
            #expect(try await store.head("t1/y") == nil)
            #expect(try await store.get("t1/x") == [1])
            let held = try JSONDecoder().decode(TenantLease.self, from: Data(try await store.get("_kiln/leases/t1.json")))
            #expect(held.holder == "b" && held.token == 2)

            // A holder paused past its deadline goes on only if nobody took the lease meanwhile.
            try await b.check(now: .now + .seconds(11))
            let c = try #require(
                try await TenantLease.acquire(
                    store: store, tenant: "t1", holder: "c", duration: duration, now: Date().addingTimeInterval(60)))
            #expect(c.token == 3)
            await #expect(throws: LeaseLost.self) { try await b.check(now: .now + .seconds(30)) }
        }
    }

    @Test(arguments: Backend.allCases)
    func conditionalPutsSwapOnlyTheVersionTheyRead(kind: Backend) async throws {
        try await withStore(kind, "cas") { store, _ in
            let first = try #require(try await store.put("k/lease", [1], if: .absent))
            #expect(try await store.put("k/lease", [9], if: .absent) == nil)
            #expect(try await store.head("k/lease")?.etag == first)
            let second = try #require(try await store.put("k/lease", [2], if: .matches(etag: first)))
            #expect(second != first)
            // The old version's tag no longer matches: the second swap from it loses, and writes nothing.
            #expect(try await store.put("k/lease", [3], if: .matches(etag: first)) == nil)
            #expect(try await store.get("k/lease") == [2])
            #expect(try await store.put("k/none", [4], if: .matches(etag: first)) == nil)
            #expect(try await store.head("k/none") == nil)
            // Many swaps racing from one version: exactly one wins. Only where the test's store makes that
            // promise: moto checks If-Match and then writes without a lock on a threaded server, so two of
            // eight racing swaps have both won there (real S3 swaps atomically); file:// is Kiln's own.
            guard kind == .file else { return }
            let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<8 { group.addTask { try await store.put("k/lease", [UInt8(10 + i)], if: .matches(etag: second)) != nil } }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(wins == 1)
        }
    }
}
