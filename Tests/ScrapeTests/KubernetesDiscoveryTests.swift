import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TestSupport
import Testing

@testable import Scrape

@Suite("discovery.kubernetes against an API server stand-in", .serialized, .requires(.python(), .go))
struct KubernetesDiscoveryTests {
    static func annotated(_ port: Int, path: String? = nil) -> [String: String] {
        var a = ["profiles.grafana.com/goroutine.scrape": "true", "profiles.grafana.com/goroutine.port": String(port)]
        if let path { a["profiles.grafana.com/goroutine.path"] = path }
        return a
    }

    /// The Go demo programs are the fleet: every "pod" is one of them on loopback, so a target that is
    /// scraped answers with a real profile.
    @Test("the Alloy annotation recipe scrapes exactly the annotated pods and follows adds, relabels and deletes")
    func annotationRecipeFollowsTheFleet() async throws {
        guard let binary = try GoDemoIntegrationTests.demoBinary() else { return }
        let demos = try (0..<4).map { _ in try GoDemoIntegrationTests.Demo(binary: binary) }
        defer { for d in demos { d.stop() } }
        let ports = demos.map { Int($0.address.split(separator: ":").last!)! }
        try await KubeAPIStandIn.with(arguments: ["--token", "sekret"]) { api in try await Self.followFleet(api, ports: ports) }
    }

    static func followFleet(_ api: KubeAPIStandIn, ports: [Int]) async throws {
        let pods = [
            podJSON("checkout-0", port: ports[0], labels: ["app": "checkout"], annotations: Self.annotated(ports[0])),
            podJSON("cart-0", port: ports[1], labels: ["app": "cart"], annotations: Self.annotated(ports[1])),
            podJSON("search-0", port: ports[2], labels: ["app": "search"]),  // not annotated: never scraped
            podJSON("batch-0", port: ports[3], phase: "Succeeded", annotations: Self.annotated(ports[3])),  // finished
        ]
        for pod in pods { try await api.put("pods", pod) }

        let config = try ScrapeConfiguration.parse(
            annotationRecipe(
                writerURL: "http://127.0.0.1:4040",
                discovery: """
                    discovery.kubernetes "pods" {
                      role = "pod"
                      api_server = "http://\(api.address)"
                      bearer_token = "sekret"
                    }
                    """), file: "k8s.alloy")
        let sink = InMemoryProfileSink()
        let fetcher = HTTPProfileFetcher()
        let manager = ScrapeManager(
            configuration: config, sink: sink, fetcher: fetcher, options: ScrapeManagerOptions(spreadStartOffsets: false))
        let running = Task { await manager.run() }
        func scraped() -> Set<String> { Set(manager.targetHealth.filter { $0.scrapesTotal > 0 }.map(\.url)) }
        func url(_ port: Int, _ path: String = "/debug/pprof/goroutine") -> String { "http://127.0.0.1:\(port)\(path)" }

        let first = await waitUntil(timeout: .seconds(30)) { scraped() == [url(ports[0]), url(ports[1])] }
        #expect(first, "loops: \(manager.targetHealth.map(\.url)), errors: \(manager.status.discoveryErrors)")
        #expect(Set(manager.targetHealth.map(\.url)) == [url(ports[0]), url(ports[1])], "exactly the annotated, running pods")
        let checkout = try #require(manager.targetHealth.first { $0.url == url(ports[0]) })
        #expect(checkout.labels["service_name"] == "shop/app")
        #expect(checkout.labels["app"] == "checkout" && checkout.labels["pod"] == "checkout-0" && checkout.labels["namespace"] == "shop")
        #expect(checkout.health == .up, "\(checkout.lastError ?? "")")
        let profile = try #require(sink.profiles.first { $0.url == url(ports[0]) })
        #expect(profile.body.starts(with: [0x1f, 0x8b]), "a real gzip'd pprof from the demo")

        // Watch events: search-0 gets annotated (relabelled), cart-0 is deleted, a new pod arrives with a .path.
        try await api.put("pods", podJSON("search-0", port: ports[2], labels: ["app": "search"], annotations: Self.annotated(ports[2])))
        try await api.delete("pods", namespace: "shop", name: "cart-0")
        try await api.put(
            "pods",
            podJSON(
                "worker-0", namespace: "jobs", port: ports[3], labels: ["app": "worker"],
                annotations: Self.annotated(ports[3], path: "/debug/pprof/goroutine?debug=0")))
        let expected: Set<String> = [url(ports[0]), url(ports[2]), url(ports[3], "/debug/pprof/goroutine?debug=0")]
        let followed = await waitUntil(timeout: .seconds(30)) {
            Set(manager.targetHealth.map(\.url)) == expected && scraped() == expected
        }
        #expect(followed, "loops: \(manager.targetHealth.map(\.url))")
        #expect(manager.targetHealth.first { $0.url.contains("debug=0") }?.labels["service_name"] == "jobs/app")

        // A pod's labels change: the loop restarts with the new labels (no restart of the scraper).
        try await api.put(
            "pods",
            podJSON("checkout-0", port: ports[0], labels: ["app": "checkout", "track": "canary"], annotations: Self.annotated(ports[0])))
        let relabelled = await waitUntil(timeout: .seconds(30)) {
            manager.targetHealth.first { $0.url == url(ports[0]) }?.labels["track"] == "canary"
        }
        #expect(relabelled)

        let requests = try await api.requests()
        #expect(requests.allSatisfy { $0.authorization == "Bearer sekret" }, "the bearer token on every request")
        #expect(requests.contains { $0.path == "/api/v1/pods" && $0.query["watch"] == "true" && $0.query["resourceVersion"] != nil })
        #expect(requests.first?.query["limit"] == "500", "lists are paged")
        running.cancel()
        await running.value
        try await fetcher.shutdown()
    }

