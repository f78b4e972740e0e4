import Blocks
import Foundation
import KafkaClient
import Logging
import ObjectStore
import ProfileModel
import Records
import Synchronization
import TestSupport
import Testing

@testable import CompactorService

/// A normalized batch with a few series, stacks and samples; its values derive from the provenance.
private func batch(tenant: String, rawPartition: Int32, rawOffset: Int64, samples: Int = 40) -> SampleBatch {
    let cpu = ProfileTypeID(parsing: "process_cpu:cpu:nanoseconds:cpu:nanoseconds")!
    var b = SampleBatch(tenant: tenant, provenance: Provenance(topic: "kiln.profiles.raw", partition: rawPartition, offset: rawOffset))
    b.series = [
        BatchSeries(labels: LabelSet([Label("service_name", "svc\(rawOffset % 3)"), Label("__profile_type__", cpu.id)]), profileType: cpu)
    ]
    b.symbols = SymbolTable(
        strings: ["", "main", "work", "leaf\(rawOffset % 5)"],
        functions: [
            FunctionSymbol(name: 1, systemName: 1, filename: 0, startLine: 1),
            FunctionSymbol(name: 2, systemName: 2, filename: 0, startLine: 2),
            FunctionSymbol(name: 3, systemName: 3, filename: 0, startLine: 3),
        ],
        frames: [FrameSymbol(function: 0, line: 1), FrameSymbol(function: 1, line: 2), FrameSymbol(function: 2, line: 3)])
    b.stacks.append([2, 1, 0])
    b.stacks.append([1, 0])
    let now = Int64(Date().timeIntervalSince1970 * 1e9)
    for i in 0..<samples {
        b.sampleSeries.append(0)
        b.sampleStacks.append(UInt32(i % 2))
        b.sampleValues.append(rawOffset * 1000 + Int64(i) + 1)
        b.sampleTimes.append(now + Int64(i))
        b.sampleSpans.append(0)
    }
    return b
}

private func records(_ batches: [SampleBatch], topic: String) -> [ProducerRecord] {
    batches.map {
        ProducerRecord(topic: topic, key: RecordKeys.normalized(tenant: $0.tenant, serviceName: "svc"), value: BatchCodec.encode($0))
    }
}

/// Sum of values per tenant over the live blocks of the store.
private func storeTotals(_ store: any ObjectStore) async throws -> [String: Int64] {
    var out: [String: Int64] = [:]
    for t in try await BlockIndex.tenants(in: store) {
        for m in try await BlockIndex.liveBlocks(store, tenant: t) { out[t, default: 0] += m.totalsByProfileType.values.reduce(0, +) }
    }
    return out
}

private func expectedTotals(_ batches: [SampleBatch]) -> [String: Int64] {
    var out: [String: Int64] = [:]
    var seen = Set<Provenance>()
    for b in batches where seen.insert(b.provenance).inserted { out[b.tenant, default: 0] += b.sampleValues.reduce(0, +) }
    return out
}

/// Polls the store until its totals equal `expected` or the deadline passes; returns the last totals.
private func waitForTotals(_ store: any ObjectStore, _ expected: [String: Int64], timeout: Duration = .seconds(60)) async throws -> [String:
    Int64]
{
    let deadline = ContinuousClock.now + timeout
    var last: [String: Int64] = [:]
    while ContinuousClock.now < deadline {
        last = try await storeTotals(store)
        if last == expected { return last }
        try await Task.sleep(for: .milliseconds(200))
    }
    return last
}

enum CompactorStoreKind: String, CaseIterable, CustomStringConvertible {
    case file, s3
    var description: String { rawValue }
}

