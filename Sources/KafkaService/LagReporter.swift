import KafkaClient
import Metrics
import Synchronization

/// Publishes a stage's consumer lag as `kiln_consumer_lag_records{group,topic,partition}`: records
/// waiting between the stage's position and each partition's end. Called from the stage's poll loop;
/// it reads librdkafka's cached watermarks (no broker request) at most once per `interval`. Partitions
/// this instance no longer owns drop to 0, so a moved partition's lag is reported only by its owner.
public final class LagReporter: Sendable {
    private let consumer: KafkaConsumer
    private let group: String
    private let interval: Duration
    private struct State {
        var next = ContinuousClock.now
        var reported: Set<TopicPartition> = []
    }
    private let state = Mutex(State())

    public init(consumer: KafkaConsumer, group: String, interval: Duration = .seconds(5)) {
        self.consumer = consumer
        self.group = group
        self.interval = interval
    }

    public func reportIfDue() {
        let now = ContinuousClock.now
        let due = state.withLock { s in
            guard now >= s.next else { return false }
            s.next = now + interval
            return true
        }
        guard due, let lag = try? consumer.lag() else { return }
        let gone = state.withLock { s in
            defer { s.reported = Set(lag.keys) }
            return s.reported.subtracting(lag.keys)
        }
        for (tp, n) in lag { gauge(tp).record(n) }
        for tp in gone { gauge(tp).record(0) }
    }

    private func gauge(_ tp: TopicPartition) -> Gauge {
        Gauge(label: "kiln_consumer_lag_records", dimensions: [("group", group), ("topic", tp.topic), ("partition", String(tp.partition))])
    }
}

/// Stage timings from the monotonic clock.
extension Metrics.Timer {
    public func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }
}
