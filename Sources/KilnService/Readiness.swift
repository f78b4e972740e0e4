import Synchronization

/// What `/ready` reports: a service is ready once every component it registered says so.
/// Components start not ready with a reason, e.g. "waiting for Kafka".
public final class Readiness: Sendable {
    private let state: Mutex<[String: String?]>

    public init(components: [String: String]) {
        state = Mutex(components.mapValues { Optional($0) })
    }

    public func markReady(_ component: String) {
        state.withLock { $0[component] = .some(nil) }
    }

    public func markNotReady(_ component: String, reason: String) {
        state.withLock { $0[component] = .some(reason) }
    }

    /// Not-ready components with their reasons, sorted by name; empty when ready.
    public var pending: [(component: String, reason: String)] {
        state.withLock { components in
            components.compactMap { name, reason in reason.map { (name, $0) } }.sorted { $0.component < $1.component }
        }
    }

    public var isReady: Bool { pending.isEmpty }
}
