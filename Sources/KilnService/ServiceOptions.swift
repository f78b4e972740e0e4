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
