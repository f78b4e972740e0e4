import Blocks
import Foundation
import KafkaClient
import Logging
import Metrics
import ObjectStore
import ProfileModel
import Records
import ServiceLifecycle
import Synchronization

/// The `kiln-compactor` ingest loop: normalized batches in, per-tenant blocks out, exactly once.
///
/// Heads are kept per (normalized partition, tenant), and all heads of a partition are cut together, so a
/// partition's offsets can be stored as soon as its blocks' meta.json files are durable. Exactly once:
/// - a record redelivered by Kafka (crash after upload, before commit) has a normalized offset that a block
///   in the store already lists, and is skipped;
/// - a batch the normaliser published twice has a raw provenance (topic, partition, offset) that a block or
///   a head already holds, and is skipped;
/// - on start and on every partition assignment the stage reads the provenance of every block created within
///   `dedupHorizon` from the store (the store, not memory, is the truth), so this holds across processes;
/// - on revoke the un-flushed heads of the revoked partitions are dropped: their offsets were never stored,
///   so the new owner reads those records again.
public final class CompactorStage: Service, Sendable {
    public struct Configuration: Sendable {
        public var normalizedTopic: String
        public var groupID: String
        public var cut: CutPolicy
        /// Blocks created this recently are consulted for duplicates. It must exceed the longest replay:
        /// the time between a block's upload and the commit of its offsets (seconds), and how far back the
        /// normaliser can replay raw records (its commit interval). 6 h leaves a wide margin; the memory it
        /// costs is a few offset ranges per block.
        public var dedupHorizon: Duration
        public var maxPollRecords: Int

        public init(normalizedTopic: String, groupID: String = "kiln-compactor", cut: CutPolicy = CutPolicy(),
                    dedupHorizon: Duration = .seconds(6 * 3600), maxPollRecords: Int = 256) {
            self.normalizedTopic = normalizedTopic
            self.groupID = groupID
            self.cut = cut
            self.dedupHorizon = dedupHorizon
            self.maxPollRecords = maxPollRecords
        }
    }

    public struct Stats: Sendable, Equatable {
        public var recordsIn = 0
        public var batchesAppended = 0
        public var duplicateRecords = 0
        public var duplicateBatches = 0
        public var undecodable = 0
        public var blocksWritten = 0
        public var samplesWritten = 0
        public var bytesWritten = 0
        public var headsDroppedOnRevoke = 0
        public var storeReloads = 0
        /// Records whose offset a block already lists for other samples: the topic was re-created.
        public var reusedOffsets = 0
    }

    /// The heads of one normalized partition and how far it was read.
    struct PartitionState {
        var heads: [String: Head] = [:]
        /// Last offset read (appended or skipped); stored once everything up to it is in blocks.
        var lastOffset: Int64 = -1
        /// Last offset marked durable.
        var durableOffset: Int64 = -1
        /// Kafka timestamp of the first record in the heads, for deterministic block IDs.
        var firstTimestampMillis: Int64?
        var firstOffset: Int64?
        var openedAt: Date?
    }

    /// What the store says blocks hold, per block (so old blocks can be forgotten past the horizon).
    struct StoreIndex {
        /// One block's offsets and sample time range.
        struct Entry {
            var raw: [PartitionKey: OffsetRanges]
            var normalized: [PartitionKey: OffsetRanges]
            var time: ClosedRange<Int64>
        }

        var blocks: [ULID: Entry] = [:]
        var raw: [PartitionKey: OffsetRanges] = [:]
        var normalized: [PartitionKey: OffsetRanges] = [:]

        mutating func add(_ ulid: ULID, _ p: KafkaProvenance, time: ClosedRange<Int64>) {
            let entry = Entry(raw: p.rawByPartition, normalized: p.normalizedByPartition, time: time)
            blocks[ulid] = entry
            for (k, v) in entry.raw { raw[k, default: OffsetRanges()].formUnion(v) }
            for (k, v) in entry.normalized { normalized[k, default: OffsetRanges()].formUnion(v) }
        }

        mutating func forget(olderThanMillis cutoff: UInt64) {
            let old = blocks.keys.filter { $0.timestampMillis < cutoff }
            guard !old.isEmpty else { return }
            for u in old { blocks[u] = nil }
            raw = [:]; normalized = [:]
            for entry in blocks.values {
                for (k, v) in entry.raw { raw[k, default: OffsetRanges()].formUnion(v) }
                for (k, v) in entry.normalized { normalized[k, default: OffsetRanges()].formUnion(v) }
            }
        }

