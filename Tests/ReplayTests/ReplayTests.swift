import Blocks
import CompactorService
import Foundation
import KafkaClient
import Logging
import Normalization
import NormalizerService
import ObjectStore
import PprofCodec
import ProfileModel
import Records
import Replay
import TestSupport
import Testing

/// Profiles of the repo's Go demo, as a fleet of series on a raw topic.
struct ReplayFleet {
    var envelopes: [RawEnvelope]

    /// `rounds` goroutine profiles (snapshots) and `rounds` allocs profiles (cumulative) per instance,
    /// for two tenants; successive profiles of a series are 15 s apart.
    static func make(demo: GoDemo, instances: Int, rounds: Int) async throws -> ReplayFleet {
        var goroutines: [[UInt8]] = []
        var allocs: [[UInt8]] = []
        for _ in 0..<rounds {
            goroutines.append(try await demo.fetch("/debug/pprof/goroutine"))
            allocs.append(try await demo.fetch("/debug/pprof/allocs"))
        }
        let base = Int64(Date().timeIntervalSince1970) * 1_000_000_000
        var envelopes: [RawEnvelope] = []
        for round in 0..<rounds {
            for tenant in ["acme", "globex"] {
                for i in 0..<instances {
                    let labels = ["service_name": "svc-\(i % 3)", "instance": "10.0.0.\(i):6060"]
                    let time = base + Int64(round) * 15_000_000_000
                    envelopes.append(
                        RawEnvelope(
                            tenant: tenant, labels: LabelSet(labels.merging(["__name__": "goroutine"]) { a, _ in a }),
                            source: .scrape, format: .pprof, startNanos: time, endNanos: time,
                            cumulative: false, payload: goroutines[round]))
                    envelopes.append(
                        RawEnvelope(
                            tenant: tenant, labels: LabelSet(labels.merging(["__name__": "memory"]) { a, _ in a }),
                            source: .scrape, format: .pprof, startNanos: time, endNanos: time,
                            cumulative: true, payload: allocs[round]))
                }
            }
        }
        return ReplayFleet(envelopes: envelopes)
    }

    /// What a normaliser with `limits` makes of the fleet, per profile type, and how many it rejects.
    /// Series stay in order (one series is one Kafka key), so one pass in send order is the reference.
    func expected(limits: PprofLimits = .default, where include: (Int, RawEnvelope) -> Bool = { _, _ in true })
        -> (totals: [String: Int64], rejected: Set<Int>)
    {
        var normalizer = Normalizer(options: NormalizerOptions(limits: limits))
        var totals: [String: Int64] = [:]
        var rejected = Set<Int>()
        for (i, e) in envelopes.enumerated() where include(i, e) {
            do {
                let result = try normalizer.normalize(e, provenance: Provenance(topic: "raw", partition: 0, offset: Int64(i)))
                for (type, total) in result.batch?.totalsByProfileType ?? [:] { totals[type.description, default: 0] += total }
            } catch {
                rejected.insert(i)
            }
        }
        return (totals, rejected)
    }

    func produce(to topic: String, kafka: KafkaConfig) async throws {
        let producer = try KafkaProducer(config: ProducerConfig(kafka: kafka))
        _ = try await producer.sendBatch(envelopes.map { ProducerRecord(topic: topic, key: $0.key, value: $0.encoded()) })
        try await producer.close()
    }
}

/// The test broker (tests that call this are marked `.requires(.kafka)`).
func testBroker() throws -> KafkaConfig {
    let brokers = try TestEnvironment.requireKafkaBrokers()
    return KafkaConfig(
        bootstrapServers: brokers, clientID: "kiln-replay-tests", options: TestEnvironment.quickGroupSettings.map(KafkaOption.init))
}

func uniqueName(_ prefix: String) -> String { "\(prefix)-\(UInt32.random(in: 0 ... .max))" }

/// Sum of sample values per profile type over the live blocks of every tenant.
func storeTotals(_ store: any ObjectStore) async throws -> [String: Int64] {
    var out: [String: Int64] = [:]
    for t in try await BlockIndex.tenants(in: store) {
        for m in try await BlockIndex.liveBlocks(store, tenant: t) {
            for (type, total) in m.totalsByProfileType { out[type, default: 0] += total }
        }
    }
    return out
}

func temporaryStore() throws -> (any ObjectStore, String, URL) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("kiln-replay"))
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let url = "file://" + dir.path
    return (try makeObjectStore(url: url), url, dir)
}

