/// A record header. Kafka allows repeated names and null values.
public struct KafkaHeader: Sendable, Equatable {
    public var name: String
    public var value: [UInt8]?

    public init(_ name: String, _ value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    public init(_ name: String, _ text: String) {
        self.init(name, Array(text.utf8))
    }
}

/// A record to produce.
public struct ProducerRecord: Sendable {
    public var topic: String
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// Explicit partition; nil lets the partitioner hash the key.
    public var partition: Int32?
    /// CreateTime in milliseconds since the epoch; nil for "now".
    public var timestampMillis: Int64?

    public init(
        topic: String, key: [UInt8]? = nil, value: [UInt8], headers: [KafkaHeader] = [],
        partition: Int32? = nil, timestampMillis: Int64? = nil
    ) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition
        self.timestampMillis = timestampMillis
    }
}

/// Where the broker stored a produced record.
public struct DeliveryReport: Sendable, Equatable {
    public var partition: Int32
    public var offset: Int64
}

/// A consumed record.
public struct ConsumerRecord: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// Milliseconds since the epoch (CreateTime or LogAppendTime), nil if the broker gave none.
    public var timestampMillis: Int64?

    public init(
        topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8],
        headers: [KafkaHeader], timestampMillis: Int64?
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestampMillis = timestampMillis
    }

    /// The first header with this name.
    public func header(_ name: String) -> [UInt8]? {
        headers.first { $0.name == name }?.value ?? nil
    }
}

public struct TopicPartition: Sendable, Hashable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)[\(partition)]" }
}

/// A partition and an offset: a committed offset, a start position for `assign`, or a lookup result.
public struct TopicPartitionOffset: Sendable, Hashable {
    public var topicPartition: TopicPartition
    /// An offset, or one of the `KafkaOffset` constants.
    public var offset: Int64

    public init(_ topic: String, _ partition: Int32, offset: Int64) {
        self.topicPartition = TopicPartition(topic, partition)
        self.offset = offset
    }
}

/// librdkafka's logical offsets.
public enum KafkaOffset {
    public static let beginning: Int64 = -2
    public static let end: Int64 = -1
    /// The group's committed offset (falls back to `auto.offset.reset`).
    public static let stored: Int64 = -1000
    /// "No offset" (e.g. nothing committed yet, or no record at/after a time).
    public static let invalid: Int64 = -1001
}

/// A change of the partitions this consumer owns.
public enum RebalanceEvent: Sendable, Equatable {
    case assigned([TopicPartition])
    /// `lost` is true when the partitions were taken away (session timeout) rather than handed over:
    /// offsets can no longer be committed for them.
    case revoked([TopicPartition], lost: Bool)
}

/// What a consumer poll yields.
public enum ConsumerEvent: Sendable, Equatable {
    case record(ConsumerRecord)
    case rebalance(RebalanceEvent)
    /// The consumer reached the end of the partition; `nextOffset` is the offset the next record will get.
    case partitionEOF(TopicPartition, nextOffset: Int64)

    public var record: ConsumerRecord? {
        if case .record(let r) = self { return r }
        return nil
    }
}

/// A topic to create.
public struct TopicSpec: Sendable {
    public var name: String
    public var partitions: Int32
    public var replicationFactor: Int32
    /// Topic configs, e.g. `["max.message.bytes": "16777216", "retention.ms": "86400000"]`.
    public var configs: [String: String]

    public init(name: String, partitions: Int32 = 1, replicationFactor: Int32 = 1, configs: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.configs = configs
    }
}

public enum TopicCreation: Sendable, Equatable {
    case created
    case alreadyExists
}

public struct PartitionMetadata: Sendable, Equatable {
    public var id: Int32
    public var leader: Int32
    public var replicas: [Int32]
    public var inSyncReplicas: [Int32]
}

public struct TopicMetadata: Sendable, Equatable {
    public var name: String
    public var partitions: [PartitionMetadata]
}

/// A partition's offsets: `low` is the first still held, `high` the one the next record will get
/// (`high - low` records; equal when empty).
public struct Watermarks: Sendable, Equatable, Codable {
    public var low: Int64
    public var high: Int64

    public init(low: Int64, high: Int64) {
        self.low = low
        self.high = high
    }
}
