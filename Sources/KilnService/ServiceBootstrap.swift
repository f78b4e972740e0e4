import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle

/// What every Kiln service process starts with, made in one place: structured logging, metrics routed to
/// `/metrics`, the readiness that `/ready` reports, and the one HTTP server (admin routes, plus the
/// service's own routes on `admin.router`). A service main parses its flags, calls `start`, adds its
/// routes and services, and hands them to `run`.
public struct ServiceBootstrap {
    /// Whether the HTTP server answers users (push ingest, queries) or only `/metrics` and `/ready`.
    public enum ServerRole: Sendable {
        /// Stops first on shutdown: no new requests while the services behind it drain.
        case servesRequests
        /// Stops last: `/metrics` and `/ready` answer until the process has flushed everything.
        case adminOnly
    }

    public let name: String
    public let logger: Logger
    public let readiness: Readiness
    public let admin: AdminServer
    public let listen: ListenAddress
    public let role: ServerRole

    /// Bootstraps logging and metrics for the process `name`. `pending` names the readiness components
    /// (with the reason each is not ready yet). The server listens on `listenFlag` (its `KILN_LISTEN`
    /// fallback) when the service has such a flag, else on `--admin-listen` (`KILN_ADMIN_LISTEN`), else on
    /// `defaultListen`.
    public static func start(name: String, options: ServiceOptions, pending: [String: String] = [:],
                             role: ServerRole = .adminOnly, listenFlag: String? = nil,
                             defaultListen: String) throws -> ServiceBootstrap {
        let logger = try KilnLogging.bootstrap(service: name, options: options)
        let registry = KilnMetrics.bootstrap()
        let readiness = Readiness(components: pending)
        let text = EnvironmentFallback.resolve(listenFlag, env: "KILN_LISTEN")
            ?? EnvironmentFallback.resolve(options.adminListen, env: "KILN_ADMIN_LISTEN", default: defaultListen)
        return ServiceBootstrap(name: name, logger: logger, readiness: readiness,
                                admin: AdminServer(registry: registry, readiness: readiness),
                                listen: try ListenAddress(parsing: text), role: role)
    }

    /// Runs the HTTP server and `services` until SIGTERM or SIGINT, then shuts them down gracefully in
    /// reverse order of `services` (so each flushes what it holds before what feeds it stops), with the
    /// server first or last as its role says.
    public func run(_ services: [any Service]) async throws {
        let server: any Service = admin.application(listen: listen, logger: logger)
        let ordered = role == .servesRequests ? services + [server] : [server] + services
        let group = ServiceGroup(configuration: .init(
            services: ordered.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
    }
}
