import Foundation
import KilnFoundation
import Logging
import ObjectStore

public struct CompactionConfig: Sendable {
    /// Time window of each output level: level 1 merges into 1 h windows, level 2 into 8 h windows.
    /// 1 h matches the query engine's common ranges (a flame graph of the last hour reads one block);
    /// 8 h keeps a day in three blocks without making one merge hold more than a few heads' worth of memory.
    public var levelWindows: [Duration] = [.seconds(3600), .seconds(8 * 3600)]
    /// A window is merged once its end is this far in the past, so late L0 blocks (a head cut up to its
    /// max age after its samples) have arrived.
    public var settleDelay: Duration = .seconds(15 * 60)
    /// Superseded and expired blocks stay this long after their deletion mark, so queries that listed
    /// them before the mark can finish reading.
    public var deletionDelay: Duration = .seconds(2 * 3600)
    /// Folders without meta.json older than this are crash leftovers and are removed.
    public var partialGrace: Duration = .seconds(3600)
    /// Blocks whose newest sample is older than this are removed; nil keeps data forever.
    public var retention: Duration?
    /// Blocks whose newest sample is older than this are rewritten per minute, then past `perHourAfter` per
    /// hour (docs/block-format.md); nil keeps full resolution (the library's default; `kiln-compactor`'s is
    /// 7 days and 30 days).
    public var perMinuteAfter: Duration?
    public var perHourAfter: Duration?
    /// Per-tenant resolution ages and retention, instead of the three above.
    public var tenantAges: [String: ResolutionAges] = [:]
    /// How long one compactor holds a tenant's lease.
    public var leaseDuration: Duration = .seconds(300)
    /// Memory budget of one merge: a job merges only as many whole source blocks as fit, by the head's own
    /// estimate (`Head.estimatedBytes`) plus what encoding holds whatever the size
    /// (`Head.encodingReserveBytes`), so a compaction's memory is bounded by this, not by the window.
    /// The default is the ingest head's size limit (`CutPolicy.maxBytes`), so the compactor never needs more
    /// memory for a merge than for cutting a block.
    public var maxHeadBytes: Int = CutPolicy().maxBytes

    public init() {}

    /// The resolution ages and retention of `tenant`.
    public func ages(tenant: String) -> ResolutionAges {
        tenantAges[tenant] ?? ResolutionAges(perMinuteAfter: perMinuteAfter, perHourAfter: perHourAfter, retention: retention)
    }
}

extension Duration {
    var nanos: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// One merge: blocks of one tenant in one time window, into one block of `level`.
public struct CompactionJob: Sendable, Equatable {
    public var tenant: String
    public var level: Int
    public var window: Range<Int64>
    public var sources: [BlockMeta]
}

public enum CompactionPlanner {
    /// The merges to run now over the live blocks of one tenant: for the lowest output level with work,
    /// every closed window holding at least two blocks of lower or equal level, one of them lower.
    /// (Late level-0 data merges with the window's existing level-1 block.)
    ///
    /// A window's blocks, in ULID order, are packed greedily into groups whose estimated head size stays
    /// within `maxHeadBytes` (less the encoding reserve); each group holding two or more blocks, one of them of a lower level, is one job.
    /// Every job merges whole source blocks, so the superseding rule of `BlockIndex.live` (a block is hidden
    /// by one whose sources include its sources) keeps queries from counting anything twice even when a
    /// window ends up as several blocks of one level. A block that fills the budget alone stays as it is.
    public static func plan(tenant: String, live: [BlockMeta], config: CompactionConfig, now: Date = Date()) -> [CompactionJob] {
        let nowNanos = Int64(now.timeIntervalSince1970 * 1e9)
        for (i, window) in config.levelWindows.enumerated() {
            let level = i + 1
            let w = window.nanos
            var groups: [Int64: [BlockMeta]] = [:]
            // Downsampled blocks are old and final: their windows were merged before they were rewritten.
            for b in live where b.compaction.level <= level && b.stats.samples > 0 && b.resolutionMillis == nil {
                let start = b.minTime >= 0 ? (b.minTime / w) * w : ((b.minTime - w + 1) / w) * w
                groups[start, default: []].append(b)
            }
            var jobs: [CompactionJob] = []
            for (start, blocks) in groups.sorted(by: { $0.key < $1.key }) {
                guard start + w + config.settleDelay.nanos <= nowNanos else { continue }
                for group in pack(blocks.sorted { $0.ulid < $1.ulid }, budget: config.maxHeadBytes - Head.encodingReserveBytes)
                where group.count >= 2 && group.contains(where: { $0.compaction.level < level }) {
                    jobs.append(CompactionJob(tenant: tenant, level: level, window: start..<(start + w), sources: group))
                }
            }
            if !jobs.isEmpty { return jobs }
        }
        return []
    }
}

extension CompactionPlanner {
    /// Consecutive runs of `blocks` whose summed estimate stays within `budget` (a block over the budget
    /// forms a run of its own). Summing overestimates the merged head, since symbols and series dedupe.
    static func pack(_ blocks: [BlockMeta], budget: Int) -> [[BlockMeta]] {
        var groups: [[BlockMeta]] = []
        var current: [BlockMeta] = []
        var used = 0
        for b in blocks {
            let size = b.estimatedHeadBytes
            if !current.isEmpty && used + size > budget {
                groups.append(current)
                current = []
                used = 0
            }
            current.append(b)
            used += size
        }
        if !current.isEmpty { groups.append(current) }
        return groups
    }
}

extension BlockMeta {
    /// What this block's data costs in a head, by the head's own estimate.
    public var estimatedHeadBytes: Int {
        Head.estimatedBytes(
            samples: Int(stats.samples), stackNodes: Int(stats.stacks), frames: Int(stats.frames),
            functions: Int(stats.functions), series: Int(stats.series))
    }
}

/// Runs compaction, deletion, cleanup and retention against a store.
public struct Compactor: Sendable {
    public let store: any ObjectStore
    public let config: CompactionConfig
    public let writer: BlockWriter
    public let logger: Logger
    /// Names this process in leases.
    public let instanceID: String

