import KafkaClient
import Logging

extension KafkaOptions {
    /// The client configuration from flags and environment, after checking the librdkafka runtime.
    public func kafkaConfig(clientID: String) throws -> KafkaConfig {
        try KafkaRuntime.checkVersion()
        let options = try KafkaOption.collect(flags: kafkaOptions)
        return KafkaConfig(bootstrapServers: resolvedBrokers, clientID: clientID, options: options)
    }
}

extension TopicOptions {
    /// Records up to 16 MiB: large merged profiles are a few MB, and the broker's 1 MB default is too small.
    public static let maxMessageBytes = 16 * 1024 * 1024

    /// Creates the named topics if missing (when allowed), so a fresh cluster works without a manual step.
    public func ensure(_ topics: [String], config: KafkaConfig, logger: Logger) async throws {
        guard try shouldCreate() else { return }
        let admin = try KafkaAdmin(config: config, logger: logger)
        let partitions = try partitions(), replication = try replication()
        for topic in topics {
            let outcome = try await admin.createTopic(TopicSpec(
                name: topic, partitions: partitions, replicationFactor: replication,
                configs: ["max.message.bytes": String(Self.maxMessageBytes)]))
            if outcome == .created {
                logger.info("created topic", metadata: ["topic": "\(topic)", "partitions": "\(partitions)"])
            }
        }
    }
}
