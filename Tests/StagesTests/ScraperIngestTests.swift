import APICommon
import AsyncHTTPClient
import Foundation
import IngestAPI
import KafkaClient
import KilnProtos
import NIOCore
import ProfileModel
import QueryAPI
import Records
import TestSupport
import Testing

struct E2EFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The kiln-scraper binary against the real Tansu broker: pushes (Connect and /ingest) and scrapes of the
/// Go demo program land in the raw topic as envelopes with the right labels and tenant.
@Suite("kiln-scraper end to end", .serialized, .requires(.kafka))
struct ScraperIngestTests {
    /// A running kiln-scraper and its HTTP address.
    struct Scraper {
        let process: ChildProcess
        let base: String

        static func start(topic: String, brokers: String, extra: [String] = []) async throws -> Scraper {
            let binary = TestEnvironment.binDir.appendingPathComponent("kiln-scraper")
            let process = try ChildProcess(
                binary,
                [
                    "--kafka-brokers", brokers, "--raw-topic", topic, "--topic-partitions", "2",
                    "--listen", "127.0.0.1:0",
                ] + extra)
            let line = try await process.waitForLine(timeout: .seconds(30)) { $0.contains("msg=listening") }
            guard let port = line.split(separator: ":").last.flatMap({ Int($0.prefix(while: { $0.isNumber })) }) else {
                throw E2EFailure("no port in \(line)")
            }
            let scraper = Scraper(process: process, base: "http://127.0.0.1:\(port)")
            // Ready once Kafka answered.
            _ = try await process.waitForLine(timeout: .seconds(30)) { $0.contains("kafka reachable") }
            let ready = try await scraper.get("/ready")
            guard ready.status == 200 else { throw E2EFailure("kiln-scraper not ready after Kafka answered: \(ready.body)") }
            return scraper
        }

