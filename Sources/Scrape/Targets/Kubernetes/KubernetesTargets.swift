import Foundation
import Synchronization

/// An object the API lists and watches: all discovery needs in common is its metadata.
protocol KubernetesObject: Decodable, Sendable {
    var metadata: Kubernetes.ObjectMeta { get }
}

extension Kubernetes.Pod: KubernetesObject {}
extension Kubernetes.Service: KubernetesObject {}
extension Kubernetes.Endpoints: KubernetesObject {}
extension Kubernetes.EndpointSlice: KubernetesObject {}
extension Kubernetes.Node: KubernetesObject {}
extension Kubernetes.Namespace: KubernetesObject {}

/// Runs one `discovery.kubernetes` component: lists, then watches, every resource its role needs (the
/// role's own objects, and the services, pods, nodes and namespaces its targets borrow labels from), in
/// each watched namespace, and keeps the targets current from the watch events. A watch that ends is
/// resumed from the last resource version; one the server has forgotten (410 Gone) starts over with a
/// fresh list; a failing connection is retried with backoff while the last good targets stay.
public final class KubernetesTargetWatcher: TargetDiscovery {
    public let component: KubernetesDiscoveryComponent
    let environment: [String: String]
    let serviceAccountDirectory: String

    struct Store: Sendable {
        var pods: [String: Kubernetes.Pod] = [:]
        var services: [String: Kubernetes.Service] = [:]
        var endpoints: [String: Kubernetes.Endpoints] = [:]
        var slices: [String: Kubernetes.EndpointSlice] = [:]
        var nodes: [String: Kubernetes.Node] = [:]
        var namespaces: [String: Kubernetes.Namespace] = [:]
        /// Informers that finished their first list, and how many there are.
        var listed: Set<String> = []
        var informerCount = -1
        var errors: [String: String] = [:]
        /// The targets built from the objects above; nil once an object changed.
        var targets: [LabelSet]?
        var lists = 0
    }
    private let state = Mutex(Store())

    public init(
        component: KubernetesDiscoveryComponent, environment: [String: String] = ProcessInfo.processInfo.environment,
        serviceAccountDirectory: String = defaultServiceAccountDirectory
    ) {
        self.component = component
        self.environment = environment
        self.serviceAccountDirectory = serviceAccountDirectory
    }

    /// Where a pod finds its service account's token, CA certificate and namespace.
    public static let defaultServiceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    public var id: String { "discovery.kubernetes.\(component.label)" }

    public var targets: [LabelSet] {
        state.withLock { s in
            if let built = s.targets { return built }
            let built = Self.build(s, component: component)
            s.targets = built
            return built
        }
    }

    public var errors: [String: String] { state.withLock { $0.errors } }

    /// True once every resource has been listed: the first full target set is known.
    public var synced: Bool { state.withLock { $0.informerCount >= 0 && $0.listed.count == $0.informerCount } }

    /// Full lists made so far (the first ones and every relist), for tests and `/targets`.
    public var listsMade: Int { state.withLock { $0.lists } }

    public func run(changed: @escaping @Sendable () -> Void) async {
        let connection: KubernetesConnection
        do {
            connection = try KubernetesConnection.resolve(
                component, environment: environment, serviceAccountDirectory: serviceAccountDirectory)
        } catch {
            state.withLock { $0.errors["connection"] = "\(error)" }
            return
        }
        let client = KubernetesClient(connection: connection)
        let named = (component.ownNamespace ? [connection.ownNamespace ?? ""] : []) + component.namespaces
        // Each namespace once (own_namespace may also be named), or all of them.
        let namespaces: [String?] =
            named.isEmpty ? [nil] : named.enumerated().filter { named.firstIndex(of: $0.element) == $0.offset }.map(\.element)
        let informers = plan(namespaces: namespaces)
        state.withLock { $0.informerCount = informers.count }
        await withTaskGroup(of: Void.self) { group in
            for informer in informers {
                group.addTask { await informer(client, changed) }
            }
        }
        await client.shutdown()
    }

    typealias Informer = @Sendable (KubernetesClient, @escaping @Sendable () -> Void) async -> Void

