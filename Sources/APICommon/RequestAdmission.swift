import Hummingbird
import KilnFoundation
import Metrics
import Synchronization

/// Which bound of `RequestAdmission` refused a request (its counter's `reason`, the limit its answer names).
enum AdmissionReason: String, CaseIterable {
    case maxConcurrentRequests = "max_concurrent_requests"
    case maxConcurrentRequestsPerTenant = "max_concurrent_requests_per_tenant"
    case maxRequestBytesInFlight = "max_request_bytes_in_flight"
}

/// How many requests a server works on at once, in all and per tenant (`X-Scope-OrgID`, or none), and how
/// many request bytes (by `Content-Length`) they bring. Past any bound a request is answered 503 with
/// `Retry-After: 1` at once, before its body is read, so a flood from one tenant (or clients that open
/// connections faster than the server finishes them, or many large pushes at once) cannot take every slot,
/// and the memory the requests in flight hold stays bounded. `/metrics` and `/ready` are never refused.
public struct RequestAdmission<Context: RequestContext>: RouterMiddleware {
    public struct Limits: Sendable, Equatable {
        /// 0: no bound.
        public var total: Int
        public var perTenant: Int
        /// Body bytes of the requests in flight; 0: no bound. One request larger than this is admitted
        /// while no other body is in flight, so no request is refused for ever.
        public var bodyBytes: Int
        /// What a body sent without `Content-Length` (chunked) counts as.
        public static var unknownLengthBytes: Int { 16 << 20 }

        public init(total: Int = 256, perTenant: Int = 64, bodyBytes: Int = 256 << 20) {
            self.total = total
            self.perTenant = perTenant
            self.bodyBytes = bodyBytes
        }
    }

    final class Gate: Sendable {
        let limits: Limits
        private let inFlight = Mutex<(total: Int, bytes: Int, byTenant: [String: Int])>((0, 0, [:]))
        init(limits: Limits) { self.limits = limits }

        /// Takes a slot and `bytes`, or says which bound is full.
        func enter(_ tenant: String, bytes: Int) -> AdmissionReason? {
            inFlight.withLock { s in
                if limits.total > 0, s.total >= limits.total { return .maxConcurrentRequests }
                let mine = s.byTenant[tenant, default: 0]
                if limits.perTenant > 0, mine >= limits.perTenant { return .maxConcurrentRequestsPerTenant }
                if limits.bodyBytes > 0, s.bytes > 0, s.bytes + bytes > limits.bodyBytes { return .maxRequestBytesInFlight }
                s.total += 1
                s.bytes += bytes
                s.byTenant[tenant] = mine + 1
                return nil
            }
        }

        func leave(_ tenant: String, bytes: Int) {
            inFlight.withLock { s in
                s.total -= 1
                s.bytes -= bytes
                let left = s.byTenant[tenant, default: 1] - 1
                s.byTenant[tenant] = left == 0 ? nil : left
            }
        }

        /// The bound `reason` names, for the refusal's message.
        func value(of reason: AdmissionReason) -> Int {
            switch reason {
            case .maxConcurrentRequests: limits.total
            case .maxConcurrentRequestsPerTenant: limits.perTenant
            case .maxRequestBytesInFlight: limits.bodyBytes
            }
        }
    }

    let gate: Gate

    public init(limits: Limits) {
        gate = Gate(limits: limits)
        EventCounters.zero("kiln_requests_refused_total", AdmissionReason.allCases.map { [("reason", $0.rawValue)] })
    }

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let path = request.uri.path
        if path == "/metrics" || path == "/ready" { return try await next(request, context) }
        let tenant = Connect.header(request, "x-scope-orgid") ?? ""
        // Clamped: a declared length is the client's word, and an absurd one must not overflow the sum.
        let bytes = min(
            max(
                0,
                request.headers[.contentLength].flatMap { Int($0) }
                    ?? (request.headers[.transferEncoding] == nil ? 0 : Limits.unknownLengthBytes)),
            1 << 48)
        if let full = gate.enter(tenant, bytes: bytes) {
            Counter(label: "kiln_requests_refused_total", dimensions: [("reason", full.rawValue)]).increment()
            let value = gate.value(of: full)
            // Stop reading the body: the refusal is written and the connection closed at once, rather than
            // after the server has drained whatever the client still sends (a trickling client: never).
            let body = request.body
            _ = try? await withDeadline(.zero, timeout: { CancellationError() }) { for try await _ in body {} }
            var response = Connect.errorResponse(
                APIError.exceeding(.unavailable, full.rawValue, value, "too many requests in flight; retry shortly"))
            response.headers[.retryAfter] = "1"
            return response
        }
        defer { gate.leave(tenant, bytes: bytes) }
        return try await next(request, context)
    }
}
