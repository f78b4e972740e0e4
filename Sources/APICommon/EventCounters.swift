import Metrics
import Synchronization

/// Series of event counters created at zero before their first event, as Prometheus advises for known
/// label sets: a dashboard panel then shows 0 for refusals that did not happen instead of nothing, and an
/// alert's expression finds its series. Series of a tenant start at its first request rather than for
/// every tenant up front.
public enum EventCounters {
    private static let created = Mutex<Set<String>>([])

    /// Creates `label`'s series for each of `dimensionSets` at zero, the first time this process asks with
    /// `key` (what tells the sets apart: an endpoint, a tenant); later calls cost a set lookup.
    public static func zero(_ label: String, key: String = "", _ dimensionSets: @autoclosure () -> [[(String, String)]]) {
        guard created.withLock({ $0.insert(label + "\u{0}" + key).inserted }) else { return }
        for dimensions in dimensionSets() { _ = Counter(label: label, dimensions: dimensions) }
    }
}
