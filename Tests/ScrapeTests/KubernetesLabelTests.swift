import Foundation
import NIOSSL
import Testing

@testable import Scrape

/// Targets and `__meta_kubernetes_*` labels per role, from objects shaped as in the Kubernetes API
/// reference, against the labels Prometheus's Kubernetes discovery gives the same objects.
@Suite("discovery.kubernetes labels")
struct KubernetesLabelTests {
    static func decode<T: Decodable>(_ json: String, as: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(json.utf8))
    }

    static let pod = """
        {"metadata": {"name": "web-7d9f", "namespace": "shop", "uid": "3f1c", "labels": {"app.kubernetes.io/name": "web"},
          "annotations": {"profiles.grafana.com/cpu.scrape": "true"},
          "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d", "controller": true}, {"kind": "Other", "name": "x"}]},
         "spec": {"nodeName": "node-a",
           "initContainers": [{"name": "migrate", "image": "migrate:2"}],
           "containers": [{"name": "app", "image": "web:1", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
             {"containerPort": 6060, "protocol": "TCP"}]}, {"name": "sidecar", "image": "envoy:1"}]},
         "status": {"phase": "Running", "podIP": "fd00::5", "hostIP": "10.0.0.9",
           "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
           "containerStatuses": [{"name": "app", "containerID": "containerd://abc"}],
           "initContainerStatuses": [{"name": "migrate", "containerID": "containerd://init"}]}}
        """

    @Test("pod: a target per container port, port-less containers at the bare IP, init containers, IPv6 in brackets")
    func podRole() throws {
        let pod = try Self.decode(Self.pod, as: Kubernetes.Pod.self)
        let targets = KubernetesLabels.pod(pod, lookups: .init())
        #expect(targets.map { $0["__address__"] } == ["[fd00::5]:8080", "[fd00::5]:6060", "fd00::5", "fd00::5"])
        let http = targets[0]
        let p = "__meta_kubernetes_"
        #expect(http[p + "namespace"] == "shop")
        #expect(http[p + "pod_name"] == "web-7d9f")
        #expect(http[p + "pod_label_app_kubernetes_io_name"] == "web")
        #expect(http[p + "pod_labelpresent_app_kubernetes_io_name"] == "true")
        #expect(http[p + "pod_annotation_profiles_grafana_com_cpu_scrape"] == "true")
        #expect(http[p + "pod_annotationpresent_profiles_grafana_com_cpu_scrape"] == "true")
        #expect(http[p + "pod_ready"] == "false")
        #expect(http[p + "pod_phase"] == "Running")
        #expect(http[p + "pod_node_name"] == "node-a")
        #expect(http[p + "pod_host_ip"] == "10.0.0.9")
        #expect(http[p + "pod_ip"] == "fd00::5")
        #expect(http[p + "pod_uid"] == "3f1c")
        #expect(http[p + "pod_controller_kind"] == "ReplicaSet" && http[p + "pod_controller_name"] == "web-7d")
        #expect(http[p + "pod_container_name"] == "app" && http[p + "pod_container_image"] == "web:1")
        #expect(http[p + "pod_container_id"] == "containerd://abc")
        #expect(http[p + "pod_container_init"] == "false")
        #expect(http[p + "pod_container_port_name"] == "http" && http[p + "pod_container_port_number"] == "8080")
        #expect(http[p + "pod_container_port_protocol"] == "TCP")
        #expect(targets[1][p + "pod_container_port_name"] == "")
        #expect(targets[2][p + "pod_container_name"] == "sidecar" && targets[2][p + "pod_container_port_number"] == nil)
        #expect(targets[2][p + "pod_container_id"] == "")
        #expect(targets[3][p + "pod_container_init"] == "true" && targets[3][p + "pod_container_id"] == "containerd://init")

        var pending = pod
        pending.status?.podIP = nil
        #expect(KubernetesLabels.pod(pending, lookups: .init()).isEmpty, "no IP yet: no target")
    }

    @Test("attach_metadata: node and namespace labels; a pod whose node is unknown has no targets")
    func attachedMetadata() throws {
        let pod = try Self.decode(Self.pod, as: Kubernetes.Pod.self)
        let node = try Self.decode(
            #"{"metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "eu-1a"}}}"#, as: Kubernetes.Node.self)
        let namespace = try Self.decode(
            #"{"metadata": {"name": "shop", "labels": {"team": "payments"}, "annotations": {"owner": "ana"}}}"#,
            as: Kubernetes.Namespace.self)
        let lookups = KubernetesLabels.Lookups(
            node: { $0 == "node-a" ? node : nil }, namespace: { $0 == "shop" ? namespace : nil })
        let target = try #require(KubernetesLabels.pod(pod, lookups: lookups).first)
        #expect(target["__meta_kubernetes_node_name"] == "node-a")
        #expect(target["__meta_kubernetes_node_label_topology_kubernetes_io_zone"] == "eu-1a")
        #expect(target["__meta_kubernetes_namespace_label_team"] == "payments")
        #expect(target["__meta_kubernetes_namespace_annotation_owner"] == "ana")
        #expect(target["__meta_kubernetes_namespace_name"] == nil, "the namespace's name is __meta_kubernetes_namespace")
        let unknownNode = KubernetesLabels.Lookups(node: { _ in nil })
        #expect(KubernetesLabels.pod(pod, lookups: unknownNode).isEmpty)
    }

    @Test("service: <name>.<namespace>.svc:<port>, cluster IP, load balancer IPs, ExternalName")
    func serviceRole() throws {
        let lb = try Self.decode(
            """
            {"metadata": {"name": "checkout", "namespace": "shop", "labels": {"app": "checkout"}},
             "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.12",
               "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}, {"name": "pprof", "port": 6060, "protocol": "TCP"}]},
             "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example"}, {"ip": "203.0.113.8"}]}}}
            """, as: Kubernetes.Service.self)
        let targets = KubernetesLabels.service(lb, lookups: .init())
        #expect(targets.map { $0["__address__"] } == ["checkout.shop.svc:80", "checkout.shop.svc:6060"])
        let p = "__meta_kubernetes_"
        #expect(targets[0][p + "service_name"] == "checkout" && targets[0][p + "namespace"] == "shop")
        #expect(targets[0][p + "service_type"] == "LoadBalancer" && targets[0][p + "service_cluster_ip"] == "10.96.0.12")
        #expect(targets[0][p + "service_loadbalancer_ip"] == "203.0.113.7,203.0.113.8")
        #expect(targets[0][p + "service_label_app"] == "checkout")
        #expect(targets[1][p + "service_port_name"] == "pprof" && targets[1][p + "service_port_number"] == "6060")
        #expect(targets[1][p + "service_port_protocol"] == "TCP")
        let external = try Self.decode(
            #"{"metadata": {"name": "db", "namespace": "shop"}, "spec": {"type": "ExternalName", "externalName": "db.example.com", "ports": [{"port": 5432}]}}"#,
            as: Kubernetes.Service.self)
        let e = try #require(KubernetesLabels.service(external, lookups: .init()).first)
        #expect(e["__address__"] == "db.shop.svc:5432")
        #expect(e[p + "service_external_name"] == "db.example.com" && e[p + "service_cluster_ip"] == nil)
    }

    @Test("node: preferred address and kubelet port, instance = node name, addresses and conditions")
    func nodeRole() throws {
        let node = try Self.decode(
            """
            {"metadata": {"name": "node-a", "labels": {"kubernetes.io/os": "linux"}}, "spec": {"providerID": "aws:///eu-1a/i-1"},
             "status": {"addresses": [{"type": "Hostname", "address": "node-a"}, {"type": "ExternalIP", "address": "198.51.100.4"},
               {"type": "InternalIP", "address": "10.0.0.4"}, {"type": "InternalIP", "address": "10.0.0.5"}],
               "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}],
               "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}
            """, as: Kubernetes.Node.self)
        let target = try #require(KubernetesLabels.node(node).first)
        let p = "__meta_kubernetes_"
        #expect(target["__address__"] == "10.0.0.4:10250")
        #expect(target["instance"] == "node-a" && target[p + "node_name"] == "node-a")
        #expect(target[p + "node_provider_id"] == "aws:///eu-1a/i-1")
        #expect(target[p + "node_address_InternalIP"] == "10.0.0.4", "the first address of a type")
        #expect(target[p + "node_address_ExternalIP"] == "198.51.100.4" && target[p + "node_address_Hostname"] == "node-a")
        #expect(target[p + "node_condition_ready"] == "true" && target[p + "node_condition_memorypressure"] == "false")
        #expect(target[p + "node_label_kubernetes_io_os"] == "linux")
    }

    static let backingPod = """
        {"metadata": {"name": "web-1", "namespace": "shop", "uid": "p1"},
         "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "web:1",
           "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"name": "pprof", "containerPort": 6060, "protocol": "TCP"}]}]},
         "status": {"phase": "Running", "podIP": "10.1.0.7", "conditions": [{"type": "Ready", "status": "True"}]}}
        """
    static let service =
        #"{"metadata": {"name": "web", "namespace": "shop", "labels": {"tier": "front"}}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}"#

    @Test("endpoints: ready and not-ready addresses, the service's and pod's labels, and the pod's other ports")
    func endpointsRole() throws {
        let endpoints = try Self.decode(
            """
            {"metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
             "subsets": [{"addresses": [{"ip": "10.1.0.7", "nodeName": "node-a", "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop"}}],
               "notReadyAddresses": [{"ip": "10.1.0.8", "hostname": "web-2"}],
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}
            """, as: Kubernetes.Endpoints.self)
        let pod = try Self.decode(Self.backingPod, as: Kubernetes.Pod.self)
        let service = try Self.decode(Self.service, as: Kubernetes.Service.self)
        let lookups = KubernetesLabels.Lookups(pod: { $0 == "shop/web-1" ? pod : nil }, service: { $0 == "shop/web" ? service : nil })
        let targets = KubernetesLabels.endpoints(endpoints, lookups: lookups)
        #expect(targets.map { $0["__address__"] } == ["10.1.0.7:8080", "10.1.0.8:8080", "10.1.0.7:6060"])
        let p = "__meta_kubernetes_"
        let ready = targets[0]
        #expect(ready[p + "endpoints_name"] == "web" && ready[p + "endpoints_label_app"] == "web")
        #expect(ready[p + "service_name"] == "web" && ready[p + "service_label_tier"] == "front")
        #expect(ready[p + "endpoint_ready"] == "true" && ready[p + "endpoint_port_name"] == "http")
        #expect(ready[p + "endpoint_port_protocol"] == "TCP" && ready[p + "endpoint_node_name"] == "node-a")
        #expect(ready[p + "endpoint_address_target_kind"] == "Pod" && ready[p + "endpoint_address_target_name"] == "web-1")
        #expect(ready[p + "pod_name"] == "web-1" && ready[p + "pod_container_name"] == "app")
        #expect(ready[p + "pod_container_port_name"] == "http" && ready[p + "pod_container_id"] == nil)
        #expect(targets[1][p + "endpoint_ready"] == "false" && targets[1][p + "endpoint_hostname"] == "web-2")
        #expect(targets[1][p + "pod_name"] == nil, "no pod behind this address")
        let extra = targets[2]
        #expect(extra[p + "pod_container_port_name"] == "pprof" && extra[p + "endpoint_ready"] == nil)
        #expect(extra[p + "service_name"] == "web", "the pod's other port keeps the group's labels")
    }

    @Test("endpointslice: conditions, zone, topology, service by its label, pod join")
    func endpointSliceRole() throws {
        let slice = try Self.decode(
            """
            {"metadata": {"name": "web-abc12", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
             "addressType": "IPv4",
             "endpoints": [{"addresses": ["10.1.0.7"], "conditions": {"ready": true, "serving": true, "terminating": false},
               "nodeName": "node-a", "zone": "eu-1a", "hostname": "web-1", "deprecatedTopology": {"kubernetes.io/hostname": "node-a"},
               "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop"}}],
             "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]}
            """, as: Kubernetes.EndpointSlice.self)
        let pod = try Self.decode(Self.backingPod, as: Kubernetes.Pod.self)
        let service = try Self.decode(Self.service, as: Kubernetes.Service.self)
        let lookups = KubernetesLabels.Lookups(pod: { $0 == "shop/web-1" ? pod : nil }, service: { $0 == "shop/web" ? service : nil })
        let targets = KubernetesLabels.endpointSlice(slice, lookups: lookups)
        #expect(targets.map { $0["__address__"] } == ["10.1.0.7:8080", "10.1.0.7:6060"])
        let p = "__meta_kubernetes_endpointslice_"
        let t = targets[0]
        #expect(t[p + "name"] == "web-abc12" && t[p + "address_type"] == "IPv4")
        #expect(t[p + "port"] == "8080" && t[p + "port_name"] == "http" && t[p + "port_protocol"] == "TCP")
        #expect(t[p + "port_app_protocol"] == "http")
        #expect(t[p + "endpoint_conditions_ready"] == "true" && t[p + "endpoint_conditions_serving"] == "true")
        #expect(t[p + "endpoint_conditions_terminating"] == "false")
        #expect(t[p + "endpoint_node_name"] == "node-a" && t[p + "endpoint_zone"] == "eu-1a" && t[p + "endpoint_hostname"] == "web-1")
        #expect(t[p + "endpoint_topology_kubernetes_io_hostname"] == "node-a")
        #expect(t[p + "endpoint_topology_present_kubernetes_io_hostname"] == "true")
        #expect(t[p + "address_target_kind"] == "Pod" && t[p + "address_target_name"] == "web-1")
        #expect(t["__meta_kubernetes_service_name"] == "web" && t["__meta_kubernetes_pod_name"] == "web-1")
    }

    @Test("label names are sanitised per character as Prometheus does")
    func sanitising() {
        #expect(KubernetesLabels.hostPort("10.0.0.1", 80) == "10.0.0.1:80")
        var labels: LabelSet = [:]
        KubernetesLabels.addMetadata(
            &labels, Kubernetes.ObjectMeta(name: "n", labels: ["app.kubernetes.io/näme": "x"]), kind: "pod")
        #expect(labels["__meta_kubernetes_pod_label_app_kubernetes_io_n_me"] == "x")
    }
}

