import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import Metrics
import NIOCore
import Prometheus
import Synchronization

/// What `AdminServer.appendToMetrics` collected; a class, so the route and the server share it.
final class MetricsAppendices: Sendable {
    let renderers = Mutex<[@Sendable () -> String]>([])
}

public enum KilnMetrics {
    /// Routes swift-metrics into a Prometheus registry that `/metrics` renders.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }
}

/// The HTTP endpoint every Kiln service runs: `/metrics` (Prometheus text) and `/ready` (200 or 503 with
/// the reasons). Services that serve users (scraper, query) add their own routes to the same router.
public struct AdminServer {
    public let router: Router<BasicRequestContext>
    /// Text-format lines of metrics kept outside the registry (a snapshot a component renders itself, as
    /// the scrape manager does), appended to `/metrics`.
    private let appendices = MetricsAppendices()

    public init(registry: PrometheusCollectorRegistry, readiness: Readiness) {
        let router = Router()
        let appendices = self.appendices
        router.get("metrics") { _, _ -> Response in
            var buffer = ByteBuffer()
            buffer.writeBytes(registry.emitToBuffer())
            for render in appendices.renderers.withLock({ $0 }) { buffer.writeString(render()) }
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: buffer))
        }
        router.get("ready") { _, _ -> Response in
            let pending = readiness.pending
            let text = pending.isEmpty ? "ready\n" : pending.map { "\($0.component): \($0.reason)\n" }.joined()
            return Response(
                status: pending.isEmpty ? .ok : .serviceUnavailable,
                headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        self.router = router
    }

    /// Appends `render()`'s Prometheus text-format lines to every `/metrics` answer.
    public func appendToMetrics(_ render: @escaping @Sendable () -> String) {
        appendices.renderers.withLock { $0.append(render) }
    }

    /// A connection that sends no complete request head within this long (a new one, or one idle after its
    /// last answer) is closed: clients trickling headers cannot hold connections open. Longer than the
    /// idle time of common HTTP client pools (Go 90 s, AsyncHTTPClient 60 s), so a pooled connection is
    /// closed by its client first.
    public static let idleTimeout: TimeAmount = .seconds(120)

    /// HTTP/1.1, with TLS when given, and the idle timeout.
    public static func serverBuilder(tls: ServerTLS?) throws -> HTTPServerBuilder {
        let http1 = HTTPServerBuilder.http1(configuration: .init(idleTimeout: idleTimeout))
        return try tls.map { try .tls(http1, tlsConfiguration: $0.configuration()) } ?? http1
    }

    /// The server as a `Service` for the process's ServiceGroup. Logs the bound address (port 0 picks one).
    /// `onBound` gets the port the server listens on (port 0 picks one).
    public func application(
        listen: ListenAddress, tls: ServerTLS? = nil, logger: Logger,
        onBound: @escaping @Sendable (Int) -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        Application(
            router: router,
            server: try Self.serverBuilder(tls: tls),
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: nil),
            onServerRunning: { channel in
                logger.info("listening", metadata: ["address": "\(channel.localAddress?.description ?? "?")"])
                onBound(channel.localAddress?.port ?? 0)
            },
            logger: logger
        )
    }
}
