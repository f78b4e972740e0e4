import ArgumentParser
import KilnService

@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-compactor",
        abstract: "Cuts per-tenant Parquet blocks from normalized batches, uploads them, compacts and applies retention."
    )

    @OptionGroup var service: ServiceOptions
    @OptionGroup var kafka: KafkaOptions

    func run() async throws {
        let logger = try KilnLogging.bootstrap(service: "kiln-compactor", options: service)
        let registry = KilnMetrics.bootstrap()
        let readiness = Readiness(components: [:])
        let admin = AdminServer(registry: registry, readiness: readiness)
        let listen = try service.resolvedAdminListen(default: "127.0.0.1:4102")
        try await ServiceRunner.run([admin.application(listen: listen, logger: logger)], logger: logger)
    }
}