private func withCompactorStore(_ kind: CompactorStoreKind, _ body: (any ObjectStore, String) async throws -> Void) async throws {
    switch kind {
    case .file:
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-compactor-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = "file://" + dir.path
        let store = try makeObjectStore(url: url)
        do { try await body(store, url) } catch {
            try? await store.shutdown()
            throw error
        }
        try await store.shutdown()
        try? FileManager.default.removeItem(at: dir)
    case .s3:
        // Only the s3 case of each test needs moto: it alone is skipped without it (fails under `make test`).
        try await Requirement.s3.check()
        let endpoint = try TestEnvironment.requireS3Endpoint()
        let url = "s3://kiln-compactor-\(UInt32.random(in: 0 ... .max))/blocks?endpoint=\(endpoint)&region=us-east-1"
        let store = try makeObjectStore(url: url, environment: ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"])
        do {
            try await (store as! S3ObjectStore).createBucket()
            try await body(store, url)
        } catch {
            try? await store.shutdown()
            throw error
        }
        try await store.shutdown()
    }
}

@Suite(.requires(.kafka))
struct CompactorStageTests {
    @Test(arguments: [CompactorStoreKind.file, .s3])
    func exactlyOnceAcrossDuplicatesAndRedelivery(kind: CompactorStoreKind) async throws {
        let kafka = try testBroker()
        try await withCompactorStore(kind) { store, _ in
            let topic = uniqueName("normalized")
            _ = try await KafkaAdmin(config: kafka).createTopic(TopicSpec(name: topic, partitions: 2))
            var sent: [SampleBatch] = []
            for i in 0..<30 { sent.append(batch(tenant: i % 3 == 0 ? "acme" : "globex", rawPartition: Int32(i % 2), rawOffset: Int64(i))) }
            // The normaliser delivered five raw records twice (same provenance, re-encoded). Normalising is
            // deterministic, so the copies carry the same samples and times as the first delivery.
            for i in [3, 7, 11, 20, 29] { sent.append(sent[i]) }
            let producer = try KafkaProducer(config: ProducerConfig(kafka: kafka))
            _ = try await producer.sendBatch(records(sent, topic: topic))
            try await producer.close()
            let expected = expectedTotals(sent)

            let config = CompactorStage.Configuration(
                normalizedTopic: topic, groupID: uniqueName("compactor"),
                cut: CutPolicy(maxAge: .milliseconds(500)))
            let stage = try CompactorStage(configuration: config, kafka: kafka, store: store, logger: Logger(label: "test"))
            let run = Task { try await stage.run() }
            let totals = try await waitForTotals(store, expected)
            run.cancel()
            try await run.value
            #expect(totals == expected)
            #expect(stage.currentStats.duplicateBatches == 5)
            #expect(stage.currentStats.offsetGapRecords == 0)

            // A crash after the upload and before the commit: a consumer without the commits (a new group)
            // gets every record again. The store's provenance makes it skip all of them.
            var replay = config
            replay.groupID = uniqueName("compactor-replay")
            let second = try CompactorStage(configuration: replay, kafka: kafka, store: store, logger: Logger(label: "test"))
            let run2 = Task { try await second.run() }
            let deadline = ContinuousClock.now + .seconds(60)
            while second.currentStats.recordsIn < sent.count, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            run2.cancel()
            try await run2.value
            #expect(second.currentStats.recordsIn == sent.count)
            // Each record is recognised by its normalized offset (held by a block) or, for the five
            // re-sent batches that never entered a block, by their raw provenance.
            #expect(second.currentStats.duplicateRecords == 30)
            #expect(second.currentStats.duplicateBatches == 5)
            #expect(second.currentStats.blocksWritten == 0)
            #expect(try await storeTotals(store) == expected)
            for t in try await BlockIndex.tenants(in: store) {
                for m in try await BlockIndex.liveBlocks(store, tenant: t) {
                    #expect(await BlockReader(store: store, meta: m).verify() == [])
                }
            }
        }
    }

    /// Offsets a broker skipped within a partition are counted and logged (the normalized topic has no
    /// transactions and no compaction, so a hole means acknowledged records are gone); a seek back is not a gap.
    @Test func offsetGapsAreCounted() async throws {
        try await withCompactorStore(.file) { store, _ in
            let topic = uniqueName("normalized")
            let config = CompactorStage.Configuration(normalizedTopic: topic, groupID: uniqueName("compactor"))
            let stage = try CompactorStage(configuration: config, kafka: try testBroker(), store: store, logger: Logger(label: "test"))
            func record(_ offset: Int64, partition: Int32 = 0) -> ConsumerRecord {
                let b = batch(tenant: "acme", rawPartition: partition, rawOffset: offset)
                return ConsumerRecord(
                    topic: topic, partition: partition, offset: offset, key: nil, value: BatchCodec.encode(b), headers: [],
                    timestampMillis: nil)
            }
            try await stage.process([record(0), record(1), record(5), record(6), record(3, partition: 1), record(4, partition: 1)])
            #expect(stage.currentStats.offsetGapRecords == 3)
            try await stage.process([record(2), record(9)])  // back to 2 (a redelivery), then on past 6 to 9
            #expect(stage.currentStats.offsetGapRecords == 5)
            #expect(stage.currentStats.recordsIn == 8)
        }
    }

    /// A crash between two tenants' uploads of one partition: the first tenant's block is committed, the
    /// second's is not. The restarted stage rebuilds the second tenant's head and starts a new head for the
    /// first tenant's later records; that new block must get an ID of its own (it once reused the committed
    /// block's ID, because both were seeded with the partition's first record, and overwrote its tables).
    @Test func crashBetweenTenantUploadsKeepsCommittedBlocksIntact() async throws {
        let kafka = try testBroker()
        try await withCompactorStore(.file) { store, _ in
            let topic = uniqueName("normalized-crash")
            _ = try await KafkaAdmin(config: kafka).createTopic(TopicSpec(name: topic, partitions: 1))
            // The partition's first record is globex's; acme's block sorts (and uploads) first.
            var sent = [
                batch(tenant: "globex", rawPartition: 0, rawOffset: 0), batch(tenant: "acme", rawPartition: 0, rawOffset: 1),
                batch(tenant: "acme", rawPartition: 0, rawOffset: 2), batch(tenant: "globex", rawPartition: 0, rawOffset: 3),
            ]
            let producer = try KafkaProducer(config: ProducerConfig(kafka: kafka))
            _ = try await producer.sendBatch(records(sent, topic: topic))

            let crashing = FailingMetaStore(inner: store, failingTenant: "globex")
            let config = CompactorStage.Configuration(
                normalizedTopic: topic, groupID: uniqueName("compactor"),
                cut: CutPolicy(maxAge: .milliseconds(300)))
            let first = try CompactorStage(configuration: config, kafka: kafka, store: crashing, logger: Logger(label: "test"))
            await #expect(throws: SimulatedCrash.self) { try await first.run() }
            let committed = try await BlockIndex.liveBlocks(store, tenant: "acme")
            #expect(committed.count == 1, "acme's block was committed before the crash")
            #expect(try await BlockIndex.liveBlocks(store, tenant: "globex").isEmpty)

            // A later acme record, then a restart that never saw the first run's offsets (nothing was committed).
            sent.append(batch(tenant: "acme", rawPartition: 0, rawOffset: 4))
            _ = try await producer.sendBatch(records([sent[4]], topic: topic))
            try await producer.close()
            var restart = config
            restart.groupID = uniqueName("compactor-restart")
            let second = try CompactorStage(configuration: restart, kafka: kafka, store: store, logger: Logger(label: "test"))
            let run = Task { try await second.run() }
            let totals = try await waitForTotals(store, expectedTotals(sent))
            run.cancel()
            try await run.value
            #expect(totals == expectedTotals(sent))
            #expect(second.currentStats.duplicateRecords == 2, "acme's committed records are recognised")
            for t in ["acme", "globex"] {
                for m in try await BlockIndex.liveBlocks(store, tenant: t) {
                    #expect(await BlockReader(store: store, meta: m).verify() == [])
                }
            }
            #expect(try await BlockIndex.liveBlocks(store, tenant: "acme").map(\.ulid).contains(committed[0].ulid))
        }
    }

    /// Seen in `make soak`: a compactor paused past its session resumed and cut a head of a partition that had
    /// moved on, before it learned of the rebalance. Its block starts at the same record as the new owner's
    /// head, so it has that head's ID with other contents; the owner then exited. Now the owner reads the
    /// partition again, skips what that block holds and writes the rest under another ID.
    @Test func aBlockCommittedByAPreviousOwnerIsNotWrittenAgain() async throws {
        let kafka = try testBroker()
        try await withCompactorStore(.file) { store, _ in
            let topic = uniqueName("normalized-owner")
            _ = try await KafkaAdmin(config: kafka).createTopic(TopicSpec(name: topic, partitions: 1))
            let sent = (0..<4).map { batch(tenant: "acme", rawPartition: 0, rawOffset: Int64($0)) }
            let firstMillis = Int64(Date().timeIntervalSince1970 * 1000) - 5_000
            let producer = try KafkaProducer(config: ProducerConfig(kafka: kafka))
            _ = try await producer.sendBatch(
                records(sent, topic: topic).enumerated().map { i, r in
                    var r = r
                    r.partition = 0
                    r.timestampMillis = firstMillis + Int64(i)
                    return r
                })
            try await producer.close()

            // The owner reads all four records and cuts 5 s after the first; meanwhile the previous owner's block
            // of the first two lands under the ID the owner's head will get.
            let config = CompactorStage.Configuration(
                normalizedTopic: topic, groupID: uniqueName("compactor"), cut: CutPolicy(maxAge: .seconds(5)))
            let owner = try CompactorStage(configuration: config, kafka: kafka, store: store, logger: Logger(label: "test"))
            let run = Task { try await owner.run() }
            try #require(
                await eventually(timeout: .seconds(30)) { owner.currentStats.batchesAppended == 4 }, "the owner read the four records")
            let topicID = try? await KafkaAdmin(config: kafka).topicIDs([topic])[topic]
            var previous = Head(tenant: "acme")
            for offset in 0..<2 {
                previous.append(sent[offset], from: RecordPosition(topic: topic, partition: 0, offset: Int64(offset), topicID: topicID))
            }
            let ulid = CompactorStage.levelZeroULID(
                tenant: "acme", partition: PartitionKey(topic: topic, partition: 0), firstOffset: 0, topicID: topicID,
                timestampMillis: UInt64(firstMillis))
            try await BlockWriter.upload(
                try BlockWriter().encode(previous, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: [])), to: store)

            let totals = try await waitForTotals(store, expectedTotals(sent))
            run.cancel()
            try await run.value
            #expect(totals == expectedTotals(sent), "every record in exactly one live block")
            #expect(owner.currentStats.blockConflicts == 1)
            #expect(owner.currentStats.duplicateRecords == 2, "the previous owner's two records are skipped when read again")
            let live = try await BlockIndex.liveBlocks(store, tenant: "acme")
            #expect(live.map(\.ulid).contains(ulid))
            #expect(live.count == 2)
            for m in live { #expect(await BlockReader(store: store, meta: m).verify() == []) }
        }
    }

    /// A store that fails when the stage starts (seen in `make soak`: S3 answering 503 while the compactor
    /// read the blocks' provenance) is waited for; the stage then consumes and stores everything.
    @Test func aStoreFailingAtStartIsWaitedFor() async throws {
        let kafka = try testBroker()
        try await withCompactorStore(.file) { store, _ in
            let topic = uniqueName("normalized-store-down")
            _ = try await KafkaAdmin(config: kafka).createTopic(TopicSpec(name: topic, partitions: 1))
            let batches = (0..<5).map { batch(tenant: "acme", rawPartition: 0, rawOffset: Int64($0)) }
            let producer = try KafkaProducer(config: ProducerConfig(kafka: kafka))
            _ = try await producer.sendBatch(records(batches, topic: topic))
            try await producer.close()
            let failing = FailingAtFirstStore(inner: store, failures: 2)
            let config = CompactorStage.Configuration(
                normalizedTopic: topic, groupID: uniqueName("compactor-store-down"), cut: CutPolicy(maxAge: .milliseconds(300)))
            let stage = try CompactorStage(configuration: config, kafka: kafka, store: failing, logger: Logger(label: "test"))
            let run = Task { try await stage.run() }
            let totals = try await waitForTotals(store, expectedTotals(batches), timeout: .seconds(30))
            run.cancel()
            try await run.value
            #expect(totals == expectedTotals(batches))
            #expect(failing.failed.withLock { $0 } == 2)
        }
    }

    /// The real binary, SIGKILLed three times at random moments while batches keep arriving, then stopped
    /// with SIGTERM: the store holds every batch exactly once.
    @Test(arguments: [CompactorStoreKind.file, .s3])
    func killedCompactorLosesNothingAndDuplicatesNothing(kind: CompactorStoreKind) async throws {
        let kafka = try testBroker()
        let brokers = kafka.bootstrapServers
        let binary = TestEnvironment.binDir.appendingPathComponent("kiln-compactor")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            Issue.record("\(binary.path) not built (swift build --product kiln-compactor)")
            return
        }
        try await withCompactorStore(kind) { store, url in
            let topic = uniqueName("normalized-kill")
            _ = try await KafkaAdmin(config: kafka).createTopic(TopicSpec(name: topic, partitions: 3))
            let group = uniqueName("compactor-kill")
            let producer = try KafkaProducer(config: ProducerConfig(kafka: kafka))
            var sent: [SampleBatch] = []
            var nextOffset: Int64 = 0
            func produce(_ n: Int) async throws {
                var chunk: [SampleBatch] = []
                for _ in 0..<n {
                    chunk.append(
                        batch(
                            tenant: nextOffset % 2 == 0 ? "acme" : "globex", rawPartition: Int32(nextOffset % 4), rawOffset: nextOffset,
                            samples: 200))
                    nextOffset += 1
                }
                // Some of every chunk again, as a replaying normaliser would send it.
                chunk += chunk.prefix(3)
                sent += chunk
                _ = try await producer.sendBatch(records(chunk, topic: topic))
            }
            let arguments =
                ["--kafka-brokers", brokers] + TestEnvironment.quickGroupArguments + [
                    "--normalized-topic", topic, "--group", group, "--store", url, "--max-block-age", "300ms",
                    "--compaction", "off", "--admin-listen", "127.0.0.1:0",
                ]
            let environment = ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"]
            var rng = SystemRandomNumberGenerator()
            for round in 0..<3 {
                try await produce(40)
                let child = try ChildProcess(binary, arguments, environment: environment)
                // Once it is writing blocks, kill it without warning at a random moment (mid-upload,
                // between upload and commit, or after the commit).
                _ = try await child.waitForLine(timeout: .seconds(30)) { $0.contains("block written") }
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...400, using: &rng)))
                child.signal(SIGKILL)
                _ = try await child.waitForExit()
                print("round \(round): killed; store totals \(try await storeTotals(store))")
            }
            try await produce(40)
            try await producer.close()
            let expected = expectedTotals(sent)
            let child = try ChildProcess(binary, arguments, environment: environment)
            let totals = try await waitForTotals(store, expected, timeout: .seconds(90))
            child.signal(SIGTERM)
            let status = try await child.waitForExit()
            #expect(totals == expected)
            #expect(status == 0)
            #expect(try await storeTotals(store) == expected)
            // Every raw provenance is held by exactly one live block.
            var seen: [PartitionKey: OffsetRanges] = [:]
            var overlaps = 0
            for t in try await BlockIndex.tenants(in: store) {
                for m in try await BlockIndex.liveBlocks(store, tenant: t) {
                    for (k, v) in m.kafka.rawByPartition {
                        if seen[k]?.intersects(v) ?? false { overlaps += 1 }
                        seen[k, default: OffsetRanges()].formUnion(v)
                    }
                }
            }
            #expect(overlaps == 0)
            #expect(seen.values.reduce(0) { $0 + $1.count } == nextOffset)
        }
    }

    /// The real binary with compaction on, SIGKILLed at random moments while it merges, deletes and cleans
    /// up, then left to finish: at every point the live blocks hold each sample once, every live block
    /// verifies, and in the end one level-2 block remains with no leftovers.
    @Test(arguments: [CompactorStoreKind.file, .s3])
    func killedCompactionJobsLeaveTheStoreConsistent(kind: CompactorStoreKind) async throws {
        let brokers = try TestEnvironment.requireKafkaBrokers()
        let binary = TestEnvironment.binDir.appendingPathComponent("kiln-compactor")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            Issue.record("\(binary.path) not built (swift build --product kiln-compactor)")
            return
        }
        try await withCompactorStore(kind) { store, url in
            // An 8 h window two days back, so every level-1 and level-2 window is closed and settled:
            // three level-0 blocks per hour, eight hours.
            let hour: Int64 = 3_600_000_000_000
            let now = Int64(Date().timeIntervalSince1970 * 1e9)
            let window = (now - 48 * hour) / (8 * hour) * (8 * hour)
            var sent: [String: Int64] = [:]
            var offset: Int64 = 0
            var l0Count = 0
            for h in 0..<8 {
                for _ in 0..<3 {
                    var head = Head(tenant: "acme")
                    for _ in 0..<3 {
                        let b = makeBatch(tenant: "acme", offset: offset, samples: 600, baseTimeNanos: window + Int64(h) * hour)
                        for (k, v) in b.totalsByProfileType { sent[k.id, default: 0] &+= v }
                        head.append(b)
                        offset += 1
                    }
                    let ulid = ULID.make()
                    try await BlockWriter.upload(
                        try BlockWriter().encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: [])), to: store)
                    l0Count += 1
                }
            }
            func typeTotals() async throws -> [String: Int64] {
                var out: [String: Int64] = [:]
                for m in try await BlockIndex.liveBlocks(store, tenant: "acme") {
                    for (k, v) in m.totalsByProfileType { out[k, default: 0] &+= v }
                }
                return out
            }
            func checkConsistent(_ when: String) async throws {
                #expect(try await typeTotals() == sent, "\(when): live totals differ from what was written")
                for m in try await BlockIndex.liveBlocks(store, tenant: "acme") {
                    let problems = await BlockReader(store: store, meta: m).verify()
                    #expect(problems == [], "\(when): block \(m.ulid) does not verify")
                }
            }
            try await checkConsistent("before")

            let arguments =
                [
                    "--kafka-brokers", brokers,
                ] + TestEnvironment.quickGroupArguments + [
                    "--normalized-topic", uniqueName("normalized-compaction-kill"), "--group", uniqueName("compaction-kill"),
                    "--store", url, "--compaction", "on", "--compaction-interval", "100ms", "--deletion-delay", "0s",
                    "--compaction-lease", "1s", "--admin-listen", "127.0.0.1:0",
                ]
            let environment = ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"]
            var rng = SystemRandomNumberGenerator()
            func finished() async throws -> Bool {
                let l = try await BlockIndex.list(store, tenant: "acme")
                return l.metas.count == 1 && l.metas[0].compaction.level == 2 && l.deletionMarks.isEmpty
            }
            var killsWithWorkLeft = 0
            for round in 0..<4 {
                let child = try ChildProcess(binary, arguments, environment: environment)
                if round == 0 {
                    // The first kill lands right after the first merge, so the rest (more merges, the marks,
                    // the deletions) is certainly left for a restart, however fast this machine is.
                    _ = try await child.waitForLine(timeout: .seconds(30)) { $0.contains("msg=compacted ") }
                } else {
                    // Then without warning at a random moment after start: waiting for the lease, mid-upload,
                    // between the upload and the deletion marks, mid-deletion, or between jobs.
                    _ = try await child.waitForLine(timeout: .seconds(30)) { $0.contains("block store") }
                    try await Task.sleep(for: .milliseconds(Int.random(in: 0...1500, using: &rng)))
                }
                child.signal(SIGKILL)
                _ = try await child.waitForExit()
                let done = try await finished()
                if !done { killsWithWorkLeft += 1 }
                print(
                    "round \(round): killed, \(done ? "all merged" : "work left"): \(child.lines.filter { $0.contains("compacted") }.count) log lines of merges"
                )
                try await checkConsistent("after kill \(round)")
            }
            #expect(killsWithWorkLeft >= 1)

            // Left to finish: one level-2 block holding every level-0 block, the sources deleted.
            let child = try ChildProcess(binary, arguments, environment: environment)
            // Its SIGTERM handler is in place once the stage consumes.
            _ = try await child.waitForLine(timeout: .seconds(30)) { $0.contains("msg=consuming ") }
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline, !(try await finished()) { try await Task.sleep(for: .milliseconds(100)) }
            let listing = try await BlockIndex.list(store, tenant: "acme")
            child.signal(SIGTERM)
            let status = try await child.waitForExit()
            #expect(status == 0, "kiln-compactor exited \(status) after SIGTERM:\n\(child.lines.suffix(30).joined(separator: "\n"))")
            #expect(listing.metas.count == 1)
            let top = try #require(listing.metas.first)
            #expect(top.compaction.level == 2)
            #expect(top.compaction.sources.count == l0Count)
            try await checkConsistent("at the end")
            // Folders a kill left without meta.json go once the grace period has passed.
            let sweep = try await Compactor(store: store, config: CompactionConfig(), logger: Logger(label: "test"))
                .pass(tenant: "acme", now: Date().addingTimeInterval(2 * 3600))
            print("partial folders removed at the end: \(sweep.partialRemoved)")
            let final = try await BlockIndex.list(store, tenant: "acme")
            #expect(final.partial.isEmpty)
            #expect(Array(final.keys.keys) == [top.ulid])
            #expect(try await typeTotals() == sent)
        }
    }

    /// Both topics deleted and created again under the same names: offsets restart at 0, and the records of
    /// the new topics are new data, not duplicates of the blocks the old topics left in the store.
    @Test func recordsOfRecreatedTopicsAllLand() async throws {
        let kafka = try testBroker()
        try await withCompactorStore(.file) { store, _ in
            let topic = uniqueName("normalized-recreate")
            let rawTopic = uniqueName("raw-recreate")
            let admin = try KafkaAdmin(config: kafka)
            func create() async throws -> [String: String] {
                _ = try await admin.createTopic(TopicSpec(name: topic, partitions: 1))
                _ = try await admin.createTopic(TopicSpec(name: rawTopic, partitions: 1))
                return try await admin.topicIDs([topic, rawTopic])
            }
            func send(seed: UInt64) async throws -> [SampleBatch] {
                // Raw offsets 0..<10 in each incarnation, as a normaliser reading the new raw topic would number them.
                let batches = (0..<10).map {
                    makeBatch(
                        tenant: "acme", rawTopic: rawTopic, offset: Int64($0), samples: 50,
                        baseTimeNanos: Int64(Date().timeIntervalSince1970 * 1e9), seed: seed &+ UInt64($0))
                }
                let producer = try KafkaProducer(config: ProducerConfig(kafka: kafka))
                _ = try await producer.sendBatch(records(batches, topic: topic))
                try await producer.close()
                return batches
            }
            func compact(_ expected: [String: Int64]) async throws -> CompactorStage.Stats {
                let config = CompactorStage.Configuration(
                    normalizedTopic: topic, groupID: uniqueName("compactor-recreate"),
                    cut: CutPolicy(maxAge: .milliseconds(300)))
                let stage = try CompactorStage(configuration: config, kafka: kafka, store: store, logger: Logger(label: "test"))
                let run = Task { try await stage.run() }
                let totals = try await waitForTotals(store, expected, timeout: .seconds(30))
                run.cancel()
                try await run.value
                #expect(totals == expected)
                return stage.currentStats
            }
            let firstIDs = try await create()
            let first = try await send(seed: 1)
            let total1 = first.reduce(0) { $0 + $1.sampleValues.reduce(0, +) }
            _ = try await compact(["acme": total1])

            try await admin.deleteTopic(topic)
            try await admin.deleteTopic(rawTopic)
            let secondIDs = try await create()
            // Tansu gives topic IDs; a recreated topic gets a new one.
            #expect(firstIDs[topic] != nil && firstIDs[rawTopic] != nil)
            #expect(secondIDs[topic] != firstIDs[topic] && secondIDs[rawTopic] != firstIDs[rawTopic])
            let second = try await send(seed: 1000)
            let total2 = second.reduce(0) { $0 + $1.sampleValues.reduce(0, +) }
            let stats = try await compact(["acme": total1 + total2])
            #expect(stats.duplicateRecords == 0 && stats.duplicateBatches == 0)
            #expect(stats.batchesAppended == 10)
            // The blocks name the incarnation they hold.
            let live = try await BlockIndex.liveBlocks(store, tenant: "acme")
            let ids = Set(live.flatMap { $0.kafka.normalized.compactMap(\.topicID) })
            #expect(ids == Set([firstIDs[topic], secondIDs[topic]].compactMap { $0 }))
        }
    }
}