    public init(
        store: any ObjectStore, config: CompactionConfig, writer: BlockWriter = BlockWriter(), logger: Logger,
        instanceID: String = ULID.make().string
    ) {
        self.store = store
        self.config = config
        self.writer = writer
        self.logger = logger
        self.instanceID = instanceID
    }

    /// Merges the job's sources into one block and marks the sources for deletion. The new block's ID is
    /// derived from its sources, so a retried or duplicated job writes the same block.
    @discardableResult
    public func run(_ job: CompactionJob, now: Date = Date()) async throws -> BlockMeta {
        var head = Head(tenant: job.tenant)
        head.reserveCapacity(samples: job.sources.reduce(0) { $0 + Int($1.stats.samples) })
        var sources: Set<ULID> = []
        for meta in job.sources {
            let reader = BlockReader(store: store, meta: meta)
            head.appendSamples(try await reader.asBatch())
            head.absorb(provenance: meta.kafka)
            sources.formUnion(meta.compaction.sources)
        }
        let parents = job.sources.map(\.ulid).sorted()
        let ulid = ULID.deterministic(
            timestampMillis: parents.map(\.timestampMillis).max() ?? 0,
            seed: "\(job.tenant)|\(job.level)|" + parents.map(\.string).joined(separator: ","))
        // Encoding and compressing a merged block is seconds of CPU: off the cooperative pool.
        let (writer, finished, lineage) = (
            self.writer, head, BlockMeta.Compaction(level: job.level, sources: sources.sorted(), parents: parents)
        )
        let block = try await BlockingWork.shared.run { try writer.encode(finished, ulid: ulid, compaction: lineage, createdAt: now) }
        let expected = job.sources.reduce(into: [String: Int64]()) { t, m in for (k, v) in m.totalsByProfileType { t[k, default: 0] &+= v }
        }
        guard block.meta.totalsByProfileType == expected else {
            throw BlockError("compaction of \(parents) changed the totals: \(block.meta.totalsByProfileType) vs \(expected)")
        }
        try await BlockWriter.upload(block, to: store)
        for p in parents {
            try await markForDeletion(tenant: job.tenant, ulid: p, reason: "compacted", supersededBy: ulid, now: now)
        }
        logger.info(
            "compacted",
            metadata: [
                "tenant": "\(job.tenant)", "level": "\(job.level)", "block": "\(ulid)",
                "sources": "\(parents.count)", "samples": "\(block.meta.stats.samples)",
                "bytes": "\(block.totalBytes)",
            ])
        return block.meta
    }

    public func markForDeletion(tenant: String, ulid: ULID, reason: String, supersededBy: ULID?, now: Date = Date()) async throws {
        let mark = DeletionMark(
            ulid: ulid, deletionTime: Int64(now.timeIntervalSince1970 * 1000), reason: reason, supersededBy: supersededBy)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        _ = try await store.putIfAbsent(BlockFile.key(tenant: tenant, ulid: ulid, BlockFile.deletionMark), Array(try encoder.encode(mark)))
    }

    /// Removes a block folder: meta.json first (the block stops being live at once), the mark last.
    func deleteBlock(tenant: String, ulid: ULID, keys: [String]) async throws {
        let meta = BlockFile.key(tenant: tenant, ulid: ulid, BlockFile.meta)
        let mark = BlockFile.key(tenant: tenant, ulid: ulid, BlockFile.deletionMark)
        if keys.contains(meta) { try await store.delete(meta) }
        for k in keys where k != meta && k != mark { try await store.delete(k) }
        if keys.contains(mark) { try await store.delete(mark) }
    }

    public struct PassResult: Sendable, Equatable {
        public var compacted = 0
        public var deleted = 0
        public var partialRemoved = 0
        /// Objects removed from committed blocks' folders that their meta.json does not list.
        public var straysRemoved = 0
        public var expired = 0
        public var downsampled = 0
        /// Live blocks the first round's jobs set out to merge: the compaction backlog the pass found.
        public var backlogBlocks = 0

        public init() {}
    }

