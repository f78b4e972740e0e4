import Foundation
import KilnFoundation
import ObjectStore
import Synchronization

/// One owner per tenant's maintenance across replicas: the object `_kiln/leases/<tenant>.json` names the
/// holder, a fencing token and an expiry. It changes hands only by compare-and-swap on its entity tag
/// (`ObjectStore.put(_:_:if:)`: S3's `If-None-Match`/`If-Match`, file://'s locked rename), so two replicas
/// can never both take it, and the token grows by one with every new holder.
public struct TenantLease: Codable, Sendable, Equatable {
    public var holder: String
    /// The fencing token: one more than the previous holder's. A holder whose renewal finds another token in
    /// place has been fenced off.
    public var token: Int64
    /// Wall-clock expiry (Unix milliseconds), for the other replicas to judge.
    public var expiresAt: Int64

    static func key(_ tenant: String) -> String { "_kiln/leases/\(tenant).json" }

    /// Takes or renews the tenant's lease for `holder`; nil while another holder's lease runs.
    public static func acquire(store: any ObjectStore, tenant: String, holder: String, duration: Duration, now: Date = Date()) async throws
        -> HeldLease?
    {
        // The local deadline counts from before the first request, so it never ends later than the expiry
        // the other replicas read.
        let started = ContinuousClock.now
        let key = key(tenant)
        let nowMillis = Int64(now.timeIntervalSince1970 * 1000)
        // The tag first, then the bytes: bytes newer than the tag make the swap below fail, never succeed
        // over a lease this replica did not see.
        let found = try await store.head(key)
        let current: TenantLease? =
            if found != nil { (try? await store.get(key)).flatMap { try? JSONDecoder().decode(TenantLease.self, from: Data($0)) } } else {
                nil
            }
        let token: Int64
        switch current {
        case let lease? where lease.holder == holder && lease.expiresAt >= nowMillis: token = lease.token
        case let lease? where lease.expiresAt >= nowMillis: return nil
        case let lease?: token = lease.token + 1
        case nil: token = 1  // none yet, or unreadable (then replaced: the swap still needs its tag)
        }
        let mine = TenantLease(holder: holder, token: token, expiresAt: nowMillis + duration.nanos / 1_000_000)
        let condition: WriteCondition = found.flatMap(\.etag).map { .matches(etag: $0) } ?? .absent
        guard let etag = try await store.put(key, Array(try JSONEncoder().encode(mine)), if: condition) else { return nil }
        return HeldLease(store: store, tenant: tenant, lease: mine, etag: etag, duration: duration, since: started)
    }
}

/// The lease was lost: it ran out (the process was paused or stalled past it) or another replica holds it.
public struct LeaseLost: Error, CustomStringConvertible {
    public var tenant: String
    public var token: Int64
    public var reason: String
    public var description: String { "lease on tenant \(tenant) (token \(token)) lost: \(reason)" }
}

/// A lease this process holds. `check()` stands before every write of a maintenance pass (`FencedObjectStore`
/// calls it). Within the first half of the lease it passes without a request: no other replica takes a lease
/// before its expiry, and the local deadline ends a margin earlier. After that it renews the lease by
/// compare-and-swap on the tag this holder last wrote, and the write goes ahead only if the swap succeeds:
/// a process resumed after SIGSTOP, a stalled VM or a long GC, whose lease another replica took meanwhile,
/// finds the tag changed and stops, whatever its own clock says. The deadline runs on the monotonic clock,
/// which keeps counting while a process is stopped.
public final class HeldLease: Sendable {
    public let tenant: String
    let store: any ObjectStore
    let duration: Duration
    /// Kept short of the expiry the others read: covers clock skew between replicas and the time a request
    /// takes to reach the store.
    let margin: Duration
    private struct State {
        var lease: TenantLease
        var etag: String
        var deadline: ContinuousClock.Instant
        var lost: String?
    }
    private let state: Mutex<State>

    init(store: any ObjectStore, tenant: String, lease: TenantLease, etag: String, duration: Duration, since: ContinuousClock.Instant) {
        self.store = store
        self.tenant = tenant
        self.duration = duration
        margin = duration / 5
        state = Mutex(State(lease: lease, etag: etag, deadline: since + duration - duration / 5))
    }

    public var token: Int64 { state.withLock { $0.lease.token } }

    /// Throws `LeaseLost` unless the lease is still this process's; renews it once half is used.
    public func check(now: ContinuousClock.Instant = .now) async throws {
        let (lease, etag, deadline, lost) = state.withLock { ($0.lease, $0.etag, $0.deadline, $0.lost) }
        if let lost { throw LeaseLost(tenant: tenant, token: lease.token, reason: lost) }
        if deadline - now >= duration / 2 { return }
        var renewed = lease
        renewed.expiresAt = Int64(Date().timeIntervalSince1970 * 1000) + duration.nanos / 1_000_000
        guard let newTag = try await store.put(TenantLease.key(tenant), Array(try JSONEncoder().encode(renewed)), if: .matches(etag: etag))
        else {
            let reason =
                now > deadline
                ? "it ran out \(DurationText.format(now - deadline)) ago, while this process was paused or stalled, and another replica took it"
                : "another replica took it"
            try fail(lease, reason)
        }
        state.withLock { s in
            s.lease = renewed
            s.etag = newTag
            s.deadline = now + duration - margin
        }
    }

    private func fail(_ lease: TenantLease, _ reason: String) throws -> Never {
        state.withLock { $0.lost = reason }
        throw LeaseLost(tenant: tenant, token: lease.token, reason: reason)
    }
}

/// The store a maintenance pass writes through: every write first checks the pass's lease, so a pass that
/// lost its lease stops at its next write. Reads go straight through.
///
/// What stays open: a pause between a check and the request reaching the store. Neither S3 nor a file
/// system can make a write to one key conditional on another key, so that window cannot be closed there;
/// it is harmless because every maintenance write is idempotent (block IDs derive from their sources,
/// deletion marks are create-only, deleting a deleted key succeeds).
public struct FencedObjectStore: ObjectStore {
    public let base: any ObjectStore
    public let lease: HeldLease

    public init(_ base: any ObjectStore, lease: HeldLease) {
        self.base = base
        self.lease = lease
    }

    public var location: String { base.location }

    public func put(_ key: String, _ bytes: [UInt8]) async throws {
        try await lease.check()
        try await base.put(key, bytes)
    }

    public func putIfAbsent(_ key: String, _ bytes: [UInt8]) async throws -> Bool {
        try await lease.check()
        return try await base.putIfAbsent(key, bytes)
    }

    public func put(_ key: String, _ bytes: [UInt8], if condition: WriteCondition) async throws -> String? {
        try await lease.check()
        return try await base.put(key, bytes, if: condition)
    }

    public func get(_ key: String, range: ByteRange?) async throws -> [UInt8] { try await base.get(key, range: range) }
    public func head(_ key: String) async throws -> ObjectInfo? { try await base.head(key) }
    public func list(prefix: String, delimiter: String?) async throws -> ListResult {
        try await base.list(prefix: prefix, delimiter: delimiter)
    }

    public func delete(_ key: String) async throws {
        try await lease.check()
        try await base.delete(key)
    }

    /// The base store belongs to whoever made it.
    public func shutdown() async throws {}
}
