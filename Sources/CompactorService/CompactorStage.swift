import Blocks
import Foundation
import KafkaClient
import KafkaService
import KilnFoundation
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
///   so the new owner reads those records again;
/// - offsets are compared only within one incarnation of a topic (its topic ID, read with DescribeTopics):
///   a topic deleted and created again restarts its offsets at 0, and its records are new, not duplicates.
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

        public init(
            normalizedTopic: String, groupID: String = "kiln-compactor", cut: CutPolicy = CutPolicy(),
            dedupHorizon: Duration = .seconds(6 * 3600), maxPollRecords: Int = 256
        ) {
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
        /// Partitions whose topic was found recreated (a new topic ID).
        public var incarnationChanges = 0
        /// Offsets the broker skipped within a partition. The normalised topic is written without
        /// transactions and never compacted, so a gap means records the broker acknowledged are gone.
        public var offsetGapRecords = 0
        /// Heads not written because another compactor had committed a block for the same first record
        /// (`rewind`): the partition was read again.
        public var blockConflicts = 0
    }

    /// The heads of one normalized partition and how far it was read.
    struct PartitionState {
        var heads: [String: Head] = [:]
        /// Last offset read (appended or skipped); stored once everything up to it is in blocks.
        var lastOffset: Int64 = -1
        /// Last offset marked durable.
        var durableOffset: Int64 = -1
        /// Kafka timestamp of each tenant head's first record, for deterministic block IDs.
        var firstTimestampMillis: [String: Int64] = [:]
        var openedAt: Date?
        /// The incarnation (topic ID) of the records read; nil when unknown.
        var topicID: String?
    }

    /// What the store says blocks hold, per block (so old blocks can be forgotten past the horizon).
    struct StoreIndex {
        var blocks: [ULID: KafkaProvenance] = [:]
        var raw: [PartitionKey: OffsetRanges] = [:]
        var normalized: [PartitionKey: OffsetRanges] = [:]

        mutating func add(_ ulid: ULID, _ p: KafkaProvenance) {
            blocks[ulid] = p
            for (k, v) in p.rawByPartition { raw[k, default: OffsetRanges()].formUnion(v) }
            for (k, v) in p.normalizedByPartition { normalized[k, default: OffsetRanges()].formUnion(v) }
        }

        mutating func forget(olderThanMillis cutoff: UInt64) {
            let old = blocks.keys.filter { $0.timestampMillis < cutoff }
            guard !old.isEmpty else { return }
            for u in old { blocks[u] = nil }
            raw = [:]
            normalized = [:]
            let keep = blocks
            blocks = [:]
            for (u, p) in keep { add(u, p) }
        }
    }

    struct State {
        var partitions: [PartitionKey: PartitionState] = [:]
        var index = StoreIndex()
        var needsReload = true
        /// Current topic ID per topic name (normalized and raw topics), refreshed on start, on assignment,
        /// and when a partition's offsets go backwards.
        var topicIDs: [String: String] = [:]
        /// Every topic name asked about (also those without an ID), so a missing ID is not asked for again
        /// on every poll.
        var describedTopics: Set<String> = []
    }

    private let configuration: Configuration
    private let consumer: KafkaConsumer
    /// For topic IDs; nil if it could not be created (then incarnations are unknown, as in older blocks).
    private let admin: KafkaAdmin?
    private let store: any ObjectStore
    private let writer: BlockWriter
    private let worker = BlockingWork(label: "kiln.compactor.worker")
    private let state = Mutex(State())
    private let stats = Mutex(Stats())
    private let logger: Logger
    private let onReady: @Sendable () -> Void
    private let lag: LagReporter
    private let onStoreProblem: @Sendable (_ problem: String?) -> Void

    private let recordsCounter = Counter(label: "kiln_compactor_records_total")
    private let duplicatesCounter = Counter(label: "kiln_compactor_duplicates_total")
    private let offsetGapCounter = Counter(label: "kiln_compactor_offset_gap_records_total")
    private let blocksCounter = Counter(label: "kiln_compactor_blocks_written_total")
    private let blockBytesCounter = Counter(label: "kiln_compactor_block_bytes_total")
    private let flushTimer = Metrics.Timer(label: "kiln_compactor_flush_seconds")
    private let storeFailuresCounter = Counter(label: "kiln_compactor_store_failures_total")
    private let blockConflictsCounter = Counter(label: "kiln_compactor_block_conflicts_total")

    public init(
        configuration: Configuration, kafka: KafkaConfig, store: any ObjectStore, writer: BlockWriter = BlockWriter(),
        logger: Logger, onReady: @escaping @Sendable () -> Void = {},
        onStoreProblem: @escaping @Sendable (_ problem: String?) -> Void = { _ in }
    ) throws {
        self.configuration = configuration
        self.store = store
        self.writer = writer
        self.logger = logger
        self.onReady = onReady
        self.onStoreProblem = onStoreProblem
        var consumerConfig = ConsumerConfig(kafka: kafka, groupID: configuration.groupID)
        consumerConfig.onRebalance = { event in logger.info("rebalance", metadata: ["event": "\(event)"]) }
        consumer = try KafkaConsumer(config: consumerConfig, logger: logger)
        admin = try? KafkaAdmin(config: kafka, logger: logger)
        lag = LagReporter(consumer: consumer, group: configuration.groupID)
    }

    public var currentStats: Stats { stats.withLock { $0 } }

    public func run() async throws {
        // A store that fails at start (S3 throttling, an endpoint still coming up) is waited for, as later;
        // SIGTERM meanwhile ends the stage before it consumed anything.
        do {
            try await cancelWhenGracefulShutdown {
                try await self.untilStoreAccepts("reading block provenance") { try await self.reloadFromStore() }
            }
        } catch is CancellationError { return }
        try await consumer.subscribe([configuration.normalizedTopic])
        logger.info(
            "consuming",
            metadata: ["topic": "\(configuration.normalizedTopic)", "group": "\(configuration.groupID)", "store": "\(store.location)"])
        onReady()
        do {
            try await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    let events = try await self.consumer.poll(max: self.configuration.maxPollRecords, timeout: .milliseconds(500))
                    try await self.handle(events)
                    self.lag.reportIfDue(after: events)
                    try await self.untilStoreAccepts("block upload") { try await self.flushDue(now: Date()) }
                }
            }
        } catch is CancellationError {}
        // SIGTERM: cut every head, then hand the offsets over and leave the group. The flush runs in a task
        // of its own so that the cancellation that ended the loop does not abort the uploads.
        try await Task { try await self.flushAll() }.value
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

    // MARK: Events

    func handle(_ events: [ConsumerEvent]) async throws {
        var pending: [ConsumerRecord] = []
        for event in events {
            switch event {
            case .record(let r):
                pending.append(r)
            case .rebalance(.assigned):
                try await process(pending)
                pending = []
                state.withLock { $0.needsReload = true }
            case .rebalance(.revoked(let parts, _)):
                try await process(pending)
                pending = []
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
        if state.withLock({ $0.needsReload }) {
            try await untilStoreAccepts("reading block provenance") { try await self.reloadFromStore() }
        }
        let decoded: [(ConsumerRecord, SampleBatch?)] = await worker.run {
            records.map { r in (r, try? BatchCodec.decode(r.value)) }
        }
        try await checkIncarnations(decoded)
        let now = Date()
        var delta = Stats()
        state.withLock { s in
            for (record, batch) in decoded {
                delta.recordsIn += 1
                let key = PartitionKey(topic: record.topic, partition: record.partition)
                // Moved out and back, not copied: a copy would share the heads' buffers with the dictionary,
                // so the append below would copy the whole head (every sample so far) for every record.
                var ps = s.partitions.removeValue(forKey: key) ?? PartitionState()
                defer { s.partitions[key] = ps }
                if ps.topicID == nil { ps.topicID = s.topicIDs[record.topic] }
                let position = RecordPosition(topic: record.topic, partition: record.partition, offset: record.offset, topicID: ps.topicID)
                if ps.lastOffset >= 0 && record.offset > ps.lastOffset + 1 {
                    let missing = record.offset - ps.lastOffset - 1
                    delta.offsetGapRecords += Int(missing)
                    logger.error(
                        "offset gap: the broker returned no records for offsets \(ps.lastOffset + 1)...\(record.offset - 1)",
                        metadata: ["partition": "\(key)", "records": "\(missing)"])
                }
                ps.lastOffset = max(ps.lastOffset, record.offset)
                if s.index.normalized.holds(position.key, offset: record.offset) {
                    delta.duplicateRecords += 1
                    continue
                }
                guard let batch else {
                    // BatchCodec rejected it: it can never become a block; skip it, loudly.
                    delta.undecodable += 1
                    logger.error("undecodable batch skipped", metadata: ["partition": "\(key)", "offset": "\(record.offset)"])
                    continue
                }
                let raw = batch.provenance
                let rawTopicID = s.topicIDs[raw.topic]
                let rawKey = PartitionKey(topic: raw.topic, partition: raw.partition, topicID: rawTopicID)
                let inHead =
                    s.partitions.values.contains { $0.heads[batch.tenant]?.holds(raw: raw, rawTopicID: rawTopicID) ?? false }
                    || ps.heads[batch.tenant]?.holds(raw: raw, rawTopicID: rawTopicID) ?? false
                if inHead || s.index.raw.holds(rawKey, offset: raw.offset) {
                    delta.duplicateBatches += 1
                    continue
                }
                if ps.openedAt == nil { ps.openedAt = now }
                if ps.firstTimestampMillis[batch.tenant] == nil { ps.firstTimestampMillis[batch.tenant] = record.timestampMillis }
                ps.heads[batch.tenant, default: Head(tenant: batch.tenant)]
                    .append(batch, from: position, rawTopicID: rawTopicID, now: now)
                delta.batchesAppended += 1
            }
        }
        stats.withLock { s in
            s.recordsIn += delta.recordsIn
            s.batchesAppended += delta.batchesAppended
            s.duplicateRecords += delta.duplicateRecords
            s.duplicateBatches += delta.duplicateBatches
            s.undecodable += delta.undecodable
            s.offsetGapRecords += delta.offsetGapRecords
        }
        recordsCounter.increment(by: delta.recordsIn)
        offsetGapCounter.increment(by: delta.offsetGapRecords)
        duplicatesCounter.increment(by: delta.duplicateRecords + delta.duplicateBatches)
    }

    // MARK: Topic incarnations

    /// Reads the current topic IDs of the normalized topic and of `rawTopics` (plus those already known).
    func refreshTopicIDs(rawTopics: Set<String> = []) async {
        guard let admin else { return }
        let names = state.withLock { s in s.describedTopics.union(rawTopics).union([configuration.normalizedTopic]) }
        do {
            let ids = try await admin.topicIDs(names.sorted())
            state.withLock { s in
                for name in names { s.topicIDs[name] = ids[name] }
                s.describedTopics.formUnion(names)
            }
        } catch {
            state.withLock { $0.describedTopics.formUnion(names) }
            logger.warning("topic IDs not read; offsets are compared without incarnations", metadata: ["error": "\(error)"])
        }
    }

    /// Before records are appended: learns the IDs of raw topics not seen yet, and when a partition's offsets
    /// go backwards (a rebalance seek, a redelivery, or a topic deleted and created again) re-reads the IDs.
    /// A partition whose topic now has another ID was recreated: its heads (records of the old topic, which
    /// are gone from Kafka) are written as blocks without storing an offset, and its offsets start afresh.
    func checkIncarnations(_ decoded: [(ConsumerRecord, SampleBatch?)]) async throws {
        let rawTopics = Set(decoded.compactMap { $0.1?.provenance.topic })
        let (unknownRaw, regressed) = state.withLock { s -> (Bool, Bool) in
            let unknown = !rawTopics.isSubset(of: s.describedTopics)
            var lowest: [PartitionKey: Int64] = [:]
            for (r, _) in decoded {
                let k = PartitionKey(topic: r.topic, partition: r.partition)
                lowest[k] = min(lowest[k] ?? .max, r.offset)
            }
            let back = lowest.contains { k, o in (s.partitions[k]?.lastOffset ?? -1) >= o }
            return (unknown, back)
        }
        guard unknownRaw || regressed else { return }
        await refreshTopicIDs(rawTopics: rawTopics)
        let recreated = state.withLock { s in
            s.partitions.filter { k, ps in
                guard let old = ps.topicID, let now = s.topicIDs[k.topic] else { return false }
                return old != now
            }.map(\.key)
        }
        for p in recreated {
            logger.warning("topic recreated: its offsets start again", metadata: ["partition": "\(p)"])
            try await flush(p, storeOffset: false)
            state.withLock { s in
                s.partitions[p] = PartitionState(topicID: s.topicIDs[p.topic])
            }
            stats.withLock { $0.incarnationChanges += 1 }
        }
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
                    logger.notice(
                        "block store works again; consuming resumed", metadata: ["operation": "\(what)", "failed_attempts": "\(failures)"])
                    onStoreProblem(nil)
                }
                return
            } catch let error as ObjectStoreError {
                failures += 1
                storeFailuresCounter.increment()
                logger.error(
                    "block store failed; not consuming until it works again",
                    metadata: [
                        "operation": "\(what)", "error": "\(error)", "attempt": "\(failures)", "retry_in": "\(delay)",
                    ])
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
        var found: [(ULID, KafkaProvenance)] = []
        for tenant in try await BlockIndex.tenants(in: store) {
            let listing = try await BlockIndex.list(store, tenant: tenant, createdAfterMillis: cutoff, skipping: known)
            for m in listing.metas { found.append((m.ulid, m.kafka)) }
        }
        state.withLock { s in for (u, p) in found { s.index.add(u, p) } }
        await refreshTopicIDs()
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

    /// Writes every head of the partition as a block (tables, then meta.json), then stores the offset
    /// (unless `storeOffset` is false: the heads belong to a topic that was deleted).
    func flush(_ partition: PartitionKey, storeOffset: Bool = true) async throws {
        guard let ps = state.withLock({ $0.partitions[partition] }) else { return }
        let start = ContinuousClock.now
        let nowMillis = UInt64(Date().timeIntervalSince1970 * 1000)
        for (tenant, head) in ps.heads.sorted(by: { $0.key < $1.key }) where head.sampleCount > 0 {
            // Tempo-style deterministic ID: a retry after a crash before meta.json rewrites the same folder.
            // Seeded by this tenant's first record in the head, which every block holding it lists: so a
            // head rebuilt after a crash gets an existing block's ID only if that block never committed.
            // (The partition's first record would not do: after a crash between two tenants' uploads it may
            // belong to the tenant whose block is missing, while the other's new head holds other records.)
            let ulid = Self.levelZeroULID(
                tenant: tenant, partition: partition, firstOffset: head.firstNormalizedOffset ?? -1, topicID: ps.topicID,
                timestampMillis: ps.firstTimestampMillis[tenant].map { UInt64(max(0, $0)) } ?? nowMillis)
            let writer = self.writer
            let block = try await worker.run {
                try writer.encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: []))
            }
            do {
                try await BlockWriter.upload(block, to: store)
            } catch let conflict as BlockConflict {
                try await rewind(partition, heads: ps.heads, after: conflict)
                return
            }
            state.withLock { $0.index.add(ulid, block.meta.kafka) }
            stats.withLock { s in
                s.blocksWritten += 1
                s.samplesWritten += Int(block.meta.stats.samples)
                s.bytesWritten += block.totalBytes
            }
            blocksCounter.increment()
            blockBytesCounter.increment(by: block.totalBytes)
            logger.info(
                "block written",
                metadata: [
                    "tenant": "\(tenant)", "block": "\(ulid)", "samples": "\(block.meta.stats.samples)",
                    "bytes": "\(block.totalBytes)", "partition": "\(partition)",
                ])
        }
        // Every block holding this partition's records is durable: the offsets may move.
        let stillOwned = state.withLock { s -> Bool in
            guard var current = s.partitions[partition] else { return false }
            current.heads = [:]
            current.firstTimestampMillis = [:]
            current.openedAt = nil
            current.durableOffset = ps.lastOffset
            s.partitions[partition] = current
            return true
        }
        if storeOffset && stillOwned && ps.lastOffset >= 0 {
            do {
                try consumer.markDurable(topic: partition.topic, partition: partition.partition, throughOffset: ps.lastOffset)
            } catch {
                logger.info("offset not stored (partition moved)", metadata: ["partition": "\(partition)", "error": "\(error)"])
            }
        }
        flushTimer.record(duration: .now - start)
    }

    /// A level-0 block's ID: from its tenant's first record in the head (partition, offset, the topic's
    /// incarnation) and that record's Kafka timestamp.
    static func levelZeroULID(
        tenant: String, partition: PartitionKey, firstOffset: Int64, topicID: String?, timestampMillis: UInt64
    ) -> ULID {
        ULID.deterministic(
            timestampMillis: timestampMillis,
            seed: "\(tenant)|\(partition.topic)|\(partition.partition)|\(firstOffset)" + (topicID.map { "|" + $0 } ?? ""))
    }

    /// Recovers from a level-0 block that another writer committed under this head's ID: a compactor that
    /// held the partition before (paused past its session, or not yet told of the rebalance) cut a head
    /// starting at the same record but holding other records. Its block is durable, so this one is not
    /// written: the partition's heads are dropped, the store is read again (so what that block holds is
    /// skipped as duplicates), and the partition is read again from its heads' first record; the records
    /// left form a head with another first record, hence another ID. Offsets were not stored past the heads,
    /// so nothing is lost; a partition no longer assigned here cannot be sought and waits for its revoke.
    func rewind(_ partition: PartitionKey, heads: [String: Head], after conflict: BlockConflict) async throws {
        let from = heads.values.compactMap(\.firstNormalizedOffset).min()
        state.withLock { s in
            s.partitions[partition] = PartitionState(
                durableOffset: s.partitions[partition]?.durableOffset ?? -1, topicID: s.partitions[partition]?.topicID)
        }
        stats.withLock { $0.blockConflicts += 1 }
        blockConflictsCounter.increment()
        logger.warning(
            "another compactor committed a block for this partition's records; reading the partition again",
            metadata: ["partition": "\(partition)", "conflict": "\(conflict)", "from_offset": "\(from.map(String.init) ?? "none")"])
        try await untilStoreAccepts("reading block provenance") { try await self.reloadFromStore() }
        guard let from else { return }
        do {
            try await consumer.seek(topic: partition.topic, partition: partition.partition, offset: from)
        } catch {
            logger.info("partition not read again (no longer assigned here)", metadata: ["partition": "\(partition)", "error": "\(error)"])
        }
    }
}

/// Background maintenance: compaction, downsampling, deletion of superseded blocks, partial-folder cleanup
/// and retention, every `interval`, for the tenants whose lease this instance holds.
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
                        let started = ContinuousClock.now
                        let r = try await compactor.passAll()
                        Metrics.Timer(label: "kiln_compactor_maintenance_seconds").record(duration: .now - started)
                        Gauge(label: "kiln_compactor_compaction_backlog_blocks").record(r.backlogBlocks)
                        if r != Compactor.PassResult() {
                            compactor.logger.info(
                                "maintenance pass",
                                metadata: [
                                    "compacted": "\(r.compacted)", "deleted": "\(r.deleted)",
                                    "partial_removed": "\(r.partialRemoved)", "strays_removed": "\(r.straysRemoved)",
                                    "expired": "\(r.expired)",
                                    "downsampled": "\(r.downsampled)",
                                ])
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
