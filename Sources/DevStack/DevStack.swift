import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTLS
import KilnService
import Logging
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// `kiln dev`: the whole pipeline on one machine. A Tansu broker, kiln-scraper, kiln-normalizer,
/// kiln-compactor and kiln-query run as child processes with a file:// store under the data dir; one
/// front address serves push ingest, the query API and the UI.
public enum DevStack {
    /// Runs until SIGINT or SIGTERM, then stops the front server, the stages upstream first and Tansu last.
    public static func run(options: DevOptions, tansu: String?, logger: Logger) async throws {
        let environment = ProcessInfo.processInfo.environment
        let executables = try DevExecutables.locate(
            runningBinary: DevExecutables.runningBinary(), tansuFlag: tansu,
            environment: environment)
        let lock = try DataDirLock(options: options)
        let plan = DevStackPlan.make(
            options: options, executables: executables, ports: try LoopbackPorts.free(6),
            generation: lock.generation, environment: environment)

        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow  // redirects are the browser's to follow
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)

        let supervisor = DevSupervisor(plan: plan, options: options, client: client, logger: logger, announce: status)
        let front = Application(
            responder: FrontProxy(supervisor: supervisor, client: client, logger: logger),
            server: try AdminServer.serverBuilder(tls: options.tls),
            configuration: .init(address: .hostname(options.listenHost, port: options.listenPort), serverName: nil),
            onServerRunning: { channel in
                logger.info("front listening", metadata: ["address": "\(channel.localAddress?.description ?? "?")"])
            },
            logger: logger)
        status(
            "data in \(options.dataDir.path) (run \(lock.generation); logs in \(options.logsDir.path)); "
                + "serving \(options.tls == nil ? "http" : "https")://\(options.listenHost):\(options.listenPort)/ once ready")
        // Graceful shutdown runs in reverse: the front server stops taking requests, then the supervisor
        // stops the children.
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: supervisor), .init(service: front)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        status("stopped")
        withExtendedLifetime(lock) {}
    }

    /// One line for the person at the terminal; the details are in the logs.
    @Sendable static func status(_ line: String) {
        let bytes = Array("kiln dev: \(line)\n".utf8)
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(1, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { break }
                offset += n
            }
        }
    }
}
