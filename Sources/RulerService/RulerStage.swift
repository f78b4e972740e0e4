import Foundation
import KafkaClient
import KafkaService
import KilnFoundation
import KilnProtos
import Logging
import Metrics
import ObjectStore
import ProfileModel
import Recording
import Records
import RemoteWrite
import ServiceLifecycle
import Synchronization

/// The `kiln-ruler` loop: recording rules evaluated on `kiln.profiles.normalized` as it flows, each completed
/// step written to Prometheus with remote write.
///
/// Offsets follow the samples: a record's offset is stored only once every step it fed was acknowledged
/// by the receiver and the checkpoint (the last completed step, in the block store under `_kiln/ruler/`)
/// says so. After a crash the ruler reads again from the stored offsets; samples of steps the checkpoint
/// names as written are skipped, and steps after it are rebuilt from the same records, so they are re-sent
/// with the same value and never with a partial one; one request per step, so a step Prometheus already
/// holds (refused as out of order) takes no later step down with it.
///
/// A step ending at T is complete when every partition of the topic has moved past T + lateness: by the
/// sample times it carries, or, once Kafka reports the partition's end, by the clock. One ruler owns
/// every partition (a recorded series sums samples of many services, and services are spread over the
/// partitions); while its group assigns it only part of the topic it completes nothing and says why.
public final class RulerStage: Service, Sendable {
    public struct Configuration: Sendable {
        public var normalizedTopic: String
        public var groupID: String
        public var stepMillis: Int64
        /// How long after a step's end its samples may still arrive.
        public var lateness: Duration
        /// How often a tenant's rules are read again from the store.
        public var rulesRefresh: Duration
        public var maxPollRecords = 256

        public init(
            normalizedTopic: String, groupID: String = "kiln-ruler", stepMillis: Int64 = 15_000, lateness: Duration = .seconds(60),
            rulesRefresh: Duration = .seconds(30)
        ) {
            self.normalizedTopic = normalizedTopic
            self.groupID = groupID
            self.stepMillis = stepMillis
            self.lateness = lateness
            self.rulesRefresh = rulesRefresh
        }
    }

    public struct Stats: Sendable, Equatable {
        public var records = 0
        public var samplesRecorded = 0
        public var samplesWritten = 0
        public var samplesLate = 0
        public var samplesRejected = 0
        public var samplesOverLimit = 0
        /// Every step ending at or before this (ms) is written.
        public var completedThrough: Int64 = 0
    }

    /// What the ruler knows of one partition of the topic.
    struct PartitionState {
        /// Offsets of records read and not yet stored, with the latest step each fed (nil: none).
        var pending: [(offset: Int64, latestStep: Int64?)] = []
        /// The next offset to read.
        var position: Int64?
        /// The latest sample time (ms) read from it.
        var latestSampleMillis: Int64?
        /// Kafka reported its end and no record came since.
        var atEnd = false
    }

    struct State {
        var evaluation: RuleEvaluation
        var partitions: [Int32: PartitionState] = [:]
        var rules: [String: (rules: [CompiledRule], readAt: ContinuousClock.Instant)] = [:]
        /// The ruler owns only part of the topic (said once per episode, not per poll).
        var partial = false
        /// Steps up to this may be in the receiver already (a write the previous ruler did not see
        /// acknowledged); a refusal of one of them is that, not a lost sample.
        var maybeWrittenThrough: Int64 = 0
    }

    private let configuration: Configuration
    private let consumer: KafkaConsumer
    private let partitionCount: @Sendable () async throws -> Int
    private let rules: RecordingRules
    private let store: any ObjectStore
    private let writer: RemoteWriteClient
    private let logger: Logger
    private let onReady: @Sendable () -> Void
    private let worker = BlockingWork(label: "kiln.ruler.decode")
    private let state: Mutex<State>
    private let stats = Mutex(Stats())
    private let lag: LagReporter

    private let recordsCounter = Counter(label: "kiln_ruler_records_total")
    private let writtenCounter = Counter(label: "kiln_ruler_samples_written_total")
    private let lateCounter = Counter(label: "kiln_ruler_samples_dropped_total", dimensions: [("reason", "late")])
    private let rejectedCounter = Counter(label: "kiln_ruler_samples_dropped_total", dimensions: [("reason", "rejected")])
    private let overLimitCounter = Counter(label: "kiln_ruler_samples_dropped_total", dimensions: [("reason", "series_limit")])
    private let completedGauge = Gauge(label: "kiln_ruler_flushed_through_seconds")
    private let partialGauge = Gauge(label: "kiln_ruler_partial_assignment")

