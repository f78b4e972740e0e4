import CRdKafka
import Dispatch
import Foundation
import KilnFoundation
import Logging
import Synchronization

/// Consumer state shared with the rebalance callback.
final class ConsumerShared: Sendable {
    let onRebalance: (@Sendable (RebalanceEvent) -> Void)?
    /// Rebalance events raised inside the current `consumer_poll` call, handed to that poll's caller.
    /// Bounded: callbacks only run inside a poll the caller asked for, and each poll drains this.
    let pending = Mutex<[ConsumerEvent]>([])

    init(onRebalance: (@Sendable (RebalanceEvent) -> Void)?) { self.onRebalance = onRebalance }

    func takePending() -> [ConsumerEvent] {
        pending.withLock { p in
            defer { p.removeAll() }
            return p
        }
    }

    /// The rebalance callback: cooperative-sticky hands over only the delta, applied with the incremental
    /// APIs. On revoke the caller's handler runs first (so it can mark what it flushed durable), stored
    /// offsets are committed, and only then are the partitions given up.
    static let rebalanceCallback:
        @convention(c) (
            OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?
        ) -> Void = { rk, err, partitions, opaque in
            guard let rk, let opaque else { return }
            let ctx = ClientContext.from(opaque)
            guard let shared = ctx.consumer else { return }
            let parts = partitions.map { Native.readList($0).map(\.topicPartition) } ?? []
            let cooperative = rd_kafka_rebalance_protocol(rk).map { String(cString: $0) } == "COOPERATIVE"
            switch err {
            case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
                if cooperative {
                    if let error = rd_kafka_incremental_assign(rk, partitions) {
                        ctx.logger.error(
                            "incremental assign failed: \(KafkaError.consume(error, kind: .consumerFailed, context: "assign"))")
                    }
                } else {
                    rd_kafka_assign(rk, partitions)
                }
                ctx.logger.info("partitions assigned", metadata: ["partitions": "\(parts)"])
                shared.onRebalance?(.assigned(parts))
                shared.pending.withLock { $0.append(.rebalance(.assigned(parts))) }
            case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
                let lost = rd_kafka_assignment_lost(rk) != 0
                shared.onRebalance?(.revoked(parts, lost: lost))
                if !lost {
                    let c = rd_kafka_commit(rk, nil, 0)
                    if c != RD_KAFKA_RESP_ERR_NO_ERROR && c != RD_KAFKA_RESP_ERR__NO_OFFSET {
                        ctx.logger.warning("commit on revoke failed: \(KafkaError.text(c))")
                    }
                }
                if cooperative {
                    if let error = rd_kafka_incremental_unassign(rk, partitions) {
                        ctx.logger.error(
                            "incremental unassign failed: \(KafkaError.consume(error, kind: .consumerFailed, context: "unassign"))")
                    }
                } else {
                    rd_kafka_assign(rk, nil)
                }
                ctx.logger.info("partitions revoked", metadata: ["partitions": "\(parts)", "lost": "\(lost)"])
                shared.pending.withLock { $0.append(.rebalance(.revoked(parts, lost: lost))) }
            default:
                ctx.logger.error("rebalance failed: \(KafkaError.text(err))")
                rd_kafka_assign(rk, nil)
            }
        }
}

/// Cancels a blocking poll loop when its task is cancelled.
private final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .relaxed) }
    var isSet: Bool { flag.load(ordering: .relaxed) }
}

/// A Kafka consumer in a group (cooperative-sticky) or on manually assigned partitions.
///
/// Records come from `poll(max:timeout:)`, `next()` or `events`, served by blocking `rd_kafka_consumer_poll`
/// calls on this consumer's own serial queue; librdkafka's prefetch queue is the only buffer. Offsets are
/// stored only when the caller marks records durable, and committed in the background (and on revoke and
/// by `commit()`).
public final class KafkaConsumer: Sendable {
    public let config: ConsumerConfig
    private let handle: KafkaHandle
    private let context: ClientContext
    private let shared: ConsumerShared
    /// `consumer_poll` and `consumer_close` run here, one at a time.
    private let pollQueue: BlockingWork
    /// Other blocking calls (commit, committed, seek, offsets_for_times, metadata) run here.
    private let blockingQueue: BlockingWork
    private let closed = Atomic<Bool>(false)
    /// Set once `subscribe` succeeded: topic errors are then transient (see `convert`).
    private let subscribed = Atomic<Bool>(false)
    /// Events a poll fetched beyond what `next()` returned, and an error to report after the events
    /// fetched with it. Both hold at most one poll's worth.
    private let carried = Mutex<(events: [ConsumerEvent], error: KafkaError?)>(([], nil))

