import Blocks
import Foundation
import KilnFoundation
import ObjectStore
import ProfileModel
import TestSupport
import Testing

extension ReliabilitySuite {
    /// Scenario: a compactor is stopped (SIGSTOP) in the middle of a maintenance pass and stays stopped past
    /// its lease; a second compactor takes the lease and does the work; the first is continued (SIGCONT).
    /// The resumed compactor writes nothing on the stale lease: every request it sends to the store after
    /// SIGCONT (it goes through the fault proxy, which logs them) is a read or a write of the lease itself.
    /// The store ends with one level-2 block holding every level-0 block's records once.
    @Test(.requires(.kafka, .s3))
    func pausedCompactorWritesNothingOnItsStaleLease() async throws {
        let kafka = try Integration.kafka()
        let moto = try TestEnvironment.requireS3Endpoint()
        guard let compactorBinary = Integration.binary("kiln-compactor") else { return }
        let started = ContinuousClock.now
        let bucket = Integration.unique("kiln-fence")
        let credentials = ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"]
        let store = try makeObjectStore(url: "s3://\(bucket)/blocks?endpoint=\(moto)&region=us-east-1", environment: credentials)
        try await (store as! S3ObjectStore).createBucket()

        // Level-0 blocks two days back (every level-1 and level-2 window closed and settled): eight hours,
        // four blocks an hour, 40 records each.
        let hour: Int64 = 3_600_000_000_000
        let window = (Int64(Date().timeIntervalSince1970 * 1e9) - 48 * hour) / (8 * hour) * (8 * hour)
        var sent: [String: Int64] = [:]
        var records: Int64 = 0
        for h in 0..<8 {
            for _ in 0..<4 {
                var head = Head(tenant: "acme")
                for _ in 0..<40 {
                    let b = makeBatch(tenant: "acme", offset: records, samples: 10, baseTimeNanos: window + Int64(h) * hour)
                    for (k, v) in b.totalsByProfileType { sent[k.id, default: 0] &+= v }
                    head.append(b)
                    records += 1
                }
                let ulid = ULID.make()
                try await BlockWriter.upload(
                    try BlockWriter().encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: [])), to: store)
            }
        }
        func finished() async throws -> Bool {
            let live = try await BlockIndex.liveBlocks(store, tenant: "acme")
            return live.count == 1 && live[0].compaction.level == 2
        }

        let proxy = try await FaultProxy.start(upstream: moto)
        let normalized = Integration.unique("normalized-fence")
        try await Integration.createTopics([normalized], partitions: 1, config: kafka)
        func compactor(store url: String) async throws -> KilnProcess {
            try await KilnProcess(
                compactorBinary,
                stageArguments(brokers: kafka.bootstrapServers) + [
                    "--normalized-topic", normalized, "--group", Integration.unique("compactor-fence"), "--store", url,
                    "--compaction", "on", "--compaction-interval", "100ms", "--compaction-lease", "3s", "--deletion-delay", "1h",
                ],
                environment: credentials)
        }
        // The first compactor reaches the store through the proxy; the second directly.
        let first = try await compactor(store: "s3://\(bucket)/blocks?endpoint=\(proxy.endpoint)&region=us-east-1")
        _ = try await first.child.waitForLine(timeout: .seconds(60)) { $0.contains("msg=compacted ") }
        first.child.signal(SIGSTOP)
        let workLeftAtPause = !(try await finished())
        #expect(workLeftAtPause, "the first compactor finished the whole pass before it was stopped")

        let second = try await compactor(store: "s3://\(bucket)/blocks?endpoint=\(moto)&region=us-east-1")
        let taken = try await eventually(timeout: .seconds(90)) { try await finished() }
        #expect(taken, "the second compactor did not finish the work: \(second.lines.suffix(10).joined(separator: "\n"))")
        #expect(try await second.stop() == 0)

        // Everything the proxy logged so far was sent before SIGSTOP (the first compactor was stopped since).
        let requestsBeforeResume = proxy.requests().count
        first.child.signal(SIGCONT)
        let fenced = await eventually(timeout: .seconds(30)) {
            !first.lines(containing: "maintenance stopped before its next write").isEmpty
        }
        #expect(fenced, "the resumed compactor did not notice its lease was gone:\n\(first.lines.suffix(10).joined(separator: "\n"))")
        print("resumed compactor: \(first.lines(containing: "maintenance stopped").first ?? "(no line)")")
        #expect(try await first.stop() == 0)
        let afterResume = proxy.requests().dropFirst(requestsBeforeResume)
        let writes = afterResume.filter { $0.method != "GET" && $0.method != "HEAD" && !$0.path.contains("/_kiln/leases/") }
        #expect(writes.isEmpty, "written after SIGCONT on a stale lease: \(writes.prefix(5))")
        await proxy.stop()

        // One level-2 block holds every record once; the superseded blocks are marked, not yet deleted.
        let live = try await BlockIndex.liveBlocks(store, tenant: "acme")
        var totals: [String: Int64] = [:]
        var held = OffsetRanges()
        var duplicated = 0
        for m in live {
            for (k, v) in m.totalsByProfileType { totals[k, default: 0] &+= v }
            for (_, ranges) in m.kafka.rawByPartition {
                if held.intersects(ranges) { duplicated += 1 }
                held.formUnion(ranges)
            }
        }
        let lost = Int(records - held.count)
        ReliabilitySummary.record(
            ReliabilityRow(
                scenario: "compactor paused past its lease", faults: 1, sent: Int(records), stored: Int(held.count), lost: lost,
                duplicated: duplicated, totalsExact: totals == sent, seconds: (ContinuousClock.now - started).seconds))
        #expect(live.count == 1 && live.first?.compaction.level == 2)
        #expect(totals == sent)
        #expect(lost == 0 && duplicated == 0)
        #expect(try await verifyBlocks(store) == [])
        try await store.shutdown()
    }
}
