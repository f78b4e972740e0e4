import Blocks
import Foundation
import KafkaClient
import ObjectStore
import PprofCodec
import Records
import Synchronization
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A Tansu broker of this test's own on a fixed loopback port, so it can be killed and started again at
/// the same address. Its memory storage keeps nothing across a restart; with `durableIn`, it keeps its log
/// in that bucket of the moto S3 server (Tansu's S3 storage engine), and a restart finds it again.
private final class OwnBroker: Sendable {
    let port: Int
    private let child: Mutex<ChildProcess?>
    private let durable: (bucket: String, endpoint: String)?

    init(durableIn bucket: String? = nil, endpoint: String? = nil) throws {
        port = try freeLoopbackPort()
        child = Mutex(nil)
        durable = bucket.flatMap { b in endpoint.map { (b, $0) } }
    }

    var brokers: String { "127.0.0.1:\(port)" }

    func start() async throws {
        let tansu = TestEnvironment.repoRoot.appendingPathComponent(".venv/bin/tansu")
        let storage = durable.map { "s3://\($0.bucket)/" } ?? "memory://tansu/"
        let environment: [String: String] =
            durable.map {
                [
                    "AWS_ENDPOINT": $0.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                ]
            } ?? [:]
        let process = try ChildProcess(
            tansu,
            [
                "broker", "--listener-url", "tcp://\(brokers)", "--advertised-listener-url", "tcp://\(brokers)",
                "--storage-engine", storage,
            ], environment: environment)
        child.withLock { $0 = process }
        let admin = try KafkaAdmin(config: Integration.config(brokers))
        let up = await eventually(timeout: .seconds(30)) { (try? await admin.listTopics(timeout: .seconds(1))) != nil }
        guard up else { throw ReliabilityFailure("tansu did not answer on \(brokers): \(process.lines.suffix(10))") }
    }

    func kill() async throws {
        guard let process = child.withLock({ $0 }) else { return }
        process.signal(SIGKILL)
        _ = try await process.waitForExit()
    }
}