    /// The resources the role reads, each in every watched namespace (cluster-scoped ones once).
    func plan(namespaces: [String?]) -> [Informer] {
        func selector(_ role: KubernetesDiscoveryComponent.Role) -> KubernetesDiscoveryComponent.Selector? {
            component.selectors.first { $0.role == role }
        }
        var out: [Informer] = []
        func add<T: KubernetesObject>(
            _ resource: KubernetesResource, _ type: T.Type, _ keyPath: WritableKeyPath<Store, [String: T]> & Sendable,
            selector: KubernetesDiscoveryComponent.Selector?
        ) {
            for namespace in resource.namespaced ? namespaces : [nil] {
                out.append { client, changed in
                    await self.inform(resource, namespace: namespace, selector: selector, client: client, into: keyPath, changed: changed)
                }
            }
        }
        switch component.role {
        case .pod:
            add(.pods, Kubernetes.Pod.self, \.pods, selector: selector(.pod))
        case .service:
            add(.services, Kubernetes.Service.self, \.services, selector: selector(.service))
        case .endpoints:
            add(.endpoints, Kubernetes.Endpoints.self, \.endpoints, selector: selector(.endpoints))
            add(.services, Kubernetes.Service.self, \.services, selector: selector(.service))
            add(.pods, Kubernetes.Pod.self, \.pods, selector: selector(.pod))
        case .endpointslice:
            add(.endpointSlices, Kubernetes.EndpointSlice.self, \.slices, selector: selector(.endpointslice))
            add(.services, Kubernetes.Service.self, \.services, selector: selector(.service))
            add(.pods, Kubernetes.Pod.self, \.pods, selector: selector(.pod))
        case .node:
            add(.nodes, Kubernetes.Node.self, \.nodes, selector: selector(.node))
        }
        if component.attachNodeMetadata, component.role != .node {
            add(.nodes, Kubernetes.Node.self, \.nodes, selector: selector(.node))
        }
        if component.attachNamespaceMetadata { add(.namespaces, Kubernetes.Namespace.self, \.namespaces, selector: nil) }
        return out
    }

    /// List, then watch, until cancelled.
    private func inform<T: KubernetesObject>(
        _ resource: KubernetesResource, namespace: String?, selector: KubernetesDiscoveryComponent.Selector?,
        client: KubernetesClient, into keyPath: WritableKeyPath<Store, [String: T]> & Sendable,
        changed: @escaping @Sendable () -> Void
    ) async {
        let name = resource.plural + (namespace.map { " in namespace \($0)" } ?? "")
        var resourceVersion: String?
        var failures = 0
        while !Task.isCancelled {
            do {
                if resourceVersion == nil {
                    let (items, version) = try await client.list(resource, namespace: namespace, selector: selector, as: T.self)
                    state.withLock { s in
                        s[keyPath: keyPath] = s[keyPath: keyPath].filter { namespace != nil && $0.value.metadata.namespace != namespace }
                        for item in items { s[keyPath: keyPath][item.metadata.key] = item }
                        s.listed.insert(name)
                        s.errors.removeValue(forKey: name)
                        s.targets = nil
                        s.lists += 1
                    }
                    changed()
                    resourceVersion = version
                }
                let watchStarted = ContinuousClock.now
                resourceVersion = try await client.watch(
                    resource, namespace: namespace, selector: selector, from: resourceVersion!,
                    timeoutSeconds: Int.random(in: 300...600), as: T.self
                ) { event in
                    let isChange: Bool = state.withLock { s in
                        switch event {
                        case .upsert(let item, _): s[keyPath: keyPath][item.metadata.key] = item
                        case .delete(let item, _): s[keyPath: keyPath].removeValue(forKey: item.metadata.key)
                        case .bookmark: return false
                        }
                        s.errors.removeValue(forKey: name)
                        s.targets = nil
                        return true
                    }
                    if isChange { changed() }
                }
                failures = 0
                // A watch the server (or a proxy) ends at once must not turn into a busy loop of requests.
                if ContinuousClock.now - watchStarted < .seconds(1) {
                    do { try await Task.sleep(for: .seconds(1)) } catch { return }
                }
            } catch KubernetesAPIError.expired {
                resourceVersion = nil  // the server forgot our version: list again, right away
            } catch {
                if Task.isCancelled { return }
                state.withLock { $0.errors[name] = "\(error)" }
                failures += 1
                // client-go's backoff: from 0.8 s, doubling, at most 30 s.
                let delay = min(30.0, 0.8 * pow(2, Double(min(failures - 1, 6))))
                do { try await Task.sleep(for: .milliseconds(Int(delay * 1000))) } catch { return }
            }
        }
    }

    static func build(_ s: Store, component: KubernetesDiscoveryComponent) -> [LabelSet] {
        let lookups = KubernetesLabels.Lookups(
            pod: { s.pods[$0] }, service: { s.services[$0] },
            node: component.attachNodeMetadata ? { s.nodes[$0] } : nil,
            namespace: component.attachNamespaceMetadata ? { s.namespaces[$0] } : nil)
        func each<T>(_ objects: [String: T], _ targets: (T) -> [LabelSet]) -> [LabelSet] {
            objects.keys.sorted().flatMap { targets(objects[$0]!) }
        }
        switch component.role {
        case .pod: return each(s.pods) { KubernetesLabels.pod($0, lookups: lookups) }
        case .service: return each(s.services) { KubernetesLabels.service($0, lookups: lookups) }
        case .endpoints: return each(s.endpoints) { KubernetesLabels.endpoints($0, lookups: lookups) }
        case .endpointslice: return each(s.slices) { KubernetesLabels.endpointSlice($0, lookups: lookups) }
        case .node: return each(s.nodes) { KubernetesLabels.node($0) }
        }
    }
}
