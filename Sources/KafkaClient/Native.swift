import CRdKafka
import Dispatch
import Foundation
import Logging
import Synchronization

/// An `rd_kafka_t*`.
/// @unchecked Sendable: librdkafka's handle API is thread-safe (rdkafka.h, "Threads and callbacks"), and
/// each owner destroys the handle only from its deinit, when no other thread can still be using it
/// (every thread, queue block and task that calls into the handle holds a strong reference to the owner).
struct KafkaHandle: @unchecked Sendable {
    let raw: OpaquePointer
}

/// What librdkafka's callbacks need to reach, passed as the conf opaque. Outlives the handle: the owner
/// keeps it and releases it only after `rd_kafka_destroy` returned.
final class ClientContext: Sendable {
    let logger: Logger
    let bootstrapServers: String
    /// The latest error librdkafka reported through the error callback (e.g. "1/1 brokers are down"),
    /// added to timeouts so an operator sees *why* nothing answered.
    let lastError = Mutex<String?>(nil)
    let producer: ProducerShared?
    let consumer: ConsumerShared?

    init(logger: Logger, bootstrapServers: String, producer: ProducerShared? = nil, consumer: ConsumerShared? = nil) {
        self.logger = logger
        self.bootstrapServers = bootstrapServers
        self.producer = producer
        self.consumer = consumer
    }

    static func from(_ opaque: UnsafeMutableRawPointer) -> ClientContext {
        Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
    }

    var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    var lastErrorSuffix: String {
        lastError.withLock { $0 }.map { " (last broker error: \($0))" } ?? ""
    }
}

enum Native {
    /// Creates a handle: checks the runtime version, applies `properties` in order (pass-through last),
    /// routes logs and errors to swift-log, and lets `configure` install role callbacks.
    static func makeHandle(
        type: rd_kafka_type_t, properties: [KafkaOption], context: ClientContext,
        configure: (OpaquePointer) -> Void = { _ in }
    ) throws -> KafkaHandle {
        try KafkaRuntime.checkAndLogOnce(context.logger)
        guard let conf = rd_kafka_conf_new() else { throw KafkaError(.invalidConfiguration, "rd_kafka_conf_new failed") }
        var errstr = [CChar](repeating: 0, count: 512)
        for option in properties {
            let res = rd_kafka_conf_set(conf, option.key, option.value, &errstr, errstr.count)
            if res != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                let reason = Native.string(errstr)
                let what = res == RD_KAFKA_CONF_UNKNOWN ? "unknown Kafka property" : "invalid value for Kafka property"
                throw KafkaError(.invalidConfiguration, "\(what) \"\(option.key)\": \(reason)")
            }
        }
        rd_kafka_conf_set_opaque(conf, context.opaque)
        rd_kafka_conf_set_log_cb(conf) { rk, level, facility, text in
            guard let rk, let opaque = rd_kafka_opaque(rk), let text else { return }
            let ctx = ClientContext.from(opaque)
            let fac = facility.map { String(cString: $0) } ?? ""
            ctx.logger.log(
                level: Native.logLevel(level), "\(String(cString: text))",
                metadata: ["rdkafka": "\(fac)", "client": "\(String(cString: rd_kafka_name(rk)))"])
        }
        rd_kafka_conf_set_error_cb(conf) { rk, err, reason, opaque in
            guard let opaque else { return }
            let ctx = ClientContext.from(opaque)
            let text = reason.map { String(cString: $0) } ?? Native.text(err)
            ctx.lastError.withLock { $0 = text }
            if err == RD_KAFKA_RESP_ERR__FATAL.rawValue {
                ctx.logger.error("librdkafka fatal error: \(text)")
            } else {
                // librdkafka retries these itself and its log line already said so; keep it for context.
                ctx.logger.debug("librdkafka error: \(text)")
            }
        }
        configure(conf)
        guard let rk = rd_kafka_new(type, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)  // not taken over on failure
            throw KafkaError(.invalidConfiguration, "could not create Kafka client: \(Native.string(errstr))")
        }
        HandleReaper.installOnce()
        return KafkaHandle(raw: rk)
    }

    /// A NUL-terminated C buffer as a String.
    static func string(_ buffer: [CChar]) -> String {
        buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    static func text(_ code: Int32) -> String { KafkaError.text(rd_kafka_resp_err_t(rawValue: code)) }

    /// librdkafka logs with syslog levels.
    static func logLevel(_ syslog: Int32) -> Logger.Level {
        switch syslog {
        case ...2: .critical
        case 3: .error
        case 4: .warning
        case 5: .notice
        case 6: .info
        default: .debug
        }
    }

    // MARK: topic+partition lists

    typealias PartitionList = UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    static func makeList(_ items: [TopicPartitionOffset]) -> PartitionList {
        let list = rd_kafka_topic_partition_list_new(Int32(max(items.count, 1)))!
        for item in items {
            let elem = rd_kafka_topic_partition_list_add(list, item.topicPartition.topic, item.topicPartition.partition)!
            elem.pointee.offset = item.offset
        }
        return list
    }

    struct ListEntry {
        var topicPartition: TopicPartition
        var offset: Int64
        var err: rd_kafka_resp_err_t
    }

    static func readList(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>) -> [ListEntry] {
        (0..<Int(list.pointee.cnt)).map { i in
            let e = list.pointee.elems[i]
            return ListEntry(
                topicPartition: TopicPartition(String(cString: e.topic), e.partition),
                offset: e.offset, err: e.err)
        }
    }

    /// The first per-partition error in a list, as a readable string.
    static func firstError(_ entries: [ListEntry]) -> (ListEntry, String)? {
        entries.first { $0.err != RD_KAFKA_RESP_ERR_NO_ERROR }.map { ($0, KafkaError.text($0.err)) }
    }
}

/// One thread per `rd_kafka_t` that serves its main queue (delivery reports, errors, stats) with blocking
/// `rd_kafka_poll(h, 100)` calls. The call returns as soon as an event arrives, so the 100 ms only bounds
/// how long `stop()` waits; it adds no latency.
final class PollerThread: Sendable {
    private let stopRequested = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(handle: KafkaHandle, name: String) {
        let thread = Thread { [self] in
            while !stopRequested.load(ordering: .acquiring) {
                rd_kafka_poll(handle.raw, 100)
            }
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Blocks until the thread has left its loop; call off the cooperative pool.
    func stop() {
        if stopRequested.exchange(true, ordering: .acquiringAndReleasing) { return }
        finished.wait()
    }
}

/// Destroys librdkafka handles off the cooperative pool (`rd_kafka_destroy` joins librdkafka's threads) and
/// makes the process wait for those destructions when it exits: a librdkafka thread still running (logging,
/// closing sockets) while `exit()` runs the C and OpenSSL teardown can crash a process that was shutting
/// down cleanly.
enum HandleReaper {
    private static let pending = DispatchGroup()

    /// Runs `destroy` on a background queue; exit waits for it (at most 10 s).
    static func destroy(_ destroy: @escaping @Sendable () -> Void) {
        pending.enter()
        DispatchQueue.global().async {
            destroy()
            pending.leave()
        }
    }

    /// Registered after the first handle exists, so it runs before the exit handlers librdkafka's
    /// dependencies registered while it initialised (atexit handlers run in reverse order).
    private static let registered: Void = {
        atexit { _ = HandleReaper.pending.wait(timeout: .now() + 10) }
    }()

    static func installOnce() { _ = registered }
}
