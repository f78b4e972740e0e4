import Hummingbird
import KilnFoundation
import Metrics
import Synchronization

/// How many requests a server works on at once, in all and per tenant (`X-Scope-OrgID`, or none). Past
/// either bound a request is answered 503 with `Retry-After: 1` at once, so a flood from one tenant (or
/// clients that open connections faster than the server finishes them) cannot take every slot, and the
/// memory the requests in flight hold stays bounded. `/metrics` and `/ready` are never refused.
public struct RequestAdmission<Context: RequestContext>: RouterMiddleware {
    public struct Limits: Sendable, Equatable {
        /// 0: no bound.
        public var total: Int
        public var perTenant: Int
        public init(total: Int = 256, perTenant: Int = 64) {
            self.total = total
            self.perTenant = perTenant
        }
    }

    final class Gate: Sendable {
        let limits: Limits
        private let inFlight = Mutex<(total: Int, byTenant: [String: Int])>((0, [:]))
        init(limits: Limits) { self.limits = limits }

        /// Takes a slot, or says which bound is full.
        func enter(_ tenant: String) -> String? {
            inFlight.withLock { s in
                if limits.total > 0, s.total >= limits.total { return "max_concurrent_requests" }
                let mine = s.byTenant[tenant, default: 0]
                if limits.perTenant > 0, mine >= limits.perTenant { return "max_concurrent_requests_per_tenant" }
                s.total += 1
                s.byTenant[tenant] = mine + 1
                return nil
            }
        }

        func leave(_ tenant: String) {
            inFlight.withLock { s in
                s.total -= 1
                let left = s.byTenant[tenant, default: 1] - 1
                s.byTenant[tenant] = left == 0 ? nil : left
            }
        }
    }

    let gate: Gate

    public init(limits: Limits) { gate = Gate(limits: limits) }

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let path = request.uri.path
        if path == "/metrics" || path == "/ready" { return try await next(request, context) }
        let tenant = Connect.header(request, "x-scope-orgid") ?? ""
        if let full = gate.enter(tenant) {
            Counter(label: "kiln_requests_refused_total", dimensions: [("reason", full)]).increment()
            let value = full == "max_concurrent_requests" ? gate.limits.total : gate.limits.perTenant
            // Stop reading the body: the refusal is written and the connection closed at once, rather than
            // after the server has drained whatever the client still sends (a trickling client: never).
            let body = request.body
            _ = try? await withDeadline(.zero, timeout: { CancellationError() }) { for try await _ in body {} }
            var response = Connect.errorResponse(
                APIError.exceeding(.unavailable, full, value, "too many requests in flight; retry shortly"))
            response.headers[.retryAfter] = "1"
            return response
        }
        defer { gate.leave(tenant) }
        return try await next(request, context)
    }
}
