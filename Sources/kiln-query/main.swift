import ArgumentParser
import KilnService

@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-query",
        abstract: "Serves the Pyroscope-compatible query API and the web UI from the blocks in the object store."
    )

    @OptionGroup var service: ServiceOptions
    @OptionGroup var kafka: KafkaOptions

    func run() async throws {
        let logger = try KilnLogging.bootstrap(service: "kiln-query", options: service)
        let registry = KilnMetrics.bootstrap()
        let readiness = Readiness(components: [:])
        let admin = AdminServer(registry: registry, readiness: readiness)
        let listen = try service.resolvedAdminListen(default: "127.0.0.1:4103")
        try await ServiceRunner.run([admin.application(listen: listen, logger: logger)], logger: logger)
    }
}