extension ReliabilitySuite {
    /// Scenario 1: the broker is killed and started again (empty: Tansu's memory storage) under a running
    /// scraper → normaliser → compactor pipeline. While it is down, every process reports it (an error log
    /// line, /ready 503 naming Kafka, `kiln_kafka_up 0`) and a push gets a clear 503 instead of hanging;
    /// once it is back, the processes re-create their topics, turn ready again, and profiles pushed after
    /// the restart flow end to end into the store exactly once — without restarting any Kiln process.
    @Test(.requires(.fixtures, .venvTool("tansu")))
    func brokerRestartIsReportedAndThePipelineRecovers() async throws {
        guard let scraperBinary = Integration.binary("kiln-scraper"), let normalizerBinary = Integration.binary("kiln-normalizer"),
            let compactorBinary = Integration.binary("kiln-compactor")
        else { return }
        let source = try FixtureProfiles.load()
        let started = ContinuousClock.now
        let broker = try OwnBroker()
        try await broker.start()
        let kafka = Integration.config(broker.brokers)
        let raw = Integration.unique("raw")
        let normalized = Integration.unique("normalized")
        let dlq = Integration.unique("dlq")
        try await Integration.createTopics([raw, normalized, dlq], partitions: 2, config: kafka)
        let (url, dir, store) = try temporaryFileStore("broker-restart")
        defer { try? FileManager.default.removeItem(at: dir) }

        // Topic creation stays on (the default), with the partitions the test uses: that is how the
        // processes bring back the topics an empty broker lost.
        let common =
            [
                "--kafka-brokers", broker.brokers,
            ] + TestEnvironment.quickGroupArguments + [
                "--topic-partitions", "2",
                "--raw-topic", raw, "--normalized-topic", normalized, "--dlq-topic", dlq,
            ]
        let scraper = try await KilnProcess(scraperBinary, common + ["--listen", "127.0.0.1:0", "--ingest-publish-timeout", "3"])
        let normalizer = try await KilnProcess(
            normalizerBinary, common + ["--admin-listen", "127.0.0.1:0", "--group", Integration.unique("normalizer")])
        let compactor = try await KilnProcess(
            compactorBinary,
            common + [
                "--admin-listen", "127.0.0.1:0", "--group", Integration.unique("compactor"),
                "--store", url, "--max-block-age", "300ms", "--compaction", "off",
            ])
        let processes = [("kiln-scraper", scraper), ("kiln-normalizer", normalizer), ("kiln-compactor", compactor)]
        func allReady() async -> Bool {
            for (_, p) in processes {
                let status = (try? await p.get("/ready"))?.status
                if status != 200 { return false }
            }
            return true
        }
        let readyAtStart = await eventually(timeout: .seconds(30)) { await allReady() }
        #expect(readyAtStart, "the pipeline never became ready")

        /// Pushes profile `i` like a Pyroscope SDK (raw pprof on /ingest); the HTTP status.
        func push(_ i: Int, tenant: String) async -> Int {
            let envelope = source.envelope(i, tenant: tenant)
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(scraper.port)/ingest?name=svc-\(i % 3)&format=pprof")!)
            request.httpMethod = "POST"
            request.httpBody = Data(envelope.payload)
            request.setValue(tenant, forHTTPHeaderField: "X-Scope-OrgID")
            request.timeoutInterval = 20
            guard let answer = try? await URLSession.shared.data(for: request) else { return 0 }
            return (answer.1 as? HTTPURLResponse)?.statusCode ?? 0
        }

        // Before: profiles flow end to end.
        for i in 0..<8 { #expect(await push(i, tenant: "before") == 200) }
        let before = try await Self.ledger(of: raw, kafka: kafka, tenants: ["before"], count: 8)
        let beforeStored = try await waitForStore(store, before, timeout: .seconds(60))
        #expect(beforeStored.totalsExact, "profiles did not flow before the fault")

        // The broker dies. Every process notices and says so.
        try await broker.kill()
        let reported = await eventually(timeout: .seconds(30)) {
            for (_, p) in processes {
                guard let ready = try? await p.get("/ready"), ready.status == 503, ready.body.contains("kafka") else { return false }
                guard !p.lines(containing: "Kafka unavailable").isEmpty else { return false }
            }
            return true
        }
        #expect(reported, "not every process reported the broker outage on /ready and in its log")
        for (name, p) in processes {
            #expect(try await p.metric("kiln_kafka_up") == 0, "\(name): kiln_kafka_up")
            #expect(try await p.metric("kiln_kafka_outages_total") == 1, "\(name): kiln_kafka_outages_total")
        }
        // A push now is refused with 503 (retry later), within the publish timeout, not left hanging.
        let clock = ContinuousClock()
        var status = 0
        let waited = await clock.measure { status = await push(100, tenant: "during") }
        #expect(status == 503)
        #expect(waited < .seconds(10))

        // The broker comes back, empty. Without restarting anything the pipeline recovers.
        try await broker.start()
        let recovered = await eventually(timeout: .seconds(60)) { await allReady() }
        let tails = processes.map { "\($0.0): \($0.1.lines.suffix(6).joined(separator: "\n"))" }.joined(separator: "\n")
        #expect(recovered, "the pipeline did not turn ready after the broker came back:\n\(tails)")
        for (name, p) in processes {
            #expect(!p.lines(containing: "Kafka reachable again").isEmpty, "\(name) did not log the recovery")
            #expect(p.child.isRunning, "\(name) exited")
        }

        // After: profiles pushed now reach the store, exactly once. A client retries a 503, as SDKs do.
        // One deadline for all ten, so a producer that never recovers fails the test in bounded time.
        var accepted = 0
        let pushDeadline = ContinuousClock.now + .seconds(45)
        for i in 200..<210 {
            while ContinuousClock.now < pushDeadline {
                if await push(i, tenant: "after") == 200 {
                    accepted += 1
                    break
                }
            }
        }
        #expect(
            accepted == 10, "pushes after the restart were refused; kiln-scraper said:\n\(scraper.lines.suffix(8).joined(separator: "\n"))")
        // What the recreated raw topic holds (any push the producer delivered, also the one refused during
        // the outage if librdkafka delivered it afterwards) is what the store must hold.
        let after = try await Self.ledger(of: raw, kafka: kafka, tenants: ["after", "during"], count: accepted)
        let contents = try await waitForStore(store, after, timeout: .seconds(90))
        ReliabilitySummary.record(
            ReliabilityRow(
                scenario: "broker killed and restarted (empty)", faults: 1, sent: after.count,
                stored: contents.stored, lost: contents.lost, duplicated: contents.duplicated,
                totalsExact: contents.totalsExact,
                seconds: (ContinuousClock.now - started).seconds))
        #expect(contents.totalsExact)
        #expect(contents.lost == 0)
        #expect(contents.duplicated == 0)
        #expect(after.count >= 10)
        for (name, p) in processes { #expect(try await p.stop() == 0, "\(name) exit status") }
        #expect(try await verifyBlocks(store) == [])
        try await broker.kill()
        try await store.shutdown()
    }

    /// Scenario 1b: the broker keeps its log (Tansu's S3 storage engine on the moto server) and is killed and
    /// started again under a running pipeline. Every push acknowledged before and after the restart comes out
    /// of the pipeline exactly once: the log, the consumer groups' offsets and the producers' sessions survive.
    @Test(.requires(.fixtures, .venvTool("tansu"), .s3))
    func durableBrokerRestartLosesAndDuplicatesNothing() async throws {
        guard let scraperBinary = Integration.binary("kiln-scraper"), let normalizerBinary = Integration.binary("kiln-normalizer"),
            let compactorBinary = Integration.binary("kiln-compactor")
        else { return }
        let endpoint = try TestEnvironment.requireS3Endpoint()
        let bucket = "tansu-\(UInt32.random(in: 0 ... .max))"
        var create = URLRequest(url: URL(string: "\(endpoint)/\(bucket)")!)
        create.httpMethod = "PUT"
        let created = try await URLSession.shared.data(for: create)
        try #require((created.1 as? HTTPURLResponse)?.statusCode == 200, "moto did not create bucket \(bucket)")

        let source = try FixtureProfiles.load()
        let started = ContinuousClock.now
        let broker = try OwnBroker(durableIn: bucket, endpoint: endpoint)
        try await broker.start()
        let kafka = Integration.config(broker.brokers)
        let raw = Integration.unique("raw")
        let normalized = Integration.unique("normalized")
        let dlq = Integration.unique("dlq")
        try await Integration.createTopics([raw, normalized, dlq], partitions: 2, config: kafka)
        let (url, dir, store) = try temporaryFileStore("durable-broker")
        defer { try? FileManager.default.removeItem(at: dir) }
        let common =
            [
                "--kafka-brokers", broker.brokers,
            ] + TestEnvironment.quickGroupArguments + [
                "--topic-partitions", "2",
                "--raw-topic", raw, "--normalized-topic", normalized, "--dlq-topic", dlq,
            ]
        let scraper = try await KilnProcess(scraperBinary, common + ["--listen", "127.0.0.1:0", "--ingest-publish-timeout", "3"])
        let normalizer = try await KilnProcess(
            normalizerBinary, common + ["--admin-listen", "127.0.0.1:0", "--group", Integration.unique("normalizer")])
        let compactor = try await KilnProcess(
            compactorBinary,
            common + [
                "--admin-listen", "127.0.0.1:0", "--group", Integration.unique("compactor"),
                "--store", url, "--max-block-age", "300ms", "--compaction", "off",
            ])
        let processes = [("kiln-scraper", scraper), ("kiln-normalizer", normalizer), ("kiln-compactor", compactor)]
        func allReady() async -> Bool {
            for (_, p) in processes where (try? await p.get("/ready"))?.status != 200 { return false }
            return true
        }
        #expect(await eventually(timeout: .seconds(30)) { await allReady() }, "the pipeline never became ready")

        func push(_ i: Int, tenant: String) async -> Int {
            let envelope = source.envelope(i, tenant: tenant)
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(scraper.port)/ingest?name=svc-\(i % 3)&format=pprof")!)
            request.httpMethod = "POST"
            request.httpBody = Data(envelope.payload)
            request.setValue(tenant, forHTTPHeaderField: "X-Scope-OrgID")
            request.timeoutInterval = 20
            guard let answer = try? await URLSession.shared.data(for: request) else { return 0 }
            return (answer.1 as? HTTPURLResponse)?.statusCode ?? 0
        }
        /// Pushes `range`, retrying each refused push (as SDKs do) until one deadline; how many were acknowledged.
        func pushAll(_ range: Range<Int>, tenant: String, within limit: Duration) async -> Int {
            var acknowledged = 0
            let deadline = ContinuousClock.now + limit
            for i in range {
                while ContinuousClock.now < deadline {
                    if await push(i, tenant: tenant) == 200 {
                        acknowledged += 1
                        break
                    }
                }
            }
            return acknowledged
        }

        let half = 150
        let before = await pushAll(0..<half, tenant: "durable", within: .seconds(90))
        #expect(before == half)
        // The broker is killed once the normaliser has published what it read, not while a produce is in
        // flight: Tansu 0.6's S3 engine stores an idempotent producer's sequence number before it writes the
        // batch, so a kill between the two makes librdkafka's resend a "duplicate" that is acknowledged and
        // never stored, a loss inside the broker that no client can see. (Kills in flight are the empty
        // broker's and the stage kills' scenarios.)
        let published = await eventually(timeout: .seconds(60)) {
            (try? await normalizer.metric("kiln_normalizer_records_total")).map { $0 >= Double(before) } ?? false
        }
        #expect(published, "the normaliser did not publish the first half")
        try await broker.kill()
        try await broker.start()
        let recovered = await eventually(timeout: .seconds(60)) { await allReady() }
        #expect(recovered, "the pipeline did not turn ready after the broker came back")
        let after = await pushAll(half..<2 * half, tenant: "durable", within: .seconds(90))
        #expect(after == half, "pushes after the restart: \(scraper.lines.suffix(8).joined(separator: "\n"))")

        // The raw topic kept what was acknowledged before the restart: the ledger holds both halves.
        let ledger = try await Self.ledger(of: raw, kafka: kafka, tenants: ["durable"], count: before + after)
        #expect(ledger.count >= before + after, "the raw topic holds \(ledger.count) of \(before + after) acknowledged pushes")
        let contents = try await waitForStore(store, ledger, timeout: .seconds(90))
        ReliabilitySummary.record(
            ReliabilityRow(
                scenario: "broker killed and restarted (durable log)", faults: 1, sent: ledger.count,
                stored: contents.stored, lost: contents.lost, duplicated: contents.duplicated,
                totalsExact: contents.totalsExact, seconds: (ContinuousClock.now - started).seconds))
        #expect(contents.totalsExact)
        #expect(contents.lost == 0)
        #expect(contents.duplicated == 0)
        for (name, p) in processes { #expect(try await p.stop() == 0, "\(name) exit status") }
        #expect(try await verifyBlocks(store) == [])
        try await broker.kill()
        try await store.shutdown()
    }

    /// The raw records of `tenants` on `topic`, read from the start once at least `count` of them are there,
    /// as a ledger (what the store must hold).
    static func ledger(of topic: String, kafka: KafkaConfig, tenants: Set<String>, count: Int) async throws -> Ledger {
        let metadata = try await KafkaAdmin(config: kafka).describeTopic(topic)
        let consumer = try KafkaConsumer(config: ConsumerConfig(kafka: kafka, groupID: nil))
        try consumer.assign(metadata.partitions.indices.map { TopicPartitionOffset(topic, Int32($0), offset: KafkaOffset.beginning) })
        var ledger = Ledger()
        let deadline = ContinuousClock.now + .seconds(30)
        // Read until `count` records arrived and the topic has been quiet for a moment.
        var quietSince = ContinuousClock.now
        while ContinuousClock.now < deadline {
            let records = try await consumer.poll(max: 500, timeout: .milliseconds(300)).compactMap(\.record)
            if records.isEmpty {
                if ledger.count >= count, ContinuousClock.now - quietSince > .seconds(1) { break }
                continue
            }
            quietSince = .now
            for r in records {
                guard let envelope = try? RawEnvelope(decoding: r.value), tenants.contains(envelope.tenant) else { continue }
                try await ledger.add(envelope, topic: r.topic, partition: r.partition, offset: r.offset, kafka: kafka)
            }
        }
        try await consumer.close()
        return ledger
    }
}