    public init(
        configuration: Configuration, kafka: KafkaConfig, rules: RecordingRules, store: any ObjectStore, writer: RemoteWriteClient,
        logger: Logger, onReady: @escaping @Sendable () -> Void = {}
    ) throws {
        self.configuration = configuration
        self.rules = rules
        self.store = store
        self.writer = writer
        self.logger = logger
        self.onReady = onReady
        state = Mutex(State(evaluation: RuleEvaluation(stepMillis: configuration.stepMillis)))
        var consumerConfig = ConsumerConfig(kafka: kafka, groupID: configuration.groupID)
        consumerConfig.reportPartitionEOF = true
        consumerConfig.onRebalance = { event in logger.info("rebalance", metadata: ["event": "\(event)"]) }
        consumer = try KafkaConsumer(config: consumerConfig, logger: logger)
        lag = LagReporter(consumer: consumer, group: configuration.groupID)
        let admin = try KafkaAdmin(config: kafka)
        let topic = configuration.normalizedTopic
        partitionCount = { try await admin.describeTopic(topic).partitions.count }
    }

    public var currentStats: Stats { stats.withLock { $0 } }

    var checkpointKey: String { "_kiln/ruler/\(configuration.groupID).json" }

    struct Checkpoint: Codable {
        /// Every step ending at or before this (ms since the epoch) was acknowledged by the receiver.
        var completedThrough: Int64
        /// Steps up to this were being sent when the checkpoint was written: after a crash, some of them
        /// may be in the receiver already.
        var writingThrough: Int64?
    }

    public func run() async throws {
        let checkpoint = try await readCheckpoint()
        let completed = checkpoint.completedThrough
        state.withLock {
            $0.evaluation = RuleEvaluation(stepMillis: configuration.stepMillis, completedThrough: completed)
            $0.maybeWrittenThrough = checkpoint.writingThrough ?? completed
        }
        stats.withLock { $0.completedThrough = completed }
        completedGauge.record(Double(completed) / 1000)
        try await consumer.subscribe([configuration.normalizedTopic])
        logger.info(
            "evaluating recording rules",
            metadata: [
                "topic": "\(configuration.normalizedTopic)", "group": "\(configuration.groupID)", "completed_through_ms": "\(completed)",
            ])
        onReady()
        let firstCount = try await partitionCount()
        do {
            try await cancelWhenGracefulShutdown {
                var total = firstCount
                var lastTopicCheck = ContinuousClock.now
                while !Task.isCancelled {
                    let events = try await self.consumer.poll(max: self.configuration.maxPollRecords, timeout: .milliseconds(500))
                    self.lag.reportIfDue(after: events)
                    try await self.take(events)
                    if ContinuousClock.now - lastTopicCheck > .seconds(30) {
                        total = (try? await self.partitionCount()) ?? total
                        lastTopicCheck = .now
                    }
                    try await self.completeSteps(partitionCount: total)
                }
            }
        } catch is CancellationError {}
        // Steps still open are not written: their records' offsets stay unstored, so the next ruler rebuilds
        // them whole from the topic.
        try? await consumer.commit()
        try? await consumer.close()
        try? await writer.shutdown()
        logger.info("stopped", metadata: ["stats": "\(currentStats)"])
    }

    func readCheckpoint() async throws -> Checkpoint {
        guard try await store.head(checkpointKey) != nil else { return Checkpoint(completedThrough: 0) }
        return try JSONDecoder().decode(Checkpoint.self, from: Data(try await store.get(checkpointKey)))
    }

    func writeCheckpoint(_ checkpoint: Checkpoint) async throws {
        try await store.put(checkpointKey, Array(try JSONEncoder().encode(checkpoint)))
    }