    /// One maintenance pass over a tenant: retention marks, merges until no job is left, removal of
    /// marked blocks past the delay and of partial folders past the grace period.
    public func pass(tenant: String, now: Date = Date()) async throws -> PassResult {
        var result = PassResult()
        let nowMillis = Int64(now.timeIntervalSince1970 * 1000)
        let nowNanos = Int64(now.timeIntervalSince1970 * 1e9)
        var listing = try await BlockIndex.list(store, tenant: tenant)
        let ages = config.ages(tenant: tenant)
        if let retention = ages.retention {
            let cutoff = nowNanos - retention.nanos
            for b in BlockIndex.live(listing.metas, deletionMarks: listing.deletionMarks) where b.maxTime < cutoff {
                try await markForDeletion(tenant: tenant, ulid: b.ulid, reason: "retention", supersededBy: nil, now: now)
                result.expired += 1
            }
            if result.expired > 0 { listing = try await BlockIndex.list(store, tenant: tenant) }
        }
        // Blocks hidden by a compacted block but never marked: a job that died between its upload and its
        // marks. The planner never sees them again (they are not live), so mark them here.
        let live = Set(BlockIndex.live(listing.metas, deletionMarks: listing.deletionMarks).map(\.ulid))
        var supersededBy: [ULID: ULID] = [:]
        for m in listing.metas { for p in m.compaction.parents { supersededBy[p] = m.ulid } }
        var marked = 0
        for m in listing.metas where !live.contains(m.ulid) && listing.deletionMarks[m.ulid] == nil {
            try await markForDeletion(tenant: tenant, ulid: m.ulid, reason: "compacted", supersededBy: supersededBy[m.ulid], now: now)
            marked += 1
        }
        if marked > 0 { listing = try await BlockIndex.list(store, tenant: tenant) }
        var rounds = 0
        while rounds < 8 {
            rounds += 1
            let jobs = CompactionPlanner.plan(
                tenant: tenant, live: BlockIndex.live(listing.metas, deletionMarks: listing.deletionMarks),
                config: config, now: now)
            if jobs.isEmpty { break }
            if rounds == 1 { result.backlogBlocks = jobs.reduce(0) { $0 + $1.sources.count } }
            for job in jobs {
                try await run(job, now: now)
                result.compacted += 1
            }
            listing = try await BlockIndex.list(store, tenant: tenant)
        }
        // Old blocks to a coarser resolution, once their windows are merged (above).
        for b in BlockIndex.live(listing.metas, deletionMarks: listing.deletionMarks) where b.stats.samples > 0 {
            guard let target = ages.resolutionMillis(maxTime: b.maxTime, nowNanos: nowNanos), target > b.resolutionMillis ?? 0 else {
                continue
            }
            try await downsample(b, toMillis: target, now: now)
            result.downsampled += 1
        }
        if result.downsampled > 0 { listing = try await BlockIndex.list(store, tenant: tenant) }
        for (ulid, mark) in listing.deletionMarks where mark.deletionTime + config.deletionDelay.nanos / 1_000_000 <= nowMillis {
            try await deleteBlock(tenant: tenant, ulid: ulid, keys: listing.keys[ulid] ?? [])
            result.deleted += 1
        }
        for (ulid, newest) in listing.partial
        where listing.deletionMarks[ulid] == nil
            && now.timeIntervalSince(newest) >= config.partialGrace.seconds
        {
            try await deleteBlock(tenant: tenant, ulid: ulid, keys: listing.keys[ulid] ?? [])
            result.partialRemoved += 1
        }
        // After the same grace: a writer still uploading removes its own objects when it loses.
        for (ulid, strays) in listing.strays where listing.deletionMarks[ulid] == nil {
            for stray in strays where now.timeIntervalSince(stray.lastModified) >= config.partialGrace.seconds {
                try await store.delete(stray.key)
                result.straysRemoved += 1
            }
        }
        return result
    }

    /// A maintenance pass over every tenant whose lease this instance holds or can take. Each tenant's pass
    /// writes through its lease (`FencedObjectStore`): a pass whose lease ran out or moved stops at its next
    /// write, and the other tenants' passes go on.
    public func passAll(now: Date = Date()) async throws -> PassResult {
        var total = PassResult()
        for tenant in try await BlockIndex.tenants(in: store) {
            guard
                let lease = try await TenantLease.acquire(
                    store: store, tenant: tenant, holder: instanceID, duration: config.leaseDuration, now: now)
            else {
                continue
            }
            let fenced = Compactor(
                store: FencedObjectStore(store, lease: lease), config: config, writer: writer, logger: logger, instanceID: instanceID)
            let r: PassResult
            do {
                r = try await fenced.pass(tenant: tenant, now: now)
            } catch let lost as LeaseLost {
                logger.warning("maintenance stopped before its next write", metadata: ["tenant": "\(tenant)", "reason": "\(lost)"])
                continue
            }
            total.compacted += r.compacted
            total.deleted += r.deleted
            total.partialRemoved += r.partialRemoved
            total.straysRemoved += r.straysRemoved
            total.expired += r.expired
            total.downsampled += r.downsampled
            total.backlogBlocks += r.backlogBlocks
        }
        return total
    }
}