/// A new bucket on the test S3 server (tests that call this are marked `.requires(.s3)`).
func s3Store() async throws -> (any ObjectStore, String) {
    let endpoint = try TestEnvironment.requireS3Endpoint()
    let url = "s3://\(uniqueName("kiln-replay"))/replayed?endpoint=\(endpoint)&region=us-east-1"
    let store = try makeObjectStore(url: url, environment: ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"])
    try await (store as! S3ObjectStore).createBucket()
    return (store, url)
}

/// Polls until `condition` holds or the deadline passes.
func waitUntil(_ what: String, timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !(try await condition()) {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out waiting for \(what)")
            return
        }
        try await Task.sleep(for: .milliseconds(200))
    }
}

@Suite(.serialized) struct ReplayTests {
    /// Ingest through the real normaliser and compactor with a profile-size limit that rejects one kind
    /// of profile; then replay the raw topic with the default limit into a new S3 prefix (every profile's
    /// values arrive), replay the DLQ into a third prefix (exactly the rejected ones), a tenant/service
    /// selection into a fourth, and everything into a new topic that a compactor writes into a fifth.
    /// The original blocks are untouched.
    @Test(.requires(.kafka, .s3, .go))
    func replayWithAChangedSettingIntoNewPrefixes() async throws {
        let kafka = try testBroker()
        let demo = try await GoDemo.start()
        defer { Task { try? await demo.stop() } }
        let fleet = try await ReplayFleet.make(demo: demo, instances: 4, rounds: 3)
        // A limit on the decompressed size just below the largest profile's rejects some profiles.
        let sizes = try fleet.envelopes.map { try Self.inflatedSize($0.payload) }
        let limit = try #require(sizes.filter { $0 < sizes.max()! }.max(), "every profile has the same size")
        var tight = PprofLimits.default
        tight.maxDecompressedBytes = limit
        let full = fleet.expected()
        let restricted = fleet.expected(limits: tight)
        #expect(full.rejected.isEmpty)
        #expect(restricted.rejected.count == sizes.filter { $0 > limit }.count)
        // The goroutine totals also equal the profiles' own sums: the reference is not just the normaliser.
        let goroutineType = full.totals.keys.first { $0.hasPrefix("goroutine:") }!
        let decodedGoroutines = try fleet.envelopes.filter { !$0.cumulative }.reduce(Int64(0)) { sum, e in
            let p = try PprofDecoder().decode(e.payload)
            return sum + (0..<p.sampleCount).filter { !p.stack($0).isEmpty }.reduce(Int64(0)) { $0 + p.values($1).first! }
        }
        #expect(full.totals[goroutineType] == decodedGoroutines)

        let raw = uniqueName("raw")
        let normalized = uniqueName("normalized")
        let dlq = uniqueName("dlq")
        let admin = try KafkaAdmin(config: kafka)
        for t in [raw, normalized, dlq] { _ = try await admin.createTopic(TopicSpec(name: t, partitions: 3)) }
        try await fleet.produce(to: raw, kafka: kafka)

        // The original ingest.
        let (original, _, originalDir) = try temporaryStore()
        defer { try? FileManager.default.removeItem(at: originalDir) }
        let normalizerStage = try NormalizerStage(
            configuration: .init(
                rawTopic: raw, normalizedTopic: normalized, dlqTopic: dlq, groupID: uniqueName("n"),
                normalizer: NormalizerOptions(limits: tight)),
            kafka: kafka, logger: Logger(label: "test"))
        let compactorStage = try CompactorStage(
            configuration: .init(normalizedTopic: normalized, groupID: uniqueName("c"), cut: CutPolicy(maxAge: .milliseconds(300))),
            kafka: kafka, store: original, logger: Logger(label: "test"))
        let runs = [Task { try await normalizerStage.run() }, Task { try await compactorStage.run() }]
        try await waitUntil("the original blocks") { try await storeTotals(original) == restricted.totals }
        for r in runs { r.cancel() }
        for r in runs { try await r.value }
        #expect(normalizerStage.currentStats.dlqRecords == restricted.rejected.count)
        let originalBlocks = try await Self.blockIDs(original)

        // Replay the raw topic with the default limit into a new prefix on S3.
        let (replayed, replayedURL) = try await s3Store()
        let job = ReplayJob(
            plan: ReplayPlan(sourceTopic: raw, output: .blocks(store: replayedURL)),
            options: .init(kafka: kafka), sink: BlockReplaySink(store: replayed),
            checkpoints: try ReplayCheckpointStore(store: replayed, name: "limits-fix"))
        let result = try await job.run()
        #expect(result.finished)
        #expect(result.counts.recordsRead == fleet.envelopes.count)
        #expect(result.counts.rejected == 0)
        #expect(result.counts.accountedRecords == result.counts.recordsRead)
        #expect(result.counts.totalsByProfileType == full.totals)
        #expect(try await storeTotals(replayed) == full.totals)
        for t in try await BlockIndex.tenants(in: replayed) {
            for m in try await BlockIndex.liveBlocks(replayed, tenant: t) {
                #expect(await BlockReader(store: replayed, meta: m).verify() == [])
            }
        }
        // Run again: the checkpoint says it is done; nothing is written twice.
        let again = try await ReplayJob(
            plan: job.plan, options: .init(kafka: kafka), sink: BlockReplaySink(store: replayed),
            checkpoints: try ReplayCheckpointStore(store: replayed, name: "limits-fix")
        ).run()
        #expect(again.counts == result.counts && again.partitions == result.partitions && again.finished)
        #expect(try await storeTotals(replayed) == full.totals)
        // The original prefix is as it was.
        #expect(try await Self.blockIDs(original) == originalBlocks)
        #expect(try await storeTotals(original) == restricted.totals)

        // Recover: the DLQ's records replayed with the default limit. A rejected cumulative profile starts
        // its own delta series there (the original covered its increment with the next profile's delta).
        let (recovered, recoveredURL, recoveredDir) = try temporaryStore()
        defer { try? FileManager.default.removeItem(at: recoveredDir) }
        let fromDLQ = try await ReplayJob(
            plan: ReplayPlan(sourceTopic: dlq, output: .blocks(store: recoveredURL)),
            options: .init(kafka: kafka), sink: BlockReplaySink(store: recovered),
            checkpoints: try ReplayCheckpointStore(store: recovered, name: "dlq")
        ).run()
        #expect(fromDLQ.counts.recordsRead == restricted.rejected.count)
        #expect(try await storeTotals(recovered) == fleet.expected(where: { i, _ in restricted.rejected.contains(i) }).totals)
        // Dead-lettered batches keep their raw provenance.
        for t in try await BlockIndex.tenants(in: recovered) {
            for m in try await BlockIndex.liveBlocks(recovered, tenant: t) { #expect(m.kafka.raw.allSatisfy { $0.topic == raw }) }
        }

        // A selection: one tenant, two services.
        let (selected, selectedURL, selectedDir) = try temporaryStore()
        defer { try? FileManager.default.removeItem(at: selectedDir) }
        let chosen: Set<String> = ["svc-0", "svc-2"]
        let subset = try await ReplayJob(
            plan: ReplayPlan(
                sourceTopic: raw, tenants: ["globex"], services: Array(chosen),
                output: .blocks(store: selectedURL)),
            options: .init(kafka: kafka), sink: BlockReplaySink(store: selected),
            checkpoints: try ReplayCheckpointStore(store: selected, name: "globex")
        ).run()
        let include: (Int, RawEnvelope) -> Bool = { _, e in e.tenant == "globex" && chosen.contains(e.labels["service_name"] ?? "") }
        #expect(subset.counts.skippedBySelection == fleet.envelopes.enumerated().filter { !include($0.offset, $0.element) }.count)
        #expect(try await storeTotals(selected) == fleet.expected(where: include).totals)
        #expect(try await BlockIndex.tenants(in: selected) == ["globex"])
        // Into a new normalized topic instead, for a compactor that writes another prefix.
        let renormalized = uniqueName("renormalized")
        _ = try await admin.createTopic(TopicSpec(name: renormalized, partitions: 2))
        let (viaTopic, viaTopicURL, viaTopicDir) = try temporaryStore()
        defer { try? FileManager.default.removeItem(at: viaTopicDir) }
        let toTopic = try await ReplayJob(
            plan: ReplayPlan(sourceTopic: raw, output: .topic(renormalized)),
            options: .init(kafka: kafka), sink: try TopicReplaySink(topic: renormalized, kafka: kafka),
            checkpoints: try ReplayCheckpointStore(store: viaTopic, name: "to-topic")
        ).run()
        #expect(toTopic.counts.outputsWritten == toTopic.counts.batchesWritten)
        #expect(viaTopicURL.hasPrefix("file://"))
        let (rewritten, _, rewrittenDir) = try temporaryStore()
        defer { try? FileManager.default.removeItem(at: rewrittenDir) }
        let compactor = try CompactorStage(
            configuration: .init(normalizedTopic: renormalized, groupID: uniqueName("c2"), cut: CutPolicy(maxAge: .milliseconds(300))),
            kafka: kafka, store: rewritten, logger: Logger(label: "test"))
        let compacting = Task { try await compactor.run() }
        try await waitUntil("blocks from the replayed topic") { try await storeTotals(rewritten) == full.totals }
        compacting.cancel()
        try await compacting.value
        #expect(try await storeTotals(rewritten) == full.totals)

        try await original.shutdown()
        try await rewritten.shutdown()
        try await viaTopic.shutdown()
        try await replayed.shutdown()
        try await recovered.shutdown()
        try await selected.shutdown()
    }

    /// `kiln replay` SIGKILLed after its first checkpoint, then interrupted with SIGINT, then run to the
    /// end: the prefix holds exactly the values of an uninterrupted normalisation, deltas included.
    @Test(.requires(.kafka, .go))
    func interruptedReplayResumesWithExactTotals() async throws {
        let kafka = try testBroker()
        let brokers = kafka.bootstrapServers
        let demo = try await GoDemo.start()
        defer { Task { try? await demo.stop() } }
        let binary = TestEnvironment.binDir.appendingPathComponent("kiln")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            Issue.record("\(binary.path) not built (swift build --product kiln)")
            return
        }
        let fleet = try await ReplayFleet.make(demo: demo, instances: 10, rounds: 4)
        let expected = fleet.expected().totals
        let raw = uniqueName("raw")
        _ = try await KafkaAdmin(config: kafka).createTopic(TopicSpec(name: raw, partitions: 4))
        try await fleet.produce(to: raw, kafka: kafka)
        let (store, url, dir) = try temporaryStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Slow enough (40 records/s) to be stopped in the middle, with a checkpoint every 0.2 s.
        let arguments = [
            "replay", "--kafka-brokers", brokers, "--from-topic", raw, "--to-store", url, "--name", "resume",
            "--max-rate", "40", "--max-poll-records", "4", "--checkpoint-interval", "0.2", "--progress", "lines", "--json",
        ]

        let killed = try ChildProcess(binary, arguments)
        _ = try await killed.waitForLine { $0.contains("checkpoint saved at") && !$0.contains("saved at 0/") }
        killed.signal(SIGKILL)
        _ = try await killed.waitForExit()
        let afterKill = try await storeTotals(store)
        #expect(afterKill != expected, "the replay finished before it was killed")

        let interrupted = try ChildProcess(binary, arguments)
        _ = try await interrupted.waitForLine { $0.contains("checkpoint saved at") }
        interrupted.signal(SIGINT)
        #expect(try await interrupted.waitForExit() == 130)
        let paused = try Self.summary(interrupted.lines)
        #expect(!paused.finished)
        #expect(paused.recordsDone < paused.recordsToRead)

        let last = try ChildProcess(binary, arguments)
        #expect(try await last.waitForExit(timeout: .seconds(120)) == 0)
        let summary = try Self.summary(last.lines)
        #expect(summary.finished)
        #expect(summary.counts.resumes == 2)
        #expect(summary.counts.recordsRead == fleet.envelopes.count)
        #expect(summary.counts.totalsByProfileType.filter { $0.value != 0 } == expected.filter { $0.value != 0 })
        #expect(try await storeTotals(store) == expected)
        // Every raw offset is held by exactly one block.
        var seen: [PartitionKey: OffsetRanges] = [:]
        var overlaps = 0
        for t in try await BlockIndex.tenants(in: store) {
            for m in try await BlockIndex.liveBlocks(store, tenant: t) {
                for (key, ranges) in m.kafka.rawByPartition {
                    for r in ranges.ranges { for o in r where seen[key]?.contains(o) ?? false { overlaps += 1 } }
                    seen[key, default: OffsetRanges()].formUnion(ranges)
                }
            }
        }
        #expect(overlaps == 0)
        #expect(seen.values.reduce(0) { $0 + $1.count } == Int64(summary.counts.batchesWritten + summary.counts.alreadyInOutput))
        #expect(summary.counts.accountedRecords == fleet.envelopes.count)
        try await store.shutdown()
    }

