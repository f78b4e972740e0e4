import AsyncHTTPClient
import Foundation
import KilnFoundation
import LoadGen
import NIOCore
import TestSupport
import Testing

@testable import DevStack

/// kiln dev's children die with it, even when it is SIGKILLed and cannot stop them itself.
@Suite(.serialized) struct SupervisionTests {
    /// Alive and not a zombie (an orphan is reaped by whichever process adopted it, maybe late).
    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(after: close)...].split(separator: " ").first
        return state != "Z" && state != "X"
    }

    /// A ready `kiln dev` in a fresh data dir (`dataDir`/dev), its children's pids, and the client.
    static func withReadyStack(
        _ name: String,
        _ body: (_ dev: KilnDevHarness, _ children: [String: Int32], _ dataDir: URL, _ client: HTTPClient) async throws -> Void
    ) async throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dataDir) }
        try await withHTTPClient { client in
            let dev = try KilnDevHarness.start(dataDir: dataDir.appendingPathComponent("dev"), client: client)
            _ = try await dev.waitUntilReady()
            try await body(dev, dev.childPids(), dataDir, client)
        }
    }

    @Test(.requires(.kilnDev))
    func childrenDieWhenKilnDevIsKilled() async throws {
        try await Self.withReadyStack("supervision") { dev, children, _, _ in
            #expect(children.count >= 5, "tansu, moto or the file store, and the four stages: \(children)")
            #expect(children.values.allSatisfy(Self.isRunning))
            dev.process.signal(SIGKILL)
            _ = try await dev.process.waitForExit()
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline, children.values.contains(where: Self.isRunning) {
                try await Task.sleep(for: .milliseconds(100))
            }
            let survivors = children.filter { Self.isRunning($0.value) }
            #expect(survivors.isEmpty, "still running after kiln dev was killed: \(survivors)")
            for pid in survivors.values { kill(pid, SIGKILL) }
        }
    }

    /// A counter summed over its label sets, from a stage's `/metrics` (the address kiln dev lists for
    /// Prometheus in `prometheus-targets.json`); nil when kiln dev lists no such stage or it has no such series.
    static func counter(_ name: String, of stage: String, dev: KilnDevHarness) async throws -> Double? {
        let targets = dev.dataDir.appendingPathComponent("prometheus-targets.json")
        let groups = try JSONSerialization.jsonObject(with: Data(contentsOf: targets)) as? [[String: Any]] ?? []
        guard let group = groups.first(where: { ($0["labels"] as? [String: String])?["job"] == stage }),
            let address = (group["targets"] as? [String])?.first
        else { return nil }
        let response = try await dev.client.execute(HTTPClientRequest(url: "http://\(address)/metrics"), timeout: .seconds(10))
        let text = String(buffer: try await response.body.collect(upTo: 8 << 20))
        return PrometheusText.value(in: text, name: name)
    }

    /// Held past its capacity (64 connections pushing flat out, one tenant, `KILN_OVERLOAD_SECONDS`): the
    /// normaliser has read only part of what ingest accepted when the load stops (checked), yet the stack
    /// answers a query at once, and SIGTERM stops kiln dev and every child within the harness's stop
    /// timeout.
    @Test(.requires(.kilnDev, .fixtures))
    func overloadedStackAnswersAndStopsWithinItsTimeout() async throws {
        // 20 s in `make test`, minutes in `make overload`.
        let setting = ProcessInfo.processInfo.environment["KILN_OVERLOAD_SECONDS"]
        var seconds = 20
        if let setting { seconds = try #require(Int(setting), "KILN_OVERLOAD_SECONDS is not whole seconds: \(setting)") }
        try await Self.withReadyStack("overload") { dev, children, dataDir, client in
            let load = try await runToCompletion(
                TestEnvironment.binDir.appendingPathComponent("kiln"),
                [
                    "loadgen", "--ingest-url", dev.baseURL, "--tenant", "overload", "--concurrency", "64", "--rate", "0",
                    "--duration", "\(seconds)s", "--services", "20", "--instances", "10", "--variants", "2",
                    "--fixtures", TestEnvironment.fixturesDir.path, "--out", dataDir.appendingPathComponent("loadgen").path,
                ], timeout: .seconds(seconds + 70))
            let normalised = try #require(
                try await Self.counter("kiln_normalizer_records_total", of: "kiln-normalizer", dev: dev), "the normaliser's records counter"
            )
            let results = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: dataDir.appendingPathComponent("loadgen/loadgen.json")))
                    as? [String: Any], "kiln loadgen: \(load.output.suffix(2000))")
            let totals = results["totals"] as? [String: Any] ?? [:]
            let accepted = totals["accepted"] as? Int ?? 0
            print(
                "overload: \(totals["attempted"] ?? 0) pushes in \(seconds) s, \(accepted) accepted, refused \(totals["errors"] ?? [:]); "
                    + "the normaliser had read \(Int(normalised)) when the load stopped: \(String(format: "%.1f", Double(accepted) / max(normalised, 1)))× what it keeps up with"
            )
            #expect(accepted > 0, "no push was accepted: \(totals)")
            #expect(normalised < Double(accepted), "the stack kept up with the load: it was not overloaded")

            // A query answers at once, whatever the backlog behind it.
            let start = ContinuousClock.now
            var request = HTTPClientRequest(url: dev.baseURL + "/querier.v1.QuerierService/LabelValues")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "X-Scope-OrgID", value: "overload")
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            request.body = .bytes(ByteBuffer(string: #"{"name":"service_name","start":"\#(now - 3_600_000)","end":"\#(now)"}"#))
            let response = try await client.execute(request, timeout: .seconds(10))
            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
            let waited = ContinuousClock.now - start
            print("overload: LabelValues answered \(response.status.code) after \(waited): \(body.prefix(200))")
            #expect(response.status.code == 200, "\(body)")
            #expect(body.contains("names"), "no service is queryable after the load: \(body)")

            let peaks = children.sorted { $0.key < $1.key }.map { name, pid in
                "\(name) \(ProcessUsage.read(pid: pid).map { "\($0.peakRSSBytes >> 20) MiB" } ?? "?")"
            }
            print("overload: peak RSS \(peaks.joined(separator: ", "))")
            let stopping = ContinuousClock.now
            let status = try await dev.stop(timeout: .seconds(25))
            print("overload: kiln dev stopped with status \(status) after \(ContinuousClock.now - stopping)")
            #expect(status == 0)
            let survivors = children.filter { Self.isRunning($0.value) }
            #expect(survivors.isEmpty, "still running after kiln dev stopped: \(survivors)")
            for pid in survivors.values { kill(pid, SIGKILL) }
        }
    }
}
