import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// The one address of `kiln dev`: routes each request (`FrontRoute`) to kiln-scraper or kiln-query and
/// streams bodies both ways untouched (gzip stays gzip; tenant and content headers pass through), and
/// answers `/ready` and `/metrics` for the stack itself.
/// HTTPTypes reaches us through Hummingbird's exports only.
typealias HeaderField = HTTPFields.Element

public struct FrontProxy: HTTPResponder {
    public typealias Context = BasicRequestContext

    /// `host:port` of each upstream.
    let scraper: String
    let query: String
    let client: HTTPClient
    let readiness: @Sendable () async -> [(name: String, reason: String)]
    let metrics: @Sendable () -> String
    let logger: Logger

    /// Long enough for a large query; a stuck upstream still frees the connection eventually.
    static let upstreamTimeout = TimeAmount.minutes(10)

    /// Per RFC 9110 §7.6.1 these describe one hop, not the message, and are not forwarded.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
        "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host",
    ]

    public init(supervisor: DevSupervisor, client: HTTPClient, logger: Logger) {
        self.init(
            scraper: supervisor.plan.scraperAddress, query: supervisor.plan.queryAddress, client: client,
            readiness: { await supervisor.notReady() }, metrics: { supervisor.metricsText() }, logger: logger)
    }

    init(
        scraper: String, query: String, client: HTTPClient,
        readiness: @escaping @Sendable () async -> [(name: String, reason: String)],
        metrics: @escaping @Sendable () -> String, logger: Logger
    ) {
        self.scraper = scraper
        self.query = query
        self.client = client
        self.readiness = readiness
        self.metrics = metrics
        self.logger = logger
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        let target = request.head.path ?? "/"
        switch FrontRoute.route(path: target) {
        case .readiness:
            let pending = await readiness()
            let text = pending.isEmpty ? "ready\n" : pending.map { "\($0.name): \($0.reason)\n" }.joined()
            return Response(
                status: pending.isEmpty ? .ok : .serviceUnavailable,
                headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        case .supervisorMetrics:
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: metrics())))
        case .scraper:
            return await forward(request, to: scraper, name: "kiln-scraper", target: target)
        case .query:
            return await forward(request, to: query, name: "kiln-query", target: target)
        }
    }

    private func forward(_ request: Request, to upstream: String, name: String, target: String) async -> Response {
        var outgoing = HTTPClientRequest(url: "http://\(upstream)\(target.hasPrefix("/") ? target : "/" + target)")
        outgoing.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headers where !Self.hopByHop.contains(field.name.canonicalName) {
            outgoing.headers.add(name: field.name.rawName, value: field.value)
        }
        if let host = request.head.authority { outgoing.headers.add(name: "X-Forwarded-Host", value: host) }
        if let length = request.headers[.contentLength].flatMap({ Int64($0) }) {
            outgoing.headers.remove(name: "content-length")  // the client sets it from the body's length
            outgoing.body = .stream(request.body, length: .known(length))
        } else if request.headers[.transferEncoding] != nil {
            outgoing.body = .stream(request.body, length: .unknown)
        }
        do {
            let response = try await client.execute(outgoing, timeout: Self.upstreamTimeout)
            var headers = HTTPFields()
            var contentLength: Int?
            for header in response.headers {
                let lower = header.name.lowercased()
                if lower == "content-length" {
                    contentLength = Int(header.value)
                    continue
                }
                guard !Self.hopByHop.contains(lower), let fieldName = HeaderField.Name(header.name) else { continue }
                headers.append(HeaderField(name: fieldName, value: header.value))
            }
            let body = response.body
            return Response(
                status: .init(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase),
                headers: headers,
                body: ResponseBody(contentLength: contentLength) { writer in
                    for try await chunk in body { try await writer.write(chunk) }
                    try await writer.finish(nil)
                })
        } catch {
            logger.warning("upstream failed", metadata: ["upstream": "\(name)", "target": "\(target)", "error": "\(error)"])
            return Response(
                status: .badGateway, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: "kiln dev: \(name) at \(upstream) did not answer: \(error)\n")))
        }
    }
}
