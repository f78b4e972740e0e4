import Foundation
import KafkaClient
import KilnService
import Logging
import Metrics
import ServiceLifecycle

/// Watches the Kafka cluster for as long as the process runs, so a broker outage is reported where an
/// operator looks: `/ready` turns not-ready with the reason, `kiln_kafka_up` drops to 0,
/// `kiln_kafka_outages_total` counts the outage, and one error line is logged when it starts and one
/// notice when it ends (with its length). The clients themselves keep retrying; this only observes.
///
/// Every `interval` it reads the cluster's metadata. A topic the process needs that is missing (a
/// broker that lost its storage, a topic deleted by hand) is re-created when topic creation is allowed
/// (`--create-topics`), else reported as the reason for not being ready.
public struct KafkaHealthProbe: Service {
    let config: KafkaConfig
    let topics: [String]
    let topicOptions: TopicOptions
    let readiness: Readiness
    let logger: Logger
    let interval: Duration
    let onTopicsRecreated: @Sendable ([String]) async -> Void

    /// `resetProducer` runs when a topic the process uses has a new topic ID (re-created, by this process
    /// or another): the cluster lost its state, and with it the idempotence state of the process's
    /// producer, which must start a new session (`KafkaProducer.reset`) or every send would wait on
    /// UNKNOWN_PRODUCER_ID for ever. A process that does not produce passes nil.
    public init(
        config: KafkaConfig, topics: [String], topicOptions: TopicOptions, readiness: Readiness, logger: Logger,
        interval: Duration = .seconds(2), resetProducer: (@Sendable (_ reason: String) throws -> Void)? = nil
    ) {
        self.config = config
        self.topics = topics
        self.topicOptions = topicOptions
        self.readiness = readiness
        self.logger = logger
        self.interval = interval
        self.onTopicsRecreated = { [logger] recreated in
            guard let resetProducer else { return }
            do { try resetProducer("topics re-created on the cluster: \(recreated.joined(separator: ", "))") } catch {
                logger.error("could not re-create the Kafka producer", metadata: ["error": "\(error)"])
            }
        }
    }

    public func run() async throws {
        let admin = try KafkaAdmin(config: config, logger: logger)
        await cancelWhenGracefulShutdown { await watch(admin) }
    }

    private func watch(_ admin: KafkaAdmin) async {
        let up = Gauge(label: "kiln_kafka_up")
        let outages = Counter(label: "kiln_kafka_outages_total")
        var outageStart: ContinuousClock.Instant?
        var knownIDs: [String: String] = [:]
        up.record(1)
        while !Task.isCancelled {
            do {
                try await check(admin)
                knownIDs = await noticeRecreatedTopics(admin, known: knownIDs)
                if let start = outageStart {
                    outageStart = nil
                    up.record(1)
                    readiness.markReady("kafka")
                    logger.notice("Kafka reachable again", metadata: ["outage_seconds": "\(Self.seconds(ContinuousClock.now - start))"])
                }
            } catch {
                if Task.isCancelled { return }
                if outageStart == nil {
                    outageStart = .now
                    up.record(0)
                    outages.increment()
                    logger.error("Kafka unavailable; producers and consumers keep retrying", metadata: ["error": "\(error)"])
                }
                readiness.markNotReady("kafka", reason: "Kafka unavailable: \(error)")
            }
            try? await Task.sleep(for: interval)
        }
    }

    private func check(_ admin: KafkaAdmin) async throws {
        // A short timeout: the probe must notice an outage within a few seconds.
        let known = Set(try await admin.listTopics(timeout: interval).map(\.name))
        let missing = topics.filter { !known.contains($0) }
        guard !missing.isEmpty else { return }
        guard try topicOptions.shouldCreate() else {
            throw KafkaError(
                .unknownTopic,
                "topic(s) \(missing.joined(separator: ", ")) missing on \(config.bootstrapServers) "
                    + "and --create-topics is false")
        }
        logger.warning(
            "topic(s) missing on the cluster; re-creating them (was the broker restarted without its storage?)",
            metadata: ["topics": "\(missing)"])
        try await topicOptions.ensure(missing, config: config, logger: logger)
    }

    /// Compares the topics' IDs with those seen before and reports the topics whose ID changed. A broker
    /// without topic IDs (older than Kafka 2.8) answers none: then nothing is reported.
    private func noticeRecreatedTopics(_ admin: KafkaAdmin, known: [String: String]) async -> [String: String] {
        guard let ids = try? await admin.topicIDs(topics, timeout: interval) else { return known }
        let changed = topics.filter { t in
            guard let before = known[t], let now = ids[t] else { return false }
            return before != now
        }
        if !changed.isEmpty {
            logger.warning(
                "topic(s) re-created on the cluster (new topic ID); starting new producer sessions", metadata: ["topics": "\(changed)"])
            await onTopicsRecreated(changed)
        }
        return known.merging(ids) { _, new in new }
    }

    static func seconds(_ d: Duration) -> String {
        String(format: "%.1f", Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
    }
}
