import CRdKafka
import Dispatch
import Foundation
import KilnFoundation
import Logging
import Synchronization

/// What a delivery report resolves: the broker's acknowledgement or the reason it failed.
public typealias DeliveryResult = Result<DeliveryReport, KafkaError>

/// The per-record state librdkafka carries as the message opaque: retained when the record is enqueued,
/// released in the delivery-report callback (exactly one report per enqueued record).
final class DeliveryBox: Sendable {
    let onDelivery: @Sendable (DeliveryResult) -> Void
    init(_ onDelivery: @escaping @Sendable (DeliveryResult) -> Void) { self.onDelivery = onDelivery }
}

/// Producer state shared with the delivery-report callback: how many of our records librdkafka holds and
/// who waits for room in its bounded queue.
final class ProducerShared: Sendable {
    struct Space {
        /// Bumped by every delivery report; a sender that saw `QUEUE_FULL` at generation g only needs to
        /// wait if no report arrived since g.
        var generation: UInt64 = 0
        var inFlight = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    let space = Mutex(Space())
    let backPressureWaits = Atomic<Int>(0)

    /// Called once per delivery report: frees one record's room and wakes one waiting sender (all of them
    /// when the queue is now empty, so nobody can be left waiting for a report that will never come).
    func recordDelivered() {
        let wake: [CheckedContinuation<Void, Never>] = space.withLock { s in
            s.generation &+= 1
            s.inFlight -= 1
            guard !s.waiters.isEmpty else { return [] }
            if s.inFlight <= 0 {
                defer { s.waiters.removeAll() }
                return s.waiters
            }
            return [s.waiters.removeFirst()]
        }
        for w in wake { w.resume() }
    }

    /// Suspends until a delivery report has arrived since `generation` (returns at once if one already has,
    /// or if nothing is in flight).
    func waitForSpace(since generation: UInt64) async {
        backPressureWaits.add(1, ordering: .relaxed)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = space.withLock { s -> Bool in
                if s.generation != generation || s.inFlight <= 0 { return true }
                s.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}

/// One librdkafka producer handle with its delivery-report thread. A `KafkaProducer` replaces its engine
/// when the cluster lost the producer's state (see `KafkaProducer.reset`).
private final class ProducerEngine: Sendable {
    let handle: KafkaHandle
    let context: ClientContext
    let poller: PollerThread
    /// Blocking calls (flush) run here, never on the cooperative pool.
    let blockingQueue: BlockingWork

    init(config: ProducerConfig, context: ClientContext) throws {
        self.context = context
        handle = try Native.makeHandle(type: RD_KAFKA_PRODUCER, properties: config.librdkafkaProperties(), context: context) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
                guard let message, let opaque else { return }
                let ctx = ClientContext.from(opaque)
                let m = message.pointee
                // Free the record's room before its sender resumes, so a sender that sees its report also
                // sees the record gone from `inFlight`.
                ctx.producer?.recordDelivered()
                if let boxPointer = m._private {
                    let box = Unmanaged<DeliveryBox>.fromOpaque(boxPointer).takeRetainedValue()
                    if m.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                        box.onDelivery(.success(DeliveryReport(partition: m.partition, offset: m.offset)))
                    } else {
                        let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?"
                        box.onDelivery(
                            .failure(
                                KafkaError(
                                    .deliveryFailed, code: m.err.rawValue,
                                    "delivery to \(topic) failed: \(KafkaError.text(m.err))\(ctx.lastErrorSuffix)")))
                    }
                }
            }
        }
        let name = String(cString: rd_kafka_name(handle.raw))
        poller = PollerThread(handle: handle, name: "kafka-poll-\(name)")
        blockingQueue = BlockingWork(label: "kiln.kafka.\(name).blocking")
    }

    deinit {
        // rd_kafka_destroy blocks (it joins librdkafka's threads), so it runs on a background queue with
        // everything it needs captured; the context lives until the handle is gone.
        let handle = handle
        let context = context
        let poller = poller
        HandleReaper.destroy {
            poller.stop()
            // Fail whatever is still queued so every pending send resumes, then serve those reports.
            rd_kafka_purge(handle.raw, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            rd_kafka_flush(handle.raw, 1000)
            rd_kafka_destroy(handle.raw)
            withExtendedLifetime(context) {}
        }
    }
}

/// An idempotent, lz4-compressing Kafka producer with bounded buffering.
///
/// `QUEUE_FULL` is back-pressure: a send suspends until a delivery report frees room, it never fails or
/// drops for that reason. A fatal error re-creates the librdkafka handle on the next send. Delivery
/// reports are served by a dedicated poller thread.
public final class KafkaProducer: Sendable {
    public let config: ProducerConfig
    private let context: ClientContext
    private let shared: ProducerShared
    private let engine: Mutex<ProducerEngine>
    private let closed = Atomic<Bool>(false)

