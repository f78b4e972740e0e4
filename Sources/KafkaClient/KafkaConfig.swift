import Foundation

/// One librdkafka property, `key=value`, passed through unchanged (e.g. `security.protocol=SASL_SSL`).
public struct KafkaOption: Sendable, Equatable, CustomStringConvertible {
    public var key: String
    public var value: String

    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }

    /// Parses one `key=value` (from `--kafka-option key=value`). The value may contain `=`.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let eq = trimmed.firstIndex(of: "=") else {
            throw KafkaError(
                .invalidOption,
                "malformed Kafka option \"\(trimmed)\": expected key=value, e.g. security.protocol=SASL_SSL")
        }
        let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
        let value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        guard !key.isEmpty else {
            throw KafkaError(.invalidOption, "malformed Kafka option \"\(trimmed)\": the key before '=' is empty")
        }
        guard !key.contains(where: { $0.isWhitespace || $0 == "," }) else {
            throw KafkaError(
                .invalidOption,
                "malformed Kafka option \"\(trimmed)\": key \"\(key)\" contains whitespace or ','")
        }
        self.init(key, value)
    }

    /// Parses a list such as `KILN_KAFKA_OPTIONS`. Entries are separated by newlines when the text has any
    /// (so values may then contain commas, e.g. `ssl.cipher.suites`), otherwise by commas. Blank entries
    /// and lines starting with `#` are ignored.
    public static func parseList(_ text: String) throws -> [KafkaOption] {
        let separator: Character = text.contains("\n") ? "\n" : ","
        return try text.split(separator: separator, omittingEmptySubsequences: true).compactMap { raw in
            let entry = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if entry.isEmpty || entry.hasPrefix("#") { return nil }
            do {
                return try KafkaOption(parsing: entry)
            } catch let error as KafkaError where separator == "," {
                throw KafkaError(
                    .invalidOption,
                    error.message
                        + " (entries are comma-separated; separate them with newlines if a value contains a comma)")
            }
        }
    }

    /// Options from `--kafka-option` flags followed by `KILN_KAFKA_OPTIONS` (flags first, so the
    /// environment can only add what the flags did not say; pass-through is applied in this order).
    public static func collect(flags: [String], environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> [KafkaOption]
    {
        var options = try flags.map { try KafkaOption(parsing: $0) }
        if let env = environment["KILN_KAFKA_OPTIONS"], !env.isEmpty {
            let fromEnv = try parseList(env)
            let given = Set(options.map(\.key))
            options += fromEnv.filter { !given.contains($0.key) }
        }
        return options
    }

    public var description: String { "\(key)=\(Self.isSecret(key) ? "<redacted>" : value)" }

    /// Keys whose values must never appear in logs or errors.
    static func isSecret(_ key: String) -> Bool {
        let k = key.lowercased()
        return k.contains("password") || k.contains("secret") || k.contains("jaas") || k.hasSuffix(".key.pem")
    }
}

/// What every Kafka client needs: where the cluster is and the pass-through librdkafka properties.
public struct KafkaConfig: Sendable {
    /// `bootstrap.servers`, e.g. `127.0.0.1:9092` or `b1:9093,b2:9093`.
    public var bootstrapServers: String
    /// `client.id`, shown in broker logs and metrics.
    public var clientID: String
    /// librdkafka properties applied after Kiln's own settings, so they can override any of them and add
    /// TLS/SASL (`security.protocol`, `sasl.mechanism`, `sasl.username`, `ssl.ca.location`, ...).
    public var options: [KafkaOption]

    public init(bootstrapServers: String, clientID: String = "kiln", options: [KafkaOption] = []) {
        self.bootstrapServers = bootstrapServers
        self.clientID = clientID
        self.options = options
    }

    /// Kiln's base settings, then `roleSettings`, then the pass-through options (last wins in librdkafka).
    func properties(_ roleSettings: [KafkaOption]) -> [KafkaOption] {
        [KafkaOption("bootstrap.servers", bootstrapServers), KafkaOption("client.id", clientID)]
            + roleSettings + options
    }
}

/// Producer settings; the defaults are what Kiln's pipeline uses (see docs/kafka.md for the reasons).
public struct ProducerConfig: Sendable {
    public var kafka: KafkaConfig
    /// `linger.ms`: how long a partition's batch may wait to fill. 20 ms: Kiln's records are profiles of
    /// tens to hundreds of KB, so under load batches fill by size long before this; at low rates it bounds
    /// the added latency to well below a scrape interval while still grouping the bursts a scrape round makes.
    public var linger: Duration = .milliseconds(20)
    /// `batch.size` in bytes (librdkafka's default, 1 MB).
    public var batchBytes: Int = 1_000_000
    /// `queue.buffering.max.messages`: records buffered before `QUEUE_FULL` back-pressure.
    public var maxBufferedMessages: Int = 100_000
    /// `queue.buffering.max.kbytes`: bytes buffered before back-pressure. 128 MiB instead of librdkafka's
    /// 1 GiB keeps a stalled broker from growing the process by a gigabyte.
    public var maxBufferedKBytes: Int = 128 * 1024
    /// `message.max.bytes`: largest record. The topic/broker limit must be at least as large.
    public var maxRecordBytes: Int = 16 * 1024 * 1024
    /// `message.timeout.ms`: how long librdkafka retries a record before failing its delivery.
    public var deliveryTimeout: Duration = .seconds(120)
    /// `compression.codec`.
    public var compression: String = "lz4"
    /// `partitioner`: `murmur2_random` hashes keys like the Java client's default partitioner, so a key
    /// maps to the same partition whichever client wrote it; records without a key spread randomly.
    public var partitioner: String = "murmur2_random"

