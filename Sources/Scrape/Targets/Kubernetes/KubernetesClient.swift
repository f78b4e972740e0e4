import AsyncHTTPClient
import Foundation
import KilnFoundation
import NIOCore
import NIOHTTP1

/// An API resource discovery reads: its path and list kind.
struct KubernetesResource: Sendable, Hashable {
    var plural: String
    /// nil: the core group (`/api/v1`); else a `group/version` under `/apis`.
    var groupVersion: String?
    var namespaced: Bool

    static let pods = KubernetesResource(plural: "pods", groupVersion: nil, namespaced: true)
    static let services = KubernetesResource(plural: "services", groupVersion: nil, namespaced: true)
    static let endpoints = KubernetesResource(plural: "endpoints", groupVersion: nil, namespaced: true)
    static let endpointSlices = KubernetesResource(plural: "endpointslices", groupVersion: "discovery.k8s.io/v1", namespaced: true)
    static let nodes = KubernetesResource(plural: "nodes", groupVersion: nil, namespaced: false)
    static let namespaces = KubernetesResource(plural: "namespaces", groupVersion: nil, namespaced: false)

    func path(namespace: String?) -> String {
        let root = groupVersion.map { "/apis/\($0)" } ?? "/api/v1"
        if namespaced, let namespace { return "\(root)/namespaces/\(namespace)/\(plural)" }
        return "\(root)/\(plural)"
    }
}

enum KubernetesAPIError: Error, CustomStringConvertible {
    /// 410 Gone: the resource version is too old; the only way on is a fresh list.
    case expired(String)
    case status(code: Int, message: String)
    case malformed(String)

    var description: String {
        switch self {
        case .expired(let m): "resource version expired (410 Gone): \(m)"
        case .status(let code, let m): "API server answered \(code): \(m)"
        case .malformed(let m): m
        }
    }
}

/// Lists and watches resources over HTTP(S) as client-go does: paged lists (`limit`/`continue`), then
/// a chunked watch stream of one JSON event per line from the list's `resourceVersion`.
final class KubernetesClient: Sendable {
    let connection: KubernetesConnection
    private let http: HTTPClient
    /// Items per list page: bounds the memory of one answer in a large cluster.
    static let pageSize = 500
    static let maxPageBytes = 64 << 20
    static let maxEventBytes = 16 << 20

    init(connection: KubernetesConnection) {
        self.connection = connection
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(10))
        configuration.decompression = .disabled
        // A watch holds its connection for minutes; a component runs several at once.
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        if let tls = connection.tls { configuration.tlsConfiguration = tls }
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func shutdown() async { try? await http.shutdown() }

