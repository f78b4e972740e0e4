import ArgumentParser
import KilnService

@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-scraper",
        abstract: "Scrapes pprof endpoints, serves the push ingest APIs and publishes raw profiles to Kafka."
    )

    @OptionGroup var service: ServiceOptions
    @OptionGroup var kafka: KafkaOptions

    func run() async throws {
        let logger = try KilnLogging.bootstrap(service: "kiln-scraper", options: service)
        let registry = KilnMetrics.bootstrap()
        let readiness = Readiness(components: [:])
        let admin = AdminServer(registry: registry, readiness: readiness)
        let listen = try service.resolvedAdminListen(default: "127.0.0.1:4100")
        try await ServiceRunner.run([admin.application(listen: listen, logger: logger)], logger: logger)
    }
}
