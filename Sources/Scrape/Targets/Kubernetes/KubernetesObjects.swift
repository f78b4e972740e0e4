import Foundation

/// The parts of Kubernetes API objects that discovery reads, decoded from the API's JSON. Only these
/// fields are kept, so a large cluster costs memory in proportion to what labels are built from, not
/// to the size of its objects.
public enum Kubernetes {
    public struct ObjectMeta: Decodable, Sendable, Equatable {
        public var name: String
        public var namespace: String?
        public var uid: String?
        public var resourceVersion: String?
        public var labels: [String: String]?
        public var annotations: [String: String]?
        public var ownerReferences: [OwnerReference]?

        /// "namespace/name", or the name of a cluster-scoped object.
        public var key: String { namespace.map { "\($0)/\(name)" } ?? name }
    }

    public struct OwnerReference: Decodable, Sendable, Equatable {
        public var kind: String
        public var name: String
        public var controller: Bool?
    }

    public struct ObjectReference: Decodable, Sendable, Equatable {
        public var kind: String?
        public var name: String?
        public var namespace: String?
    }

    // MARK: pods

    public struct Pod: Decodable, Sendable, Equatable {
        public var metadata: ObjectMeta
        public var spec: PodSpec?
        public var status: PodStatus?
    }

    public struct PodSpec: Decodable, Sendable, Equatable {
        public var nodeName: String?
        public var containers: [Container]?
        public var initContainers: [Container]?
    }

    public struct Container: Decodable, Sendable, Equatable {
        public var name: String
        public var image: String?
        public var ports: [ContainerPort]?
    }

    public struct ContainerPort: Decodable, Sendable, Equatable {
        public var name: String?
        public var containerPort: Int
        public var `protocol`: String?
    }

    public struct PodStatus: Decodable, Sendable, Equatable {
        public var phase: String?
        public var podIP: String?
        public var hostIP: String?
        public var conditions: [PodCondition]?
        public var containerStatuses: [ContainerStatus]?
        public var initContainerStatuses: [ContainerStatus]?
    }

    /// A `type`/`status` condition (pods' and nodes').
    public struct PodCondition: Decodable, Sendable, Equatable {
        public var type: String
        public var status: String
    }

    public struct ContainerStatus: Decodable, Sendable, Equatable {
        public var name: String
        public var containerID: String?
    }

    // MARK: services

    public struct Service: Decodable, Sendable, Equatable {
        public var metadata: ObjectMeta
        public var spec: ServiceSpec?
        public var status: ServiceStatus?
    }

    public struct ServiceSpec: Decodable, Sendable, Equatable {
        public var type: String?
        public var clusterIP: String?
        public var externalName: String?
        public var loadBalancerIP: String?
        public var ports: [ServicePort]?
    }

    public struct ServicePort: Decodable, Sendable, Equatable {
        public var name: String?
        public var port: Int
        public var `protocol`: String?
    }

    public struct ServiceStatus: Decodable, Sendable, Equatable {
        public var loadBalancer: LoadBalancerStatus?
    }

    public struct LoadBalancerStatus: Decodable, Sendable, Equatable {
        public var ingress: [LoadBalancerIngress]?
    }

    public struct LoadBalancerIngress: Decodable, Sendable, Equatable {
        public var ip: String?
        public var hostname: String?
    }

    // MARK: endpoints

    public struct Endpoints: Decodable, Sendable, Equatable {
        public var metadata: ObjectMeta
        public var subsets: [EndpointSubset]?
    }

    public struct EndpointSubset: Decodable, Sendable, Equatable {
        public var addresses: [EndpointAddress]?
        public var notReadyAddresses: [EndpointAddress]?
        public var ports: [EndpointPort]?
    }

    public struct EndpointAddress: Decodable, Sendable, Equatable {
        public var ip: String
        public var hostname: String?
        public var nodeName: String?
        public var targetRef: ObjectReference?
    }

    public struct EndpointPort: Decodable, Sendable, Equatable {
        public var name: String?
        /// Always set in Endpoints; optional in an EndpointSlice ("all ports").
        public var port: Int?
        public var `protocol`: String?
        public var appProtocol: String?
    }

    // MARK: endpoint slices (discovery.k8s.io/v1)

    public struct EndpointSlice: Decodable, Sendable, Equatable {
        public var metadata: ObjectMeta
        public var addressType: String?
        public var endpoints: [SliceEndpoint]?
        public var ports: [EndpointPort]?
    }

    public struct SliceEndpoint: Decodable, Sendable, Equatable {
        public var addresses: [String]
        public var conditions: SliceConditions?
        public var hostname: String?
        public var nodeName: String?
        public var zone: String?
        public var targetRef: ObjectReference?
        public var deprecatedTopology: [String: String]?
    }

    public struct SliceConditions: Decodable, Sendable, Equatable {
        public var ready: Bool?
        public var serving: Bool?
        public var terminating: Bool?
    }

    // MARK: nodes and namespaces

    public struct Node: Decodable, Sendable, Equatable {
        public var metadata: ObjectMeta
        public var spec: NodeSpec?
        public var status: NodeStatus?
    }

    public struct NodeSpec: Decodable, Sendable, Equatable {
        public var providerID: String?
    }

    public struct NodeStatus: Decodable, Sendable, Equatable {
        public var addresses: [NodeAddress]?
        public var conditions: [PodCondition]?
        public var daemonEndpoints: NodeDaemonEndpoints?
    }

    public struct NodeAddress: Decodable, Sendable, Equatable {
        public var type: String
        public var address: String
    }

    public struct NodeDaemonEndpoints: Decodable, Sendable, Equatable {
        public var kubeletEndpoint: DaemonEndpoint?
    }

    public struct DaemonEndpoint: Decodable, Sendable, Equatable {
        public var port: Int

        enum CodingKeys: String, CodingKey { case port = "Port" }
    }

    public struct Namespace: Decodable, Sendable, Equatable {
        public var metadata: ObjectMeta
    }

    // MARK: list and watch envelopes

    struct ListMeta: Decodable, Sendable {
        var resourceVersion: String?
        var `continue`: String?
    }

    struct List<Item: Decodable & Sendable>: Decodable, Sendable {
        var metadata: ListMeta
        var items: [Item]
    }

    /// A `Status` object: the body of an API error and of a watch `ERROR` event.
    struct Status: Decodable, Sendable {
        var message: String?
        var reason: String?
        var code: Int?
    }
}
