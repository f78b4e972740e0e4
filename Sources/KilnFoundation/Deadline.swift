/// Runs `body`, throwing `timeout()` if it has not finished within `limit` (and cancelling it).
public func withDeadline<T: Sendable>(
    _ limit: Duration, timeout: @escaping @Sendable () -> any Error, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw timeout()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
