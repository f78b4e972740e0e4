import Blocks
import Foundation
import KafkaClient
import KilnFoundation
import Logging
import Normalization
import ProfileModel
import Records
import Synchronization

/// Re-reads a raw (or DLQ) topic between fixed bounds through the normaliser into a separate output.
///
/// Durability follows the pipeline's rule: the checkpoint (positions, counts and the normaliser's delta
/// state) is saved only after the output holds everything read up to it. An interrupted replay resumes
/// from its checkpoint; batches written after that checkpoint are recognised by their raw provenance and
/// skipped, and the restored delta state makes every cumulative profile's delta the same as in an
/// uninterrupted run, so the counts at the end are exact.
public final class ReplayJob: Sendable {
    public struct Options: Sendable {
        public var kafka: KafkaConfig
        /// Save a checkpoint at least this often (and whenever the output is full).
        public var checkpointInterval: Duration
        public var maxPollRecords: Int
        public var maxDeltaSeries: Int
        /// Reads at most this many records per second (nil: as fast as it goes), to spare a busy cluster.
        public var maxRecordsPerSecond: Double?

        public init(
            kafka: KafkaConfig, checkpointInterval: Duration = .seconds(30), maxPollRecords: Int = 32,
            maxDeltaSeries: Int = 100_000, maxRecordsPerSecond: Double? = nil
        ) {
            self.kafka = kafka
            self.checkpointInterval = checkpointInterval
            self.maxPollRecords = maxPollRecords
            self.maxDeltaSeries = maxDeltaSeries
            self.maxRecordsPerSecond = maxRecordsPerSecond
        }
    }

    struct State {
        var normalizer: Normalizer
        var counts: ReplayCounts
        var partitions: [Int32: ReplayCheckpoint.PartitionProgress]
        var held: [PartitionKey: OffsetRanges]
    }

    /// The run's state, shared by the polling task and the worker thread (never at the same time).
    final class SharedState: Sendable {
        private let state: Mutex<State>
        init(_ initial: State) { state = Mutex(initial) }
        func withLock<R: Sendable>(_ body: (inout sending State) throws -> sending R) rethrows -> sending R { try state.withLock(body) }
    }

    public let plan: ReplayPlan
    private let options: Options
    private let sink: any ReplaySink
    private let checkpoints: ReplayCheckpointStore
    private let progress: any ReplayProgress
    private let logger: Logger
    private let worker = BlockingWork(label: "kiln.replay.normalize")

    public init(
        plan: ReplayPlan, options: Options, sink: any ReplaySink, checkpoints: ReplayCheckpointStore,
        progress: any ReplayProgress = SilentProgress(), logger: Logger = Logger(label: "kiln.replay")
    ) {
        self.plan = plan
        self.options = options
        self.sink = sink
        self.checkpoints = checkpoints
        self.progress = progress
        self.logger = logger
    }

