import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// A Kubernetes API server stand-in (`Tests/python/kube_apiserver.py`): no real cluster can run on this
/// machine, so these tests talk to a server that speaks the real list and watch protocol (paged JSON
/// lists, chunked watch events, resource versions, 410 Gone once history is compacted) with objects
/// shaped as in the Kubernetes API reference; tests change the cluster through its `/_admin` routes.
public final class KubeAPIStandIn: Sendable {
    let process: ChildProcess
    public let address: String
    let admin: HTTPClient
    let scheme: String

    public init(arguments: [String] = []) async throws {
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
    public static func with(arguments: [String] = [], _ body: (KubeAPIStandIn) async throws -> Void) async throws {
        let api = try await KubeAPIStandIn(arguments: arguments)
        do {
            try await body(api)
        } catch {
            await api.stop()
            throw error
        }
        await api.stop()
    }

    public func stop() async {
        process.signal(SIGKILL)
        _ = try? await process.waitForExit()
        try? await admin.shutdown()
    }

    @discardableResult
    public func call(_ method: HTTPMethod, _ path: String, json: String? = nil) async throws -> String {
        var request = HTTPClientRequest(url: "\(scheme)://\(address)/_admin/\(path)")
        request.method = method
        if let json {
            request.body = .bytes(ByteBuffer(string: json))
            request.headers.add(name: "Content-Type", value: "application/json")
        }
        let response = try await admin.execute(request, timeout: .seconds(30))
        let body = String(buffer: try await response.body.collect(upTo: 64 << 20))
        guard (200..<300).contains(response.status.code) else {
            throw ChildProcess.Failure(description: "stand-in answered \(response.status.code) to \(method) \(path): \(body)")
        }
        return body
    }

    public func put(_ resource: String, _ json: String) async throws { try await call(.PUT, resource, json: json) }
    public func delete(_ resource: String, namespace: String, name: String) async throws {
        try await call(.DELETE, "\(resource)/\(namespace)/\(name)")
    }

    /// The API requests the server received, as "METHOD path?watch" lines with their query.
    public func requests() async throws -> [(path: String, query: [String: String], authorization: String?)] {
        let data = Data(try await call(.GET, "requests").utf8)
        let list = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] ?? []
        return list.map { ($0["path"] as? String ?? "", $0["query"] as? [String: String] ?? [:], $0["authorization"] as? String) }
    }
}

/// A pod shaped like the API reference's Pod: one container `app` exposing `port` as "http".
public func podJSON(
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
public func annotationRecipe(writerURL: String, discovery: String) -> String {
    let a = "__meta_kubernetes_pod_annotation_profiles_grafana_com_goroutine"
    return """
        pyroscope.write "w" {
          endpoint { url = "\(writerURL)" }
        }
        \(discovery)

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
