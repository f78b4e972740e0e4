import Hummingbird

/// Why a push was refused. One kind maps to Pyroscope's HTTP status on `/ingest` and to a Connect code
/// (with its HTTP status) on `/push.v1.PusherService/Push`.
public struct IngestError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Bad metadata, malformed body or labels, a profile over the size limit (400, invalid_argument).
        case invalidArgument
        /// The request body is larger than the server reads (413).
        case bodyTooLarge
        /// The tenant's ingest rate is exhausted (429, resource_exhausted).
        case rateLimited
        /// Kafka is down or not keeping up: retry later (503, unavailable).
        case unavailable
        /// A valid request Kiln does not ingest (an unsupported `/ingest` format) (422 on `/ingest`).
        case unprocessable
        /// Bad `X-Scope-OrgID` (401, unauthenticated).
        case unauthenticated
        /// Content-Type the Connect endpoint does not speak (415).
        case unsupportedMediaType
        /// Content-Encoding the Connect endpoint does not speak (501, unimplemented).
        case unsupportedEncoding
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    /// Status on the legacy `/ingest` endpoint (Pyroscope: 400 bad metadata, 413 too large, 429 rate
    /// limit, 422 other push failures).
    public var ingestStatus: HTTPResponse.Status {
        switch kind {
        case .invalidArgument: .badRequest
        case .bodyTooLarge: .contentTooLarge
        case .rateLimited: .tooManyRequests
        case .unavailable: .serviceUnavailable
        case .unprocessable: .unprocessableContent
        case .unauthenticated: .unauthorized
        case .unsupportedMediaType: .unsupportedMediaType
        case .unsupportedEncoding: .notImplemented
        }
    }

    /// Connect error code (https://connectrpc.com/docs/protocol#error-codes).
    public var connectCode: String {
        switch kind {
        case .invalidArgument, .unprocessable: "invalid_argument"
        case .bodyTooLarge, .rateLimited: "resource_exhausted"
        case .unavailable: "unavailable"
        case .unauthenticated: "unauthenticated"
        case .unsupportedMediaType, .unsupportedEncoding: "unimplemented"
        }
    }

    /// HTTP status of a Connect error: the protocol's mapping of its code, except a body over the limit,
    /// which is 413 so that plain HTTP clients and proxies see what happened.
    public var connectStatus: HTTPResponse.Status {
        switch kind {
        case .invalidArgument, .unprocessable: .badRequest
        case .bodyTooLarge: .contentTooLarge
        case .rateLimited: .tooManyRequests
        case .unavailable: .serviceUnavailable
        case .unauthenticated: .unauthorized
        case .unsupportedMediaType: .unsupportedMediaType
        case .unsupportedEncoding: .notImplemented
        }
    }
}
