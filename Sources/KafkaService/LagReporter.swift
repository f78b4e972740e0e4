import Foundation
import KafkaClient
import Metrics
import Synchronization

/// Publishes a stage's consumer lag as `kiln_consumer_lag_records{group,topic,partition}`: records
/// waiting between the stage's position and each partition's end, and `kiln_consumer_lag_seconds`: how far
/// behind in time that is — the age of the newest record the stage consumed from the partition (its
/// producer's timestamp), 0 when nothing waits. A partition that has records waiting but none consumed yet
/// counts from when its lag was first seen. Called from the stage's poll loop with what it polled; it reads
/// librdkafka's cached watermarks (no broker request) at most once per `interval`. Partitions this instance
/// no longer owns drop to 0, so a moved partition's lag is reported only by its owner.
public final class LagReporter: Sendable {
    private let consumer: KafkaConsumer
    private let group: String
    private let interval: Duration
    private struct State {
        var next = ContinuousClock.now
        var reported: Set<TopicPartition> = []
        var age = LagAge()
    }
    private let state = Mutex(State())

    public init(consumer: KafkaConsumer, group: String, interval: Duration = .seconds(5)) {
        self.consumer = consumer
        self.group = group
        self.interval = interval
    }

    public func reportIfDue(after events: [ConsumerEvent]) {
        reportIfDue(after: events.lazy.compactMap(\.record))
    }

    public func reportIfDue(after records: some Sequence<ConsumerRecord>) {
        let now = ContinuousClock.now
        let due = state.withLock { s in
            s.age.consumed(records)
            guard now >= s.next else { return false }
            s.next = now + interval
            return true
        }
        guard due, let lag = try? consumer.lag() else { return }
        let nowMillis = Int64(Date().timeIntervalSince1970 * 1000)
        let (gone, seconds) = state.withLock { s in
            defer { s.reported = Set(lag.keys) }
            let gone = s.reported.subtracting(lag.keys)
            s.age.forget(gone)
            return (gone, s.age.seconds(lag: lag, nowMillis: nowMillis))
        }
        for (tp, n) in lag {
            gauge("kiln_consumer_lag_records", tp).record(n)
            gauge("kiln_consumer_lag_seconds", tp).record(seconds[tp] ?? 0)
        }
        for tp in gone {
            gauge("kiln_consumer_lag_records", tp).record(0)
            gauge("kiln_consumer_lag_seconds", tp).record(0)
        }
    }

    private func gauge(_ label: String, _ tp: TopicPartition) -> Gauge {
        Gauge(label: label, dimensions: [("group", group), ("topic", tp.topic), ("partition", String(tp.partition))])
    }
}

/// How far behind in time a consumer is, per partition: the age of the newest record it consumed there
/// while records still wait, else 0; a partition with records waiting and none consumed yet counts from
/// when that was first seen.
struct LagAge {
    /// The newest record timestamp consumed per partition (ms since the epoch).
    private(set) var newestConsumed: [TopicPartition: Int64] = [:]
    /// When a partition was first seen with records waiting and none consumed.
    private var waitingSince: [TopicPartition: Int64] = [:]

    mutating func consumed(_ records: some Sequence<ConsumerRecord>) {
        for r in records {
            guard let t = r.timestampMillis else { continue }
            let tp = TopicPartition(r.topic, r.partition)
            if t > newestConsumed[tp] ?? Int64.min { newestConsumed[tp] = t }
        }
    }

    mutating func forget(_ partitions: Set<TopicPartition>) {
        for tp in partitions { (newestConsumed[tp], waitingSince[tp]) = (nil, nil) }
    }

    /// Seconds behind per partition, for `lag` records waiting in each.
    mutating func seconds(lag: [TopicPartition: Int64], nowMillis: Int64) -> [TopicPartition: Double] {
        var out: [TopicPartition: Double] = [:]
        for (tp, waiting) in lag {
            guard waiting > 0 else {
                waitingSince[tp] = nil
                out[tp] = 0
                continue
            }
            let since = newestConsumed[tp] ?? waitingSince[tp] ?? nowMillis
            if newestConsumed[tp] == nil { waitingSince[tp] = since }
            out[tp] = Double(max(0, nowMillis - since)) / 1000
        }
        return out
    }
}