    public init(config: ProducerConfig, logger: Logger = Logger(label: "kiln.kafka.producer")) throws {
        self.config = config
        let shared = ProducerShared()
        let context = ClientContext(logger: logger, bootstrapServers: config.kafka.bootstrapServers, producer: shared)
        self.shared = shared
        self.context = context
        engine = Mutex(try ProducerEngine(config: config, context: context))
    }

    private var current: ProducerEngine { engine.withLock { $0 } }

    /// Replaces the librdkafka handle with a new one, which asks the cluster for a new producer ID. For a
    /// cluster that lost the producer's state (a broker restarted without its storage): the old idempotent
    /// producer would otherwise retry for ever on UNKNOWN_PRODUCER_ID. Records the old handle still held
    /// fail their delivery (their senders see an error and nothing was acknowledged); new sends go to the
    /// new handle.
    public func reset(reason: String) throws {
        try replace(nil, reason: reason)
    }

    /// Replaces the engine, or only `failed` when that is still the current one (concurrent senders that
    /// saw the same fatal error re-create it once).
    private func replace(_ failed: ProducerEngine?, reason: String) throws {
        guard !closed.load(ordering: .relaxed) else { return }
        // Another sender that saw the same failure may have replaced it already: no second handle then.
        if let failed, engine.withLock({ $0 !== failed }) { return }
        let fresh = try ProducerEngine(config: config, context: context)
        let undelivered = inFlight
        // The old engine is released here; its deinit fails and destroys what it held off the cooperative pool.
        let replaced = engine.withLock { current -> Bool in
            guard failed.map({ $0 === current }) ?? true else { return false }
            current = fresh
            return true
        }
        guard replaced else { return }
        context.logger.warning("Kafka producer re-created", metadata: ["reason": "\(reason)", "undelivered": "\(undelivered)"])
    }

    /// Raises a fatal error in the current handle as librdkafka would (its test API), for tests of recovery.
    func raiseFatalErrorForTesting(_ reason: String) {
        let engine = current
        _ = rd_kafka_test_fatal_error(engine.handle.raw, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, reason)
    }

    /// How often a send had to wait for room in the producer's queue (back-pressure), since creation.
    public var backPressureWaits: Int { shared.backPressureWaits.load(ordering: .relaxed) }

    /// Records handed to librdkafka whose delivery report has not arrived yet.
    public var inFlight: Int { shared.space.withLock { $0.inFlight } }

    /// Sends one record and returns once the broker acknowledged it.
    public func send(_ record: ProducerRecord) async throws -> DeliveryReport {
        let slot = DeliverySlot()
        try await produce(record) { slot.complete($0) }
        return try await slot.value()
    }

    /// Sends records concurrently (all in flight at once, within the queue bounds) and returns their
    /// reports in order once all are acknowledged; throws the first failure after all have completed.
    public func sendBatch(_ records: [ProducerRecord]) async throws -> [DeliveryReport] {
        let batch = BatchCollector(count: records.count)
        for (i, record) in records.enumerated() {
            do {
                try await produce(record) { batch.complete(i, $0) }
            } catch let error as KafkaError {
                batch.abandon(from: i, error: error)
                break
            }
        }
        return try await batch.value()
    }

