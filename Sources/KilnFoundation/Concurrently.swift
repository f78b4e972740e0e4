/// Runs `work` on every job, at most `parallelism` at once, in child tasks; `merge` takes each result as it
/// arrives, on the caller's isolation (an actor's state included), so partial results need no lock. The
/// first error cancels the rest.
public func concurrently<Job: Sendable, Partial: Sendable>(
    _ jobs: [Job], parallelism: Int, isolation: isolated (any Actor)? = #isolation,
    _ work: @escaping @Sendable (Job) async throws -> Partial, merge: (Job, Partial) throws -> Void
) async throws {
    try await withThrowingTaskGroup(of: (Job, Partial).self) { group in
        // A closure runs on an isolated parameter's actor only when it captures it: `merge` must.
        _ = isolation
        var next = 0
        func start() {
            guard next < jobs.count else { return }
            let job = jobs[next]
            next += 1
            group.addTask { (job, try await work(job)) }
        }
        for _ in 0..<max(1, parallelism) { start() }
        while let (job, partial) = try await group.next() {
            try merge(job, partial)
            start()
        }
    }
}
