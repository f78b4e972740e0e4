import Dispatch

/// The one way Kiln runs blocking or CPU-heavy work (whole-buffer inflate and compression, big decodes,
/// file system calls) off Swift's cooperative pool, whose few threads must stay free for I/O and for
/// every other task. Work goes to a Dispatch queue of Kiln's own and the caller awaits its result.
public struct BlockingWork: Sendable {
    /// Below this many bytes a decode or inflate is cheaper done in place than handed to another thread
    /// (the hand-off costs a few microseconds; 64 KiB inflates in about a tenth of a millisecond).
    public static let inlineThresholdBytes = 64 * 1024

    /// A concurrent queue for independent pieces of work (request bodies, block files, file I/O).
    public static let shared = BlockingWork(label: "kiln.blocking", concurrent: true)

    let queue: DispatchQueue

    /// A queue of one's own: serial unless `concurrent` (a stage that must keep its work in order, or keep
    /// one core for itself, uses a serial one).
    public init(label: String, concurrent: Bool = false) {
        queue = DispatchQueue(label: label, attributes: concurrent ? [.concurrent] : [])
    }

    /// Runs `work` on the queue and returns its result or error.
    public func run<T: Sendable, E: Error>(_ work: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: Result { () throws(E) in try work() }) }
        }
        return try result.get()
    }

    /// Runs `work` on the queue when `bytes` is at least `inlineThresholdBytes`, in place otherwise.
    public func run<T: Sendable, E: Error>(bytes: Int, _ work: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        if bytes < Self.inlineThresholdBytes { return try work() }
        return try await run(work)
    }
}
