import Synchronization

/// Per-tenant token buckets over bytes: `rate` bytes per second refill up to `burst`. A push costs its
/// decompressed size; one larger than the burst may go through only on a full bucket (it then empties it),
/// so a single large profile is never refused forever.
public final class TenantRateLimiter: Sendable {
    struct Bucket {
        var tokens: Double
        var last: ContinuousClock.Instant
    }

    public let rate: Double
    public let burst: Double
    private let buckets = Mutex<[String: Bucket]>([:])
    private let clock = ContinuousClock()

    public init(bytesPerSecond: Double, burstBytes: Double) {
        rate = bytesPerSecond
        burst = max(burstBytes, 1)
    }

    public var isUnlimited: Bool { rate <= 0 }

    /// True when the tenant may add `bytes` now (and they are taken).
    public func allow(tenant: String, bytes: Int) -> Bool {
        allow(tenant: tenant, bytes: bytes, rate: rate, burst: burst)
    }

    /// The same with the tenant's own rate and burst (`--limits-file`).
    public func allow(tenant: String, bytes: Int, rate: Double, burst: Double) -> Bool {
        guard rate > 0 else { return true }
        let burst = max(burst, 1)
        let now = clock.now
        let cost = min(Double(bytes), burst)
        return buckets.withLock { buckets in
            var b = buckets[tenant] ?? Bucket(tokens: burst, last: now)
            let elapsed = now - b.last
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            b.tokens = min(burst, b.tokens + seconds * rate)
            b.last = now
            let allowed = b.tokens >= cost
            if allowed { b.tokens -= cost }
            buckets[tenant] = b
            return allowed
        }
    }
}

/// Bytes accepted but not yet acknowledged by the publisher. `acquire` waits (FIFO) for room up to a
/// deadline, so a stalled Kafka turns into prompt 503s instead of a growing pile of request bodies.
/// A request larger than the whole budget is admitted when nothing else is in flight.
public final class InFlightBudget: Sendable {
    struct Waiter {
        var id: UInt64
        var bytes: Int
        var continuation: CheckedContinuation<Bool, Never>
    }

    struct State {
        var used = 0
        var nextID: UInt64 = 0
        var waiters: [Waiter] = []
    }

    public let limit: Int
    private let state = Mutex(State())

    public init(limit: Int) { self.limit = limit }

    public var inFlightBytes: Int { state.withLock { $0.used } }

    /// True when `bytes` were reserved within `timeout`; the caller must `release` them later.
    public func acquire(_ bytes: Int, timeout: Duration) async -> Bool {
        let id: UInt64? = state.withLock { s in
            if s.waiters.isEmpty && (s.used + bytes <= limit || s.used == 0) {
                s.used += bytes
                return nil
            }
            s.nextID += 1
            return s.nextID
        }
        guard let id else { return true }
        return await withCheckedContinuation { continuation in
            let resumeNow: Bool? = state.withLock { s in
                // Room may have appeared between the check above and here.
                if s.waiters.isEmpty && (s.used + bytes <= limit || s.used == 0) {
                    s.used += bytes
                    return true
                }
                s.waiters.append(Waiter(id: id, bytes: bytes, continuation: continuation))
                return nil
            }
            if let resumeNow {
                continuation.resume(returning: resumeNow)
            } else {
                // Started only once the waiter is queued, so it cannot fire too early; after a grant it
                // finds nothing to expire.
                Task {
                    try? await Task.sleep(for: timeout)
                    self.expire(id)
                }
            }
        }
    }

    public func release(_ bytes: Int) {
        let granted = state.withLock { s in
            s.used -= bytes
            return Self.grant(&s, limit: limit)
        }
        for c in granted { c.resume(returning: true) }
    }

    private func expire(_ id: UInt64) {
        let (expired, granted): (CheckedContinuation<Bool, Never>?, [CheckedContinuation<Bool, Never>]) = state.withLock { s in
            guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return (nil, []) }
            let c = s.waiters.remove(at: i).continuation
            // The head leaving may let the next waiters in.
            return (c, Self.grant(&s, limit: limit))
        }
        expired?.resume(returning: false)
        for c in granted { c.resume(returning: true) }
    }

    /// Admits waiters in order while they fit.
    private static func grant(_ s: inout State, limit: Int) -> [CheckedContinuation<Bool, Never>] {
        var out: [CheckedContinuation<Bool, Never>] = []
        while let w = s.waiters.first, s.used + w.bytes <= limit || s.used == 0 {
            s.waiters.removeFirst()
            s.used += w.bytes
            out.append(w.continuation)
        }
        return out
    }
}

/// A value delivered once, awaited once: lets a request stop waiting for a slow publish while the
/// publish itself runs on (and releases its budget when it ends).
final class OneShot<Value: Sendable>: Sendable {
    private enum State {
        case empty
        case value(Value)
        case waiting(CheckedContinuation<Value, Never>)
        case done
    }

    private let state = Mutex(State.empty)

    /// The first value wins; later ones are ignored.
    func complete(_ value: Value) {
        let waiter: CheckedContinuation<Value, Never>? = state.withLock { s in
            switch s {
            case .empty:
                s = .value(value)
                return nil
            case .waiting(let c):
                s = .done
                return c
            case .value, .done:
                return nil
            }
        }
        waiter?.resume(returning: value)
    }

    var value: Value {
        get async {
            await withCheckedContinuation { continuation in
                let ready: Value? = state.withLock { s in
                    if case .value(let v) = s {
                        s = .done
                        return v
                    }
                    s = .waiting(continuation)
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}

/// The series each tenant pushed recently ("active"), to cap them per tenant. A series is one label set of
/// a pushed profile (before the normaliser splits it by pprof sample labels); it stays active for `window`
/// after its last push. Memory is bounded by the limit per tenant.
public final class ActiveSeries: Sendable {
    private struct Tenant {
        var lastSeen: [Int: ContinuousClock.Instant] = [:]
    }

    public let window: Duration
    private let state = Mutex<[String: Tenant]>([:])
    private let clock = ContinuousClock()

    public init(window: Duration = .seconds(3600)) { self.window = window }

    /// Records `series` (label-set hashes) of one push when the tenant stays within `limit` active series
    /// with them; otherwise records nothing and returns how many the tenant has. `limit <= 0`: unlimited.
    public func admit(tenant: String, series: [Int], limit: Int) -> (admitted: Bool, active: Int) {
        let now = clock.now
        let window = self.window
        return state.withLock { tenants in
            // Moved out and back, not copied: a copy would share `lastSeen` with the dictionary, so the first
            // write below would copy every series of the tenant, on every push.
            var t = tenants.removeValue(forKey: tenant) ?? Tenant()
            defer { tenants[tenant] = t }
            let new = Set(series.filter { t.lastSeen[$0] == nil })
            // Expired series are dropped only when they are in the way (at most `limit` entries to scan).
            if limit > 0, t.lastSeen.count + new.count > limit {
                t.lastSeen = t.lastSeen.filter { now - $0.value < window }
            }
            if limit > 0, !new.isEmpty, t.lastSeen.count + new.count > limit {
                return (false, t.lastSeen.count)
            }
            for s in series { t.lastSeen[s] = now }
            return (true, t.lastSeen.count)
        }
    }

    public func count(tenant: String) -> Int { state.withLock { $0[tenant]?.lastSeen.count ?? 0 } }
}
