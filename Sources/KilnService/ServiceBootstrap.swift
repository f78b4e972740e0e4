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
    /// HTTPS for the server when set (`--tls-cert-file`).
    public let tls: ServerTLS?

    /// Bootstraps logging and metrics for the process `name`. `pending` names the readiness components
    /// (with the reason each is not ready yet). The server listens on `listenFlag` (its `KILN_LISTEN`
    /// fallback) when the service has such a flag, else on `--admin-listen` (`KILN_ADMIN_LISTEN`), else on
    /// `defaultListen`.
    public static func start(
        name: String, options: ServiceOptions, pending: [String: String] = [:],
        role: ServerRole = .adminOnly, listenFlag: String? = nil,
        defaultListen: String
    ) throws -> ServiceBootstrap {
        let listen = try listenAddress(flag: listenFlag, adminFlag: options.adminListen, default: defaultListen)
        let logger = try KilnLogging.bootstrap(service: name, options: options)
        return ServiceBootstrap(
            name: name, logger: logger, registry: KilnMetrics.bootstrap(), pending: pending, role: role, listen: listen,
            tls: try options.resolvedTLS())
    }

    /// A bootstrap around a logger and registry the caller made (tests; `start` makes them process-wide).
    public init(
        name: String, logger: Logger, registry: PrometheusCollectorRegistry, pending: [String: String] = [:],
        role: ServerRole = .adminOnly, listen: ListenAddress, tls: ServerTLS? = nil
    ) {
        self.name = name
        self.logger = logger
        self.readiness = Readiness(components: pending)
        self.admin = AdminServer(registry: registry, readiness: readiness)
        self.listen = listen
        self.role = role
        self.tls = tls
    }

    /// The service's own listen flag (or `KILN_LISTEN`), else `--admin-listen` (or `KILN_ADMIN_LISTEN`),
    /// else the service's default.
    public static func listenAddress(flag: String?, adminFlag: String?, default defaultListen: String) throws -> ListenAddress {
        let text =
            EnvironmentFallback.resolve(flag, env: "KILN_LISTEN")
            ?? EnvironmentFallback.resolve(adminFlag, env: "KILN_ADMIN_LISTEN", default: defaultListen)
        return try ListenAddress(parsing: text)
    }

    /// Runs the HTTP server and `services` until SIGTERM or SIGINT, then shuts them down gracefully in
    /// reverse order of `services` (so each flushes what it holds before what feeds it stops), with the
    /// server first or last as its role says. Cancelling the calling task stops them too.
    public func run(_ services: [any Service], onBound: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        try await serviceGroup(services, onBound: onBound).run()
    }

    /// The process's service group: the HTTP server placed by its role among `services`, shut down in
    /// reverse order on SIGTERM or SIGINT.
    public func serviceGroup(_ services: [any Service], onBound: @escaping @Sendable (Int) -> Void = { _ in }) throws -> ServiceGroup {
        let server: any Service = try admin.application(listen: listen, tls: tls, logger: logger, onBound: onBound)
        let ordered = role == .servesRequests ? services + [server] : [server] + services
        return ServiceGroup(
            configuration: .init(
                services: ordered.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
    }
}
