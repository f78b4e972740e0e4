import Blocks
import Foundation
import KafkaClient
import ObjectStore
import TestSupport
import Testing

extension ReliabilitySuite {
    /// Scenario 2: the compactor's S3 answers 503, 500, resets connections and answers too slowly (each for
    /// some of the requests, while profiles flow): uploads are retried and succeed. Then S3 fails every
    /// request for a while: the compactor stops consuming, says so in its log, on /ready and in
    /// /metrics, and resumes once S3 answers again. The store ends with every sample exactly once.
    @Test(.requires(.kafka, .s3, .fixtures))
    func s3FaultsUnderTheCompactorLoseAndDuplicateNothing() async throws {
        let kafka = try Integration.kafka()
        let brokers = kafka.bootstrapServers
        let moto = try TestEnvironment.requireS3Endpoint()
        let source = try FixtureProfiles.load()
        guard let normalizerBinary = Integration.binary("kiln-normalizer"), let compactorBinary = Integration.binary("kiln-compactor")
        else { return }
        let started = ContinuousClock.now
        let raw = Integration.unique("raw")
        let normalized = Integration.unique("normalized")
        let dlq = Integration.unique("dlq")
        try await Integration.createTopics([raw, normalized, dlq], partitions: 2, config: kafka)
        let bucket = Integration.unique("kiln-s3-faults")
        let credentials = ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"]
        // The test reads moto directly; the compactor goes through the proxy, one attempt limited to 1 s.
        let store = try makeObjectStore(url: "s3://\(bucket)/blocks?endpoint=\(moto)&region=us-east-1", environment: credentials)
        try await (store as! S3ObjectStore).createBucket()
        let proxy = try await FaultProxy.start(upstream: moto)
        let compactorStore = "s3://\(bucket)/blocks?endpoint=\(proxy.endpoint)&region=us-east-1&timeout=1&max_attempts=4"

        let common = stageArguments(brokers: brokers) + ["--raw-topic", raw, "--normalized-topic", normalized, "--dlq-topic", dlq]
        let normalizer = try await KilnProcess(normalizerBinary, common + ["--group", Integration.unique("normalizer")])
        let compactor = try await KilnProcess(
            compactorBinary,
            common + [
                "--group", Integration.unique("compactor"), "--store", compactorStore,
                "--max-block-age", "300ms", "--compaction", "off",
            ],
            environment: credentials)
        let producer = try KafkaProducer(config: ProducerConfig(kafka: kafka))
        let stream = Task { () -> Ledger in
            var ledger = Ledger()
            var i = 0
            while !Task.isCancelled {
                try await ledger.send(
                    (i..<i + 3).map { source.envelope($0, tenant: $0 % 2 == 0 ? "acme" : "globex") },
                    topic: raw, producer: producer)
                i += 3
                try? await Task.sleep(for: .milliseconds(150))
            }
            return ledger
        }

        // Partial faults: every few requests fail one way or another; retries carry every upload through.
        for plan in ["--every 3:503", "--every 3:500", "--every 3:reset", "--every 4:slow"] {
            let action = String(plan.split(separator: ":").last!)
            let before = proxy.actions().filter { $0 == action }.count
            try proxy.plan(plan)
            let injected = await eventually(timeout: .seconds(30)) { proxy.actions().filter { $0 == action }.count >= before + 3 }
            #expect(injected, "plan \(plan): the proxy did not see enough requests")
        }
        #expect(compactor.lines(containing: "block store failed").isEmpty, "retries should have absorbed the partial faults")

        // An outage: every request fails. The compactor stops consuming and says so.
        try proxy.plan("--always 503")
        let reported = try await eventually(timeout: .seconds(40)) {
            let ready = try await compactor.get("/ready")
            return !compactor.lines(containing: "block store failed").isEmpty && ready.status == 503 && ready.body.contains("store")
        }
        #expect(reported, "the outage was not reported on the log and /ready:\n\(compactor.lines.suffix(10).joined(separator: "\n"))")
        #expect((try await compactor.metric("kiln_compactor_store_failures_total") ?? 0) >= 1)
        try proxy.plan("pass")
        let resumed = try await eventually(timeout: .seconds(40)) {
            try await compactor.get("/ready").status == 200 && !compactor.lines(containing: "consuming resumed").isEmpty
        }
        #expect(resumed, "the compactor did not resume after the outage")

        stream.cancel()
        let ledger = try await stream.value
        try await producer.close()
        let contents = try await waitForStore(store, ledger, timeout: .seconds(60))
        let normalizerStatus = try await normalizer.stop()
        let compactorStatus = try await compactor.stop()
        let faults = proxy.faults()
        await proxy.stop()
        let final = try await StoreAudit.read(store, against: ledger)
        ReliabilitySummary.record(
            ReliabilityRow(
                scenario: "S3 500/503/reset/slow + outage", faults: faults, sent: ledger.count,
                stored: final.stored, lost: final.lost, duplicated: final.duplicated, totalsExact: final.totalsExact,
                seconds: (ContinuousClock.now - started).seconds))
        #expect(contents.totalsExact)
        #expect(final.totalsExact)
        #expect(final.lost == 0)
        #expect(final.duplicated == 0)
        #expect(normalizerStatus == 0 && compactorStatus == 0)
        #expect(try await verifyBlocks(store) == [])
        try await store.shutdown()
    }
}
