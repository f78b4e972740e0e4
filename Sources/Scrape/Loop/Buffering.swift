import Synchronization

/// Limits how many scrapes run at once across all loops. Waiters are served in arrival order;
/// a cancelled waiter leaves the queue with CancellationError.
final class ConcurrencyLimiter: Sendable {
    private struct State {
        var available: Int
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextID: UInt64 = 0
    }
    private let state: Mutex<State>

    init(limit: Int) { state = Mutex(State(available: max(1, limit))) }

    func acquire() async throws {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow: Bool? = state.withLock { s in
                    if Task.isCancelled { return false }
                    if s.available > 0 {
                        s.available -= 1
                        return true
                    }
                    s.waiters.append((id, continuation))
                    return nil
                }
                switch resumeNow {
                case true?: continuation.resume()
                case false?: continuation.resume(throwing: CancellationError())
                case nil: break
                }
            }
        } onCancel: {
            let removed = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i).continuation
            }
            removed?.resume(throwing: CancellationError())
        }
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, any Error>? in
            if s.waiters.isEmpty {
                s.available += 1
                return nil
            }
            return s.waiters.removeFirst().continuation
        }
        next?.resume()
    }
}

/// The bounded queue between scrape loops and the (possibly slow) sink: bounded in profiles and in
/// bytes; when either bound would be exceeded the new profile is dropped and the reason counted.
final class ProfileBuffer: Sendable {
    private struct State {
        var items: [ScrapedProfile] = []
        var head = 0
        var bytes = 0
        var finished = false
        var consumer: CheckedContinuation<ScrapedProfile?, Never>?
        var count: Int { items.count - head }
    }
    private let state = Mutex(State())
    let maxProfiles: Int
    let maxBytes: Int

    init(maxProfiles: Int, maxBytes: Int) {
        self.maxProfiles = max(1, maxProfiles)
        self.maxBytes = max(1, maxBytes)
    }

    enum OfferResult: Equatable {
        case accepted
        case dropped(reason: String)
    }

    func offer(_ profile: ScrapedProfile) -> OfferResult {
        let (result, waiting) = state.withLock { s -> (OfferResult, CheckedContinuation<ScrapedProfile?, Never>?) in
            if s.finished { return (.dropped(reason: "shutdown"), nil) }
            if let consumer = s.consumer {
                // The sink is idle and waiting: hand over directly.
                s.consumer = nil
                s.bytes += profile.body.count
                return (.accepted, consumer)
            }
            if s.count >= maxProfiles { return (.dropped(reason: "buffer_full"), nil) }
            if s.bytes + profile.body.count > maxBytes { return (.dropped(reason: "buffer_bytes_full"), nil) }
            s.items.append(profile)
            s.bytes += profile.body.count
            return (.accepted, nil)
        }
        waiting?.resume(returning: profile)
        return result
    }

    /// Next profile, or nil once finished and drained. One consumer only.
    func next() async -> ScrapedProfile? {
        await withCheckedContinuation { (continuation: CheckedContinuation<ScrapedProfile?, Never>) in
            let ready: ScrapedProfile?? = state.withLock { s in
                if s.count > 0 {
                    let p = s.items[s.head]
                    s.head += 1
                    if s.head > 64 && s.head * 2 > s.items.count {
                        s.items.removeFirst(s.head)
                        s.head = 0
                    }
                    return .some(p)
                }
                if s.finished { return .some(nil) }
                s.consumer = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Called by the consumer once a profile is out of its hands.
    func completed(bytes: Int) { state.withLock { $0.bytes -= bytes } }

    /// No more offers; the consumer drains what is queued, then gets nil.
    func finish() {
        let waiting = state.withLock { s -> CheckedContinuation<ScrapedProfile?, Never>? in
            s.finished = true
            defer { s.consumer = nil }
            return s.consumer
        }
        waiting?.resume(returning: nil)
    }

    var occupancy: (profiles: Int, bytes: Int) { state.withLock { ($0.count, $0.bytes) } }
}