    public init(config: ConsumerConfig, logger: Logger = Logger(label: "kiln.kafka.consumer")) throws {
        self.config = config
        let shared = ConsumerShared(onRebalance: config.onRebalance)
        let context = ClientContext(logger: logger, bootstrapServers: config.kafka.bootstrapServers, consumer: shared)
        self.shared = shared
        self.context = context
        handle = try Native.makeHandle(type: RD_KAFKA_CONSUMER, properties: config.librdkafkaProperties(), context: context) { conf in
            rd_kafka_conf_set_rebalance_cb(conf, ConsumerShared.rebalanceCallback)
        }
        // Errors and other main-queue events are then served by consumer_poll.
        rd_kafka_poll_set_consumer(handle.raw)
        let name = String(cString: rd_kafka_name(handle.raw))
        pollQueue = BlockingWork(label: "kiln.kafka.\(name).poll")
        blockingQueue = BlockingWork(label: "kiln.kafka.\(name).blocking")
    }

    deinit {
        let handle = handle
        let context = context
        let wasClosed = closed.load(ordering: .acquiring)
        HandleReaper.destroy {
            if !wasClosed { rd_kafka_consumer_close(handle.raw) }  // leave the group instead of timing out
            rd_kafka_destroy(handle.raw)
            withExtendedLifetime(context) {}
        }
    }

    private func ensureOpen() throws {
        if closed.load(ordering: .relaxed) { throw KafkaError(.closed, "consumer is closed") }
    }

    // MARK: subscription

    /// Joins the group for `topics`. With `requireExisting`, first checks (within `timeout`) that every
    /// topic exists and throws `.unknownTopic` naming the missing ones.
    public func subscribe(_ topics: [String], requireExisting: Bool = true, timeout: Duration = .seconds(10)) async throws {
        try ensureOpen()
        guard config.groupID != nil else {
            throw KafkaError(.invalidConfiguration, "subscribe needs a consumer group id (ConsumerConfig.groupID)")
        }
        if requireExisting {
            let known = Set(
                try await blockingQueue.run { [self] in
                    try Native.metadata(handle, context: context, timeout: timeout).map(\.name)
                })
            let missing = topics.filter { !known.contains($0) }
            if !missing.isEmpty {
                throw KafkaError(
                    .unknownTopic, code: RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue,
                    "unknown Kafka topic(s) \(missing.joined(separator: ", ")) on \(config.kafka.bootstrapServers); "
                        + "create them first (kiln topics create)")
            }
        }
        let list = Native.makeList(topics.map { TopicPartitionOffset($0, -1, offset: KafkaOffset.invalid) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_subscribe(handle.raw, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.consumerFailed, code: err.rawValue, "subscribe to \(topics) failed: \(KafkaError.text(err))")
        }
        subscribed.store(true, ordering: .relaxed)
    }

    /// Reads the given partitions from the given offsets (or `KafkaOffset` constants), outside any group
    /// rebalancing. Replaces the current assignment.
    public func assign(_ partitions: [TopicPartitionOffset]) throws {
        try ensureOpen()
        let list = Native.makeList(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_assign(handle.raw, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.consumerFailed, code: err.rawValue, "assign failed: \(KafkaError.text(err))")
        }
    }

    /// The partitions currently assigned to this consumer.
    public func assignment() throws -> [TopicPartition] {
        try ensureOpen()
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        let err = rd_kafka_assignment(handle.raw, &list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let list else {
            throw KafkaError(.consumerFailed, code: err.rawValue, "assignment failed: \(KafkaError.text(err))")
        }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return Native.readList(list).map(\.topicPartition)
    }

    // MARK: reading

    /// Returns up to `max` records (plus any rebalance/EOF events that happened meanwhile) as soon as at
    /// least one event is ready, or an empty array after `timeout`. Also empty once closed or cancelled.
    public func poll(max: Int = 500, timeout: Duration) async throws -> [ConsumerEvent] {
        let carriedEvents = try takeCarried()
        if !carriedEvents.isEmpty { return carriedEvents }
        return try await pollOnQueue(max: max, timeout: timeout)
    }

    /// The next event; waits as long as it takes. Nil once the consumer is closed.
    public func next() async throws -> ConsumerEvent? {
        while !closed.load(ordering: .relaxed) && !Task.isCancelled {
            var events = try takeCarried()
            if events.isEmpty { events = try await pollOnQueue(max: 1, timeout: nil) }
            guard !events.isEmpty else { continue }
            let first = events.removeFirst()
            if !events.isEmpty { carried.withLock { $0.events = events + $0.events } }
            return first
        }
        return nil
    }

    /// Every event until the consumer is closed (or the iterating task is cancelled).
    public var events: Events { Events(consumer: self) }

    public struct Events: AsyncSequence, Sendable {
        public typealias Element = ConsumerEvent
        let consumer: KafkaConsumer
        public struct AsyncIterator: AsyncIteratorProtocol {
            let consumer: KafkaConsumer
            public mutating func next() async throws -> ConsumerEvent? { try await consumer.next() }
        }
        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: consumer) }
    }