    /// Runs the replay to its end (or until cancelled, after saving a checkpoint) and returns the final
    /// checkpoint, whose counts are the replay's exact result.
    public func run() async throws -> ReplayCheckpoint {
        var checkpoint: ReplayCheckpoint
        if let saved = try await checkpoints.load() {
            guard saved.plan == plan else {
                throw ReplayError(
                    "checkpoint \(checkpoints.store.location)/\(checkpoints.key) belongs to a replay with other arguments "
                        + "(\(Self.describe(saved.plan))); pass another --name, or --restart to discard it")
            }
            if saved.finished {
                progress.finish(saved, elapsed: .zero)
                return saved
            }
            checkpoint = saved
            checkpoint.counts.resumes += 1
            logger.info(
                "resuming replay",
                metadata: ["name": "\(checkpoints.name)", "done": "\(saved.recordsDone)", "of": "\(saved.recordsToRead)"])
        } else {
            checkpoint = try await firstCheckpoint()
            try await checkpoints.save(checkpoint)
        }

        var normalizer = Normalizer(options: NormalizerOptions(limits: plan.limits.pprofLimits, maxDeltaSeries: options.maxDeltaSeries))
        do { try normalizer.restoreDeltaState(Array(checkpoint.deltaState)) } catch {
            throw ReplayError("checkpoint \(checkpoints.key): \(error.description)")
        }
        let state = SharedState(
            State(
                normalizer: normalizer, counts: checkpoint.counts,
                partitions: Dictionary(uniqueKeysWithValues: checkpoint.partitions.map { ($0.partition, $0) }),
                held: try await sink.heldProvenance()))

        var consumerConfig = ConsumerConfig(kafka: options.kafka, groupID: nil)
        consumerConfig.reportPartitionEOF = true
        let consumer = try KafkaConsumer(config: consumerConfig, logger: logger)
        let open = checkpoint.partitions.filter { !$0.isDone }
        try consumer.assign(open.map { TopicPartitionOffset(plan.sourceTopic, $0.partition, offset: $0.position) })

        let started = ContinuousClock.now
        let doneAtStart = checkpoint.recordsDone
        var lastCheckpoint = started
        do {
            while !Task.isCancelled, state.withLock({ s in s.partitions.values.contains { !$0.isDone } }) {
                let events = try await consumer.poll(max: options.maxPollRecords, timeout: .milliseconds(500))
                try await process(events, state: state)
                if sink.isFull || ContinuousClock.now - lastCheckpoint >= options.checkpointInterval {
                    checkpoint = try await saveCheckpoint(state, finished: false)
                    lastCheckpoint = .now
                    progress.checkpointSaved(checkpoint)
                }
                let snapshot = state.withLock { s in
                    (
                        s.counts, s.partitions.values.reduce(Int64(0)) { $0 + $1.total - $1.remaining },
                        s.partitions.values.reduce(Int64(0)) { $0 + $1.total }
                    )
                }
                progress.update(
                    done: snapshot.1, total: snapshot.2, doneThisRun: snapshot.1 - doneAtStart,
                    counts: snapshot.0, elapsed: .now - started)
                if let rate = options.maxRecordsPerSecond, rate > 0 {
                    // Throttle: not before the time this many records take at the allowed rate.
                    let due = started + .milliseconds(Int64(Double(snapshot.1 - doneAtStart) / rate * 1000))
                    if due > .now { try? await Task.sleep(until: due) }
                }
            }
        } catch {
            try? await consumer.close()
            try? await sink.close()
            throw error
        }
        try await consumer.close()
        // Finished, or interrupted (cancelled): either way everything read so far becomes durable first.
        let finished = !state.withLock { s in s.partitions.values.contains { !$0.isDone } }
        checkpoint = try await Task { try await self.saveCheckpoint(state, finished: finished) }.value
        try await sink.close()
        if finished {
            progress.finish(checkpoint, elapsed: .now - started)
        } else {
            progress.checkpointSaved(checkpoint)
        }
        return checkpoint
    }

    // MARK: Steps

    /// Fixes where each partition starts and ends.
    func firstCheckpoint() async throws -> ReplayCheckpoint {
        let admin = try KafkaAdmin(config: options.kafka, logger: logger)
        let watermarks = try await admin.watermarks(topic: plan.sourceTopic)
        var starts: [Int32: Int64] = [:]
        switch plan.start {
        case .earliest:
            for (p, w) in watermarks { starts[p] = w.low }
        case .offsets(let list):
            for (p, w) in watermarks { starts[p] = list.first { $0.partition == p }?.offset ?? w.low }
        case .time(let millis):
            // The broker's time index only lets reading start later; records before the time are still
            // skipped one by one (some brokers answer the first offset for any time).
            let consumer = try KafkaConsumer(config: ConsumerConfig(kafka: options.kafka, groupID: nil), logger: logger)
            let found = try await consumer.offsetsForTimes(
                Dictionary(
                    uniqueKeysWithValues: watermarks.keys.map {
                        (TopicPartition(plan.sourceTopic, $0), millis)
                    }))
            try await consumer.close()
            for (p, w) in watermarks { starts[p] = (found[TopicPartition(plan.sourceTopic, p)] ?? nil) ?? w.high }
        }
        var partitions: [ReplayCheckpoint.PartitionProgress] = []
        for (p, w) in watermarks.sorted(by: { $0.key < $1.key }) {
            var end = w.high
            var final = false
            if case .offsets(let list) = plan.end, let e = list.first(where: { $0.partition == p }) {
                end = e.offset
                final = true
            }
            let start = max(starts[p] ?? w.low, w.low)
            partitions.append(.init(partition: p, start: start, position: start, end: max(end, start), endIsFinal: final))
        }
        let fresh = Normalizer(options: NormalizerOptions(limits: plan.limits.pprofLimits, maxDeltaSeries: options.maxDeltaSeries))
        return ReplayCheckpoint(
            plan: plan, partitions: partitions, counts: ReplayCounts(), deltaState: Data(fresh.deltaState),
            finished: false, updated: Date())
    }