@Suite("discovery.kubernetes configuration")
struct KubernetesConfigTests {
    func parse(_ body: String) throws -> KubernetesDiscoveryComponent? {
        try ScrapeConfiguration.parse("discovery.kubernetes \"k\" {\n\(body)\n}\n", file: "k.alloy").kubernetesDiscoveries["k"]
    }

    func problem(_ body: String) -> String {
        do {
            _ = try parse(body)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test("Alloy's arguments: role, api_server, namespaces, selectors, attach_metadata, credentials")
    func arguments() throws {
        let c = try #require(
            try parse(
                """
                role = "endpoints"
                api_server = "https://10.0.0.1:6443"
                bearer_token_file = "/run/token"
                tls_config {
                  ca_file = "/run/ca.crt"
                }
                namespaces {
                  names = ["shop", "jobs"]
                }
                selectors {
                  role = "pod"
                  label = "app in (web, api),tier!=batch"
                  field = "spec.nodeName=node-a"
                }
                attach_metadata {
                  node = true
                  namespace = true
                }
                """))
        #expect(c.role == .endpoints && c.apiServer == "https://10.0.0.1:6443")
        #expect(c.namespaces == ["shop", "jobs"] && c.credentials.bearerTokenFile == "/run/token")
        #expect(c.selectors == [.init(role: .pod, label: "app in (web, api),tier!=batch", field: "spec.nodeName=node-a")])
        #expect(c.attachNodeMetadata && c.attachNamespaceMetadata && c.tls?.caFile == "/run/ca.crt")
    }

    @Test("mistakes are refused at load, naming the problem")
    func refusals() {
        #expect(problem(#"role = "ingress""#).contains("role must be one of pod, service, endpoints, endpointslice, node"))
        #expect(problem("").contains("missing required attribute \"role\""))
        #expect(
            problem(
                """
                role = "pod"
                api_server = "http://a:1"
                kubeconfig_file = "/k"
                """
            ).contains("mutually exclusive"))
        #expect(problem("role = \"pod\"\nbearer_token = \"x\"").contains("need api_server"))
        #expect(problem("role = \"service\"\nselectors {\n role = \"pod\"\n}").contains("not allowed with role \"service\""))
        #expect(problem("role = \"pod\"\nselectors {\n role = \"pod\"\n label = \"a=b=c\"\n}").contains("label selector"))
        #expect(problem("role = \"pod\"\nselectors {\n role = \"pod\"\n field = \"nonsense\"\n}").contains("field selector"))
        #expect(problem("role = \"service\"\nattach_metadata {\n node = true\n}").contains("attach_metadata node works with roles"))
        #expect(problem("role = \"pod\"\nselectors {\n role = \"node\"\n label = \"a=b\"\n}").contains("only with attach_metadata"))
        #expect(
            problem("role = \"pod\"\napi_server = \"http://a:1\"\nnamespaces {\n own_namespace = true\n}").contains("only in-cluster"))
        #expect(problem("role = \"pod\"\nproxy_url = \"http://p\"").contains("unknown attribute \"proxy_url\""))
        #expect(problem("role = \"pod\"\napi_server = \"http://a:1\"\ntls_config {\n server_name = \"x\"\n}").contains("server_name"))
    }

    @Test("label selector syntax")
    func selectors() {
        for good in ["app", "!app", "app=web", "app==web", "app!=web", "app in (a,b)", "app notin (a, b)", "example.com/app=x,tier"] {
            #expect(KubernetesSelectors.labelSelectorProblem(good) == nil, "\(good)")
        }
        for bad in ["", "=web", "a b", "app in (a b)", "-app=x", "app=-x"] {
            #expect(KubernetesSelectors.labelSelectorProblem(bad) != nil, "\(bad)")
        }
    }

    @Test("kubeconfig: current context's server, token and namespace; exec users refused by name")
    func kubeconfig() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let file = dir.url.appendingPathComponent("config")
        try """
        apiVersion: v1
        kind: Config
        current-context: dev
        clusters:
        - name: dev-cluster
          cluster:
            server: https://127.0.0.1:6443
            insecure-skip-tls-verify: true
        users:
        - name: dev-user
          user:
            tokenFile: token
        - name: cloud
          user:
            exec:
              command: aws
        contexts:
        - name: dev
          context:
            cluster: dev-cluster
            user: dev-user
        - name: prod
          context:
            cluster: dev-cluster
            user: cloud
        """.write(to: file, atomically: true, encoding: .utf8)
        try "t-1".write(to: dir.url.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        let connection = try KubernetesConnection.fromKubeconfig(file.path)
        #expect(connection.server == "https://127.0.0.1:6443")
        #expect(connection.credential == .bearerFile(dir.url.appendingPathComponent("token").path), "relative to the kubeconfig")
        #expect(try connection.authorization() == "Bearer t-1")
        #expect(connection.tls?.certificateVerification == CertificateVerification.none)

        try String(contentsOf: file, encoding: .utf8).replacingOccurrences(of: "current-context: dev", with: "current-context: prod")
            .write(to: file, atomically: true, encoding: .utf8)
        do {
            _ = try KubernetesConnection.fromKubeconfig(file.path)
            Issue.record("an exec user must be refused")
        } catch {
            #expect("\(error)".contains("uses exec"))
        }
    }

    @Test("outside a cluster without api_server or kubeconfig: a clear error, no guessing")
    func notInCluster() {
        let component = KubernetesDiscoveryComponent(label: "k", role: .pod)
        do {
            _ = try KubernetesConnection.resolve(component, environment: [:])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("not running in a cluster"))
        }
    }
}
