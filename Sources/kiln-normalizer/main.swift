import ArgumentParser
import KilnService

@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-normalizer",
        abstract: "Decodes raw profiles from Kafka into deduplicated stack-sample batches; bad input goes to the DLQ."
    )

    @OptionGroup var service: ServiceOptions
    @OptionGroup var kafka: KafkaOptions

    func run() async throws {
        let logger = try KilnLogging.bootstrap(service: "kiln-normalizer", options: service)
        let registry = KilnMetrics.bootstrap()
        let readiness = Readiness(components: [:])
        let admin = AdminServer(registry: registry, readiness: readiness)
        let listen = try service.resolvedAdminListen(default: "127.0.0.1:4101")
        try await ServiceRunner.run([admin.application(listen: listen, logger: logger)], logger: logger)
    }
}