        func get(_ path: String) async throws -> (status: Int, body: String) {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: base + path), timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 4 << 20)
            return (Int(response.status.code), String(buffer: body))
        }

        func post(_ path: String, body: [UInt8], headers: [(String, String)]) async throws -> (status: Int, body: String) {
            var request = HTTPClientRequest(url: base + path)
            request.method = .POST
            for (n, v) in headers { request.headers.add(name: n, value: v) }
            request.body = .bytes(ByteBuffer(bytes: body))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let text = try await response.body.collect(upTo: 4 << 20)
            return (Int(response.status.code), String(buffer: text))
        }

        func stop() async throws -> Int32 {
            process.signal(SIGTERM)
            return try await process.waitForExit(timeout: .seconds(40))
        }
    }

    static func fixture(_ name: String) throws -> [UInt8] {
        let path = TestEnvironment.fixturesDir.appendingPathComponent("pprof/\(name)").path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw E2EFailure("fixture \(path) is missing (set KILN_FIXTURES_DIR)")
        }
        return [UInt8](data)
    }

    @Test(.requires(.fixtures)) func pushesLandInTheRawTopic() async throws {
        let kafka = try testBroker()
        let topic = uniqueName("e2e-push-raw")
        let scraper = try await Scraper.start(topic: topic, brokers: kafka.bootstrapServers)
        let cpu = try Self.fixture("go_cpu_ap-query_2026.pb.gz")

        var series = Push_V1_RawProfileSeries()
        series.labels = [("__name__", "process_cpu"), ("service_name", "checkout"), ("region", "eu")].map { n, v in
            var p = Types_V1_LabelPair()
            p.name = n
            p.value = v
            return p
        }
        var sample = Push_V1_RawSample()
        sample.rawProfile = Data(cpu)
        series.samples = [sample]
        var message = Push_V1_PushRequest()
        message.series = [series]
        let connect = try await scraper.post(
            "/push.v1.PusherService/Push", body: try message.serializedBytes(),
            headers: [("Content-Type", "application/proto"), ("X-Scope-OrgID", "team-e2e")])
        #expect(connect.status == 200, "\(connect.body)")
        let folded = Array("main;serve;parse 7\nmain;gc 3\n".utf8)
        let ingest = try await scraper.post(
            "/ingest?name=legacy.app.cpu%7Benv%3Dci%7D&sampleRate=100", body: folded,
            headers: [("X-Scope-OrgID", "team-legacy")])
        #expect(ingest.status == 200, "\(ingest.body)")
        #expect(try await scraper.stop() == 0)

        // Acknowledged means stored: both records are in the topic.
        let records = try await readTopic(topic, config: kafka, expecting: 2)
        #expect(records.count == 2)
        let envelopes = try records.map { try RawEnvelope(decoding: $0.value) }
        for (record, envelope) in zip(records, envelopes) { #expect(record.key == envelope.key) }
        let pushed = try #require(envelopes.first { $0.tenant == "team-e2e" })
        #expect(pushed.labels == LabelSet(["__name__": "process_cpu", "service_name": "checkout", "region": "eu"]))
        #expect(pushed.payload == cpu)
        #expect(pushed.format == .pprof && pushed.source == .push)
        let legacy = try #require(envelopes.first { $0.tenant == "team-legacy" })
        #expect(
            legacy.labels == LabelSet(["__name__": "process_cpu", "service_name": "legacy.app", "env": "ci", "pyroscope_spy": "unknown"]))
        #expect(legacy.format == .folded)
        #expect(legacy.payload == folded)
    }

    /// 200 pushes of 16 MiB at once (3.2 GB if all were read together) against a kiln-scraper whose request
    /// bytes in flight are bounded at 128 MiB: past the bound each is refused 503 before its body is read,
    /// and the process's peak resident memory grows by a small multiple of the bound, not of the load.
    @Test func concurrentLargePushesStayWithinTheMemoryBound() async throws {
        let kafka = try testBroker()
        let bound = 128 << 20
        let scraper = try await Scraper.start(
            topic: uniqueName("e2e-large-pushes"), brokers: kafka.bootstrapServers,
            extra: ["--max-request-bytes-in-flight", String(bound), "--max-concurrent-requests-per-tenant", "0"])
        func residentMiB(_ field: String) throws -> Double {
            let status = try String(contentsOfFile: "/proc/\(scraper.process.pid)/status", encoding: .utf8)
            let line = try #require(status.split(separator: "\n").first { $0.hasPrefix(field + ":") })
            return Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0")! / 1024
        }
        let before = try residentMiB("VmHWM")
        // Not a protobuf message: each admitted push is read whole and then refused (400) by the decoder,
        // so the memory measured is what reading the bodies costs, without Kafka holding any of it.
        let body = ByteBuffer(repeating: 0xFF, count: 16 << 20)
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let started = ContinuousClock.now
        let statuses = await withTaskGroup(of: Int.self) { group in
            for i in 0..<200 {
                group.addTask {
                    var request = HTTPClientRequest(url: scraper.base + "/push.v1.PusherService/Push")
                    request.method = .POST
                    request.headers.add(name: "Content-Type", value: "application/proto")
                    request.headers.add(name: "X-Scope-OrgID", value: "tenant-\(i % 4)")
                    request.body = .bytes(body)
                    guard let response = try? await client.execute(request, timeout: .seconds(60)) else { return 0 }
                    _ = try? await response.body.collect(upTo: 1 << 20)
                    return Int(response.status.code)
                }
            }
            return await group.reduce(into: [Int]()) { $0.append($1) }
        }
        let seconds = (ContinuousClock.now - started).components.seconds
        try await client.shutdown()
        let peak = try residentMiB("VmHWM")
        let byStatus = Dictionary(grouping: statuses, by: { $0 }).mapValues(\.count)
        let refusedForBytes = try await scraper.get("/metrics").body.split(separator: "\n")
            .first { $0.hasPrefix("kiln_requests_refused_total{reason=\"max_request_bytes_in_flight\"}") }
        print(
            "large pushes: 200 × 16 MiB at once in \(seconds) s: \(byStatus) (0: connection closed before an answer); "
                + "peak RSS \(Int(before)) → \(Int(peak)) MiB (+\(Int(peak - before)) MiB, bound \(bound >> 20) MiB of bodies)")
        // Every push was read and refused by the decoder, or refused for the bound before its body was read;
        // a client still sending when the refusal closes the connection may see the close instead (0).
        #expect(byStatus[400, default: 0] > 0 && byStatus[503, default: 0] > 0, "\(byStatus)")
        #expect(byStatus[400, default: 0] + byStatus[503, default: 0] + byStatus[0, default: 0] == 200, "\(byStatus)")
        #expect(refusedForBytes != nil, "no refusal counted for max_request_bytes_in_flight")
        // A body is held at most twice while it is read (the collected buffer and its copy) and once more
        // while it is decoded; the rest is the allocator's slack.
        #expect(peak - before < Double(3 * bound >> 20) + 64, "peak RSS grew by \(Int(peak - before)) MiB")
        #expect(try await scraper.stop() == 0)
    }

    @Test(.requires(.go)) func scrapesEveryEnabledProfileOfTheGoDemo() async throws {
        let kafka = try testBroker()
        guard let demoBinary = try Self.demoBinary() else { return }
        let demo = try ChildProcess(demoBinary, ["-addr", "127.0.0.1:0"])
        defer { demo.signal(SIGTERM) }
        let line = try await demo.waitForLine(timeout: .seconds(20)) { $0.hasPrefix("listening on ") }
        let address = String(line.dropFirst("listening on ".count))

        let topic = uniqueName("e2e-scrape-raw")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("kiln-scraper-e2e"))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("kiln.alloy")
        try """
        pyroscope.write "kafka" {
          external_labels = {"cluster" = "ci"}
          kafka {
            brokers = "\(kafka.bootstrapServers)"
            topic   = "\(topic)"
          }
        }
        pyroscope.scrape "demo" {
          targets = [{"__address__" = "\(address)", "service_name" = "go-demo"}]
          forward_to = [pyroscope.write.kafka.receiver]
          scrape_interval = "3s"
          tenant = "demo-tenant"
        }
        """.write(to: config, atomically: true, encoding: .utf8)

        let scraper = try await Scraper.start(topic: topic, brokers: kafka.bootstrapServers, extra: ["--config", config.path])
        // Every default-enabled profile of pyroscope.scrape, and whether the normaliser must delta it.
        let expected: [String: Bool] = ["process_cpu": false, "memory": true, "block": true, "mutex": true, "goroutine": false]
        var seen: [String: RawEnvelope] = [:]
        let deadline = ContinuousClock.now + .seconds(60)
        while Set(seen.keys) != Set(expected.keys), ContinuousClock.now < deadline {
            for record in try await readTopic(topic, config: kafka, expecting: 1, timeout: .seconds(5)) {
                let e = try RawEnvelope(decoding: record.value)
                if let name = e.labels["__name__"] { seen[name] = e }
            }
        }
        let targets = try await scraper.get("/targets")
        #expect(targets.status == 200)
        #expect(targets.body.contains("\"up\""), "\(targets.body)")
        // The scrape manager's own metrics are part of /metrics (the dashboards and docs name them).
        let metrics = try await scraper.get("/metrics").body
        #expect(metrics.contains("kiln_scrape_target_up{job=\"") && metrics.contains("\"} 1\n"), "\(metrics)")
        let scrapes = metrics.split(separator: "\n").first { $0.hasPrefix("kiln_scrapes_total ") }
        #expect(scrapes.flatMap { Int($0.split(separator: " ")[1]) } ?? 0 >= 5, "\(metrics)")
        #expect(try await scraper.stop() == 0)

        #expect(Set(seen.keys) == Set(expected.keys))
        for (name, cumulative) in expected {
            guard let e = seen[name] else { continue }
            #expect(e.tenant == "demo-tenant", "\(name)")
            #expect(e.source == .scrape && e.format == .pprof, "\(name)")
            #expect(e.cumulative == cumulative, "\(name)")
            #expect(e.labels["service_name"] == "go-demo", "\(name)")
            #expect(e.labels["cluster"] == "ci", "\(name)")
            #expect(e.labels["instance"] == address, "\(name)")
            #expect(e.payload.starts(with: [0x1F, 0x8B]), "\(name): Go serves gzip pprof")
            #expect(e.endNanos >= e.startNanos, "\(name)")
        }
    }

    /// Builds demo/go-target with scripts/build-demo.sh (the test is marked `.requires(.go)`); nil after
    /// recording why when the build fails.
    static func demoBinary() throws -> URL? {
        _ = try TestEnvironment.requireGo()
        let root = TestEnvironment.repoRoot
        let p = Process()
        p.executableURL = root.appendingPathComponent("scripts/build-demo.sh")
        p.currentDirectoryURL = root
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            Issue.record("scripts/build-demo.sh failed with status \(p.terminationStatus)")
            return nil
        }
        return root.appendingPathComponent(".build-demo/go-target")
    }
}
