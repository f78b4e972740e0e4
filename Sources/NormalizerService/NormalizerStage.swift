import Foundation
import KafkaClient
import KafkaService
import KilnFoundation
import Logging
import Metrics
import Normalization
import ProfileModel
import Records
import ServiceLifecycle
import Synchronization

/// The `kiln-normalizer` loop: raw records in, sample batches (or DLQ records) out.
///
/// Per poll it normalises up to `maxPollRecords` records on a dedicated thread, produces every output
/// and waits for Kafka to acknowledge all of them, and only then stores the raw offsets. A crash
/// anywhere before that replays the records; the compactor recognises a batch delivered twice by its
/// provenance (raw topic, partition, offset).
public final class NormalizerStage: Service, Sendable {
    public struct Configuration: Sendable {
        public var rawTopic: String
        public var normalizedTopic: String
        public var dlqTopic: String
        public var groupID: String
        public var maxPollRecords: Int
        public var normalizer: NormalizerOptions

        public init(
            rawTopic: String, normalizedTopic: String, dlqTopic: String, groupID: String = "kiln-normalizer",
            maxPollRecords: Int = 256, normalizer: NormalizerOptions = NormalizerOptions()
        ) {
            self.rawTopic = rawTopic
            self.normalizedTopic = normalizedTopic
            self.dlqTopic = dlqTopic
            self.groupID = groupID
            self.maxPollRecords = maxPollRecords
            self.normalizer = normalizer
        }
    }

    /// Running totals, for `/metrics`, logs and tests.
    public struct Stats: Sendable, Equatable {
        public var recordsIn = 0
        public var bytesIn = 0
        public var batchesOut = 0
        public var samplesOut = 0
        public var dlqRecords = 0
        public var baselines = 0
        public var resets = 0
        public var droppedZeroValue: Int64 = 0
        public var droppedEmptyStack: Int64 = 0
    }

    private let configuration: Configuration
    private let consumer: KafkaConsumer
    private let producer: KafkaProducer
    private let worker = BlockingWork(label: "kiln.normalizer.worker")
    private let normalizer: Mutex<Normalizer>
    private let stats = Mutex(Stats())
    private let logger: Logger
    private let onReady: @Sendable () -> Void
    private let lag: LagReporter

    private let recordsCounter = Counter(label: "kiln_normalizer_records_total")
    private let bytesCounter = Counter(label: "kiln_normalizer_bytes_total")
    private let batchesCounter = Counter(label: "kiln_normalizer_batches_total")
    private let samplesCounter = Counter(label: "kiln_normalizer_samples_total")
    private let dlqCounter = Counter(label: "kiln_normalizer_dlq_records_total")
    private let droppedCounter = Counter(label: "kiln_normalizer_dropped_samples_total")
    private let pollTimer = Metrics.Timer(label: "kiln_normalizer_poll_batch_seconds")

    public init(configuration: Configuration, kafka: KafkaConfig, logger: Logger, onReady: @escaping @Sendable () -> Void = {}) throws {
        self.configuration = configuration
        self.logger = logger
        self.onReady = onReady
        normalizer = Mutex(Normalizer(options: configuration.normalizer))
        var consumerConfig = ConsumerConfig(kafka: kafka, groupID: configuration.groupID)
        consumerConfig.onRebalance = { event in
            logger.info("rebalance", metadata: ["event": "\(event)"])
        }
        consumer = try KafkaConsumer(config: consumerConfig, logger: logger)
        lag = LagReporter(consumer: consumer, group: configuration.groupID)
        producer = try KafkaProducer(config: ProducerConfig(kafka: kafka), logger: logger)
    }

    public var currentStats: Stats { stats.withLock { $0 } }

