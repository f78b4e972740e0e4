import CRdKafka

/// Every failure the Kafka client reports. `message` is written for an operator: what happened, to what,
/// and (where there is one) what to do about it.
public struct KafkaError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The librdkafka loaded at run time is too old (see `KafkaRuntime.checkVersion()`).
        case unsupportedRuntime
        /// `--kafka-option` / `KILN_KAFKA_OPTIONS` text that is not `key=value`.
        case invalidOption
        /// librdkafka refused a property name or value.
        case invalidConfiguration
        /// No broker answered within the timeout.
        case brokerUnreachable
        /// A blocking operation did not finish within its timeout.
        case timedOut
        /// The topic (or partition) does not exist on the cluster.
        case unknownTopic
        /// `rd_kafka_produceva` refused the record (other than `QUEUE_FULL`, which is back-pressure).
        case produceFailed
        /// The broker did not accept the record (delivery report error).
        case deliveryFailed
        /// An error surfaced by the consumer (poll, commit, seek, offsets).
        case consumerFailed
        /// An admin request failed.
        case adminFailed
        /// A record can never fit into the producer's bounded queue.
        case recordTooLarge
        /// The client was closed.
        case closed
        /// librdkafka raised a fatal error; the client must be recreated.
        case fatal
    }

    public let kind: Kind
    /// librdkafka's `rd_kafka_resp_err_t` value when the failure came from librdkafka.
    public let code: Int32?
    public let message: String

    public init(_ kind: Kind, code: Int32? = nil, _ message: String) {
        self.kind = kind
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// librdkafka's short text for an error code, e.g. `Local: Timed out`.
    static func text(_ err: rd_kafka_resp_err_t) -> String {
        String(cString: rd_kafka_err2str(err))
    }

    /// Builds an error from an `rd_kafka_error_t*` and destroys it.
    static func consume(_ error: OpaquePointer, kind: Kind, context: String) -> KafkaError {
        defer { rd_kafka_error_destroy(error) }
        let code = rd_kafka_error_code(error)
        let text = rd_kafka_error_string(error).map { String(cString: $0) } ?? Self.text(code)
        let kind: Kind = rd_kafka_error_is_fatal(error) != 0 ? .fatal : kind
        return KafkaError(kind, code: code.rawValue, "\(context): \(text)")
    }
}