    private func takeCarried() throws -> [ConsumerEvent] {
        let (events, error) = carried.withLock { c in
            defer { c = ([], c.events.isEmpty ? nil : c.error) }
            return c.events.isEmpty ? ([], c.error) : (c.events, nil)
        }
        if let error { throw error }
        return events
    }

    private func pollOnQueue(max: Int, timeout: Duration?) async throws -> [ConsumerEvent] {
        let cancel = CancelFlag()
        return try await withTaskCancellationHandler {
            try await pollQueue.run { [self] in try pollBlocking(max: max, timeout: timeout, cancel: cancel) }
        } onCancel: {
            cancel.set()
        }
    }

    /// Runs on `pollQueue`. Waits in 100 ms slices (so close and cancellation are noticed), then, once
    /// something arrived, takes what else is ready without waiting.
    private func pollBlocking(max: Int, timeout: Duration?, cancel: CancelFlag) throws -> [ConsumerEvent] {
        var out: [ConsumerEvent] = []
        let clock = ContinuousClock()
        let deadline = timeout.map { clock.now + $0 }
        while !closed.load(ordering: .relaxed) && !cancel.isSet {
            var waitMs: Int32 = out.isEmpty ? 100 : 0
            if let deadline, out.isEmpty {
                waitMs = Int32(Swift.max(0, Swift.min(100, (deadline - clock.now).milliseconds)))
            }
            let message = rd_kafka_consumer_poll(handle.raw, waitMs)
            out += shared.takePending()
            if let message {
                defer { rd_kafka_message_destroy(message) }
                do {
                    if let event = try convert(message) { out.append(event) }
                } catch let error as KafkaError {
                    if out.isEmpty { throw error }
                    carried.withLock { $0.error = error }  // report after the events fetched with it
                    return out
                }
            } else if !out.isEmpty {
                return out
            }
            if out.count >= max { return out }
            if let deadline, clock.now >= deadline { return out }
        }
        return out + shared.takePending()
    }

