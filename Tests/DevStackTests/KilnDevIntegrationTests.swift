import AsyncHTTPClient
import Foundation
import NIOCore
import TestSupport
import Testing

@testable import DevStack

/// A running `kiln dev` (the real binary from the build folder) on a data dir, driven over its front
/// address. The end-to-end query test (query totals through kiln dev against go tool pprof's numbers)
/// starts one of these, pushes fixtures with `push`, and queries `baseURL` once kiln-query serves the API.
struct HarnessFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` with an HTTP client that is shut down afterwards, also when `body` throws.
func withHTTPClient<T>(_ body: (HTTPClient) async throws -> T) async throws -> T {
    let client = HTTPClient(eventLoopGroupProvider: .singleton)
    do {
        let result = try await body(client)
        try await client.shutdown()
        return result
    } catch {
        try? await client.shutdown()
        throw error
    }
}

extension Requirement {
    /// What `kiln dev` runs: the built kiln and stage executables, and tansu.
    static let kilnDev = Requirement("kiln dev's executables and tansu") {
        do { return try await KilnDevHarness.missingPrerequisite() } catch { return "\(error)" }
    }
}

struct KilnDevHarness {
    let process: ChildProcess
    let dataDir: URL
    let baseURL: String
    let client: HTTPClient
    /// kiln dev's OTLP gRPC listener (a free port of its own, not 4317, so runs side by side do not clash).
    let otlpGRPCAddress: String

    /// What a run needs, or why it cannot run here (nil: everything is present).
    static func missingPrerequisite() async throws -> String? {
        let bin = TestEnvironment.binDir
        for name in ["kiln"] + DevExecutables.stageNames
        where !FileManager.default.isExecutableFile(atPath: bin.appendingPathComponent(name).path) {
            return "\(name) is not built in \(bin.path)"
        }
        let tansu =
            ProcessInfo.processInfo.environment["KILN_TANSU"] ?? TestEnvironment.repoRoot.appendingPathComponent(".venv/bin/tansu").path
        if !FileManager.default.isExecutableFile(atPath: tansu) { return "tansu is not at \(tansu)" }
        // kiln dev passes kiln-query --store and --listen; the early stub took neither.
        let help = try await runToCompletion(bin.appendingPathComponent("kiln-query"), ["--help"])
        if !help.output.contains("--store") { return "this kiln-query does not take --store yet" }
        return nil
    }

    static func start(
        dataDir: URL, client: HTTPClient, port: Int? = nil, extraArguments: [String] = [], environment: [String: String] = [:]
    ) throws -> KilnDevHarness {
        let ports = try LoopbackPorts.free(2)
        let port = port ?? ports[0]
        let otlp = "127.0.0.1:\(ports[1])"
        let process = try ChildProcess(
            TestEnvironment.binDir.appendingPathComponent("kiln"),
            [
                "dev", "--data-dir", dataDir.path, "--listen", "127.0.0.1:\(port)",
                "--block-age", "1s", "--stop-timeout", "15", "--otlp-grpc-listen", otlp,
            ] + extraArguments, environment: environment)
        let scheme = extraArguments.contains("--tls-cert-file") ? "https" : "http"
        return KilnDevHarness(
            process: process, dataDir: dataDir, baseURL: "\(scheme)://127.0.0.1:\(port)", client: client, otlpGRPCAddress: otlp)
    }

    /// kiln dev (data in `dir`/dev) scraping with the Alloy configuration `config` makes for the port kiln dev
    /// listens on (its `pyroscope.write` points there).
    static func start(
        in dir: URL, client: HTTPClient, extraArguments: [String] = [], environment: [String: String] = [:],
        scrapeConfig config: (Int) -> String
    ) throws -> KilnDevHarness {
        let port = try LoopbackPorts.free(1)[0]
        let file = dir.appendingPathComponent("scrape.alloy")
        try config(port).write(to: file, atomically: true, encoding: .utf8)
        return try start(
            dataDir: dir.appendingPathComponent("dev"), client: client, port: port,
            extraArguments: ["--scrape-config", file.path] + extraArguments,
            environment: environment)
    }

    /// kiln dev scraping the Go demo (as service `go-demo`) with the article's Alloy configuration, its
    /// placeholders filled in as `make demo` fills them. `scrapeInterval` replaces Alloy's default of 15 s
    /// (each CPU profile lasts a second less), so a test waits less for its first CPU profile.
    static func scrapingGoDemo(
        _ demo: GoDemo, in dir: URL, client: HTTPClient, scrapeInterval: String? = nil, extraArguments: [String] = [],
        environment: [String: String] = [:]
    ) throws -> KilnDevHarness {
        let seed = try String(contentsOf: TestEnvironment.fixturesDir.appendingPathComponent("alloy/seed.alloy"), encoding: .utf8)
        let target = "[{\"__address__\" = \"Apps_ip_address:Apps_Port\", \"service_name\" = \"Your_Apps_Name\"}]"
        try #require(seed.contains(target), "alloy/seed.alloy no longer lists its target as expected")
        let targets = scrapeInterval.map { "\(target)\n        scrape_interval = \"\($0)\"" } ?? target
        return try start(in: dir, client: client, extraArguments: extraArguments, environment: environment) { port in
            seed.replacingOccurrences(of: target, with: targets)
                .replacingOccurrences(of: "Apps_ip_address:Apps_Port", with: demo.address)
                .replacingOccurrences(of: "Your_Apps_Name", with: "go-demo")
                .replacingOccurrences(of: "http://Your_Pyroscope_ip_address:Your_Pyroscope_Port", with: "http://127.0.0.1:\(port)")
        }
    }

    /// Starts kiln dev and runs `body`; if `body` throws, kiln dev is stopped (SIGTERM, so it stops its
    /// children too) before the error goes on, so a failing test leaves no processes behind.
    static func with<T>(dataDir: URL, client: HTTPClient, _ body: (KilnDevHarness) async throws -> T) async throws -> T {
        let dev = try start(dataDir: dataDir, client: client)
        do {
            return try await body(dev)
        } catch {
            if dev.process.isRunning { _ = try? await dev.stop() }
            throw error
        }
    }

    func get(_ path: String) async throws -> (status: Int, body: String) {
        let response = try await client.execute(HTTPClientRequest(url: baseURL + path), timeout: .seconds(5))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    /// Polls /ready until 200, returning every other status seen before (connection errors are skipped:
    /// the front server may not listen yet). Fails at the deadline with kiln dev's output.
    func waitUntilReady(timeout: Duration = .seconds(45)) async throws -> [(Int, String)] {
        let deadline = ContinuousClock.now + timeout
        var before: [(Int, String)] = []
        while ContinuousClock.now < deadline {
            if !process.isRunning { break }
            if let answer = try? await get("/ready") {
                if answer.status == 200 { return before }
                before.append(answer)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw HarnessFailure(
            "kiln dev not ready within \(timeout); last /ready: \(before.last.map { "\($0.0) \($0.1)" } ?? "none")\n"
                + process.lines.suffix(30).joined(separator: "\n"))
    }

    /// Polls /ready until it answers `status`; returns the body.
    func waitForReady(status: Int, timeout: Duration) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        var seen: [String] = []
        while ContinuousClock.now < deadline {
            do {
                let answer = try await get("/ready")
                if answer.status == status { return answer.body }
                seen.append("\(answer.status)")
            } catch {
                seen.append("\(error)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw HarnessFailure("/ready did not answer \(status) within \(timeout); saw \(seen.suffix(20))")
    }

    /// POST /ingest of a raw pprof file through the front address.
    func push(pprof: [UInt8], name: String, tenant: String) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: baseURL + "/ingest?name=\(name)&format=pprof&spyName=gospy")
        request.method = .POST
        request.headers.add(name: "X-Scope-OrgID", value: tenant)
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        request.body = .bytes(ByteBuffer(bytes: pprof))
        let response = try await client.execute(request, timeout: .seconds(30))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    /// The pids kiln dev wrote for its children.
    func childPids() -> [String: Int32] {
        let dir = dataDir.appendingPathComponent("pids")
        var pids: [String: Int32] = [:]
        for file in (try? FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? [] {
            if let text = try? String(contentsOf: file, encoding: .utf8),
                let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                pids[file.deletingPathExtension().lastPathComponent] = pid
            }
        }
        return pids
    }

    /// Committed blocks (folders with meta.json) of a tenant in the file:// store.
    func blocks(tenant: String) -> [String] {
        let dir = dataDir.appendingPathComponent("blocks/\(tenant)")
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return entries.filter { FileManager.default.fileExists(atPath: dir.appendingPathComponent("\($0)/meta.json").path) }.sorted()
    }

    /// Waits until the tenant has a committed block that is not in `known` (a compaction of known blocks
    /// also counts: it holds their data under a new ID).
    func waitForNewBlock(tenant: String, known: [String] = [], timeout: Duration = .seconds(30)) async throws -> [String] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let found = blocks(tenant: tenant)
            if !Set(found).subtracting(known).isEmpty { return found }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw HarnessFailure(
            "no new block for \(tenant) within \(timeout) (had \(known.count))\n"
                + process.lines.suffix(20).joined(separator: "\n"))
    }

    /// SIGTERM, then the exit status (fails past the deadline).
    func stop(timeout: Duration = .seconds(40)) async throws -> Int32 {
        process.signal(SIGTERM)
        let status = try await process.waitForExit(timeout: timeout)
        if status != 0 {
            // The data dir (and the children's logs) go with the test: say here what kiln dev said last.
            print("kiln dev exited \(status); its last lines:\n" + process.lines.suffix(25).joined(separator: "\n"))
        }
        return status
    }
}

@Suite(.serialized) struct KilnDevIntegrationTests {
    @Test(.requires(.kilnDev, .fixture("pprof/go_cpu_ap-query_2026.pb.gz")))
    func readyIngestStopAndSecondRunOnTheSameDir() async throws {
        let profile = try Data(contentsOf: TestEnvironment.fixturesDir.appendingPathComponent("pprof/go_cpu_ap-query_2026.pb.gz"))
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-dev-test-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        try await withHTTPClient { client in try await firstAndSecondRun(dataDir: dataDir, client: client, profile: [UInt8](profile)) }
    }

    func firstAndSecondRun(dataDir: URL, client: HTTPClient, profile: [UInt8]) async throws {
        let tenant = "devtest-\(UUID().uuidString.prefix(8).lowercased())"

        // First run: 503 while the stages start, then 200; a push lands in a block under the data dir.
        let firstBlocks = try await KilnDevHarness.with(dataDir: dataDir, client: client) { first in
            let before = try await first.waitUntilReady()
            // The stages come up within a second, so a 503 is not always caught here; whatever answered
            // before 200 must be a 503 naming who is not ready. (The restart below observes 503 for sure.)
            #expect(before.allSatisfy { $0.0 == 503 && ($0.1.contains("kiln-") || $0.1.contains("tansu")) }, "\(before)")
            let pids = first.childPids()
            #expect(Set(pids.keys) == ["tansu", "kiln-scraper", "kiln-normalizer", "kiln-compactor", "kiln-query"])
            for (name, pid) in pids { #expect(kill(pid, 0) == 0, "\(name) (pid \(pid)) should be running") }
            let metrics = try await first.get("/metrics")
            #expect(metrics.body.contains("kiln_dev_child_up{child=\"kiln-compactor\"} 1"))

            let pushed = try await first.push(pprof: [UInt8](profile), name: "devtest.cpu{env=test}", tenant: tenant)
            #expect(pushed.status == 200, "push through the front address: \(pushed.body)")
            let firstBlocks = try await first.waitForNewBlock(tenant: tenant)

            // A stage that dies is noticed (/ready 503 naming it) and restarted.
            let restartsBefore = try await first.get("/metrics").body
            let normalizer = try #require(first.childPids()["kiln-normalizer"])
            #expect(kill(normalizer, SIGKILL) == 0, "kill kiln-normalizer (pid \(normalizer))")
            let notReady: String
            do {
                notReady = try await first.waitForReady(status: 503, timeout: .seconds(10))
            } catch {
                let log = (try? String(contentsOf: dataDir.appendingPathComponent("logs/kiln-normalizer.log"), encoding: .utf8)) ?? ""
                throw HarnessFailure(
                    "\(error)\nrestarts before: \(restartsBefore.split(separator: "\n").filter { $0.contains("normalizer") })\n"
                        + first.process.lines.suffix(15).joined(separator: "\n") + "\nnormalizer log:\n"
                        + log.split(separator: "\n").suffix(15).joined(separator: "\n"))
            }
            #expect(notReady.contains("kiln-normalizer"), "\(notReady)")
            _ = try await first.waitUntilReady(timeout: .seconds(30))
            let restartedPid = first.childPids()["kiln-normalizer"]
            #expect(restartedPid != nil && restartedPid != normalizer)
            #expect(try await first.get("/metrics").body.contains("kiln_dev_child_restarts_total{child=\"kiln-normalizer\"} 1"))

            let running = first.childPids()
            #expect(try await first.stop() == 0)
            for (name, pid) in running {
                #expect(kill(pid, 0) == -1 && errno == ESRCH, "\(name) (pid \(pid)) still exists after kiln dev stopped")
            }
            return firstBlocks
        }

        // Second run on the same dir: the blocks are still there, and a new push (fresh Kafka, offsets
        // from 0 again) is not mistaken for a duplicate of what the first run stored.
        try await KilnDevHarness.with(dataDir: dataDir, client: client) { second in
            _ = try await second.waitUntilReady()
            #expect(second.blocks(tenant: tenant) == firstBlocks)
            let again = try await second.push(pprof: [UInt8](profile), name: "devtest.cpu{env=test}", tenant: tenant)
            #expect(again.status == 200, "\(again.body)")
            _ = try await second.waitForNewBlock(tenant: tenant, known: firstBlocks)
            let secondPids = second.childPids()
            #expect(try await second.stop() == 0)
            for (name, pid) in secondPids { #expect(kill(pid, 0) == -1 && errno == ESRCH, "\(name) still exists") }
        }
    }
}

extension KilnDevHarness {
    /// POST a Connect unary call in JSON through the front address.
    func connect(_ method: String, json: String, tenant: String) async throws -> (status: Int, body: [String: Any]) {
        var request = HTTPClientRequest(url: baseURL + "/" + method)
        request.method = .POST
        request.headers.add(name: "X-Scope-OrgID", value: tenant)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: json))
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? ["raw": String(buffer: body)]
        return (Int(response.status.code), object)
    }
}

/// A flame graph in Pyroscope's level encoding (JSON): per level, groups of four numbers
/// (x offset, total, self, name index).
struct DecodedFlameGraph {
    var total: Int64 = 0
    var selfByName: [String: Int64] = [:]
    /// Each name's node totals added up (a function's total where it never calls itself).
    var totalByName: [String: Int64] = [:]

    init(_ json: [String: Any]) {
        guard let graph = json["flamegraph"] as? [String: Any], let names = graph["names"] as? [String],
            let levels = graph["levels"] as? [[String: Any]]
        else { return }
        total = (graph["total"] as? String).flatMap { Int64($0) } ?? 0
        for level in levels {
            let values = (level["values"] as? [String] ?? []).compactMap { Int64($0) }
            for node in stride(from: 0, to: values.count - 3, by: 4) {
                selfByName[names[Int(values[node + 3])], default: 0] += values[node + 2]
                totalByName[names[Int(values[node + 3])], default: 0] += values[node + 1]
            }
        }
    }
}

@Suite(.serialized) struct KilnDevEndToEndTests {
    /// Real Go CPU profiles pushed through kiln dev's one address — one by POST /ingest, one by Connect
    /// Push — come back from SelectMergeStacktraces with go tool pprof's total and top function
    /// (EXPECTED.json in the fixtures holds pprof's numbers for each file).
    @Test(.requires(.kilnDev, .fixtures))
    func queryTotalsThroughKilnDevMatchGoToolPprof() async throws {
        let pprofDir = TestEnvironment.fixturesDir.appendingPathComponent("pprof")
        let expectedData = try Data(contentsOf: pprofDir.appendingPathComponent("EXPECTED.json"))
        let root = try JSONSerialization.jsonObject(with: expectedData) as? [String: Any]
        let expected = try #require(root?["files"] as? [String: Any], "\(pprofDir.path)/EXPECTED.json has no files object")
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-dev-e2e-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        try await withHTTPClient { client in
            try await pushAndQuery(dataDir: dataDir, client: client, expected: expected, pprofDir: pprofDir)
        }
    }

    func pushAndQuery(dataDir: URL, client: HTTPClient, expected: [String: Any], pprofDir: URL) async throws {
        try await KilnDevHarness.with(dataDir: dataDir, client: client) { dev in
            try await pushAndQuery(dev, expected: expected, pprofDir: pprofDir)
        }
    }

    func pushAndQuery(_ dev: KilnDevHarness, expected: [String: Any], pprofDir: URL) async throws {
        _ = try await dev.waitUntilReady()

        let cpu = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
        let cases: [(file: String, tenant: String, viaPush: Bool)] = [
            ("go_cpu_ap-query_2026.pb.gz", "e2e-ingest-\(UUID().uuidString.prefix(6).lowercased())", false),
            ("go_cpu_report_sample.pb.gz", "e2e-push-\(UUID().uuidString.prefix(6).lowercased())", true),
        ]
        for c in cases {
            let bytes = try [UInt8](Data(contentsOf: pprofDir.appendingPathComponent(c.file)))
            if c.viaPush {
                let json =
                    #"{"series":[{"labels":[{"name":"__name__","value":"process_cpu"},{"name":"service_name","value":"e2e"}],"#
                    + #""samples":[{"ID":"\#(UUID().uuidString)","rawProfile":"\#(Data(bytes).base64EncodedString())"}]}]}"#
                let pushed = try await dev.connect("push.v1.PusherService/Push", json: json, tenant: c.tenant)
                #expect(pushed.status == 200, "\(c.file): \(pushed.body)")
            } else {
                let pushed = try await dev.push(pprof: bytes, name: "e2e.cpu", tenant: c.tenant)
                #expect(pushed.status == 200, "\(c.file): \(pushed.body)")
            }
        }
        for c in cases {
            _ = try await dev.waitForNewBlock(tenant: c.tenant)
            let facts = try #require(expected[c.file] as? [String: Any])
            let fileLevel = try #require(facts["file_level"] as? [String: Any])
            let totals = try #require(fileLevel["totals"] as? [Int64])
            let types = try #require(fileLevel["sample_types"] as? [[String: String]])
            let cpuIndex = try #require(types.firstIndex { $0["type"] == "cpu" })
            let top = try #require((facts["top5_flat"] as? [[String: Any]])?.first)
            let timeMillis = try #require(fileLevel["time_nanos"] as? Int64) / 1_000_000
            let query =
                #"{"profileTypeID":"\#(cpu)","labelSelector":"{}","start":"\#(timeMillis - 3_600_000)","end":"\#(timeMillis + 3_600_000)"}"#
            let answer = try await dev.connect("querier.v1.QuerierService/SelectMergeStacktraces", json: query, tenant: c.tenant)
            #expect(answer.status == 200, "\(answer.body)")
            let graph = DecodedFlameGraph(answer.body)
            #expect(graph.total == totals[cpuIndex], "\(c.file): total")
            let topName = try #require(top["name"] as? String)
            let topFlat = try #require(top["flat"] as? Int64)
            #expect(graph.selfByName[topName] == topFlat, "\(c.file): self of \(topName)")
            #expect(graph.selfByName.max { $0.value < $1.value }?.key == topName, "\(c.file): top function")
        }
        #expect(try await dev.stop() == 0)
    }
}
