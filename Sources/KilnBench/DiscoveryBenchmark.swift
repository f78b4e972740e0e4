import Foundation
import Hummingbird
import KilnFoundation
import Scrape
import Synchronization

#if canImport(Glibc)
    import CMalloc
#endif

/// `discovery.kubernetes` at fleet size: a cluster of `pods` pods served by an in-process API server
/// (paged lists, a watch that stays open), discovered with role "pod" and run through the Pyroscope
/// annotation recipe's relabelling; beside reading the same targets from a `discovery.file` JSON file
/// through the same rules. Reports the time to the first full target set and the memory it added.
public enum DiscoveryBenchmark {
    public static func run(pods: Int = 10_000) async throws -> [BenchMeasurement] {
        let objects = (0..<pods).map(pod)
        let pages = stride(from: 0, to: pods, by: 500).map { start -> String in
            let end = min(pods, start + 500)
            let more = end < pods ? #", "continue": "\#(end)""# : ""
            return #"{"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "\#(pods)"\#(more)}, "items": ["#
                + objects[start..<end].joined(separator: ",") + "]}"
        }
        let stop = StopFlag()
        let router = Router()
        router.get("/api/v1/pods") { request, _ -> Response in
            if request.uri.queryParameters.get("watch") == "true" {
                // Nothing changes during the benchmark: the watch stays open, silent, until the end.
                return Response(
                    status: .ok, headers: [.contentType: "application/json"],
                    body: ResponseBody { writer in
                        while !stop.isSet { try? await Task.sleep(for: .milliseconds(50)) }
                        try await writer.finish(nil)
                    })
            }
            let page = (Int(request.uri.queryParameters.get("continue") ?? "0") ?? 0) / 500
            guard page < pages.count else { return Response(status: .gone) }
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: .init(string: pages[page])))
        }
        let (port, server) = try await LoopbackServer.start(router, label: "kiln.bench.discovery")
        defer {
            stop.set()
            server.cancel()
        }

        let clock = ContinuousClock()
        // Kubernetes: list all pages, build the targets, relabel.
        let kubeConfig = try ScrapeConfiguration.parse(
            """
            discovery.kubernetes "pods" {
              role = "pod"
              api_server = "http://127.0.0.1:\(port)"
            }
            """ + recipe(source: "discovery.kubernetes.pods.targets"), file: "bench.alloy")
        let watcher = KubernetesTargetWatcher(component: kubeConfig.kubernetesDiscoveries["pods"]!)
        releaseFreedMemory()
        let kubeBefore = PeakMemory.resetHighWaterMark()
        let t0 = clock.now
        let watching = Task { await watcher.run {} }
        while !watcher.synced {
            if let error = watcher.errors.first { throw BenchError("discovery.kubernetes failed: \(error.key): \(error.value)") }
            try await Task.sleep(for: .milliseconds(2))
        }
        let discovered = watcher.targets
        let kubeTargets = scrapeTargets(kubeConfig, discovered: [watcher.id: discovered])
        let kubeSeconds = (clock.now - t0).secondsDouble
        let kubeMiB = PeakMemory.highWaterMarkMiB() - kubeBefore
        watching.cancel()
        await watching.value

        // The same targets from a file_sd JSON file, through the same rules.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-bench-discovery-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("targets.json")
        let groups = discovered.map { labels -> [String: Any] in
            ["targets": [labels["__address__"]!], "labels": labels.filter { $0.key != "__address__" }]
        }
        try JSONSerialization.data(withJSONObject: groups).write(to: file)
        let fileConfig = try ScrapeConfiguration.parse(
            """
            discovery.file "pods" {
              files = ["\(file.path)"]
            }
            """ + recipe(source: "discovery.file.pods.targets"), file: "bench.alloy")
        let fileWatcher = FileTargetWatcher(component: fileConfig.fileDiscoveries["pods"]!)
        releaseFreedMemory()
        let fileBefore = PeakMemory.resetHighWaterMark()
        let t1 = clock.now
        fileWatcher.refresh()
        let fileTargets = scrapeTargets(
            fileConfig, discovered: [fileWatcher.id: fileWatcher.targets.map { $0.filter { $0.key != "__meta_filepath" } }])
        let fileSeconds = (clock.now - t1).secondsDouble
        let fileMiB = PeakMemory.highWaterMarkMiB() - fileBefore

        guard kubeTargets == fileTargets, kubeTargets.count == pods / 2 else {
            throw BenchError(
                "discovery.kubernetes gave \(kubeTargets.count) scrape targets, discovery.file \(fileTargets.count); expected \(pods / 2)")
        }
        let label = "\(pods) pods, \(discovered.count) discovered targets, \(kubeTargets.count) kept by the annotation recipe"
        return [
            BenchMeasurement(
                name: "discovery.kubernetes time to the first full target set (\(label))", unit: "s", kiln: kubeSeconds,
                baselineName: "discovery.file of the same targets", baseline: fileSeconds, higherIsBetter: false),
            BenchMeasurement(
                name: "discovery.kubernetes peak memory added (\(pods) pods)", unit: "MiB", kiln: max(0.1, kubeMiB),
                baselineName: "discovery.file of the same targets", baseline: max(0.1, fileMiB), higherIsBetter: false),
        ]
    }

    /// The scrape loops the configuration's one job asks for, as strings that compare across sources.
    static func scrapeTargets(_ configuration: ScrapeConfiguration, discovered: [String: [LabelSet]]) -> [String] {
        let job = configuration.scrapeJobs[0]
        let labels = TargetResolver.evaluate(job.targets, configuration: configuration, discovered: discovered)
        var skipped = 0
        return TargetResolver.scrapeTargets(job: job, targets: labels, shard: .all, skipped: &skipped).map(\.key).sorted()
    }

    /// The Pyroscope Helm chart's relabelling for `profiles.grafana.com/cpu.*` annotations.
    static func recipe(source: String) -> String {
        let a = "__meta_kubernetes_pod_annotation_profiles_grafana_com_cpu"
        return """

            pyroscope.write "w" {
              endpoint { url = "http://127.0.0.1:4040" }
            }
            discovery.relabel "pods" {
              targets = \(source)
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
                source_labels = ["__meta_kubernetes_namespace", "__meta_kubernetes_pod_container_name"]
                separator = "@"
                regex = "(.*)@(.*)"
                replacement = "${1}/${2}"
                target_label = "service_name"
              }
              rule {
                source_labels = ["\(a)_scrape"]
                regex = "true"
                action = "keep"
              }
              rule {
                source_labels = ["__meta_kubernetes_pod_container_port_number"]
                target_label = "\(a)_port"
                action = "keepequal"
              }
            }
            pyroscope.scrape "cpu" {
              targets = discovery.relabel.pods.output
              forward_to = [pyroscope.write.w.receiver]
              profiling_config {
                profile.memory { enabled = false }
                profile.mutex { enabled = false }
                profile.block { enabled = false }
                profile.goroutine { enabled = false }
              }
            }
            """
    }

    /// A pod as the API lists it: a Deployment's replica with two container ports; every other pod is
    /// annotated for CPU profiling on its second port.
    static func pod(_ i: Int) -> String {
        let namespace = "team-\(i % 50)"
        let app = "svc-\(i % 500)"
        let annotations =
            i % 2 == 0
            ? #""profiles.grafana.com/cpu.scrape": "true", "profiles.grafana.com/cpu.port": "6060", "#
            : ""
        return """
            {"metadata": {"name": "\(app)-\(i)", "namespace": "\(namespace)", "uid": "uid-\(i)", "resourceVersion": "\(i + 1)",
            "labels": {"app.kubernetes.io/name": "\(app)", "pod-template-hash": "7d9f\(i % 97)", "team": "\(namespace)"},
            "annotations": {\(annotations)"kubectl.kubernetes.io/restartedAt": "2026-12-01T10:00:00Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "\(app)-7d9f", "uid": "rs-\(i % 500)", "controller": true}]},
            "spec": {"nodeName": "node-\(i % 200)", "containers": [{"name": "app", "image": "registry.example/\(app):1.\(i % 7)",
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"name": "pprof", "containerPort": 6060, "protocol": "TCP"}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
            "status": {"phase": "Running", "podIP": "10.\(i / 65536 % 256).\(i / 256 % 256).\(i % 256)", "hostIP": "192.168.0.\(i % 200)",
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
            "containerStatuses": [{"name": "app", "containerID": "containerd://\(i)", "ready": true, "restartCount": 0}]}}
            """
    }

    static func releaseFreedMemory() {
        #if canImport(Glibc)
            _ = malloc_trim(0)
        #endif
    }

    /// Set once, read from the server's watch handlers.
    final class StopFlag: Sendable {
        private let flag = Mutex(false)
        var isSet: Bool { flag.withLock { $0 } }
        func set() { flag.withLock { $0 = true } }
    }
}