    static func inflatedSize(_ payload: [UInt8]) throws -> Int {
        try payload.withUnsafeBytes { buffer in
            Gzip.isGzip(buffer) ? try Gzip.decompress(buffer, limit: 1 << 30).count : buffer.count
        }
    }

    static func blockIDs(_ store: any ObjectStore) async throws -> [String] {
        var out: [String] = []
        for t in try await BlockIndex.tenants(in: store) {
            out += try await BlockIndex.list(store, tenant: t).metas.map { "\(t)/\($0.ulid)" }
        }
        return out.sorted()
    }

    struct Summary: Decodable {
        var finished: Bool
        var recordsToRead: Int64
        var recordsDone: Int64
        var counts: ReplayCounts
    }

    /// The JSON object `kiln replay --json` prints last.
    static func summary(_ lines: [String]) throws -> Summary {
        guard let first = lines.lastIndex(of: "{"), let last = lines.lastIndex(of: "}"), first < last else {
            throw ReplayError("no JSON summary in:\n" + lines.suffix(20).joined(separator: "\n"))
        }
        return try JSONDecoder().decode(Summary.self, from: Data(lines[first...last].joined(separator: "\n").utf8))
    }
}

/// Without a broker: the pieces a resume depends on.
struct ReplayUnitTests {
    @Test func deltaStateSurvivesASnapshot() throws {
        var tracker = DeltaTracker()
        let a = DeltaTracker.StackKey(hash: 1, check: 2)
        let b = DeltaTracker.StackKey(hash: 3, check: 4)
        #expect(tracker.apply(seriesKey: 7, entries: [(a, 10), (b, 5)]) == .baseline)
        #expect(tracker.apply(seriesKey: 9, entries: [(a, 1)]) == .baseline)
        var restored = try DeltaTracker(snapshot: tracker.snapshot())
        #expect(restored.seriesCount == 2)
        #expect(restored.snapshot() == tracker.snapshot())
        #expect(restored.apply(seriesKey: 7, entries: [(a, 12), (b, 9)]) == tracker.apply(seriesKey: 7, entries: [(a, 12), (b, 9)]))
        #expect(restored.apply(seriesKey: 9, entries: [(a, 0)]) == .reset)
    }

