import Hummingbird

/// Why a push was refused. One kind maps to Pyroscope's HTTP status on `/ingest` and to a Connect code
/// (with its HTTP status) on `/push.v1.PusherService/Push`.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
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
        /// Content-Encoding the endpoint does not speak (415, unimplemented): a fault of the request, so a 4xx
        /// (RFC 9110 §15.5.16), with Connect's code in the body.
        case unsupportedEncoding
        /// Authentication is on and the request has no valid credentials (401 with `WWW-Authenticate`).
        case missingCredentials
        /// The credentials are valid but may not act for the tenant the request names (403, permission_denied).
        case forbidden
        /// A method Kiln does not serve (501, unimplemented).
        case unimplemented
        /// A request field or value Kiln does not honour (400, unimplemented): refused rather than answered
        /// as if it had not been asked. A 4xx, as the fault is in what the request asks of this server.
        case unsupportedField
        /// The client did not send its whole body in time (408, deadline_exceeded): a slow or stalled client
        /// must not hold a connection and a slot for ever.
        case requestTimeout
        /// What the request names does not exist (404, not_found), e.g. an ad hoc profile ID.
        case notFound
        /// The request was made from a state that changed meanwhile (409, already_exists), e.g. an update of a
        /// recording rule from an older generation.
        case conflict
    }

    public var kind: Kind
    public var message: String
    /// The documented name of the per-tenant limit this refusal enforces (docs/security.md), if any; such
    /// refusals are counted as `kiln_discarded_total{reason=<limit>}` or `kiln_query_refused_total`.
    public var limit: String?

    public init(_ kind: Kind, _ message: String, limit: String? = nil) {
        self.kind = kind
        self.message = message
        self.limit = limit
    }

    /// A refusal by the limit `name`; the message ends by naming it and its value.
    public static func exceeding(_ kind: Kind, _ name: String, _ value: some CustomStringConvertible, _ message: String) -> APIError {
        APIError(kind, "\(message) (limit \(name) = \(value))", limit: name)
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
        case .unsupportedEncoding: .unsupportedMediaType
        case .missingCredentials: .unauthorized
        case .forbidden: .forbidden
        case .unimplemented: .notImplemented
        case .unsupportedField: .badRequest
        case .requestTimeout: .requestTimeout
        case .notFound: .notFound
        case .conflict: .conflict
        }
    }

    /// `WWW-Authenticate` of the error response: the challenges of a 401 for missing credentials.
    public var challenge: String? {
        kind == .missingCredentials ? TenantAccess.challenges.joined(separator: ", ") : nil
    }

    /// Connect error code (https://connectrpc.com/docs/protocol#error-codes).
    public var connectCode: String {
        switch kind {
        case .invalidArgument, .unprocessable: "invalid_argument"
        case .bodyTooLarge, .rateLimited: "resource_exhausted"
        case .unavailable: "unavailable"
        case .unauthenticated, .missingCredentials: "unauthenticated"
        case .forbidden: "permission_denied"
        case .unsupportedMediaType, .unsupportedEncoding, .unimplemented, .unsupportedField: "unimplemented"
        case .requestTimeout: "deadline_exceeded"
        case .notFound: "not_found"
        case .conflict: "already_exists"
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
        case .unsupportedEncoding: .unsupportedMediaType
        case .missingCredentials: .unauthorized
        case .forbidden: .forbidden
        case .unimplemented: .notImplemented
        case .unsupportedField: .badRequest
        case .requestTimeout: .requestTimeout
        case .notFound: .notFound
        case .conflict: .conflict
        }
    }
}
