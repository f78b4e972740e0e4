import APICommon
import AsyncHTTPClient
import Foundation
import Hummingbird
import IngestAPI
import Records
import TestSupport
import Testing

/// Clients that trickle their bodies (slowloris) against the ingest routes as kiln-scraper serves them:
/// each is answered 408 once the body deadline passes (or 503 past its tenant's share of the requests in
/// flight), and real pushes of another tenant go through meanwhile.
@Suite("Hostile clients", .serialized)
struct HostileClientTests {
    @Test(.requires(.fixtures, .python()))
    func tricklingClientsAreCutOffAndRealPushesGoThrough() async throws {
        let cpu = try fixture("go_cpu_ap-query_2026.pb.gz")
        var options = IngestOptions()
        options.bodyReadTimeout = .seconds(2)
        let publisher = InMemoryRawPublisher()
        let router = Router()
        router.add(middleware: RequestAdmission(limits: .init(total: 256, perTenant: 32)))
        IngestRoutes.register(on: router, ingester: PushIngester(publisher: publisher, options: options))
        try await withServer(router) { base in
            let port = Int(base.split(separator: ":").last!)!
            let script = TestEnvironment.repoRoot.appendingPathComponent("Tests/python/slowloris.py")
            async let slow = runToCompletion(
                TestEnvironment.venvPython, [script.path, "--port", String(port), "--connections", "200", "--seconds", "20"],
                timeout: .seconds(60))
            // Real pushes of another tenant while the slow clients hold their connections.
            try await Task.sleep(for: .milliseconds(500))
            var latencies: [Double] = []
            var statuses: [Int] = []
            for i in 0..<20 {
                let started = ContinuousClock.now
                let answer = try await post(base + "/ingest?name=real\(i)&format=pprof", body: cpu, headers: [("X-Scope-OrgID", "shop")])
                latencies.append((ContinuousClock.now - started).secondsDouble)
                statuses.append(answer.status)
            }
            let result = try await slow
            let line = result.output.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
            let report = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(result.output)")
            let byStatus = report["statuses"] as? [String: Int] ?? [:]
            #expect(statuses.allSatisfy { $0 == 200 }, "real pushes: \(statuses)")
            #expect(report["still_open"] as? Int == 0, "every slow connection ends: \(report)")
            #expect(byStatus["408", default: 0] > 0, "\(report)")
            #expect(byStatus["503", default: 0] == 200 - 32, "past the tenant's 32 requests in flight: 503 at once (\(report))")
            #expect(byStatus["408", default: 0] + byStatus["503", default: 0] == 200, "\(report)")
            #expect((report["last_end_seconds"] as? Double ?? 99) < 10, "cut off soon after the 2 s deadline: \(report)")
            let sorted = latencies.sorted()
            print(
                "slowloris: 200 trickling connections \(byStatus), last ended after \(report["last_end_seconds"] ?? "?") s; "
                    + "20 real pushes all 200, latency p50 \(Int(sorted[10] * 1000)) ms, max \(Int(sorted[19] * 1000)) ms")
        }
        #expect(publisher.envelopes.count == 20, "only the real pushes are stored")
    }
}

extension Duration {
    fileprivate var secondsDouble: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
