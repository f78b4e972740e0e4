import Foundation
import KafkaClient
import Logging
import Synchronization

/// A consumer group and the topic whose lag is recorded: `group=topic`.
public struct LagSpec: Sendable, Equatable {
    public var group: String
    public var topic: String

    public init(group: String, topic: String) {
        self.group = group
        self.topic = topic
    }

    public init(parsing text: String) throws {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw LoadGenError("--lag \(text): expected group=topic") }
        self.init(group: parts[0], topic: parts[1])
    }
}

public struct LagReading: Sendable, Codable {
    public var group: String
    public var topic: String
    /// Σ over partitions of (high watermark − committed offset), never below 0 per partition; a partition
    /// with nothing committed counts from its low watermark.
    public var records: Int64
    /// The oldest unconsumed data's age: for each partition, now minus the moment the log end (as sampled)
    /// first reached the group's committed offset; the largest over partitions. 0 when caught up.
    public var seconds: Double
    public var committed: Int64
    public var high: Int64
}

/// Consumer lag per group, from the group's committed offsets (read without joining the group) and the
/// partitions' watermarks (ListOffsets). On Tansu the high watermark can be short by a batch, so the record
/// lag there is approximate (it can read low, never high).
public final class LagMonitor: Sendable {
    struct Watch: Sendable {
        var spec: LagSpec
        var consumer: KafkaConsumer
        var partitions: [TopicPartition]
    }

    let watches: [Watch]
    /// Per topic-partition: (seconds since start, high watermark) as sampled, for the lag in seconds.
    let history = Mutex<[TopicPartition: [(Double, Int64)]]>([:])

    public init(specs: [LagSpec], kafka: KafkaConfig, logger: Logger) async throws {
        let admin = try KafkaAdmin(config: kafka, logger: logger)
        var watches: [Watch] = []
        for spec in specs {
            let topic = try await admin.describeTopic(spec.topic)
            var config = ConsumerConfig(kafka: kafka, groupID: spec.group)
            config.kafka.clientID = "kiln-loadgen-lag"
            let consumer = try KafkaConsumer(config: config, logger: logger)
            watches.append(
                Watch(
                    spec: spec, consumer: consumer,
                    partitions: topic.partitions.map { TopicPartition(spec.topic, $0.id) }))
        }
        self.watches = watches
    }

    public func sample(at t: Double) async -> [LagReading] {
        var out: [LagReading] = []
        for watch in watches {
            guard let committed = try? await watch.consumer.committed(watch.partitions, timeout: .seconds(2)) else { continue }
            var records: Int64 = 0
            var seconds = 0.0
            var committedSum: Int64 = 0
            var highSum: Int64 = 0
            for entry in committed {
                let tp = entry.topicPartition
                guard let marks = try? await watch.consumer.watermarks(topic: tp.topic, partition: tp.partition, timeout: .seconds(2))
                else { continue }
                let position = entry.offset >= 0 ? entry.offset : marks.low
                let points = history.withLock { h -> [(Double, Int64)] in
                    if h[tp]?.last?.0 != t { h[tp, default: []].append((t, marks.high)) }
                    return h[tp] ?? []
                }
                records += max(0, marks.high - position)
                committedSum += position
                highSum += marks.high
                seconds = max(seconds, Self.lagSeconds(committed: position, history: points, now: t))
            }
            out.append(
                LagReading(
                    group: watch.spec.group, topic: watch.spec.topic, records: records, seconds: seconds,
                    committed: committedSum, high: highSum))
        }
        return out
    }

    /// Now minus the first sampled time at which the log end had reached `committed` (0 if it is there now);
    /// when the committed offset predates every sample, the age of the first sample (a lower bound).
    public static func lagSeconds(committed: Int64, history: [(Double, Int64)], now: Double) -> Double {
        guard let last = history.last, committed < last.1 else { return 0 }
        if let first = history.first(where: { $0.1 > committed }) {
            // The record at `committed` was written between the previous sample and this one.
            return max(0, now - first.0)
        }
        return 0
    }

    public func shutdown() async {
        for watch in watches { try? await watch.consumer.close() }
    }
}
