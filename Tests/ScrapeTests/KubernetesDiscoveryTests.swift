import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import TestSupport
import Testing

@testable import Scrape

/// A Kubernetes API server stand-in (`Tests/python/kube_apiserver.py`): no real cluster can run on this
/// machine, so these tests talk to a server that speaks the real list and watch protocol (paged JSON
/// lists, chunked watch events, resource versions, 410 Gone once history is compacted) with objects
/// shaped as in the Kubernetes API reference; tests change the cluster through its `/_admin` routes.
final class KubeAPIStandIn: Sendable {
    let process: ChildProcess
    let address: String
    let admin: HTTPClient
    let scheme: String

    init(arguments: [String] = []) async throws {
        scheme = arguments.contains("--tls-cert") ? "https" : "http"
        var configuration = HTTPClient.Configuration()
        configuration.tlsConfiguration = .makeClientConfiguration()
        configuration.tlsConfiguration?.certificateVerification = .none  // the test's own admin calls only
        admin = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let script = TestEnvironment.repoRoot.appendingPathComponent("Tests/python/kube_apiserver.py")
        process = try ChildProcess(TestEnvironment.venvPython, ["-u", script.path, "--port", "0"] + arguments)
        let banner = try await process.waitForLine { $0.hasPrefix("listening on ") }
        address = String(banner.dropFirst("listening on ".count))
    }

    /// Runs `body` with a fresh stand-in, stopped afterwards whether `body` threw or not.
    static func with(arguments: [String] = [], _ body: (KubeAPIStandIn) async throws -> Void) async throws {
        let api = try await KubeAPIStandIn(arguments: arguments)
        do {
            try await body(api)
        } catch {
            await api.stop()
            throw error
        }
        await api.stop()
    }

    func stop() async {
        process.signal(SIGKILL)
        _ = try? await process.waitForExit()
        try? await admin.shutdown()
    }

    @discardableResult
    func call(_ method: HTTPMethod, _ path: String, json: String? = nil) async throws -> String {
        var request = HTTPClientRequest(url: "\(scheme)://\(address)/_admin/\(path)")
        request.method = method
        if let json {
            request.body = .bytes(ByteBuffer(string: json))
            request.headers.add(name: "Content-Type", value: "application/json")
        }
        let response = try await admin.execute(request, timeout: .seconds(30))
        let body = String(buffer: try await response.body.collect(upTo: 64 << 20))
        guard (200..<300).contains(response.status.code) else {
            throw ScrapeError("stand-in answered \(response.status.code) to \(method) \(path): \(body)")
        }
        return body
    }

    func put(_ resource: String, _ json: String) async throws { try await call(.PUT, resource, json: json) }
    func delete(_ resource: String, namespace: String, name: String) async throws {
        try await call(.DELETE, "\(resource)/\(namespace)/\(name)")
    }

    /// The API requests the server received, as "METHOD path?watch" lines with their query.
    func requests() async throws -> [(path: String, query: [String: String], authorization: String?)] {
        let data = Data(try await call(.GET, "requests").utf8)
        let list = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] ?? []
        return list.map { ($0["path"] as? String ?? "", $0["query"] as? [String: String] ?? [:], $0["authorization"] as? String) }
    }
}

/// A pod shaped like the API reference's Pod: one container `app` exposing `port` as "http".
func podJSON(
    _ name: String, namespace: String = "shop", ip: String = "127.0.0.1", port: Int, phase: String = "Running",
    labels: [String: String] = [:], annotations: [String: String] = [:], node: String = "node-1"
) -> String {
    func object(_ d: [String: String]) -> String {
        "{" + d.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ") + "}"
    }
    return """
        {"metadata": {"name": "\(name)", "namespace": "\(namespace)", "labels": \(object(labels)), "annotations": \(object(annotations)),
          "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "\(name)-rs", "uid": "u-\(name)", "controller": true}]},
         "spec": {"nodeName": "\(node)", "containers": [{"name": "app", "image": "example/app:1.0",
           "ports": [{"name": "http", "containerPort": \(port), "protocol": "TCP"}]}]},
         "status": {"phase": "\(phase)", "podIP": "\(ip)", "hostIP": "10.0.0.1",
           "conditions": [{"type": "Ready", "status": "True"}],
           "containerStatuses": [{"name": "app", "containerID": "containerd://\(name)", "ready": true, "restartCount": 0, "image": "example/app:1.0", "imageID": ""}]}}
        """
}