    /// The server forgets old resource versions (etcd compaction): open watches end, the next watch from
    /// the old version gets 410 Gone, and discovery lists again — missing nothing that changed meanwhile.
    @Test("410 Gone after compaction forces a relist; changes made meanwhile are not lost")
    func expiredWatchRelists() async throws {
        try await KubeAPIStandIn.with { api in try await Self.relist(api) }
    }

    static func relist(_ api: KubeAPIStandIn) async throws {
        try await api.put("pods", podJSON("a-0", port: 7001))
        var component = KubernetesDiscoveryComponent(label: "k", role: .pod)
        component.apiServer = "http://\(api.address)"
        let watcher = KubernetesTargetWatcher(component: component)
        let running = Task { await watcher.run {} }
        #expect(await waitUntil(timeout: .seconds(20)) { watcher.synced && watcher.targets.count == 1 })
        #expect(watcher.listsMade == 1)
        var watching = false
        for _ in 0..<200 where !watching {
            watching = try await api.requests().contains { $0.query["watch"] == "true" }
            if !watching { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(watching, "the client watches after its list")

        // The client falls behind (its watch stops delivering), a pod arrives, and the server compacts its
        // history: the open watch ends, and the client's resource version is now too old.
        try await api.call(.POST, "pause")
        try await api.put("pods", podJSON("b-0", port: 7002))
        try await api.call(.POST, "compact")
        let relisted = await waitUntil(timeout: .seconds(20)) { watcher.listsMade == 2 }
        #expect(relisted, "errors: \(watcher.errors)")
        #expect(
            await waitUntil(timeout: .seconds(20)) {
                Set(watcher.targets.map { $0["__address__"] }) == ["127.0.0.1:7001", "127.0.0.1:7002"]
            })
        // And the new watch follows further changes.
        try await api.delete("pods", namespace: "shop", name: "a-0")
        #expect(await waitUntil(timeout: .seconds(20)) { watcher.targets.map { $0["__address__"] } == ["127.0.0.1:7002"] })
        #expect(watcher.errors.isEmpty, "\(watcher.errors)")
        running.cancel()
        await running.value
    }

    /// The endpoints role reads three resources per namespace (endpoints, services, pods) and joins them;
    /// selectors reach the API server as `labelSelector`, and only the listed namespaces are read.
    @Test("endpoints role: per-namespace lists and watches, selectors, the service's and pod's labels joined")
    func endpointsRole() async throws {
        try await KubeAPIStandIn.with { api in try await Self.endpoints(api) }
    }

    static func endpoints(_ api: KubeAPIStandIn) async throws {
        try await api.put("pods", podJSON("web-0", ip: "10.1.0.7", port: 8080, labels: ["app": "web"]))
        try await api.put(
            "services",
            #"{"metadata": {"name": "web", "namespace": "shop", "labels": {"tier": "front"}}, "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "ports": [{"port": 80}]}}"#
        )
        let endpoints = """
            {"metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
             "subsets": [{"addresses": [{"ip": "10.1.0.7", "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "shop"}}],
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}
            """
        try await api.put("endpoints", endpoints)
        try await api.put(
            "endpoints",
            #"{"metadata": {"name": "db", "namespace": "shop", "labels": {"app": "db"}}, "subsets": [{"addresses": [{"ip": "10.1.0.9"}], "ports": [{"port": 5432}]}]}"#
        )
        try await api.put(
            "endpoints",
            #"{"metadata": {"name": "web", "namespace": "other", "labels": {"app": "web"}}, "subsets": [{"addresses": [{"ip": "10.2.0.1"}], "ports": [{"port": 8080}]}]}"#
        )
        let config = try ScrapeConfiguration.parse(
            """
            discovery.kubernetes "ep" {
              role = "endpoints"
              api_server = "http://\(api.address)"
              namespaces {
                names = ["shop"]
              }
              selectors {
                role = "endpoints"
                label = "app=web"
              }
            }
            """, file: "k8s.alloy")
        let watcher = KubernetesTargetWatcher(component: try #require(config.kubernetesDiscoveries["ep"]))
        let running = Task { await watcher.run {} }
        #expect(await waitUntil(timeout: .seconds(20)) { watcher.synced && !watcher.targets.isEmpty }, "\(watcher.errors)")
        let targets = watcher.targets
        #expect(targets.map { $0["__address__"] } == ["10.1.0.7:8080"], "only shop's endpoints with app=web")
        #expect(targets.first?["__meta_kubernetes_service_label_tier"] == "front")
        #expect(targets.first?["__meta_kubernetes_pod_name"] == "web-0")
        #expect(targets.first?["__meta_kubernetes_pod_container_port_name"] == "http")
        let requests = try await api.requests()
        let paths = Set(requests.map(\.path))
        #expect(paths == ["/api/v1/namespaces/shop/endpoints", "/api/v1/namespaces/shop/services", "/api/v1/namespaces/shop/pods"])
        #expect(requests.filter { $0.path.hasSuffix("/endpoints") }.allSatisfy { $0.query["labelSelector"] == "app=web" })
        #expect(requests.filter { !$0.path.hasSuffix("/endpoints") }.allSatisfy { $0.query["labelSelector"] == nil })

        // A change to the service (not the endpoints) reaches the targets too.
        try await api.put(
            "services",
            #"{"metadata": {"name": "web", "namespace": "shop", "labels": {"tier": "edge"}}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}"#
        )
        #expect(await waitUntil(timeout: .seconds(20)) { watcher.targets.first?["__meta_kubernetes_service_label_tier"] == "edge" })
        running.cancel()
        await running.value
    }

    /// In-cluster credentials: the service account's token (re-read at each request: it rotates), its CA
    /// to verify the API server's certificate, and its namespace for `own_namespace`.
    @Test("in-cluster: service-account token, CA-verified TLS, own namespace", .requires(.openssl))
    func inCluster() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ca = try await TestCertificateAuthority.make(in: dir.url.appendingPathComponent("ca"))
        let (certificate, key) = try await ca.issue("kube-apiserver")
        try FileManager.default.copyItem(atPath: ca.certificateFile, toPath: dir.url.appendingPathComponent("ca.crt").path)
        try "token-1\n".write(to: dir.url.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        try "shop".write(to: dir.url.appendingPathComponent("namespace"), atomically: true, encoding: .utf8)
        try await KubeAPIStandIn.with(arguments: ["--token", "token-1", "--tls-cert", certificate, "--tls-key", key]) { api in
            try await Self.inCluster(api, serviceAccount: dir.url)
        }
    }

    static func inCluster(_ api: KubeAPIStandIn, serviceAccount: URL) async throws {
        try await api.put("pods", podJSON("in-0", namespace: "shop", port: 7001))
        try await api.put("pods", podJSON("out-0", namespace: "other", port: 7002))

        let config = try ScrapeConfiguration.parse(
            """
            discovery.kubernetes "pods" {
              role = "pod"
              namespaces {
                own_namespace = true
              }
            }
            """, file: "k8s.alloy")
        let port = api.address.split(separator: ":").last.map(String.init)!
        let watcher = KubernetesTargetWatcher(
            component: try #require(config.kubernetesDiscoveries["pods"]),
            environment: ["KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port],
            serviceAccountDirectory: serviceAccount.path)
        let running = Task { await watcher.run {} }
        let found = await waitUntil(timeout: .seconds(20)) { watcher.targets.map { $0["__address__"] } == ["127.0.0.1:7001"] }
        #expect(found, "errors: \(watcher.errors)")
        let requests = try await api.requests()
        #expect(requests.first?.path == "/api/v1/namespaces/shop/pods")
        #expect(requests.first?.authorization == "Bearer token-1")
        running.cancel()
        await running.value
    }
}