    /// Decodes the records (off the cooperative pool) and adds them to the open steps.
    func take(_ events: [ConsumerEvent]) async throws {
        if events.contains(where: { if case .rebalance(.revoked) = $0 { true } else { false } }) {
            try await restartAfterRevoke()
            return
        }
        let records = events.compactMap(\.record)
        let rulesByTenant = try await currentRules(Set(records.compactMap { try? BatchCodec.tenant(of: $0.value) }))
        let batches: [Result<RuleBatch, any Error>] =
            records.isEmpty
            ? []
            : await worker.run {
                records.map { r in
                    Result {
                        try BatchCodec.decodeForRules(r.value) { tenant, series in
                            RuleEvaluation.functionNames(rulesByTenant[tenant] ?? [], forSeries: series)
                        }
                    }
                }
            }
        // Adding up samples is CPU work per sample: on the worker, as the decoding.
        let delta = await worker.run { [self] () -> Stats in
            var delta = Stats()
            state.withLock { state in
                // In the order Kafka reported them: an end reported after the last record stands.
                var next = zip(records, batches).makeIterator()
                for event in events {
                    switch event {
                    case .partitionEOF(let tp, let nextOffset):
                        state.partitions[tp.partition, default: PartitionState()].atEnd = true
                        state.partitions[tp.partition]!.position = nextOffset
                    case .rebalance:
                        break
                    case .record:
                        guard let (record, decoded) = next.next() else { continue }
                        var partition = state.partitions[record.partition] ?? PartitionState()
                        partition.position = record.offset + 1
                        partition.atEnd = false
                        delta.records += 1
                        switch decoded {
                        case .success(let batch):
                            let outcome = state.evaluation.add(batch, rules: rulesByTenant[batch.tenant] ?? [])
                            delta.samplesRecorded += outcome.samplesRecorded
                            delta.samplesLate += outcome.samplesLate
                            delta.samplesOverLimit += outcome.samplesOverLimit
                            partition.pending.append((record.offset, outcome.latestStep))
                            if let latest = batch.latestSampleTime {
                                partition.latestSampleMillis = max(partition.latestSampleMillis ?? .min, latest / 1_000_000)
                            }
                        case .failure(let error):
                            // The compactor sends such a record to the DLQ; the ruler has nothing to record from it.
                            logger.warning(
                                "unreadable normalized record skipped",
                                metadata: ["partition": "\(record.partition)", "offset": "\(record.offset)", "error": "\(error)"])
                            partition.pending.append((record.offset, nil))
                        }
                        state.partitions[record.partition] = partition
                    }
                }
            }
            return delta
        }
        recordsCounter.increment(by: delta.records)
        lateCounter.increment(by: delta.samplesLate)
        overLimitCounter.increment(by: delta.samplesOverLimit)
        stats.withLock {
            $0.records += delta.records
            $0.samplesRecorded += delta.samplesRecorded
            $0.samplesLate += delta.samplesLate
            $0.samplesOverLimit += delta.samplesOverLimit
        }
    }

    /// Partitions were taken away: the samples they fed into open steps cannot be told apart from the rest,
    /// so every open step is dropped and each partition still owned is read again from the first record
    /// that fed an open step (this poll's records too); partitions assigned later start from their
    /// committed offsets. Steps already written stay written.
    func restartAfterRevoke() async throws {
        let assigned = Set((try? consumer.assignment())?.filter { $0.topic == configuration.normalizedTopic }.map(\.partition) ?? [])
        let seeks = state.withLock { state -> [(Int32, Int64)] in
            var out: [(Int32, Int64)] = []
            for (p, partition) in state.partitions where assigned.contains(p) {
                if let offset = partition.pending.first?.offset ?? partition.position { out.append((p, offset)) }
            }
            state.partitions = [:]
            state.evaluation.discardOpenSteps()
            return out
        }
        logger.info("partitions revoked: open steps are read again", metadata: ["from": "\(seeks)"])
        for (p, offset) in seeks {
            try await consumer.seek(topic: configuration.normalizedTopic, partition: p, offset: offset)
        }
    }

    /// The compiled rules of each tenant, read again when older than `rulesRefresh`.
    func currentRules(_ tenants: Set<String>) async throws -> [String: [CompiledRule]] {
        let now = ContinuousClock.now
        let cached = state.withLock { $0.rules }
        var out: [String: [CompiledRule]] = [:]
        for tenant in tenants {
            if let entry = cached[tenant], now - entry.readAt < configuration.rulesRefresh {
                out[tenant] = entry.rules
                continue
            }
            var compiled: [CompiledRule] = []
            do {
                for rule in try await rules.list(tenant: tenant) {
                    do {
                        compiled.append(try CompiledRule(rule))
                    } catch {
                        logger.error(
                            "recording rule skipped", metadata: ["tenant": "\(tenant)", "rule": "\(rule.id)", "error": "\(error)"])
                    }
                }
            } catch {
                // Keep evaluating with the rules read last; the store may be back at the next refresh.
                logger.warning("reading recording rules failed", metadata: ["tenant": "\(tenant)", "error": "\(error)"])
                compiled = cached[tenant]?.rules ?? []
            }
            out[tenant] = compiled
            state.withLock { $0.rules[tenant] = (compiled, now) }
        }
        return out
    }

