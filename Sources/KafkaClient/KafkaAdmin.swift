import CRdKafka
import Dispatch
import Foundation
import KilnFoundation
import Logging
import Synchronization

/// Topic administration: create topics (idempotently) and read cluster metadata.
public final class KafkaAdmin: Sendable {
    public let config: KafkaConfig
    let handle: KafkaHandle
    private let context: ClientContext
    private let poller: PollerThread
    let blockingQueue: BlockingWork

    public init(config: KafkaConfig, logger: Logger = Logger(label: "kiln.kafka.admin")) throws {
        self.config = config
        let context = ClientContext(logger: logger, bootstrapServers: config.bootstrapServers)
        self.context = context
        handle = try Native.makeHandle(type: RD_KAFKA_PRODUCER, properties: config.properties([]), context: context)
        let name = String(cString: rd_kafka_name(handle.raw))
        poller = PollerThread(handle: handle, name: "kafka-poll-\(name)")
        blockingQueue = BlockingWork(label: "kiln.kafka.\(name).admin")
    }

    deinit {
        let handle = handle
        let context = context
        let poller = poller
        HandleReaper.destroy {
            poller.stop()
            rd_kafka_destroy(handle.raw)
            withExtendedLifetime(context) {}
        }
    }

    /// Creates a topic; `.alreadyExists` (not an error) if it is already there.
    public func createTopic(_ spec: TopicSpec, timeout: Duration = .seconds(30)) async throws -> TopicCreation {
        try await blockingQueue.run { [self] in try createBlocking(spec, timeout: timeout) }
    }

    private func createBlocking(_ spec: TopicSpec, timeout: Duration) throws -> TopicCreation {
        var errstr = [CChar](repeating: 0, count: 512)
        guard let newTopic = rd_kafka_NewTopic_new(spec.name, spec.partitions, spec.replicationFactor, &errstr, errstr.count) else {
            throw KafkaError(.adminFailed, "invalid topic \(spec.name): \(Native.string(errstr))")
        }
        defer { rd_kafka_NewTopic_destroy(newTopic) }
        for (key, value) in spec.configs.sorted(by: { $0.key < $1.key }) {
            let err = rd_kafka_NewTopic_set_config(newTopic, key, value)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(.adminFailed, code: err.rawValue, "topic config \(key)=\(value): \(KafkaError.text(err))")
            }
        }
        let ms = Int32(clamping: timeout.milliseconds)
        let options = rd_kafka_AdminOptions_new(handle.raw, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_request_timeout(options, ms, &errstr, errstr.count)
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, ms, &errstr, errstr.count)
        let queue = rd_kafka_queue_new(handle.raw)
        defer { rd_kafka_queue_destroy(queue) }
        var topics: [OpaquePointer?] = [newTopic]
        rd_kafka_CreateTopics(handle.raw, &topics, 1, options, queue)
        // The request timeout bounds the answer; the extra second only covers local scheduling.
        guard let event = rd_kafka_queue_poll(queue, ms + 1000) else {
            throw unreachable("creating topic \(spec.name)", timeout: timeout, err: RD_KAFKA_RESP_ERR__TIMED_OUT)
        }
        defer { rd_kafka_event_destroy(event) }
        let err = rd_kafka_event_error(event)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            if err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT {
                throw unreachable("creating topic \(spec.name)", timeout: timeout, err: err)
            }
            let text = rd_kafka_event_error_string(event).map { String(cString: $0) } ?? KafkaError.text(err)
            throw KafkaError(.adminFailed, code: err.rawValue, "creating topic \(spec.name) failed: \(text)")
        }
        var count = 0
        guard let result = rd_kafka_event_CreateTopics_result(event),
            let results = rd_kafka_CreateTopics_result_topics(result, &count), count > 0, let first = results[0]
        else {
            throw KafkaError(.adminFailed, "creating topic \(spec.name): the broker returned no result")
        }
        let topicErr = rd_kafka_topic_result_error(first)
        switch topicErr {
        case RD_KAFKA_RESP_ERR_NO_ERROR:
            context.logger.info("created topic", metadata: ["topic": "\(spec.name)", "partitions": "\(spec.partitions)"])
            return .created
        case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
            context.logger.info("topic already exists", metadata: ["topic": "\(spec.name)"])
            return .alreadyExists
        default:
            let text = rd_kafka_topic_result_error_string(first).map { String(cString: $0) } ?? KafkaError.text(topicErr)
            throw KafkaError(.adminFailed, code: topicErr.rawValue, "creating topic \(spec.name) failed: \(text)")
        }
    }

    /// Deletes a topic (its records are gone; a topic created again under the name is a new incarnation
    /// with a new topic ID and offsets from 0).
    public func deleteTopic(_ name: String, timeout: Duration = .seconds(30)) async throws {
        try await blockingQueue.run { [self] in try deleteBlocking(name, timeout: timeout) }
    }

    private func deleteBlocking(_ name: String, timeout: Duration) throws {
        guard let topic = rd_kafka_DeleteTopic_new(name) else { throw KafkaError(.adminFailed, "invalid topic \(name)") }
        defer { rd_kafka_DeleteTopic_destroy(topic) }
        var errstr = [CChar](repeating: 0, count: 512)
        let ms = Int32(clamping: timeout.milliseconds)
        let options = rd_kafka_AdminOptions_new(handle.raw, RD_KAFKA_ADMIN_OP_DELETETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_request_timeout(options, ms, &errstr, errstr.count)
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, ms, &errstr, errstr.count)
        let queue = rd_kafka_queue_new(handle.raw)
        defer { rd_kafka_queue_destroy(queue) }
        var topics: [OpaquePointer?] = [topic]
        rd_kafka_DeleteTopics(handle.raw, &topics, 1, options, queue)
        guard let event = rd_kafka_queue_poll(queue, ms + 1000) else {
            throw unreachable("deleting topic \(name)", timeout: timeout, err: RD_KAFKA_RESP_ERR__TIMED_OUT)
        }
        defer { rd_kafka_event_destroy(event) }
        let err = rd_kafka_event_error(event)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            let text = rd_kafka_event_error_string(event).map { String(cString: $0) } ?? KafkaError.text(err)
            throw KafkaError(.adminFailed, code: err.rawValue, "deleting topic \(name) failed: \(text)")
        }
        var count = 0
        guard let result = rd_kafka_event_DeleteTopics_result(event),
            let results = rd_kafka_DeleteTopics_result_topics(result, &count), count > 0, let first = results[0]
        else {
            throw KafkaError(.adminFailed, "deleting topic \(name): the broker returned no result")
        }
        let topicErr = rd_kafka_topic_result_error(first)
        guard topicErr == RD_KAFKA_RESP_ERR_NO_ERROR else {
            let text = rd_kafka_topic_result_error_string(first).map { String(cString: $0) } ?? KafkaError.text(topicErr)
            throw KafkaError(
                topicErr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? .unknownTopic : .adminFailed, code: topicErr.rawValue,
                "deleting topic \(name) failed: \(text)")
        }
        context.logger.info("deleted topic", metadata: ["topic": "\(name)"])
    }

    /// Every topic with its partitions.
    public func listTopics(timeout: Duration = .seconds(10)) async throws -> [TopicMetadata] {
        try await blockingQueue.run { [self] in try Native.metadata(handle, context: context, timeout: timeout) }
    }

    /// One topic's partitions; `.unknownTopic` if it does not exist.
    public func describeTopic(_ name: String, timeout: Duration = .seconds(10)) async throws -> TopicMetadata {
        let topics = try await listTopics(timeout: timeout)
        guard let topic = topics.first(where: { $0.name == name }) else {
            throw KafkaError(
                .unknownTopic, code: RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue,
                "unknown Kafka topic \(name) on \(config.bootstrapServers) (it has \(topics.count) topics)")
        }
        return topic
    }

    /// The low and high watermark of each partition: the first offset still held and the offset the next
    /// record will get. Asks each partition's leader (blocking, so on the admin queue).
    public func watermarks(topic: String, timeout: Duration = .seconds(10)) async throws -> [Int32: Watermarks] {
        let partitions = try await describeTopic(topic, timeout: timeout).partitions.map(\.id)
        return try await blockingQueue.run { [self] in
            var out: [Int32: Watermarks] = [:]
            for partition in partitions {
                var low: Int64 = 0
                var high: Int64 = 0
                let err = rd_kafka_query_watermark_offsets(handle.raw, topic, partition, &low, &high, Int32(clamping: timeout.milliseconds))
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    throw KafkaError(
                        err == RD_KAFKA_RESP_ERR__TIMED_OUT ? .timedOut : .adminFailed, code: err.rawValue,
                        "reading watermarks of \(topic)[\(partition)] failed: \(KafkaError.text(err))\(context.lastErrorSuffix)")
                }
                out[partition] = Watermarks(low: low, high: high)
            }
            return out
        }
    }

    private func unreachable(_ what: String, timeout: Duration, err: rd_kafka_resp_err_t) -> KafkaError {
        Native.unreachable(what, context: context, timeout: timeout, err: err)
    }
}

