import Logging
import ServiceLifecycle

public enum ServiceRunner {
    /// Runs the services until SIGTERM or SIGINT, then shuts them down gracefully in reverse order, so
    /// a stage flushes what it holds before the process exits.
    public static func run(_ services: [any Service], logger: Logger) async throws {
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
    }
}
