import ArgumentParser
import Logging

/// Flags every Kiln service takes: logging and the admin endpoint (`/metrics`, `/ready`).
public struct ServiceOptions: ParsableArguments, Sendable {
    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical. [env: KILN_LOG_LEVEL] (default: info)")
    public var logLevel: String?

    @Option(help: "Log format: logfmt or json. [env: KILN_LOG_FORMAT] (default: logfmt)")
    public var logFormat: String?

    @Option(help: "host:port serving /metrics and /ready. [env: KILN_ADMIN_LISTEN]")
    public var adminListen: String?

    public init() {}

    public func resolvedLogLevel() throws -> Logger.Level {
        let text = EnvironmentFallback.resolve(logLevel, env: "KILN_LOG_LEVEL", default: "info")
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw ServiceConfigurationError("unknown log level \"\(text)\" (use trace, debug, info, notice, warning, error or critical)")
        }
        return level
    }

    public func resolvedLogFormat() throws -> LogFormat {
        let text = EnvironmentFallback.resolve(logFormat, env: "KILN_LOG_FORMAT", default: "logfmt")
        guard let format = LogFormat(rawValue: text.lowercased()) else {
            throw ServiceConfigurationError("unknown log format \"\(text)\" (use logfmt or json)")
        }
        return format
    }

    /// The admin address; `defaultAddress` differs per service so they can share one machine.
    public func resolvedAdminListen(default defaultAddress: String) throws -> ListenAddress {
        try ListenAddress(parsing: EnvironmentFallback.resolve(adminListen, env: "KILN_ADMIN_LISTEN", default: defaultAddress))
    }
}

/// Flags for services that talk to Kafka. Any librdkafka property passes through, so TLS and SASL
/// settings for a real cluster need no Kiln-specific flags.
public struct KafkaOptions: ParsableArguments, Sendable {
    @Option(help: "Kafka bootstrap servers. [env: KILN_KAFKA_BROKERS] (default: 127.0.0.1:9092)")
    public var kafkaBrokers: String?

    @Option(name: .customLong("kafka-option"),
            help: "A librdkafka property as key=value, repeatable (e.g. security.protocol=SASL_SSL). [env: KILN_KAFKA_OPTIONS, comma- or newline-separated]")
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
    public var normalized: String { EnvironmentFallback.resolve(normalizedTopic, env: "KILN_NORMALIZED_TOPIC", default: "kiln.profiles.normalized") }
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

/// Flags of the services that answer ingest or query requests: who may call them and per-tenant limits
/// (docs/security.md). Both are off when not given.
public struct AccessOptions: ParsableArguments, Sendable {
    @Option(help: "JSON file of bearer tokens and basic-auth users, each mapped to tenants; when set, every ingest and query request must authenticate (docs/security.md). [env: KILN_AUTH_FILE] (default: none, open)")
    public var authFile: String?

    @Option(help: "JSON file of per-tenant limit overrides (docs/security.md). [env: KILN_LIMITS_FILE] (default: none)")
    public var limitsFile: String?

    public init() {}

    public var resolvedAuthFile: String? { EnvironmentFallback.resolve(authFile, env: "KILN_AUTH_FILE") }
    public var resolvedLimitsFile: String? { EnvironmentFallback.resolve(limitsFile, env: "KILN_LIMITS_FILE") }
}
