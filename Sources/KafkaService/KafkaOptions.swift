import ArgumentParser
import KafkaClient
import KilnService
import Logging

/// Flags for services that talk to Kafka. Any librdkafka property passes through, so TLS and SASL
/// settings for a real cluster need no Kiln-specific flags.
public struct KafkaOptions: ParsableArguments, Sendable {
    @Option(help: "Kafka bootstrap servers. [env: KILN_KAFKA_BROKERS] (default: 127.0.0.1:9092)")
    public var kafkaBrokers: String?

    @Option(
        name: .customLong("kafka-option"),
        help:
            "A librdkafka property as key=value, repeatable (e.g. security.protocol=SASL_SSL). [env: KILN_KAFKA_OPTIONS, comma- or newline-separated]"
    )
    public var kafkaOptions: [String] = []

    public init() {}

    public var resolvedBrokers: String {
        EnvironmentFallback.resolve(kafkaBrokers, env: "KILN_KAFKA_BROKERS", default: "127.0.0.1:9092")
    }

    public var resolvedOptions: [String] {
        EnvironmentFallback.resolveList(kafkaOptions, env: "KILN_KAFKA_OPTIONS")
    }
}

/// Topic names and how services create them when missing.
public struct TopicOptions: ParsableArguments, Sendable {
    @Option(help: "Topic of raw profiles. [env: KILN_RAW_TOPIC] (default: kiln.profiles.raw)")
    public var rawTopic: String?

    @Option(help: "Topic of normalized sample batches. [env: KILN_NORMALIZED_TOPIC] (default: kiln.profiles.normalized)")
    public var normalizedTopic: String?

    @Option(help: "Dead-letter topic for rejected records. [env: KILN_DLQ_TOPIC] (default: kiln.profiles.dlq)")
    public var dlqTopic: String?

    @Option(help: "Partitions for topics this service creates. [env: KILN_TOPIC_PARTITIONS] (default: 8)")
    public var topicPartitions: Int32?

    @Option(help: "Replication factor for topics this service creates. [env: KILN_TOPIC_REPLICATION] (default: 1)")
    public var topicReplication: Int32?

    @Option(help: "Create missing topics at start-up: true or false. [env: KILN_CREATE_TOPICS] (default: true)")
    public var createTopics: String?

    public init() {}

    public var raw: String { EnvironmentFallback.resolve(rawTopic, env: "KILN_RAW_TOPIC", default: "kiln.profiles.raw") }
    public var normalized: String {
        EnvironmentFallback.resolve(normalizedTopic, env: "KILN_NORMALIZED_TOPIC", default: "kiln.profiles.normalized")
    }
    public var dlq: String { EnvironmentFallback.resolve(dlqTopic, env: "KILN_DLQ_TOPIC", default: "kiln.profiles.dlq") }

    public func partitions() throws -> Int32 {
        try positive(topicPartitions, env: "KILN_TOPIC_PARTITIONS", default: 8, what: "topic partitions")
    }

    public func replication() throws -> Int32 {
        try positive(topicReplication, env: "KILN_TOPIC_REPLICATION", default: 1, what: "topic replication")
    }

    public func shouldCreate() throws -> Bool {
        let text = EnvironmentFallback.resolve(createTopics, env: "KILN_CREATE_TOPICS", default: "true")
        switch text.lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw ServiceConfigurationError("--create-topics must be true or false, not \"\(text)\"")
        }
    }

    private func positive(_ flag: Int32?, env: String, default value: Int32, what: String) throws -> Int32 {
        let text = EnvironmentFallback.resolve(flag.map(String.init), env: env, default: String(value))
        guard let n = Int32(text), n > 0 else { throw ServiceConfigurationError("\(what) must be a positive number, not \"\(text)\"") }
        return n
    }
}

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
        let partitions = try partitions()
        let replication = try replication()
        for topic in topics {
            let outcome = try await admin.createTopic(
                TopicSpec(
                    name: topic, partitions: partitions, replicationFactor: replication,
                    configs: ["max.message.bytes": String(Self.maxMessageBytes)]))
            if outcome == .created {
                logger.info("created topic", metadata: ["topic": "\(topic)", "partitions": "\(partitions)"])
            }
        }
    }
}
