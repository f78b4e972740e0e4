import ArgumentParser
import KilnService
import Normalization
import PprofCodec
import Stages

@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-normalizer",
        abstract: "Decodes raw profiles from Kafka into deduplicated stack-sample batches; bad input goes to the DLQ."
    )

    @OptionGroup var service: ServiceOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var topics: TopicOptions

    @Option(help: "Consumer group of the normalizers. [env: KILN_NORMALIZER_GROUP] (default: kiln-normalizer)")
    var group: String?

    @Option(help: "Largest decompressed profile in bytes. [env: KILN_MAX_PROFILE_BYTES] (default: 67108864)")
    var maxProfileBytes: Int?

    func run() async throws {
        MemoryTuning.keepFreedMemoryForReuse()
        let logger = try KilnLogging.bootstrap(service: "kiln-normalizer", options: service)
        let registry = KilnMetrics.bootstrap()
        let readiness = Readiness(components: ["kafka": "connecting to Kafka"])
        let admin = AdminServer(registry: registry, readiness: readiness)
        let listen = try service.resolvedAdminListen(default: "127.0.0.1:4101")
        let kafkaConfig = try kafka.kafkaConfig(clientID: "kiln-normalizer")
        try await topics.ensure([topics.raw, topics.normalized, topics.dlq], config: kafkaConfig, logger: logger)

        var limits = PprofLimits.default
        if let max = Int(EnvironmentFallback.resolve(maxProfileBytes.map(String.init), env: "KILN_MAX_PROFILE_BYTES", default: String(limits.maxDecompressedBytes))) {
            limits.maxDecompressedBytes = max
        }
        let stage = try NormalizerStage(
            configuration: .init(rawTopic: topics.raw, normalizedTopic: topics.normalized, dlqTopic: topics.dlq,
                                 groupID: EnvironmentFallback.resolve(group, env: "KILN_NORMALIZER_GROUP", default: "kiln-normalizer"),
                                 normalizer: NormalizerOptions(limits: limits)),
            kafka: kafkaConfig, logger: logger, onReady: { readiness.markReady("kafka") })
        let probe = KafkaHealthProbe(config: kafkaConfig, topics: [topics.raw, topics.normalized, topics.dlq], topicOptions: topics,
                                     readiness: readiness, logger: logger, onTopicsRecreated: { missing in
            do { try stage.resetProducer(reason: "topics re-created on the cluster: \(missing.joined(separator: ", "))") } catch {
                logger.error("could not re-create the Kafka producer", metadata: ["error": "\(error)"])
            }
        })
        try await ServiceRunner.run([admin.application(listen: listen, logger: logger), probe, stage], logger: logger)
    }
}