    /// The latest step end (ms) every partition has moved past, lateness included; nil while the ruler does
    /// not own the whole topic or a partition has not been heard from. A partition moves by the sample
    /// times it delivers, and by the clock once Kafka reports it read to its end (not sooner: a ruler that
    /// restarts behind a backlog must not complete steps the backlog still feeds). Never past the clock, so a
    /// client stamping profiles in the future cannot close the steps of everyone else.
    func completableThrough(partitionCount: Int, nowMillis: Int64) -> Int64? {
        let lateness = configuration.lateness.wholeMilliseconds
        let assigned: Set<Int32>
        do {
            assigned = Set(try consumer.assignment().filter { $0.topic == configuration.normalizedTopic }.map(\.partition))
        } catch {
            return nil
        }
        guard assigned.count == partitionCount else {
            partialGauge.record(1)
            let firstTime =
                !assigned.isEmpty
                && state.withLock { state in
                    defer { state.partial = true }
                    return !state.partial
                }
            if firstTime {
                logger.warning(
                    "this ruler owns \(assigned.count) of \(partitionCount) partitions and completes no step meanwhile; run one kiln-ruler per group (recorded series sum over every partition)"
                )
            }
            return nil
        }
        state.withLock { $0.partial = false }
        partialGauge.record(0)
        return state.withLock { state -> Int64? in
            var through = Int64.max
            for p in assigned {
                // A partition not heard from yet (no record, no end reported) holds completion back.
                guard let partition = state.partitions[p] else { return nil }
                var reached = partition.latestSampleMillis ?? .min
                if partition.atEnd { reached = nowMillis }
                guard reached != .min else { return nil }
                reached = min(reached, nowMillis)
                through = min(through, reached - lateness)
            }
            return through == .max
                ? nil : through - ((through % configuration.stepMillis) + configuration.stepMillis) % configuration.stepMillis
        }
    }

    /// Writes every step that is complete, then the checkpoint, then stores the offsets of the records whose
    /// steps are all written.
    func completeSteps(partitionCount: Int) async throws {
        let nowMillis = Int64(Date().timeIntervalSince1970 * 1000)
        guard let through = completableThrough(partitionCount: partitionCount, nowMillis: nowMillis),
            through > state.withLock({ $0.evaluation.completedThrough })
        else { return }
        let (completedBefore, steps, maybeWritten) = state.withLock { state in
            (state.evaluation.completedThrough, state.evaluation.complete(through: through), state.maybeWrittenThrough)
        }
        try await writeCheckpoint(Checkpoint(completedThrough: completedBefore, writingThrough: through))
        var written = 0
        var rejected = 0
        // One request per step, oldest first: Prometheus refuses a whole request when one sample in it is
        // older than its series' newest (even an identical one), so a step already there after a crash must
        // not take the next steps down with it.
        for completed in steps {
            let (tenant, step) = (completed.tenant, completed.step)
            let result = try await writer.write(completed.series, tenant: tenant)
            written += result.samplesWritten
            guard let refusal = result.firstRejection else { continue }
            if step <= maybeWritten {
                logger.info(
                    "a step sent again after a restart was already written",
                    metadata: ["tenant": "\(tenant)", "step_ms": "\(step)", "answer": "\(refusal)"])
                continue
            }
            rejected += result.samplesRejected
            logger.error(
                "the remote write receiver refused recorded samples; they are dropped",
                metadata: ["tenant": "\(tenant)", "step_ms": "\(step)", "samples": "\(result.samplesRejected)", "answer": "\(refusal)"])
        }
        try await writeCheckpoint(Checkpoint(completedThrough: through))
        let offsets = state.withLock { state -> [(Int32, Int64)] in
            var out: [(Int32, Int64)] = []
            for (p, var partition) in state.partitions {
                partition.pending.removeAll { ($0.latestStep ?? .min) <= through }
                if let first = partition.pending.first {
                    out.append((p, first.offset))
                } else if let position = partition.position {
                    out.append((p, position))
                }
                state.partitions[p] = partition
            }
            return out
        }
        for (p, offset) in offsets {
            do {
                try consumer.storeOffset(topic: configuration.normalizedTopic, partition: p, offset: offset)
            } catch {
                logger.warning("storing an offset failed", metadata: ["partition": "\(p)", "offset": "\(offset)", "error": "\(error)"])
            }
        }
        writtenCounter.increment(by: written)
        rejectedCounter.increment(by: rejected)
        completedGauge.record(Double(through) / 1000)
        stats.withLock {
            $0.samplesWritten += written
            $0.samplesRejected += rejected
            $0.completedThrough = through
        }
    }
}
