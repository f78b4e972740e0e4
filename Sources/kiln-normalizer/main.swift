import ArgumentParser
import KafkaService
import KilnService
import Normalization
import NormalizerService
import PprofCodec

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
        let process = try ServiceBootstrap.start(
            name: "kiln-normalizer", options: service, pending: ["kafka": "connecting to Kafka"],
            defaultListen: "127.0.0.1:4101")
        let kafkaConfig = try kafka.kafkaConfig(clientID: "kiln-normalizer")
        let usedTopics = [topics.raw, topics.normalized, topics.dlq]
        try await topics.ensure(usedTopics, config: kafkaConfig, logger: process.logger)

        var limits = PprofLimits.default
        limits.maxDecompressedBytes = try EnvironmentFallback.integer(
            maxProfileBytes, env: "KILN_MAX_PROFILE_BYTES",
            default: limits.maxDecompressedBytes, setting: "--max-profile-bytes")
        let stage = try NormalizerStage(
            configuration: .init(
                rawTopic: topics.raw, normalizedTopic: topics.normalized, dlqTopic: topics.dlq,
                groupID: EnvironmentFallback.resolve(group, env: "KILN_NORMALIZER_GROUP", default: "kiln-normalizer"),
                normalizer: NormalizerOptions(limits: limits)),
            kafka: kafkaConfig, logger: process.logger, onReady: { [readiness = process.readiness] in readiness.markReady("kafka") })
        let probe = KafkaHealthProbe(
            config: kafkaConfig, topics: usedTopics, topicOptions: topics, readiness: process.readiness,
            logger: process.logger, resetProducer: stage.resetProducer(reason:))
        try await process.run([probe, stage])
    }
}