    public init(kafka: KafkaConfig) { self.kafka = kafka }

    /// Every librdkafka property this config sets, in the order applied (pass-through options last).
    public func librdkafkaProperties() -> [KafkaOption] {
        kafka.properties([
            KafkaOption("enable.idempotence", "true"),
            KafkaOption("acks", "all"),
            KafkaOption("compression.codec", compression),
            KafkaOption("linger.ms", String(linger.milliseconds)),
            KafkaOption("batch.size", String(batchBytes)),
            KafkaOption("queue.buffering.max.messages", String(maxBufferedMessages)),
            KafkaOption("queue.buffering.max.kbytes", String(maxBufferedKBytes)),
            KafkaOption("message.max.bytes", String(maxRecordBytes)),
            KafkaOption("message.timeout.ms", String(deliveryTimeout.milliseconds)),
            KafkaOption("partitioner", partitioner),
        ])
    }
}

/// Consumer settings; offsets are stored only when the caller marks records durable.
public struct ConsumerConfig: Sendable {
    public var kafka: KafkaConfig
    /// `group.id`; nil for a consumer that only uses `assign` (replay, inspection).
    public var groupID: String?
    /// `auto.offset.reset` for partitions without a committed offset. `earliest`: never skip data.
    public var autoOffsetReset: String = "earliest"
    /// `auto.commit.interval.ms`: how often stored (durable) offsets are committed in the background.
    public var autoCommitInterval: Duration = .seconds(5)
    /// `fetch.max.bytes` and `max.partition.fetch.bytes`: must be at least the largest record, or Tansu
    /// stalls the partition. 16 MiB matches the producer's `message.max.bytes`.
    public var fetchMaxBytes: Int = 16 * 1024 * 1024
    public var maxPartitionFetchBytes: Int = 16 * 1024 * 1024
    /// `queued.max.messages.kbytes`: librdkafka's prefetch buffer, the only buffer between broker and
    /// caller (64 MiB, librdkafka's default).
    public var prefetchKBytes: Int = 64 * 1024
    /// `enable.partition.eof`: report `.partitionEOF` when a partition's end is reached.
    public var reportPartitionEOF: Bool = false
    /// `session.timeout.ms`, nil for librdkafka's default (45 s).
    public var sessionTimeout: Duration?
    /// Called on the consumer's poll thread during a rebalance: for revocations *before* the partitions
    /// are given up, so a compactor can flush and `markDurable` what it holds (stored offsets are then
    /// committed before the revoke completes). Keep it short and non-blocking on the cooperative pool.
    public var onRebalance: (@Sendable (RebalanceEvent) -> Void)?

    public init(kafka: KafkaConfig, groupID: String?) {
        self.kafka = kafka
        self.groupID = groupID
    }

    /// Every librdkafka property this config sets, in the order applied (pass-through options last).
    public func librdkafkaProperties() -> [KafkaOption] {
        var settings = [
            KafkaOption("partition.assignment.strategy", "cooperative-sticky"),
            KafkaOption("enable.auto.offset.store", "false"),
            KafkaOption("enable.auto.commit", groupID == nil ? "false" : "true"),
            KafkaOption("auto.commit.interval.ms", String(autoCommitInterval.milliseconds)),
            KafkaOption("auto.offset.reset", autoOffsetReset),
            KafkaOption("fetch.max.bytes", String(fetchMaxBytes)),
            KafkaOption("max.partition.fetch.bytes", String(maxPartitionFetchBytes)),
            KafkaOption("queued.max.messages.kbytes", String(prefetchKBytes)),
            KafkaOption("enable.partition.eof", reportPartitionEOF ? "true" : "false"),
        ]
        // The consumer fetch limit must stay above the largest record it may see.
        settings.append(KafkaOption("receive.message.max.bytes", String(max(100_000_000, fetchMaxBytes + 1_000_000))))
        // librdkafka's consumer API refuses even `assign` without a group id; an assign-only consumer gets
        // a private one that never joins a group and never commits (auto commit is off for it above).
        settings.insert(KafkaOption("group.id", groupID ?? "kiln-assign-only-\(UUID().uuidString)"), at: 0)
        if let sessionTimeout { settings.append(KafkaOption("session.timeout.ms", String(sessionTimeout.milliseconds))) }
        return kafka.properties(settings)
    }
}

extension Duration {
    /// Whole milliseconds, rounded up so a tiny positive duration never becomes "no wait".
    var milliseconds: Int {
        let (s, atto) = components
        let ms = s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int(clamping: ms)
    }
}