/// The Pyroscope Helm chart's recipe for pods annotated `profiles.grafana.com/goroutine.*`, as Alloy runs it
/// (only the goroutine type, to keep the test short): drop finished pods, copy pod labels, build
/// `service_name` from namespace and container, keep the annotated container port, apply `.path`.
func annotationRecipe(discovery: String) -> String {
    let a = "__meta_kubernetes_pod_annotation_profiles_grafana_com_goroutine"
    return writerPrefix() + discovery + """

        discovery.relabel "kubernetes_pods" {
          targets = discovery.kubernetes.pods.targets
          rule {
            source_labels = ["__meta_kubernetes_pod_phase"]
            regex = "Pending|Succeeded|Failed|Completed"
            action = "drop"
          }
          rule {
            regex = "__meta_kubernetes_pod_label_(.+)"
            action = "labelmap"
          }
          rule {
            source_labels = ["__meta_kubernetes_namespace"]
            target_label = "namespace"
          }
          rule {
            source_labels = ["__meta_kubernetes_pod_name"]
            target_label = "pod"
          }
          rule {
            source_labels = ["__meta_kubernetes_namespace", "__meta_kubernetes_pod_container_name"]
            separator = "@"
            regex = "(.*)@(.*)"
            replacement = "${1}/${2}"
            target_label = "service_name"
          }
        }
        discovery.relabel "goroutine" {
          targets = discovery.relabel.kubernetes_pods.output
          rule {
            source_labels = ["\(a)_scrape"]
            regex = "true"
            action = "keep"
          }
          rule {
            source_labels = ["\(a)_port_name"]
            regex = ""
            action = "keep"
          }
          rule {
            source_labels = ["__meta_kubernetes_pod_container_port_number"]
            target_label = "\(a)_port"
            action = "keepequal"
          }
          rule {
            source_labels = ["\(a)_scheme"]
            regex = "(https?)"
            target_label = "__scheme__"
            replacement = "$1"
          }
          rule {
            source_labels = ["\(a)_path"]
            regex = "(.+)"
            target_label = "__profile_path__"
            replacement = "$1"
          }
          rule {
            source_labels = ["__address__", "\(a)_port"]
            regex = "(.+?)(?::\\\\d+)?;(\\\\d+)"
            target_label = "__address__"
            replacement = "$1:$2"
          }
        }
        pyroscope.scrape "goroutine" {
          targets = discovery.relabel.goroutine.output
          forward_to = [pyroscope.write.w.receiver]
          scrape_interval = "2s"
          profiling_config {
            profile.process_cpu { enabled = false }
            profile.memory { enabled = false }
            profile.mutex { enabled = false }
            profile.block { enabled = false }
          }
        }
        """
}

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
    @Test("in-cluster: service-account token, CA-verified TLS, own namespace")
    func inCluster() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let key = dir.url.appendingPathComponent("tls.key").path
        let certificate = dir.url.appendingPathComponent("ca.crt").path
        let openssl = try await runToCompletion(
            URL(fileURLWithPath: "/usr/bin/openssl"),
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate, "-days", "1",
                "-subj", "/CN=kube-apiserver", "-addext", "subjectAltName=IP:127.0.0.1",
            ], timeout: .seconds(60))
        #expect(openssl.status == 0, "\(openssl.output)")
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