    private func convert(_ message: UnsafeMutablePointer<rd_kafka_message_t>) throws -> ConsumerEvent? {
        let m = message.pointee
        let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        switch m.err {
        case RD_KAFKA_RESP_ERR_NO_ERROR:
            let value = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
            let key = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) }
            var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
            let ts = rd_kafka_message_timestamp(message, &type)
            return .record(
                ConsumerRecord(
                    topic: topic, partition: m.partition, offset: m.offset, key: key, value: value,
                    headers: Self.headers(message),
                    timestampMillis: type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : ts))
        case RD_KAFKA_RESP_ERR__PARTITION_EOF:
            return .partitionEOF(TopicPartition(topic, m.partition), nextOffset: m.offset)
        default:
            let text = rd_kafka_message_errstr(message).map { String(cString: $0) } ?? KafkaError.text(m.err)
            var fatal = [CChar](repeating: 0, count: 512)
            if rd_kafka_fatal_error(handle.raw, &fatal, fatal.count) != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(.fatal, code: m.err.rawValue, "consumer fatal error: \(Native.string(fatal))")
            }
            let unknown =
                m.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || m.err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC
                || m.err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION
            if unknown && subscribed.load(ordering: .relaxed) {
                // A subscribed topic vanished under a running group member (deleted, or a broker that lost
                // its log). librdkafka keeps the subscription and assigns the topic again once it exists,
                // so a long-running stage waits instead of dying; subscribe() already refused topics that
                // never existed.
                context.logger.error(
                    "consumer cannot read topic \(topic.isEmpty ? "?" : topic): \(text); waiting for it to exist again",
                    metadata: ["partition": "\(m.partition)"])
                return nil
            }
            if unknown || m.err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED {
                throw KafkaError(.unknownTopic, code: m.err.rawValue, "consumer cannot read topic \(topic.isEmpty ? "?" : topic): \(text)")
            }
            // Transient (broker down, leader change): librdkafka retries; say so and carry on.
            context.logger.warning("consumer error: \(text)", metadata: ["topic": "\(topic)", "partition": "\(m.partition)"])
            return nil
        }
    }

    private static func headers(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> [KafkaHeader] {
        var hdrs: OpaquePointer?
        guard rd_kafka_message_headers(message, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs else { return [] }
        var out: [KafkaHeader] = []
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(hdrs, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
            out.append(KafkaHeader(name.map { String(cString: $0) } ?? "", bytes))
            index += 1
        }
        return out
    }

    // MARK: offsets

    /// Marks `record` durable downstream: its offset + 1 is stored and committed with the next commit.
    public func markDurable(_ record: ConsumerRecord) throws {
        try storeOffset(topic: record.topic, partition: record.partition, offset: record.offset + 1)
    }

    /// Marks every record of the partition up to and including `throughOffset` durable.
    public func markDurable(topic: String, partition: Int32, throughOffset: Int64) throws {
        try storeOffset(topic: topic, partition: partition, offset: throughOffset + 1)
    }

    /// Stores `offset` (Kafka's meaning: the next record to read) for the next commit. Only for partitions
    /// this consumer owns; call it from `onRebalance` on revoke to save what was flushed.
    public func storeOffset(topic: String, partition: Int32, offset: Int64) throws {
        let list = Native.makeList([TopicPartitionOffset(topic, partition, offset: offset)])
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_offsets_store(handle.raw, list)
        let perPartition = Native.firstError(Native.readList(list))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR || perPartition != nil {
            let text = perPartition?.1 ?? KafkaError.text(err)
            throw KafkaError(
                .consumerFailed, code: (perPartition?.0.err ?? err).rawValue,
                "could not store offset \(offset) for \(topic)[\(partition)]: \(text) (is the partition assigned to this consumer?)")
        }
    }

    /// Commits the stored offsets now and waits for the broker's answer.
    public func commit() async throws {
        try ensureOpen()
        try await blockingQueue.run { [self] in
            let err = rd_kafka_commit(handle.raw, nil, 0)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET {
                throw KafkaError(.consumerFailed, code: err.rawValue, "commit failed: \(KafkaError.text(err))\(context.lastErrorSuffix)")
            }
        }
    }

    /// The group's committed offsets (`KafkaOffset.invalid` where nothing is committed).
    public func committed(_ partitions: [TopicPartition], timeout: Duration = .seconds(10)) async throws -> [TopicPartitionOffset] {
        try ensureOpen()
        return try await blockingQueue.run { [self] in
            let list = Native.makeList(partitions.map { TopicPartitionOffset($0.topic, $0.partition, offset: KafkaOffset.invalid) })
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let err = rd_kafka_committed(handle.raw, list, Int32(clamping: timeout.milliseconds))
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(
                    err == RD_KAFKA_RESP_ERR__TIMED_OUT ? .timedOut : .consumerFailed, code: err.rawValue,
                    "reading committed offsets failed: \(KafkaError.text(err))\(context.lastErrorSuffix)")
            }
            return Native.readList(list).map {
                TopicPartitionOffset($0.topicPartition.topic, $0.topicPartition.partition, offset: $0.offset)
            }
        }
    }

    /// A partition's low and high watermark as the broker reports them (ListOffsets). The partition need not be
    /// assigned. On Tansu the high watermark can be short by the last batch's record count minus one, so lag
    /// computed from it is approximate there.
    public func watermarks(topic: String, partition: Int32, timeout: Duration = .seconds(10)) async throws -> (low: Int64, high: Int64) {
        try ensureOpen()
        return try await blockingQueue.run { [self] in
            var low: Int64 = -1
            var high: Int64 = -1
            let err = rd_kafka_query_watermark_offsets(handle.raw, topic, partition, &low, &high, Int32(clamping: timeout.milliseconds))
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(
                    err == RD_KAFKA_RESP_ERR__TIMED_OUT ? .timedOut : .consumerFailed, code: err.rawValue,
                    "watermarks of \(topic)[\(partition)] failed: \(KafkaError.text(err))\(context.lastErrorSuffix)")
            }
            return (low, high)
        }
    }

    /// Moves an assigned partition's read position to `offset` (or a `KafkaOffset` constant).
    public func seek(topic: String, partition: Int32, offset: Int64, timeout: Duration = .seconds(10)) async throws {
        try ensureOpen()
        try await blockingQueue.run { [self] in
            let list = Native.makeList([TopicPartitionOffset(topic, partition, offset: offset)])
            defer { rd_kafka_topic_partition_list_destroy(list) }
            if let error = rd_kafka_seek_partitions(handle.raw, list, Int32(clamping: timeout.milliseconds)) {
                throw KafkaError.consume(error, kind: .consumerFailed, context: "seek \(topic)[\(partition)] to \(offset) failed")
            }
            if let (entry, text) = Native.firstError(Native.readList(list)) {
                throw KafkaError(
                    .consumerFailed, code: entry.err.rawValue,
                    "seek \(topic)[\(partition)] to \(offset) failed: \(text) (is the partition assigned?)")
            }
        }
    }

    /// For each partition, the earliest offset whose timestamp is at or after the given time (milliseconds
    /// since the epoch); nil when no record is that recent (the partition's end).
    public func offsetsForTimes(_ times: [TopicPartition: Int64], timeout: Duration = .seconds(10)) async throws -> [TopicPartition: Int64?]
    {
        try ensureOpen()
        return try await blockingQueue.run { [self] in
            let list = Native.makeList(times.map { TopicPartitionOffset($0.key.topic, $0.key.partition, offset: $0.value) })
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let err = rd_kafka_offsets_for_times(handle.raw, list, Int32(clamping: timeout.milliseconds))
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(
                    err == RD_KAFKA_RESP_ERR__TIMED_OUT ? .timedOut : .consumerFailed, code: err.rawValue,
                    "offsets_for_times failed: \(KafkaError.text(err))\(context.lastErrorSuffix)")
            }
            var out: [TopicPartition: Int64?] = [:]
            for entry in Native.readList(list) {
                if entry.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART {
                    throw KafkaError(.unknownTopic, code: entry.err.rawValue, "offsets_for_times: unknown \(entry.topicPartition)")
                }
                out[entry.topicPartition] = entry.offset >= 0 ? entry.offset : nil
            }
            return out
        }
    }

    /// Seeks each partition to the first record at or after `timeMillis` (or to its end if none).
    public func seek(toTime timeMillis: Int64, partitions: [TopicPartition], timeout: Duration = .seconds(10)) async throws {
        let offsets = try await offsetsForTimes(Dictionary(uniqueKeysWithValues: partitions.map { ($0, timeMillis) }), timeout: timeout)
        for (tp, offset) in offsets {
            try await seek(topic: tp.topic, partition: tp.partition, offset: offset ?? KafkaOffset.end, timeout: timeout)
        }
    }

    /// Stops fetching these partitions (their position is kept) until `resume`.
    public func pause(_ partitions: [TopicPartition]) throws {
        try pauseResume(partitions, pause: true)
    }

    public func resume(_ partitions: [TopicPartition]) throws {
        try pauseResume(partitions, pause: false)
    }

    private func pauseResume(_ partitions: [TopicPartition], pause: Bool) throws {
        try ensureOpen()
        let list = Native.makeList(partitions.map { TopicPartitionOffset($0.topic, $0.partition, offset: KafkaOffset.invalid) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = pause ? rd_kafka_pause_partitions(handle.raw, list) : rd_kafka_resume_partitions(handle.raw, list)
        let what = pause ? "pause" : "resume"
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(.consumerFailed, code: err.rawValue, "\(what) failed: \(KafkaError.text(err))")
        }
        if let (entry, text) = Native.firstError(Native.readList(list)) {
            throw KafkaError(.consumerFailed, code: entry.err.rawValue, "\(what) \(entry.topicPartition) failed: \(text)")
        }
    }

    /// Records between this consumer's position and the end of each assigned partition, from the
    /// watermarks librdkafka caches from its fetches: no broker request, safe to call often. Partitions
    /// not read yet (no position, no watermark) are left out. Approximate on Tansu, whose high
    /// watermarks can run short (design.md).
    public func lag() throws -> [TopicPartition: Int64] {
        try ensureOpen()
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(handle.raw, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [:] }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        _ = rd_kafka_position(handle.raw, list)
        var out: [TopicPartition: Int64] = [:]
        for entry in Native.readList(list) where entry.offset >= 0 {
            var low: Int64 = 0
            var high: Int64 = 0
            let err = rd_kafka_get_watermark_offsets(handle.raw, entry.topicPartition.topic, entry.topicPartition.partition, &low, &high)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0 else { continue }
            out[entry.topicPartition] = Swift.max(0, high - entry.offset)
        }
        return out
    }

    // MARK: closing

    /// Leaves the group cleanly: revokes (running `onRebalance`, committing stored offsets) and sends
    /// LeaveGroup, so the partitions move at once instead of after the session timeout.
    public func close() async throws {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // Queued after any poll in progress, which notices `closed` within 100 ms.
        try await pollQueue.run { [self] in
            let err = rd_kafka_consumer_close(handle.raw)
            _ = shared.takePending()
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(.consumerFailed, code: err.rawValue, "consumer close: \(KafkaError.text(err))")
            }
        }
    }
}
