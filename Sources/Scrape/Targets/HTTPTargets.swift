import Foundation
import Synchronization

/// Watches one `discovery.http` component (Prometheus HTTP service discovery): fetches its URL every
/// refresh interval. The answer is the `file_sd` JSON format — `[{"targets": [...], "labels": {...}}]`;
/// every target gets `__address__` and `__meta_url`. A failed fetch or a bad answer keeps the last good
/// targets (as Prometheus does) and is reported on `/targets`.
public final class HTTPTargetWatcher: TargetDiscovery {
    public let component: HTTPDiscoveryComponent
    let fetcher: any ProfileFetcher
    /// Prometheus's limits for an HTTP SD answer and request.
    static let maxBodyBytes = 10 << 20
    static let timeout: Duration = .seconds(30)

    private struct State: Sendable {
        var targets: [LabelSet] = []
        var lastError: String?
    }
    private let state = Mutex(State())

    public init(component: HTTPDiscoveryComponent, fetcher: any ProfileFetcher) {
        self.component = component
        self.fetcher = fetcher
    }

    public var id: String { "discovery.http.\(component.label)" }

    public var targets: [LabelSet] { state.withLock { $0.targets } }

    /// Why the last refresh failed, if it did, by URL.
    public var errors: [String: String] { state.withLock { s in s.lastError.map { [component.url: $0] } ?? [:] } }

    public func run(changed: @escaping @Sendable () -> Void) async {
        await poll(every: component.refreshInterval, changed: changed) { await refresh() }
    }

    /// Fetches the list; returns true when the targets changed.
    @discardableResult
    public func refresh() async -> Bool {
        let request = ProfileRequest(
            url: component.url, timeout: Self.timeout, maxBodyBytes: Self.maxBodyBytes, credentials: component.credentials,
            tls: component.tls)
        let fetched: [LabelSet]
        do {
            let body = try await fetcher.fetch(request)
            fetched = try Self.parse(Data(body), url: component.url)
        } catch {
            let message = (error as? ScrapeError)?.message ?? String(describing: error)
            state.withLock { $0.lastError = message }
            return false
        }
        return state.withLock { s in
            s.lastError = nil
            let changed = s.targets != fetched
            s.targets = fetched
            return changed
        }
    }

    static func parse(_ data: Data, url: String) throws -> [LabelSet] {
        FileTargets.targets(try FileTargets.parseJSON(data, path: url), meta: "__meta_url", value: url)
    }
}