    public func run() async throws {
        try await consumer.subscribe([configuration.rawTopic])
        logger.info("consuming", metadata: ["topic": "\(configuration.rawTopic)", "group": "\(configuration.groupID)"])
        onReady()
        do {
            try await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    let events = try await self.consumer.poll(max: self.configuration.maxPollRecords, timeout: .milliseconds(500))
                    let records = events.compactMap(\.record)
                    self.lag.reportIfDue(after: records)
                    if !records.isEmpty { try await self.process(records) }
                }
            }
        } catch is CancellationError {}
        // Everything polled was processed and stored above; hand the offsets over and leave the group.
        try await producer.close()
        try? await consumer.commit()
        do {
            try await consumer.close()
        } catch {
            // Offsets were stored and committed above; a failed LeaveGroup (e.g. a join still in progress)
            // only means the group notices the departure at the session timeout. Not a failed shutdown.
            logger.warning("leaving the consumer group failed", metadata: ["error": "\(error)"])
        }
        logger.info("stopped", metadata: ["stats": "\(currentStats)"])
    }

    /// Sends until Kafka acknowledged every output. A failed delivery (the broker gone for longer than
    /// `message.timeout.ms`, or records failed by a producer re-created after the cluster lost its state) is
    /// sent again with backoff rather than ending the process: the compactor recognises a batch delivered
    /// twice by its raw provenance, so a resend never counts twice. The records' offsets stay unstored
    /// meanwhile.
    func publish(_ outputs: [ProducerRecord]) async throws {
        var delay = Duration.milliseconds(500)
        while true {
            do {
                _ = try await producer.sendBatch(outputs)
                return
            } catch let error as KafkaError where ![.recordTooLarge, .closed, .fatal].contains(error.kind) {
                logger.error(
                    "publishing normalized batches failed; sending them again",
                    metadata: [
                        "records": "\(outputs.count)", "error": "\(error)", "retry_in": "\(delay)",
                    ])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(10))
            }
        }
    }

    /// Re-creates the producer's librdkafka session (see `KafkaProducer.reset`).
    public func resetProducer(reason: String) throws {
        try producer.reset(reason: reason)
    }

    /// Normalises `records`, publishes the results, then marks the records durable.
    func process(_ records: [ConsumerRecord]) async throws {
        let start = ContinuousClock.now
        let configuration = self.configuration
        let (outputs, delta) = await worker.run { [self] () -> ([ProducerRecord], Stats) in
            var outputs: [ProducerRecord] = []
            var delta = Stats()
            normalizer.withLock { normalizer in
                for record in records {
                    delta.recordsIn += 1
                    delta.bytesIn += record.value.count
                    let provenance = Provenance(topic: record.topic, partition: record.partition, offset: record.offset)
                    do {
                        let envelope = try RawEnvelope(decoding: record.value)
                        let result = try normalizer.normalize(envelope, provenance: provenance)
                        switch result.deltaOutcome {
                        case .baseline: delta.baselines += 1
                        case .reset: delta.resets += 1
                        case .delta, .notCumulative: break
                        }
                        guard let batch = result.batch else { continue }
                        delta.batchesOut += 1
                        delta.samplesOut += batch.sampleCount
                        delta.droppedZeroValue += batch.droppedZeroValue
                        delta.droppedEmptyStack += batch.droppedEmptyStack
                        let service = envelope.labels[LabelName.serviceName] ?? "unknown_service"
                        outputs.append(
                            ProducerRecord(
                                topic: configuration.normalizedTopic,
                                key: RecordKeys.normalized(tenant: envelope.tenant, serviceName: service),
                                value: BatchCodec.encode(batch)))
                    } catch {
                        delta.dlqRecords += 1
                        outputs.append(Self.deadLetter(record, reason: "\(error)", topic: configuration.dlqTopic))
                    }
                }
            }
            return (outputs, delta)
        }
        for output in outputs where output.topic == configuration.dlqTopic {
            logger.warning(
                "rejected record sent to the DLQ",
                metadata: [
                    "source": "\(records.first?.topic ?? "")",
                    "reason":
                        "\(output.headers.first { $0.name == DLQHeader.reason }.flatMap { $0.value.map { String(decoding: $0, as: UTF8.self) } } ?? "")",
                ])
        }
        if !outputs.isEmpty { try await publish(outputs) }
        // Offsets of a partition are stored in order; the last record of each partition carries the rest.
        var highest: [TopicPartition: Int64] = [:]
        for r in records {
            highest[TopicPartition(r.topic, r.partition)] = max(highest[TopicPartition(r.topic, r.partition)] ?? -1, r.offset)
        }
        for (tp, offset) in highest {
            do {
                try consumer.markDurable(topic: tp.topic, partition: tp.partition, throughOffset: offset)
            } catch {
                // The partition was revoked meanwhile: its new owner replays these records, and the
                // compactor drops the duplicates by provenance.
                logger.info("offset not stored (partition moved)", metadata: ["partition": "\(tp)", "error": "\(error)"])
            }
        }
        stats.withLock { s in
            s.recordsIn += delta.recordsIn
            s.bytesIn += delta.bytesIn
            s.batchesOut += delta.batchesOut
            s.samplesOut += delta.samplesOut
            s.dlqRecords += delta.dlqRecords
            s.baselines += delta.baselines
            s.resets += delta.resets
            s.droppedZeroValue += delta.droppedZeroValue
            s.droppedEmptyStack += delta.droppedEmptyStack
        }
        recordsCounter.increment(by: delta.recordsIn)
        bytesCounter.increment(by: delta.bytesIn)
        batchesCounter.increment(by: delta.batchesOut)
        samplesCounter.increment(by: delta.samplesOut)
        dlqCounter.increment(by: delta.dlqRecords)
        droppedCounter.increment(by: Int(delta.droppedZeroValue + delta.droppedEmptyStack))
        pollTimer.record(duration: .now - start)
    }

    /// The raw record unchanged, with headers naming the stage, the reason and where it came from.
    static func deadLetter(_ record: ConsumerRecord, reason: String, topic: String) -> ProducerRecord {
        let provenance = Provenance(topic: record.topic, partition: record.partition, offset: record.offset)
        var headers = record.headers
        headers += DLQHeader.headers(stage: "normalizer", reason: reason, source: provenance).map { KafkaHeader($0.0, $0.1) }
        return ProducerRecord(topic: topic, key: record.key, value: record.value, headers: headers)
    }
}