        /// Whether a block holds this offset *and* the batch's samples. A Kafka offset names a record only
        /// within one life of a topic: a topic re-created (or a broker that lost its log, like Tansu's
        /// memory storage across a restart) hands out the same offsets again to new records. A genuine
        /// redelivery always lies inside the time range of the block that holds it; new records with the
        /// same offsets (taken later) do not, and must not be dropped as duplicates.
        func holds(_ key: PartitionKey, _ offset: Int64, normalized byNormalized: Bool, times: ClosedRange<Int64>?) -> Bool {
            guard (byNormalized ? normalized : raw)[key]?.contains(offset) ?? false else { return false }
            guard let times else { return true }
            return blocks.values.contains { e in
                (byNormalized ? e.normalized : e.raw)[key]?.contains(offset) ?? false
                    && e.time.lowerBound <= times.lowerBound && times.upperBound <= e.time.upperBound
            }
        }
    }

    struct State {
        var partitions: [PartitionKey: PartitionState] = [:]
        var index = StoreIndex()
        var needsReload = true
    }

    private let configuration: Configuration
    private let consumer: KafkaConsumer
    private let store: any ObjectStore
    private let writer: BlockWriter
    private let worker = DedicatedThread(label: "kiln.compactor.worker")
    private let state = Mutex(State())
    private let stats = Mutex(Stats())
    private let logger: Logger
    private let onReady: @Sendable () -> Void
    private let lag: LagReporter
    private let onStoreProblem: @Sendable (_ problem: String?) -> Void

    private let recordsCounter = Counter(label: "kiln_compactor_records_total")
    private let duplicatesCounter = Counter(label: "kiln_compactor_duplicates_total")
    private let blocksCounter = Counter(label: "kiln_compactor_blocks_written_total")
    private let blockBytesCounter = Counter(label: "kiln_compactor_block_bytes_total")
    private let flushTimer = Metrics.Timer(label: "kiln_compactor_flush_seconds")
    private let storeFailuresCounter = Counter(label: "kiln_compactor_store_failures_total")

    public init(configuration: Configuration, kafka: KafkaConfig, store: any ObjectStore, writer: BlockWriter = BlockWriter(),
                logger: Logger, onReady: @escaping @Sendable () -> Void = {},
                onStoreProblem: @escaping @Sendable (_ problem: String?) -> Void = { _ in }) throws {
        self.configuration = configuration
        self.store = store
        self.writer = writer
        self.logger = logger
        self.onReady = onReady
        self.onStoreProblem = onStoreProblem
        var consumerConfig = ConsumerConfig(kafka: kafka, groupID: configuration.groupID)
        consumerConfig.onRebalance = { event in logger.info("rebalance", metadata: ["event": "\(event)"]) }
        consumer = try KafkaConsumer(config: consumerConfig, logger: logger)
        lag = LagReporter(consumer: consumer, group: configuration.groupID)
    }

    public var currentStats: Stats { stats.withLock { $0 } }

