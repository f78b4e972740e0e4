import Dispatch

/// A serial queue of our own for CPU-heavy or blocking work (pprof inflate and decode, block encoding),
/// so it never occupies a thread of Swift's cooperative pool.
public struct DedicatedThread: Sendable {
    private let queue: DispatchQueue

    public init(label: String) {
        queue = DispatchQueue(label: label)
    }

    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }
}
