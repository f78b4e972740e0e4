import Foundation
import ProfileModel

/// Turns Kubernetes objects into targets with the `__meta_kubernetes_*` labels Prometheus (and so Alloy)
/// gives them, role by role. Pure functions of the objects: the watcher decides when to call them.
enum KubernetesLabels {
    static let prefix = "__meta_kubernetes_"

    /// `host:port`, with IPv6 hosts in brackets (Go's `net.JoinHostPort`).
    static func hostPort(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// `<kind>_name`, `<kind>_label_<name>`, `<kind>_labelpresent_<name>` and the same for annotations.
    static func addMetadata(_ labels: inout LabelSet, _ meta: Kubernetes.ObjectMeta, kind: String) {
        labels[prefix + kind + "_name"] = meta.name
        for (name, value) in meta.labels ?? [:] {
            let n = LabelRules.underscored(name)
            labels[prefix + kind + "_label_" + n] = value
            labels[prefix + kind + "_labelpresent_" + n] = "true"
        }
        for (name, value) in meta.annotations ?? [:] {
            let n = LabelRules.underscored(name)
            labels[prefix + kind + "_annotation_" + n] = value
            labels[prefix + kind + "_annotationpresent_" + n] = "true"
        }
    }

    /// `attach_metadata namespace`: the namespace's labels and annotations (its name is already there).
    static func addNamespace(_ labels: inout LabelSet, _ namespace: Kubernetes.Namespace?) {
        guard let namespace else { return }
        addMetadata(&labels, namespace.metadata, kind: "namespace")
        labels.removeValue(forKey: prefix + "namespace_name")
    }

    /// `attach_metadata node`: the node's name, labels and annotations.
    static func addNode(_ labels: inout LabelSet, _ node: Kubernetes.Node?) {
        guard let node else { return }
        addMetadata(&labels, node.metadata, kind: "node")
    }

    /// What a target may borrow from other objects: nil functions when `attach_metadata` did not ask.
    struct Lookups {
        var pod: (String) -> Kubernetes.Pod? = { _ in nil }
        var service: (String) -> Kubernetes.Service? = { _ in nil }
        var node: ((String) -> Kubernetes.Node?)?
        var namespace: ((String) -> Kubernetes.Namespace?)?
    }

    // MARK: pod

    /// The labels of a pod that every one of its targets carries (and endpoints borrow).
    static func podLabels(_ pod: Kubernetes.Pod) -> LabelSet {
        var labels: LabelSet = [
            prefix + "pod_ip": pod.status?.podIP ?? "",
            prefix + "pod_ready": podReady(pod),
            prefix + "pod_phase": pod.status?.phase ?? "",
            prefix + "pod_node_name": pod.spec?.nodeName ?? "",
            prefix + "pod_host_ip": pod.status?.hostIP ?? "",
            prefix + "pod_uid": pod.metadata.uid ?? "",
        ]
        addMetadata(&labels, pod.metadata, kind: "pod")
        if let controller = pod.metadata.ownerReferences?.first(where: { $0.controller == true }) {
            if !controller.kind.isEmpty { labels[prefix + "pod_controller_kind"] = controller.kind }
            if !controller.name.isEmpty { labels[prefix + "pod_controller_name"] = controller.name }
        }
        return labels
    }

    /// The Ready condition's status in lower case ("true", "false", "unknown"); "unknown" without one.
    static func podReady(_ pod: Kubernetes.Pod) -> String {
        pod.status?.conditions?.first { $0.type == "Ready" }?.status.lowercased() ?? "unknown"
    }

    /// Containers then init containers, with whether each is an init container and its ID.
    static func containers(of pod: Kubernetes.Pod) -> [(container: Kubernetes.Container, isInit: Bool, id: String)] {
        func id(_ name: String, _ statuses: [Kubernetes.ContainerStatus]?) -> String {
            statuses?.first { $0.name == name }?.containerID ?? ""
        }
        let regular = (pod.spec?.containers ?? []).map { ($0, false, id($0.name, pod.status?.containerStatuses)) }
        let initial = (pod.spec?.initContainers ?? []).map { ($0, true, id($0.name, pod.status?.initContainerStatuses)) }
        return regular + initial
    }

    /// A container port's labels; the protocol is the endpoint's when an endpoint port matched it.
    static func containerPortLabels(_ c: Kubernetes.Container, isInit: Bool, port p: Kubernetes.ContainerPort, protocol proto: String?)
        -> LabelSet
    {
        [
            prefix + "pod_container_name": c.name,
            prefix + "pod_container_image": c.image ?? "",
            prefix + "pod_container_init": isInit ? "true" : "false",
            prefix + "pod_container_port_name": p.name ?? "",
            prefix + "pod_container_port_number": String(p.containerPort),
            prefix + "pod_container_port_protocol": proto ?? p.protocol ?? "",
        ]
    }

    /// One target per container port; a container without ports gives one target at the pod IP alone.
    /// A pod without an IP (not scheduled or not started yet) gives none, as does one whose node
    /// `attach_metadata` wants but the node list does not hold.
    static func pod(_ pod: Kubernetes.Pod, lookups: Lookups) -> [LabelSet] {
        guard let ip = pod.status?.podIP, !ip.isEmpty else { return [] }
        var common = podLabels(pod)
        common[prefix + "namespace"] = pod.metadata.namespace ?? ""
        if let node = lookups.node {
            guard let attached = node(pod.spec?.nodeName ?? "") else { return [] }
            addNode(&common, attached)
        }
        if let namespace = lookups.namespace { addNamespace(&common, namespace(pod.metadata.namespace ?? "")) }
        var out: [LabelSet] = []
        for (c, isInit, id) in containers(of: pod) {
            var base = common
            base[prefix + "pod_container_name"] = c.name
            base[prefix + "pod_container_id"] = id
            base[prefix + "pod_container_image"] = c.image ?? ""
            base[prefix + "pod_container_init"] = isInit ? "true" : "false"
            guard let ports = c.ports, !ports.isEmpty else {
                base["__address__"] = ip
                out.append(base)
                continue
            }
            for p in ports {
                var labels = base.merging(containerPortLabels(c, isInit: isInit, port: p, protocol: nil)) { $1 }
                labels["__address__"] = hostPort(ip, p.containerPort)
                out.append(labels)
            }
        }
        return out
    }

    // MARK: service

    static func serviceLabels(_ s: Kubernetes.Service) -> LabelSet {
        var labels: LabelSet = [prefix + "namespace": s.metadata.namespace ?? ""]
        addMetadata(&labels, s.metadata, kind: "service")
        return labels
    }

    /// One target per service port at `<name>.<namespace>.svc:<port>` (ExternalName services too).
    static func service(_ s: Kubernetes.Service, lookups: Lookups) -> [LabelSet] {
        var common = serviceLabels(s)
        if let namespace = lookups.namespace { addNamespace(&common, namespace(s.metadata.namespace ?? "")) }
        let type = s.spec?.type ?? ""
        common[prefix + "service_type"] = type
        if type == "ExternalName" {
            common[prefix + "service_external_name"] = s.spec?.externalName ?? ""
        } else {
            common[prefix + "service_cluster_ip"] = s.spec?.clusterIP ?? ""
        }
        if type == "LoadBalancer" {
            let ingress = (s.status?.loadBalancer?.ingress ?? []).compactMap(\.ip).filter { !$0.isEmpty }
            common[prefix + "service_loadbalancer_ip"] = ingress.isEmpty ? (s.spec?.loadBalancerIP ?? "") : ingress.joined(separator: ",")
        }
        let host = "\(s.metadata.name).\(s.metadata.namespace ?? "").svc"
        return (s.spec?.ports ?? []).map { p in
            var labels = common
            labels["__address__"] = hostPort(host, p.port)
            labels[prefix + "service_port_name"] = p.name ?? ""
            labels[prefix + "service_port_number"] = String(p.port)
            labels[prefix + "service_port_protocol"] = p.protocol ?? ""
            return labels
        }
    }

    // MARK: node

    /// The address types in the order Prometheus prefers them for a node's target.
    static let nodeAddressPreference = ["InternalIP", "InternalDNS", "ExternalIP", "ExternalDNS", "LegacyHostIP", "Hostname"]

    /// One target per node at its preferred address and the kubelet's port; `instance` is the node name.
    static func node(_ n: Kubernetes.Node) -> [LabelSet] {
        let addresses = n.status?.addresses ?? []
        guard let address = nodeAddressPreference.lazy.compactMap({ t in addresses.first { $0.type == t }?.address }).first
        else { return [] }
        var labels: LabelSet = [
            "__address__": hostPort(address, n.status?.daemonEndpoints?.kubeletEndpoint?.port ?? 0),
            "instance": n.metadata.name,
            prefix + "node_provider_id": n.spec?.providerID ?? "",
        ]
        addMetadata(&labels, n.metadata, kind: "node")
        for c in n.status?.conditions ?? [] {
            labels[prefix + "node_condition_" + LabelRules.underscored(c.type.lowercased())] = c.status.lowercased()
        }
        for a in addresses.reversed() {  // reversed: the first address of each type wins
            labels[prefix + "node_address_" + LabelRules.underscored(a.type)] = a.address
        }
        return [labels]
    }

    // MARK: endpoints and endpoint slices

    /// Joins endpoint targets with the pods they point at: each target gets the pod's labels and the
    /// labels of the container port its port number matches; afterwards every container port of those
    /// pods that no endpoint port covered becomes a target of its own (Prometheus does the same, so a
    /// pod's profiling port is found through its service).
    struct PodJoin {
        var lookups: Lookups
        var namespace: String
        private var pods: [String: Kubernetes.Pod] = [:]
        private var order: [String] = []
        private var coveredPorts: [String: Set<Int>] = [:]

        init(lookups: Lookups, namespace: String) {
            self.lookups = lookups
            self.namespace = namespace
        }

        mutating func add(
            _ labels: inout LabelSet, ref: Kubernetes.ObjectReference?, port: Int?, endpointProtocol: String?
        ) {
            guard let ref, ref.kind == "Pod", let name = ref.name else { return }
            let key = "\(ref.namespace ?? namespace)/\(name)"
            guard let pod = lookups.pod(key) else { return }
            labels.merge(podLabels(pod)) { old, _ in old }
            if pods[key] == nil {
                pods[key] = pod
                order.append(key)
            }
            guard let port else { return }
            coveredPorts[key, default: []].insert(port)
            for (c, isInit, _) in containers(of: pod) {
                guard let p = c.ports?.first(where: { $0.containerPort == port }) else { continue }
                labels.merge(containerPortLabels(c, isInit: isInit, port: p, protocol: endpointProtocol)) { old, _ in old }
                return
            }
        }

        /// Targets for the container ports of the joined pods that no endpoint port covered.
        func remaining(common: LabelSet) -> [LabelSet] {
            var out: [LabelSet] = []
            for key in order {
                let pod = pods[key]!
                guard let ip = pod.status?.podIP, !ip.isEmpty else { continue }
                let covered = coveredPorts[key] ?? []
                let base = common.merging(podLabels(pod)) { $1 }
                for (c, isInit, _) in containers(of: pod) {
                    for p in c.ports ?? [] where !covered.contains(p.containerPort) {
                        var labels = base.merging(containerPortLabels(c, isInit: isInit, port: p, protocol: nil)) { $1 }
                        labels["__address__"] = hostPort(ip, p.containerPort)
                        out.append(labels)
                    }
                }
            }
            return out
        }
    }

    /// The labels every target of an endpoints object or slice carries: its namespace, its own metadata
    /// and its service's.
    static func endpointCommon(
        _ meta: Kubernetes.ObjectMeta, kind: String, serviceName: String?, lookups: Lookups
    ) -> LabelSet {
        let namespace = meta.namespace ?? ""
        var common: LabelSet = [prefix + "namespace": namespace]
        if let serviceName, let service = lookups.service("\(namespace)/\(serviceName)") {
            common.merge(serviceLabels(service)) { $1 }
        }
        addMetadata(&common, meta, kind: kind)
        if let lookup = lookups.namespace { addNamespace(&common, lookup(namespace)) }
        return common
    }

    static func endpoints(_ e: Kubernetes.Endpoints, lookups: Lookups) -> [LabelSet] {
        let common = endpointCommon(e.metadata, kind: "endpoints", serviceName: e.metadata.name, lookups: lookups)
        var join = PodJoin(lookups: lookups, namespace: e.metadata.namespace ?? "")
        var out: [LabelSet] = []
        for subset in e.subsets ?? [] {
            let addresses = (subset.addresses ?? []).map { ($0, true) } + (subset.notReadyAddresses ?? []).map { ($0, false) }
            for port in subset.ports ?? [] {
                for (address, ready) in addresses {
                    var labels = common
                    labels["__address__"] = hostPort(address.ip, port.port ?? 0)
                    labels[prefix + "endpoint_port_name"] = port.name ?? ""
                    labels[prefix + "endpoint_port_protocol"] = port.protocol ?? ""
                    labels[prefix + "endpoint_ready"] = ready ? "true" : "false"
                    if let node = address.nodeName { labels[prefix + "endpoint_node_name"] = node }
                    if let host = address.hostname { labels[prefix + "endpoint_hostname"] = host }
                    if let ref = address.targetRef {
                        labels[prefix + "endpoint_address_target_kind"] = ref.kind ?? ""
                        labels[prefix + "endpoint_address_target_name"] = ref.name ?? ""
                    }
                    if let lookup = lookups.node {
                        let nodeName = address.nodeName ?? (address.targetRef?.kind == "Node" ? address.targetRef?.name : nil)
                        addNode(&labels, nodeName.flatMap(lookup))
                    }
                    join.add(&labels, ref: address.targetRef, port: port.port, endpointProtocol: port.protocol ?? "")
                    out.append(labels)
                }
            }
        }
        return out + join.remaining(common: common)
    }

    static func endpointSlice(_ s: Kubernetes.EndpointSlice, lookups: Lookups) -> [LabelSet] {
        var common = endpointCommon(
            s.metadata, kind: "endpointslice", serviceName: s.metadata.labels?["kubernetes.io/service-name"], lookups: lookups)
        common[prefix + "endpointslice_address_type"] = s.addressType ?? ""
        var join = PodJoin(lookups: lookups, namespace: s.metadata.namespace ?? "")
        var out: [LabelSet] = []
        for endpoint in s.endpoints ?? [] {
            for port in s.ports ?? [] {
                for address in endpoint.addresses {
                    var labels = common
                    labels["__address__"] = port.port.map { hostPort(address, $0) } ?? address
                    if let v = port.name { labels[prefix + "endpointslice_port_name"] = v }
                    if let v = port.protocol { labels[prefix + "endpointslice_port_protocol"] = v }
                    if let v = port.port { labels[prefix + "endpointslice_port"] = String(v) }
                    if let v = port.appProtocol { labels[prefix + "endpointslice_port_app_protocol"] = v }
                    if let v = endpoint.conditions?.ready { labels[prefix + "endpointslice_endpoint_conditions_ready"] = String(v) }
                    if let v = endpoint.conditions?.serving { labels[prefix + "endpointslice_endpoint_conditions_serving"] = String(v) }
                    if let v = endpoint.conditions?.terminating {
                        labels[prefix + "endpointslice_endpoint_conditions_terminating"] = String(v)
                    }
                    if let v = endpoint.hostname { labels[prefix + "endpointslice_endpoint_hostname"] = v }
                    if let ref = endpoint.targetRef {
                        labels[prefix + "endpointslice_address_target_kind"] = ref.kind ?? ""
                        labels[prefix + "endpointslice_address_target_name"] = ref.name ?? ""
                    }
                    if let v = endpoint.nodeName { labels[prefix + "endpointslice_endpoint_node_name"] = v }
                    if let v = endpoint.zone { labels[prefix + "endpointslice_endpoint_zone"] = v }
                    for (key, value) in endpoint.deprecatedTopology ?? [:] {
                        let n = LabelRules.underscored(key)
                        labels[prefix + "endpointslice_endpoint_topology_" + n] = value
                        labels[prefix + "endpointslice_endpoint_topology_present_" + n] = "true"
                    }
                    if let lookup = lookups.node {
                        let nodeName = endpoint.targetRef?.kind == "Node" ? endpoint.targetRef?.name : endpoint.nodeName
                        addNode(&labels, nodeName.flatMap(lookup))
                    }
                    // A slice port without a number never matches a container port.
                    join.add(&labels, ref: endpoint.targetRef, port: port.port, endpointProtocol: nil)
                    out.append(labels)
                }
            }
        }
        return out + join.remaining(common: common)
    }
}