    /// Hands a record to librdkafka and returns as soon as it is queued; `onDelivery` runs on the poller
    /// thread when the delivery report arrives (keep it short). Suspends while the queue is full.
    /// Throws for records librdkafka refuses outright (too large, unknown partition, closed producer).
    public func produce(
        _ record: ProducerRecord,
        onDelivery: @escaping @Sendable (DeliveryResult) -> Void
    ) async throws {
        let box = Unmanaged.passRetained(DeliveryBox(onDelivery))
        var queueFullWhileEmpty = 0
        var recreated = false
        while true {
            guard !closed.load(ordering: .relaxed) else {
                box.release()
                throw KafkaError(.closed, "producer is closed")
            }
            let generation = shared.space.withLock { s -> UInt64 in
                s.inFlight += 1
                return s.generation
            }
            let engine = current
            guard let error = enqueue(record, on: engine, opaque: box.toOpaque()) else { return }
            let code = rd_kafka_error_code(error)
            let inFlight = shared.space.withLock { s -> Int in
                s.inFlight -= 1
                return s.inFlight
            }
            if code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                rd_kafka_error_destroy(error)
                // With nothing of ours in flight no report will come to make room: retry once (reports may
                // have just drained the queue), then the record can never fit.
                if inFlight <= 0 {
                    queueFullWhileEmpty += 1
                    if queueFullWhileEmpty >= 2 {
                        box.release()
                        throw KafkaError(
                            .recordTooLarge, code: code.rawValue,
                            "record of \(record.value.count) bytes for \(record.topic) does not fit the producer queue "
                                + "(queue.buffering.max.kbytes=\(config.maxBufferedKBytes), "
                                + "queue.buffering.max.messages=\(config.maxBufferedMessages))")
                    }
                    continue
                }
                queueFullWhileEmpty = 0
                await shared.waitForSpace(since: generation)
                continue
            }
            // A fatal error (e.g. the idempotent producer's sequence lost sync with a restarted broker)
            // stops the handle for good: librdkafka's remedy is a new one, with a new producer ID. The
            // records the old handle held fail their delivery, so none is acknowledged twice or lost unseen.
            if rd_kafka_error_is_fatal(error) != 0, !recreated {
                let reason = KafkaError.consume(error, kind: .fatal, context: "fatal producer error").message
                recreated = true
                do { try replace(engine, reason: reason) } catch {
                    box.release()
                    throw error
                }
                continue
            }
            box.release()
            var kind: KafkaError.Kind = .produceFailed
            if code == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || code == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION
                || code == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
            {
                kind = .unknownTopic
            }
            if code == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE { kind = .recordTooLarge }
            throw KafkaError.consume(
                error, kind: kind,
                context: "could not produce a \(record.value.count)-byte record to \(record.topic)")
        }
    }

    /// One `rd_kafka_produceva` call (it returns its error directly, unlike `rd_kafka_last_error`, which is
    /// thread-local and wrong across Swift tasks). The payload, key and headers are copied (F_COPY).
    private func enqueue(_ record: ProducerRecord, on engine: ProducerEngine, opaque: UnsafeMutableRawPointer) -> OpaquePointer? {
        // Header names must be C strings for the duration of the call; librdkafka copies them.
        let names = record.headers.map { strdup($0.name) }
        defer { names.forEach { free($0) } }
        return record.topic.withCString { topic in
            record.value.withUnsafeBytes { value in
                withOptionalBytes(record.key) { key in
                    withHeaderValues(record.headers) { headerValues in
                        var vus = [rd_kafka_vu_t]()
                        vus.reserveCapacity(7 + record.headers.count)
                        var vu = rd_kafka_vu_t()
                        vu.vtype = RD_KAFKA_VTYPE_TOPIC
                        vu.u.cstr = topic
                        vus.append(vu)
                        vu = rd_kafka_vu_t()
                        vu.vtype = RD_KAFKA_VTYPE_VALUE
                        vu.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                        vu.u.mem.size = value.count
                        vus.append(vu)
                        if let key {
                            vu = rd_kafka_vu_t()
                            vu.vtype = RD_KAFKA_VTYPE_KEY
                            vu.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress)
                            vu.u.mem.size = key.count
                            vus.append(vu)
                        }
                        if let partition = record.partition {
                            vu = rd_kafka_vu_t()
                            vu.vtype = RD_KAFKA_VTYPE_PARTITION
                            vu.u.i32 = partition
                            vus.append(vu)
                        }
                        if let ts = record.timestampMillis {
                            vu = rd_kafka_vu_t()
                            vu.vtype = RD_KAFKA_VTYPE_TIMESTAMP
                            vu.u.i64 = ts
                            vus.append(vu)
                        }
                        for (i, hv) in headerValues.enumerated() {
                            vu = rd_kafka_vu_t()
                            vu.vtype = RD_KAFKA_VTYPE_HEADER
                            vu.u.header.name = UnsafePointer(names[i])
                            vu.u.header.val = hv.pointer
                            vu.u.header.size = hv.size
                            vus.append(vu)
                        }
                        vu = rd_kafka_vu_t()
                        vu.vtype = RD_KAFKA_VTYPE_OPAQUE
                        vu.u.ptr = opaque
                        vus.append(vu)
                        vu = rd_kafka_vu_t()
                        vu.vtype = RD_KAFKA_VTYPE_MSGFLAGS
                        vu.u.i = Self.msgFlagCopy
                        vus.append(vu)
                        return withExtendedLifetime(engine) { rd_kafka_produceva(engine.handle.raw, vus, vus.count) }
                    }
                }
            }
        }
    }

    /// RD_KAFKA_MSG_F_COPY (a macro Swift does not import).
    private static let msgFlagCopy: Int32 = 0x2

    /// Waits until every queued record is delivered (or failed), at most `timeout`.
    public func flush(timeout: Duration = .seconds(30)) async throws {
        let engine = current
        let handle = engine.handle
        let ms = Int32(clamping: timeout.milliseconds)
        let err = await engine.blockingQueue.run { rd_kafka_flush(handle.raw, ms) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let left = rd_kafka_outq_len(handle.raw)
            throw KafkaError(
                .timedOut, code: err.rawValue,
                "flush did not finish within \(timeout): \(left) records/events still queued "
                    + "for \(context.bootstrapServers)\(context.lastErrorSuffix)")
        }
    }

    /// Stops accepting records and flushes what is queued (at most `flushTimeout`). Records still queued
    /// after that fail their delivery with a purge error, so no send waits forever. Threads and sockets are
    /// released when the producer is deinitialised.
    public func close(flushTimeout: Duration = .seconds(10)) async throws {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        do {
            try await flush(timeout: flushTimeout)
        } catch {
            let engine = current
            let handle = engine.handle
            context.logger.warning("producer closing with undelivered records: \(error)")
            _ = await engine.blockingQueue.run {
                rd_kafka_purge(handle.raw, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
                return rd_kafka_flush(handle.raw, 1000)
            }
            throw error
        }
    }
}

