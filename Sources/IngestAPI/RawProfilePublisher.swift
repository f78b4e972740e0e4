import APICommon
import Records
import Synchronization

/// Where accepted pushes go. `publish` returns only once the envelope is durable (in production: Kafka
/// acknowledged it), so a push is answered 200 only for data that will not be lost.
public protocol RawProfilePublisher: Sendable {
    func publish(_ envelope: RawEnvelope) async throws
}

/// Keeps every published envelope in memory: tests, benchmarks and debugging.
public final class InMemoryRawPublisher: RawProfilePublisher {
    private let stored = Mutex<[RawEnvelope]>([])
    private let keep: Bool
    private let count = Atomic<Int>(0)
    private let bytes = Atomic<Int>(0)

    /// `keep: false` only counts (benchmarks that must not grow without bound).
    public init(keep: Bool = true) { self.keep = keep }

    public func publish(_ envelope: RawEnvelope) async throws {
        count.add(1, ordering: .relaxed)
        bytes.add(envelope.payload.count, ordering: .relaxed)
        if keep { stored.withLock { $0.append(envelope) } }
    }

    public var envelopes: [RawEnvelope] { stored.withLock { $0 } }
    public var publishedCount: Int { count.load(ordering: .relaxed) }
    public var publishedBytes: Int { bytes.load(ordering: .relaxed) }
}
