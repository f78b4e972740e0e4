import CRdKafka
import Foundation

/// Topic IDs (the UUID a broker gives each incarnation of a topic name) through librdkafka's DescribeTopics.
///
/// Kiln builds against Debian's librdkafka 2.0.2 headers, which predate DescribeTopics (2.3), while it runs
/// on librdkafka ≥ 2.2 — so the functions are looked up at run time, and a runtime without them (or a broker
/// without topic IDs) yields no IDs instead of failing.
enum DescribeTopicsAPI {
    typealias CollectionOfNames = @convention(c) (UnsafeMutablePointer<UnsafePointer<CChar>?>?, Int) -> OpaquePointer?
    typealias CollectionDestroy = @convention(c) (OpaquePointer?) -> Void
    typealias Describe = @convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?) -> Void
    typealias EventResult = @convention(c) (OpaquePointer?) -> OpaquePointer?
    typealias ResultTopics = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> UnsafePointer<OpaquePointer?>?
    typealias Name = @convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?
    typealias ErrorOf = @convention(c) (OpaquePointer?) -> OpaquePointer?
    typealias TopicID = @convention(c) (OpaquePointer?) -> OpaquePointer?
    typealias Base64 = @convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?

    struct Functions {
        let collectionOfNames: CollectionOfNames
        let collectionDestroy: CollectionDestroy
        let describe: Describe
        let eventResult: EventResult
        let resultTopics: ResultTopics
        let name: Name
        let error: ErrorOf
        let topicID: TopicID
        let base64: Base64
    }

    /// nil when the loaded librdkafka lacks any of them.
    static let functions: Functions? = {
        func symbol<T>(_ name: String, _: T.Type) -> T? {
            // A null handle is RTLD_DEFAULT on glibc: search every loaded object.
            guard let p = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
            return unsafeBitCast(p, to: T.self)
        }
        guard let a = symbol("rd_kafka_TopicCollection_of_topic_names", CollectionOfNames.self),
            let b = symbol("rd_kafka_TopicCollection_destroy", CollectionDestroy.self),
            let c = symbol("rd_kafka_DescribeTopics", Describe.self),
            let d = symbol("rd_kafka_event_DescribeTopics_result", EventResult.self),
            let e = symbol("rd_kafka_DescribeTopics_result_topics", ResultTopics.self),
            let f = symbol("rd_kafka_TopicDescription_name", Name.self),
            let g = symbol("rd_kafka_TopicDescription_error", ErrorOf.self),
            let h = symbol("rd_kafka_TopicDescription_topic_id", TopicID.self),
            let i = symbol("rd_kafka_Uuid_base64str", Base64.self)
        else { return nil }
        return Functions(
            collectionOfNames: a, collectionDestroy: b, describe: c, eventResult: d, resultTopics: e,
            name: f, error: g, topicID: h, base64: i)
    }()
}

extension KafkaAdmin {
    /// The current topic ID (base64, as Kafka's tools print it) of each named topic that exists. Empty when
    /// the runtime or the broker does not offer topic IDs.
    public func topicIDs(_ names: [String], timeout: Duration = .seconds(10)) async throws -> [String: String] {
        guard !names.isEmpty, let api = DescribeTopicsAPI.functions else { return [:] }
        return try await blockingQueue.run { [self] in try topicIDsBlocking(names, api: api, timeout: timeout) }
    }

    private func topicIDsBlocking(_ names: [String], api: DescribeTopicsAPI.Functions, timeout: Duration) throws -> [String: String] {
        let cStrings = names.map { strdup($0) }
        defer { for s in cStrings { free(s) } }
        var pointers: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
        guard let collection = pointers.withUnsafeMutableBufferPointer({ api.collectionOfNames($0.baseAddress, names.count) }) else {
            throw KafkaError(.adminFailed, "describing topics \(names): librdkafka made no topic collection")
        }
        defer { api.collectionDestroy(collection) }
        let queue = rd_kafka_queue_new(handle.raw)
        defer { rd_kafka_queue_destroy(queue) }
        // Null options: librdkafka's defaults (the request timeout is the socket timeout).
        api.describe(handle.raw, collection, nil, queue)
        let ms = Int32(clamping: timeout.milliseconds)
        guard let event = rd_kafka_queue_poll(queue, ms + 1000) else {
            throw KafkaError(.timedOut, "describing topics \(names): no answer within \(timeout)")
        }
        defer { rd_kafka_event_destroy(event) }
        let err = rd_kafka_event_error(event)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let text = rd_kafka_event_error_string(event).map { String(cString: $0) } ?? KafkaError.text(err)
            throw KafkaError(.adminFailed, code: err.rawValue, "describing topics \(names) failed: \(text)")
        }
        guard let result = api.eventResult(event) else { return [:] }
        var count = 0
        guard let topics = api.resultTopics(result, &count) else { return [:] }
        var out: [String: String] = [:]
        for i in 0..<count {
            guard let d = topics[i], let name = api.name(d) else { continue }
            if let e = api.error(d), rd_kafka_error_code(e) != RD_KAFKA_RESP_ERR_NO_ERROR { continue }
            guard let id = api.topicID(d), let text = api.base64(id) else { continue }
            let s = String(cString: text)
            // An all-zero UUID means the broker sent none.
            if !s.isEmpty && s != "AAAAAAAAAAAAAAAAAAAAAA" { out[String(cString: name)] = s }
        }
        return out
    }
}