extension Native {
    /// All topics' metadata (a blocking call: run it on a blocking queue).
    static func metadata(_ handle: KafkaHandle, context: ClientContext, timeout: Duration) throws -> [TopicMetadata] {
        var md: UnsafePointer<rd_kafka_metadata_t>?
        let err = rd_kafka_metadata(handle.raw, 1, nil, &md, Int32(clamping: timeout.milliseconds))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md else {
            if err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT {
                throw unreachable("reading metadata", context: context, timeout: timeout, err: err)
            }
            throw KafkaError(.adminFailed, code: err.rawValue, "reading metadata failed: \(KafkaError.text(err))\(context.lastErrorSuffix)")
        }
        defer { rd_kafka_metadata_destroy(md) }
        return (0..<Int(md.pointee.topic_cnt)).compactMap { i in
            let t = md.pointee.topics[i]
            guard t.err == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            let partitions = (0..<Int(t.partition_cnt)).map { j in
                let p = t.partitions[j]
                return PartitionMetadata(
                    id: p.id, leader: p.leader,
                    replicas: (0..<Int(p.replica_cnt)).map { p.replicas[$0] },
                    inSyncReplicas: (0..<Int(p.isr_cnt)).map { p.isrs[$0] })
            }
            return TopicMetadata(name: String(cString: t.topic), partitions: partitions.sorted { $0.id < $1.id })
        }
    }

    static func unreachable(_ what: String, context: ClientContext, timeout: Duration, err: rd_kafka_resp_err_t) -> KafkaError {
        KafkaError(
            .brokerUnreachable, code: err.rawValue,
            "no Kafka broker at \(context.bootstrapServers) answered within \(timeout) while \(what) "
                + "(\(KafkaError.text(err)))\(context.lastErrorSuffix); check the bootstrap servers, "
                + "that the broker runs, and the security.protocol/SASL options")
    }
}