private struct SimulatedCrash: Error {}

/// The file store, except that its first `failures` listings fail as S3 does when it keeps answering 503.
private final class FailingAtFirstStore: ForwardingObjectStore {
    let inner: any ObjectStore
    let failed = Mutex(0)
    let failures: Int
    init(inner: any ObjectStore, failures: Int) {
        self.inner = inner
        self.failures = failures
    }
    func list(prefix: String, delimiter: String?) async throws -> ListResult {
        let fail = failed.withLock { n -> Bool in
            guard n < failures else { return false }
            n += 1
            return true
        }
        if fail { throw ObjectStoreError(.unavailable, "HTTP 503 SlowDown — gave up after 5 attempt(s)", httpStatus: 503) }
        return try await inner.list(prefix: prefix, delimiter: delimiter)
    }
}

/// The file store, except that committing (meta.json) a block of `failingTenant` ends the stage as a crash
/// would: with an error the stage does not retry.
private struct FailingMetaStore: ForwardingObjectStore {
    let inner: any ObjectStore
    let failingTenant: String
    func putIfAbsent(_ key: String, _ bytes: [UInt8]) async throws -> Bool {
        if key.hasPrefix(failingTenant + "/"), key.hasSuffix("/" + BlockFile.meta) { throw SimulatedCrash() }
        return try await inner.putIfAbsent(key, bytes)
    }
}
