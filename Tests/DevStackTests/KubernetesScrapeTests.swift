import AsyncHTTPClient
import Foundation
import TestSupport
import Testing

@testable import DevStack

/// The Pyroscope annotation recipe run by kiln-scraper inside `kiln dev`, against a Kubernetes API server
/// stand-in (no real cluster can run here: `Tests/python/kube_apiserver.py` speaks the list and watch
/// protocol): the goroutine profiles of exactly the annotated pods reach the store and are queryable under
/// the recipe's labels; a pod annotated later joins through a watch event.
@Suite(.serialized) struct KubernetesScrapeTests {
    @Test(.requires(.kilnDev, .go, .python()))
    func annotatedPodsAreScrapedIntoTheStore() async throws {
        let demos = [try await GoDemo.start(), try await GoDemo.start(), try await GoDemo.start()]
        let ports = demos.map { Int($0.address.split(separator: ":").last!)! }
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-k8s-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dataDir) }
        func annotated(_ port: Int) -> [String: String] {
            ["profiles.grafana.com/goroutine.scrape": "true", "profiles.grafana.com/goroutine.port": String(port)]
        }
        try await KubeAPIStandIn.with { api in
            try await api.put("pods", podJSON("checkout-0", port: ports[0], annotations: annotated(ports[0])))
            try await api.put("pods", podJSON("search-0", port: ports[1]))  // not annotated
            try await api.put("pods", podJSON("cart-0", port: ports[2]))  // annotated later
            try await withHTTPClient { client in
                let dev = try KilnDevHarness.start(in: dataDir, client: client) { port in
                    annotationRecipe(
                        writerURL: "http://127.0.0.1:\(port)",
                        discovery: """
                            discovery.kubernetes "pods" {
                              role = "pod"
                              api_server = "http://\(api.address)"
                            }
                            """)
                }
                let process = dev.process
                defer { process.signal(SIGTERM) }
                _ = try await dev.waitUntilReady()
                func pods() async throws -> Set<String> {
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    let json =
                        #"{"name":"pod","matchers":["{service_name=\"shop/app\"}"],"start":\#(now - 600_000),"end":\#(now + 60_000)}"#
                    let answer = try await dev.connect("querier.v1.QuerierService/LabelValues", json: json, tenant: "anonymous")
                    #expect(answer.status == 200, "\(answer.body)")
                    return Set(answer.body["names"] as? [String] ?? [])
                }
                var seen: Set<String> = []
                var deadline = ContinuousClock.now + .seconds(60)
                while ContinuousClock.now < deadline, seen.isEmpty {
                    seen = try await pods()
                    if seen.isEmpty { try await Task.sleep(for: .milliseconds(500)) }
                }
                #expect(seen == ["checkout-0"], "only the annotated pod is scraped")

                // A watch event annotates cart-0: its profiles follow, search-0's never come.
                try await api.put("pods", podJSON("cart-0", port: ports[2], annotations: annotated(ports[2])))
                deadline = ContinuousClock.now + .seconds(60)
                while ContinuousClock.now < deadline, seen.count < 2 {
                    seen = try await pods()
                    if seen.count < 2 { try await Task.sleep(for: .milliseconds(500)) }
                }
                #expect(seen == ["checkout-0", "cart-0"])
                _ = try await dev.stop()
            }
        }
        for demo in demos { try await demo.stop() }
    }
}