    /// Normalises the polled records in order on the worker thread and appends the batches to the sink.
    func process(_ events: [ConsumerEvent], state: SharedState) async throws {
        guard !events.isEmpty else { return }
        let plan = self.plan
        let sink = self.sink
        let logger = self.logger
        await worker.run {
            state.withLock { s in
                for event in events {
                    switch event {
                    case .record(let record):
                        guard var p = s.partitions[record.partition], !p.isDone, record.offset >= p.position,
                            record.offset < p.end || !p.endIsFinal
                        else { continue }
                        p.position = record.offset + 1
                        p.end = max(p.end, p.position)
                        s.partitions[record.partition] = p
                        Self.replay(record, plan: plan, sink: sink, state: &s)
                    case .partitionEOF(let tp, let next):
                        guard var p = s.partitions[tp.partition], !p.isDone else { continue }
                        // The partition holds nothing more now. An open end becomes final here; records
                        // below a final end are gone (retention or truncation), and waiting for them
                        // would never end.
                        if p.endIsFinal && next < p.end {
                            logger.warning(
                                "partition ended before the replay's end offset",
                                metadata: [
                                    "partition": "\(tp)", "end_offset": "\(p.end)", "last_offset": "\(next)",
                                ])
                        }
                        if !p.endIsFinal { p.end = max(next, p.position) }
                        p.endIsFinal = true
                        p.position = max(p.position, p.end)
                        s.partitions[tp.partition] = p
                    case .rebalance:
                        break
                    }
                }
            }
        }
    }

    static func replay(_ record: ConsumerRecord, plan: ReplayPlan, sink: any ReplaySink, state s: inout State) {
        s.counts.recordsRead += 1
        s.counts.bytesRead += record.value.count
        let envelope: RawEnvelope
        do { envelope = try RawEnvelope(decoding: record.value) } catch {
            s.counts.reject("raw envelope: \(error)")
            return
        }
        let service = envelope.labels[LabelName.serviceName] ?? "unknown_service"
        let timestamp = record.timestampMillis ?? envelope.startNanos / 1_000_000
        guard plan.selects(tenant: envelope.tenant, service: service), plan.selects(timestampMillis: timestamp) else {
            s.counts.skippedBySelection += 1
            return
        }
        let result: NormalizationResult
        do { result = try s.normalizer.normalize(envelope, provenance: provenance(of: record)) } catch {
            s.counts.reject(error.description)
            return
        }
        switch result.deltaOutcome {
        case .baseline, .reset: s.counts.baselines += 1
        case .delta, .notCumulative: break
        }
        guard let batch = result.batch else {
            s.counts.profilesWithoutSamples += 1
            return
        }
        let raw = batch.provenance
        if s.held[PartitionKey(topic: raw.topic, partition: raw.partition)]?.contains(raw.offset) ?? false {
            s.counts.alreadyInOutput += 1
            return
        }
        sink.append(batch)
        s.counts.batchesWritten += 1
        s.counts.samplesWritten += batch.sampleCount
        s.counts.droppedSamples += batch.droppedZeroValue + batch.droppedEmptyStack
        for (i, value) in batch.sampleValues.enumerated() {
            s.counts.totalsByProfileType[batch.series[Int(batch.sampleSeries[i])].profileType.description, default: 0] += value
        }
    }

    /// A record's raw provenance; a dead-lettered record keeps the one it had on the raw topic, so
    /// replaying the DLQ into the live pipeline is recognised by the compactor if done twice.
    static func provenance(of record: ConsumerRecord) -> Provenance {
        func header(_ name: String) -> String? { record.header(name).map { String(decoding: $0, as: UTF8.self) } }
        if let topic = header(DLQHeader.sourceTopic), let partition = header(DLQHeader.sourcePartition).flatMap({ Int32($0) }),
            let offset = header(DLQHeader.sourceOffset).flatMap({ Int64($0) })
        {
            return Provenance(topic: topic, partition: partition, offset: offset)
        }
        return Provenance(topic: record.topic, partition: record.partition, offset: record.offset)
    }

    /// Flushes the sink, then saves positions, counts and delta state taken together.
    func saveCheckpoint(_ state: SharedState, finished: Bool) async throws -> ReplayCheckpoint {
        // Appends happen only inside `process`, which is not running now: the snapshot matches the sink.
        let snapshot = state.withLock { s in (s.counts, s.partitions, Data(s.normalizer.deltaState)) }
        let written = try await sink.flush()
        var counts = snapshot.0
        counts.outputsWritten += written.outputs
        counts.outputBytes += written.bytes
        state.withLock { $0.counts = counts }
        let checkpoint = ReplayCheckpoint(
            plan: plan, partitions: snapshot.1.values.sorted { $0.partition < $1.partition },
            counts: counts, deltaState: snapshot.2, finished: finished, updated: Date())
        try await checkpoints.save(checkpoint)
        return checkpoint
    }

    static func describe(_ plan: ReplayPlan) -> String {
        var parts = ["from \(plan.sourceTopic)"]
        switch plan.output {
        case .blocks(let store): parts.append("to \(store)")
        case .topic(let topic): parts.append("to topic \(topic)")
        }
        if !plan.tenants.isEmpty { parts.append("tenants \(plan.tenants.joined(separator: ","))") }
        if !plan.services.isEmpty { parts.append("services \(plan.services.joined(separator: ","))") }
        return parts.joined(separator: ", ")
    }
}