    private func request(_ path: String, query: [(String, String)]) throws -> HTTPClientRequest {
        var components = URLComponents()
        components.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) }
        // `+` in a selector must reach the server as itself, not as a space.
        let encoded = (components.percentEncodedQuery ?? "").replacingOccurrences(of: "+", with: "%2B")
        var request = HTTPClientRequest(url: connection.server + path + (encoded.isEmpty ? "" : "?" + encoded))
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "kiln-scraper")
        if let authorization = try connection.authorization() { request.headers.add(name: "Authorization", value: authorization) }
        return request
    }

    private static func failure(_ response: HTTPClientResponse) async -> KubernetesAPIError {
        let body = (try? await response.body.collect(upTo: 64 << 10)).map { Data($0.readableBytesView) } ?? Data()
        let status = try? JSONDecoder().decode(Kubernetes.Status.self, from: body)
        let message = status?.message ?? String(decoding: body.prefix(300), as: UTF8.self)
        if response.status.code == 410 { return .expired(message) }
        return .status(code: Int(response.status.code), message: message)
    }

    /// Every object of `resource` (all pages), and the resource version to watch from.
    func list<Item: Decodable & Sendable>(
        _ resource: KubernetesResource, namespace: String?, selector: KubernetesDiscoveryComponent.Selector?, as: Item.Type
    ) async throws -> (items: [Item], resourceVersion: String) {
        var items: [Item] = []
        var next: String?
        repeat {
            var query = Self.selectorQuery(selector) + [("limit", String(Self.pageSize))]
            if let next { query.append(("continue", next)) }
            let response = try await http.execute(try request(resource.path(namespace: namespace), query: query), timeout: .seconds(60))
            guard response.status == .ok else { throw await Self.failure(response) }
            let body = try await response.body.collect(upTo: Self.maxPageBytes)
            let page = try await BlockingWork.shared.run { () throws -> Kubernetes.List<Item> in
                do {
                    return try JSONDecoder().decode(Kubernetes.List<Item>.self, from: Data(body.readableBytesView))
                } catch {
                    throw KubernetesAPIError.malformed("list of \(resource.plural) could not be read: \(error)")
                }
            }
            items += page.items
            next = page.metadata.continue.flatMap { $0.isEmpty ? nil : $0 }
            if next == nil { return (items, page.metadata.resourceVersion ?? "") }
        } while true
    }

    /// Watches `resource` from `resourceVersion`, handing each event to `handle`, until the server ends
    /// the stream (its `timeoutSeconds`); returns the last resource version seen. Throws `.expired` when
    /// the version is too old (410 as the answer or as an `ERROR` event).
    func watch<Item: Decodable & Sendable>(
        _ resource: KubernetesResource, namespace: String?, selector: KubernetesDiscoveryComponent.Selector?,
        from resourceVersion: String, timeoutSeconds: Int, as: Item.Type,
        handle: (WatchEvent<Item>) -> Void
    ) async throws -> String {
        let query =
            Self.selectorQuery(selector) + [
                ("watch", "true"), ("resourceVersion", resourceVersion), ("allowWatchBookmarks", "true"),
                ("timeoutSeconds", String(timeoutSeconds)),
            ]
        let response = try await http.execute(
            try request(resource.path(namespace: namespace), query: query), timeout: .seconds(Int64(timeoutSeconds) + 30))
        guard response.status == .ok else { throw await Self.failure(response) }
        var version = resourceVersion
        var pending: [UInt8] = []
        let decoder = JSONDecoder()
        for try await chunk in response.body {
            pending.append(contentsOf: chunk.readableBytesView)
            var start = 0
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = pending[start..<newline]
                start = newline + 1
                if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) { continue }
                let event = try Self.decodeEvent(Data(line), decoder: decoder, as: Item.self, resource: resource)
                if let v = event.resourceVersion { version = v }
                handle(event)
            }
            pending.removeFirst(start)
            if pending.count > Self.maxEventBytes {
                throw KubernetesAPIError.malformed("a watch event of \(resource.plural) exceeds \(Self.maxEventBytes) bytes")
            }
        }
        return version
    }

    enum WatchEvent<Item: Sendable>: Sendable {
        case upsert(Item, resourceVersion: String?)
        case delete(Item, resourceVersion: String?)
        case bookmark(resourceVersion: String?)

        var resourceVersion: String? {
            switch self {
            case .upsert(_, let v), .delete(_, let v), .bookmark(let v): v
            }
        }
    }

    private struct RawEvent: Decodable {
        var type: String
    }
    private struct ObjectEvent<Item: Decodable>: Decodable {
        var object: Item
    }
    private struct VersionOnly: Decodable {
        struct Meta: Decodable { var resourceVersion: String? }
        var metadata: Meta?
    }

    static func decodeEvent<Item: Decodable & Sendable>(
        _ line: Data, decoder: JSONDecoder, as: Item.Type, resource: KubernetesResource
    ) throws -> WatchEvent<Item> {
        do {
            let type = try decoder.decode(RawEvent.self, from: line).type
            let version = try decoder.decode(ObjectEvent<VersionOnly>.self, from: line).object.metadata?.resourceVersion
            switch type {
            case "ADDED", "MODIFIED":
                return .upsert(try decoder.decode(ObjectEvent<Item>.self, from: line).object, resourceVersion: version)
            case "DELETED": return .delete(try decoder.decode(ObjectEvent<Item>.self, from: line).object, resourceVersion: version)
            case "BOOKMARK": return .bookmark(resourceVersion: version)
            case "ERROR":
                let status = try decoder.decode(ObjectEvent<Kubernetes.Status>.self, from: line).object
                let message = status.message ?? "watch error"
                if status.code == 410 || status.reason == "Expired" || status.reason == "Gone" { throw KubernetesAPIError.expired(message) }
                throw KubernetesAPIError.status(code: status.code ?? 500, message: message)
            default:
                throw KubernetesAPIError.malformed("watch of \(resource.plural) sent an event of unknown type \"\(type)\"")
            }
        } catch let error as KubernetesAPIError {
            throw error
        } catch {
            throw KubernetesAPIError.malformed("watch event of \(resource.plural) could not be read: \(error)")
        }
    }

    static func selectorQuery(_ selector: KubernetesDiscoveryComponent.Selector?) -> [(String, String)] {
        var query: [(String, String)] = []
        if let label = selector?.label { query.append(("labelSelector", label)) }
        if let field = selector?.field { query.append(("fieldSelector", field)) }
        return query
    }
}
