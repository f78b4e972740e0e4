import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Keeps one child running: starts it, restarts it with backoff when it exits on its own, and stops it
/// (SIGTERM, then SIGKILL after a deadline) when asked.
final class ChildKeeper: Sendable {
    private struct State {
        var process: SpawnedProcess?
        var stopping = false
        var restarts = 0
        var task: Task<Void, Never>?
    }

    let spec: ChildSpec
    let logPath: URL
    let pidPath: URL
    private let state = Mutex(State())
    private let logger: Logger
    private let announce: @Sendable (String) -> Void

    /// Backoff after an unexpected exit doubles from `initialBackoff` up to `maxBackoff`; a child that ran
    /// longer than `healthyRun` starts again from the initial one.
    static let initialBackoff = Duration.milliseconds(500)
    static let maxBackoff = Duration.seconds(10)
    static let healthyRun = Duration.seconds(30)

    init(spec: ChildSpec, options: DevOptions, logger: Logger, announce: @escaping @Sendable (String) -> Void) {
        self.spec = spec
        self.logPath = options.logsDir.appendingPathComponent("\(spec.name).log")
        self.pidPath = options.pidsDir.appendingPathComponent("\(spec.name).pid")
        self.logger = logger
        self.announce = announce
    }

    var isRunning: Bool { state.withLock { $0.process.map { $0.exitStatus == nil } ?? false } }
    var restarts: Int { state.withLock { $0.restarts } }
    var pid: pid_t? { state.withLock { s in s.process.flatMap { $0.exitStatus == nil ? $0.pid : nil } } }

    func start() {
        state.withLock { s in
            guard s.task == nil, !s.stopping else { return }
            s.task = Task { await self.keepRunning() }
        }
    }

    private func keepRunning() async {
        var backoff = Self.initialBackoff
        while !state.withLock({ $0.stopping }) {
            let startedAt = ContinuousClock.now
            do {
                let process = try SpawnedProcess.spawn(
                    executable: spec.executable.path, arguments: spec.arguments,
                    environment: spec.environment, logPath: logPath.path)
                let stopNow = state.withLock { s -> Bool in
                    s.process = process
                    return s.stopping
                }
                if stopNow { process.signal(SIGTERM) }
                try? "\(process.pid)\n".write(to: pidPath, atomically: true, encoding: .utf8)
                logger.debug("started", metadata: ["child": "\(spec.name)", "pid": "\(process.pid)", "log": "\(logPath.path)"])
                announce("started \(spec.name) (pid \(process.pid), log \(logPath.path))")
                // nil: cancelled by stop(), which then sees the process through to its end.
                guard let status = await process.waitForExit() else { return }
                try? FileManager.default.removeItem(at: pidPath)
                if state.withLock({ $0.stopping }) { return }
                state.withLock { $0.restarts += 1 }
                backoff = ContinuousClock.now - startedAt > Self.healthyRun ? Self.initialBackoff : backoff
                logger.warning(
                    "exited unexpectedly; restarting",
                    metadata: [
                        "child": "\(spec.name)", "status": "\(status)", "backoff": "\(backoff)", "log": "\(logPath.path)",
                    ])
                announce("\(spec.name) exited unexpectedly (\(status)); restarting in \(backoff) — see \(logPath.path)")
            } catch {
                logger.error("cannot start", metadata: ["child": "\(spec.name)", "error": "\(error)"])
                announce("cannot start \(spec.name): \(error); retrying in \(backoff)")
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, Self.maxBackoff)
        }
    }

    /// Stops restarting, sends SIGTERM and waits up to `timeout` for the exit, then SIGKILLs.
    func stop(timeout: Duration) async {
        let task = state.withLock { s -> Task<Void, Never>? in
            s.stopping = true
            return s.task
        }
        task?.cancel()
        await task?.value
        guard let process = state.withLock({ $0.process }), process.exitStatus == nil else { return }
        process.signal(SIGTERM)
        var status = await process.waitForExit(timeout: timeout)
        if status == nil {
            logger.warning("did not stop in time; killing", metadata: ["child": "\(spec.name)", "timeout": "\(timeout)"])
            announce("\(spec.name) did not stop within \(timeout); sending SIGKILL")
            process.signal(SIGKILL)
            status = await process.waitForExit()
        }
        try? FileManager.default.removeItem(at: pidPath)
        logger.debug("stopped", metadata: ["child": "\(spec.name)", "status": "\(status.map { "\($0)" } ?? "?")"])
        announce("stopped \(spec.name) (\(status.map { "\($0)" } ?? "?"))")
    }
}