    public func run() async throws {
        try await reloadFromStore()
        try await consumer.subscribe([configuration.normalizedTopic])
        logger.info("consuming", metadata: ["topic": "\(configuration.normalizedTopic)", "group": "\(configuration.groupID)", "store": "\(store.location)"])
        onReady()
        do {
            try await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    let events = try await self.consumer.poll(max: self.configuration.maxPollRecords, timeout: .milliseconds(500))
                    try await self.handle(events)
                    self.lag.reportIfDue()
                    try await self.untilStoreAccepts("block upload") { try await self.flushDue(now: Date()) }
                }
            }
        } catch is CancellationError {}
        // SIGTERM: cut every head, then hand the offsets over and leave the group. The flush runs in a task
        // of its own so that the cancellation that ended the loop does not abort the uploads.
        try await Task { try await self.flushAll() }.value
        try? await consumer.commit()
        try await consumer.close()
        logger.info("stopped", metadata: ["stats": "\(currentStats)"])
    }

    // MARK: Events

    func handle(_ events: [ConsumerEvent]) async throws {
        var pending: [ConsumerRecord] = []
        for event in events {
            switch event {
            case .record(let r):
                pending.append(r)
            case .rebalance(.assigned):
                try await process(pending); pending = []
                state.withLock { $0.needsReload = true }
            case .rebalance(.revoked(let parts, _)):
                try await process(pending); pending = []
                dropHeads(parts.map { PartitionKey(topic: $0.topic, partition: $0.partition) })
            case .partitionEOF:
                break
            }
        }
        try await process(pending)
    }

    /// The revoked partitions' heads were never made durable: drop them; the new owner re-reads them.
    func dropHeads(_ parts: [PartitionKey]) {
        let dropped = state.withLock { s in
            var n = 0
            for p in parts { if let ps = s.partitions.removeValue(forKey: p) { n += ps.heads.count } }
            return n
        }
        if dropped > 0 {
            stats.withLock { $0.headsDroppedOnRevoke += dropped }
            logger.info("dropped un-flushed heads of revoked partitions", metadata: ["partitions": "\(parts)", "heads": "\(dropped)"])
        }
    }

    /// Decodes and appends records, skipping what a block or head already holds.
    func process(_ records: [ConsumerRecord]) async throws {
        guard !records.isEmpty else { return }
        if state.withLock({ $0.needsReload }) { try await untilStoreAccepts("reading block provenance") { try await self.reloadFromStore() } }
        let decoded: [(ConsumerRecord, SampleBatch?)] = try await worker.run {
            records.map { r in (r, try? BatchCodec.decode(r.value)) }
        }
        let now = Date()
        var delta = Stats()
        state.withLock { s in
            for (record, batch) in decoded {
                delta.recordsIn += 1
                let key = PartitionKey(topic: record.topic, partition: record.partition)
                var ps = s.partitions[key] ?? PartitionState()
                defer { s.partitions[key] = ps }
                ps.lastOffset = max(ps.lastOffset, record.offset)
                let times = batch.flatMap { b in b.sampleTimes.min().map { $0...b.sampleTimes.max()! } }
                if s.index.holds(key, record.offset, normalized: true, times: times) {
                    delta.duplicateRecords += 1
                    continue
                }
                if s.index.normalized[key]?.contains(record.offset) ?? false { delta.reusedOffsets += 1 }
                guard let batch else {
                    // BatchCodec rejected it: it can never become a block; skip it, loudly.
                    delta.undecodable += 1
                    logger.error("undecodable batch skipped", metadata: ["partition": "\(key)", "offset": "\(record.offset)"])
                    continue
                }
                let raw = batch.provenance
                let rawKey = PartitionKey(topic: raw.topic, partition: raw.partition)
                let inHead = s.partitions.values.contains { $0.heads[batch.tenant]?.holds(raw: raw) ?? false }
                    || ps.heads[batch.tenant]?.holds(raw: raw) ?? false
                if inHead || s.index.holds(rawKey, raw.offset, normalized: false, times: times) {
                    delta.duplicateBatches += 1
                    continue
                }
                if ps.firstOffset == nil {
                    ps.firstOffset = record.offset
                    ps.firstTimestampMillis = record.timestampMillis
                    ps.openedAt = now
                }
                ps.heads[batch.tenant, default: Head(tenant: batch.tenant)]
                    .append(batch, from: RecordPosition(topic: record.topic, partition: record.partition, offset: record.offset), now: now)
                delta.batchesAppended += 1
            }
        }
        stats.withLock { s in
            s.recordsIn += delta.recordsIn
            s.batchesAppended += delta.batchesAppended
            s.duplicateRecords += delta.duplicateRecords
            s.duplicateBatches += delta.duplicateBatches
            s.undecodable += delta.undecodable
            s.reusedOffsets += delta.reusedOffsets
        }
        if delta.reusedOffsets > 0 {
            logger.warning("offsets that blocks in the store already hold came back with other samples: the topic was re-created or the broker lost its log; these records are kept as new",
                           metadata: ["records": "\(delta.reusedOffsets)"])
        }
        recordsCounter.increment(by: delta.recordsIn)
        duplicatesCounter.increment(by: delta.duplicateRecords + delta.duplicateBatches)
    }

    // MARK: Store

    /// Runs `body` until the store accepts it. A store that fails after its own retries (S3 down, a full
    /// disk) must not end the process nor lose data: the stage stops consuming (it polls nothing while it
    /// waits here), keeps its heads, and tries again with backoff. Offsets were not stored, so a crash
    /// meanwhile replays the records.
    func untilStoreAccepts(_ what: String, _ body: () async throws -> Void) async throws {
        var delay = Duration.milliseconds(500)
        var failures = 0
        while true {
            do {
                try await body()
                if failures > 0 {
                    logger.notice("block store works again; consuming resumed", metadata: ["operation": "\(what)", "failed_attempts": "\(failures)"])
                    onStoreProblem(nil)
                }
                return
            } catch let error as ObjectStoreError {
                failures += 1
                storeFailuresCounter.increment()
                logger.error("block store failed; not consuming until it works again", metadata: [
                    "operation": "\(what)", "error": "\(error)", "attempt": "\(failures)", "retry_in": "\(delay)"])
                onStoreProblem("\(what) failed: \(error)")
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            }
        }
    }

    /// Reads the provenance of every block created within the horizon that is not known yet.
    func reloadFromStore() async throws {
        let cutoff = UInt64(max(0, Date().timeIntervalSince1970 * 1000 - Double(configuration.dedupHorizon.components.seconds) * 1000))
        let known = state.withLock { s -> Set<ULID> in
            s.index.forget(olderThanMillis: cutoff)
            s.needsReload = false
            return Set(s.index.blocks.keys)
        }
        var found: [(ULID, KafkaProvenance, ClosedRange<Int64>)] = []
        for tenant in try await BlockIndex.tenants(in: store) {
            let listing = try await BlockIndex.list(store, tenant: tenant, createdAfterMillis: cutoff, skipping: known)
            for m in listing.metas { found.append((m.ulid, m.kafka, m.minTime...max(m.minTime, m.maxTime))) }
        }
        state.withLock { s in for (u, p, t) in found { s.index.add(u, p, time: t) } }
        stats.withLock { $0.storeReloads += 1 }
        logger.debug("store provenance loaded", metadata: ["new_blocks": "\(found.count)", "known": "\(known.count)"])
    }

    // MARK: Cutting

    func flushDue(now: Date) async throws {
        let due = state.withLock { s in
            s.partitions.filter { _, ps in
                // Due by the cut policy; or nothing to write (only duplicates or empty batches were read),
                // so the offset can move at once.
                ps.heads.values.contains { configuration.cut.shouldCut($0, now: now) }
                    || (ps.heads.values.allSatisfy { $0.sampleCount == 0 } && ps.lastOffset > ps.durableOffset)
            }.map(\.key)
        }
        for p in due { try await flush(p) }
    }

    func flushAll() async throws {
        let all = state.withLock { Array($0.partitions.keys) }
        for p in all { try await flush(p) }
    }

    /// Writes every head of the partition as a block (tables, then meta.json), then stores the offset.
    func flush(_ partition: PartitionKey) async throws {
        guard let ps = state.withLock({ $0.partitions[partition] }) else { return }
        let start = ContinuousClock.now
        let nowMillis = UInt64(Date().timeIntervalSince1970 * 1000)
        for (tenant, head) in ps.heads.sorted(by: { $0.key < $1.key }) where head.sampleCount > 0 {
            // Tempo-style deterministic ID: a retry after a crash before meta.json rewrites the same folder.
            let millis = ps.firstTimestampMillis.map { UInt64(max(0, $0)) } ?? nowMillis
            let ulid = ULID.deterministic(timestampMillis: millis,
                                          seed: "\(tenant)|\(partition.topic)|\(partition.partition)|\(ps.firstOffset ?? -1)")
            let writer = self.writer
            let block = try await worker.run { try writer.encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: [])) }
            try await BlockWriter.upload(block, to: store)
            state.withLock { $0.index.add(ulid, block.meta.kafka, time: block.meta.minTime...max(block.meta.minTime, block.meta.maxTime)) }
            stats.withLock { s in
                s.blocksWritten += 1
                s.samplesWritten += Int(block.meta.stats.samples)
                s.bytesWritten += block.totalBytes
            }
            blocksCounter.increment()
            blockBytesCounter.increment(by: block.totalBytes)
            logger.info("block written", metadata: ["tenant": "\(tenant)", "block": "\(ulid)", "samples": "\(block.meta.stats.samples)",
                                                    "bytes": "\(block.totalBytes)", "partition": "\(partition)"])
        }
        // Every block holding this partition's records is durable: the offsets may move.
        let stillOwned = state.withLock { s -> Bool in
            guard var current = s.partitions[partition] else { return false }
            current.heads = [:]
            current.firstOffset = nil
            current.firstTimestampMillis = nil
            current.openedAt = nil
            current.durableOffset = ps.lastOffset
            s.partitions[partition] = current
            return true
        }
        if stillOwned && ps.lastOffset >= 0 {
            do {
                try consumer.markDurable(topic: partition.topic, partition: partition.partition, throughOffset: ps.lastOffset)
            } catch {
                logger.info("offset not stored (partition moved)", metadata: ["partition": "\(partition)", "error": "\(error)"])
            }
        }
        flushTimer.recordInterval(since: start)
    }
}

/// Background maintenance: compaction, deletion of superseded blocks, partial-folder cleanup and
/// retention, every `interval`, for the tenants whose lease this instance holds.
public struct CompactionService: Service {
    public let compactor: Compactor
    public let interval: Duration

    public init(compactor: Compactor, interval: Duration = .seconds(60)) {
        self.compactor = compactor
        self.interval = interval
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    do {
                        let r = try await compactor.passAll()
                        if r != Compactor.PassResult() {
                            compactor.logger.info("maintenance pass", metadata: ["compacted": "\(r.compacted)", "deleted": "\(r.deleted)",
                                                                                "partial_removed": "\(r.partialRemoved)", "expired": "\(r.expired)"])
                        }
                    } catch is CancellationError {
                        throw CancellationError()
                    } catch {
                        compactor.logger.error("maintenance pass failed", metadata: ["error": "\(error)"])
                    }
                    try await Task.sleep(for: interval)
                }
            }
        } catch is CancellationError {}
    }
}