private struct HeaderValue {
    var pointer: UnsafeRawPointer?
    var size: Int
}

/// Runs `body` with pointers to every header value (nil pointer and size -1 for a null value); the
/// pointers stay valid for the whole call.
private func withHeaderValues<R>(_ headers: [KafkaHeader], _ body: ([HeaderValue]) -> R) -> R {
    func step(_ i: Int, _ acc: inout [HeaderValue]) -> R {
        if i == headers.count { return body(acc) }
        guard let value = headers[i].value else {
            acc.append(HeaderValue(pointer: nil, size: -1))
            return step(i + 1, &acc)
        }
        return value.withUnsafeBytes { bytes in
            acc.append(HeaderValue(pointer: bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), size: bytes.count))
            return step(i + 1, &acc)
        }
    }
    var acc: [HeaderValue] = []
    acc.reserveCapacity(headers.count)
    return step(0, &acc)
}

private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    guard let bytes else { return body(nil) }
    return bytes.withUnsafeBytes { body($0) }
}

/// A one-shot result that the delivery callback fills and one task awaits, in either order.
final class DeliverySlot: Sendable {
    private enum State {
        case empty
        case done(DeliveryResult)
        case waiting(CheckedContinuation<DeliveryReport, any Error>)
    }

    private let state = Mutex<State>(.empty)

    func complete(_ result: DeliveryResult) {
        let waiter: CheckedContinuation<DeliveryReport, any Error>? = state.withLock { s in
            if case .waiting(let c) = s {
                s = .empty
                return c
            }
            s = .done(result)
            return nil
        }
        waiter?.resume(with: result.mapError { $0 as any Error })
    }

    func value() async throws -> DeliveryReport {
        try await withCheckedThrowingContinuation { continuation in
            let ready: DeliveryResult? = state.withLock { s in
                if case .done(let r) = s { return r }
                s = .waiting(continuation)
                return nil
            }
            if let ready { continuation.resume(with: ready.mapError { $0 as any Error }) }
        }
    }
}

/// Collects the reports of a batch and resumes one waiter when the last arrives.
final class BatchCollector: Sendable {
    private struct State {
        var reports: [DeliveryReport?]
        var remaining: Int
        var firstError: KafkaError?
        var waiter: CheckedContinuation<[DeliveryReport], any Error>?
    }

    private let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(reports: Array(repeating: nil, count: count), remaining: count))
    }

    func complete(_ index: Int, _ result: DeliveryResult) {
        finish { s in
            switch result {
            case .success(let r): s.reports[index] = r
            case .failure(let e): if s.firstError == nil { s.firstError = e }
            }
            s.remaining -= 1
        }
    }

    /// Records from `index` on were never enqueued.
    func abandon(from index: Int, error: KafkaError) {
        finish { s in
            if s.firstError == nil { s.firstError = error }
            s.remaining -= s.reports.count - index
        }
    }

    private func finish(_ update: (inout State) -> Void) {
        let resume: (CheckedContinuation<[DeliveryReport], any Error>, Result<[DeliveryReport], any Error>)? = state.withLock { s in
            update(&s)
            guard s.remaining == 0, let w = s.waiter else { return nil }
            s.waiter = nil
            return (w, Self.result(s))
        }
        if let (w, r) = resume { w.resume(with: r) }
    }

    private static func result(_ s: State) -> Result<[DeliveryReport], any Error> {
        if let e = s.firstError { return .failure(e) }
        return .success(s.reports.map { $0! })
    }

    func value() async throws -> [DeliveryReport] {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<[DeliveryReport], any Error>? = state.withLock { s in
                if s.remaining == 0 { return Self.result(s) }
                s.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
