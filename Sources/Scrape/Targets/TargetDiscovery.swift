/// One discovery component (`discovery.file`, `.http`, `.dns`, `.kubernetes`): keeps its targets current
/// while `run` runs. The scrape manager reads `targets` whenever one of them reports a change.
public protocol TargetDiscovery: Sendable {
    /// "discovery.KIND.LABEL", as configurations refer to the component.
    var id: String { get }
    var targets: [LabelSet] { get }
    /// Why the last refresh failed, by what failed (a file, a URL, a DNS name, a resource); the last good
    /// targets stay meanwhile.
    var errors: [String: String] { get }
    /// Refreshes until cancelled, calling `changed` when the targets may have changed.
    func run(changed: @escaping @Sendable () -> Void) async
}

/// Refreshes now, then every `interval`, until cancelled; `refresh` says whether targets changed.
func poll(every interval: Duration, changed: @Sendable () -> Void, _ refresh: () async -> Bool) async {
    while !Task.isCancelled {
        if await refresh() { changed() }
        do { try await Task.sleep(for: interval) } catch { return }
    }
}