    @Test func damagedSnapshotsAreRefusedByName() {
        var tracker = DeltaTracker()
        _ = tracker.apply(seriesKey: 1, entries: [(DeltaTracker.StackKey(hash: 1, check: 1), 1)])
        let bytes = tracker.snapshot()
        #expect(throws: DeltaTracker.SnapshotError.self) { try DeltaTracker(snapshot: Array(bytes.dropLast(3))) }
        #expect(throws: DeltaTracker.SnapshotError.self) { try DeltaTracker(snapshot: Array("XX".utf8)) }
        #expect(throws: DeltaTracker.SnapshotError.self) { try DeltaTracker(snapshot: bytes + [0]) }
        // A count that claims more entries than bytes remain must not allocate for it.
        var huge = bytes
        huge.replaceSubrange(35..<43, with: [UInt8](repeating: 0xFF, count: 8))
        #expect(throws: DeltaTracker.SnapshotError.self) { try DeltaTracker(snapshot: huge) }
    }

    @Test func partitionOffsetsParseOrSayWhy() throws {
        #expect(
            try PartitionOffset.list(parsing: "0:10,3:7") == [
                PartitionOffset(partition: 0, offset: 10), PartitionOffset(partition: 3, offset: 7),
            ])
        #expect(throws: ReplayError("'0-10' is not partition:offset (e.g. 0:1500)")) { try PartitionOffset.list(parsing: "0-10") }
        #expect(throws: ReplayError("'1:2,1:3' names a partition twice")) { try PartitionOffset.list(parsing: "1:2,1:3") }
    }

    @Test func aCheckpointOfAnotherPlanIsRefused() async throws {
        let (store, url, dir) = try temporaryStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        let checkpoints = try ReplayCheckpointStore(store: store, name: "one")
        let saved = ReplayCheckpoint(
            plan: ReplayPlan(sourceTopic: "raw", output: .blocks(store: url)),
            partitions: [.init(partition: 0, start: 0, position: 5, end: 10)], counts: ReplayCounts(),
            deltaState: Data(DeltaTracker().snapshot()), finished: false,
            updated: Date(timeIntervalSince1970: 1_780_000_000))
        try await checkpoints.save(saved)
        #expect(try await checkpoints.load() == saved)
        let other = ReplayJob(
            plan: ReplayPlan(sourceTopic: "raw", tenants: ["acme"], output: .blocks(store: url)),
            options: .init(kafka: KafkaConfig(bootstrapServers: "127.0.0.1:1", clientID: "t")),
            sink: BlockReplaySink(store: store), checkpoints: checkpoints)
        await #expect(throws: ReplayError.self) { _ = try await other.run() }
        #expect(throws: ReplayError.self) { try ReplayCheckpointStore(store: store, name: "../escape") }
        try await store.shutdown()
    }
}
