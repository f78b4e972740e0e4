import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How a child process ended.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// Decodes a `waitpid` status (the W* macros are not importable into Swift).
    init(waitStatus status: Int32) {
        if status & 0x7f == 0 { self = .exited((status >> 8) & 0xff) } else { self = .signaled(status & 0x7f) }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exit status \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }
}

public struct SpawnError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// A child process started with `posix_spawn` in a process group of its own, so a Ctrl-C in the terminal
/// reaches only `kiln dev`, which then stops the children in its own order. Its stdout and stderr go to a
/// log file; a dedicated thread starts it and then blocks in `waitpid` (never on the cooperative pool)
/// until it is reaped.
///
/// A child must not outlive `kiln dev` even when `kiln dev` is SIGKILLed: it is started through util-linux's
/// `setpriv --pdeathsig TERM`, so the kernel sends it SIGTERM when its parent goes. Linux sends that signal
/// when the *thread* that started the child ends, which is why each child is started by its own reaper
/// thread, which lives exactly as long as the child.
public final class SpawnedProcess: Sendable {
    private struct State {
        var status: ExitStatus?
        var waiters: [UInt64: CheckedContinuation<ExitStatus?, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    public let pid: pid_t
    private let state = Mutex(State())

    private init(pid: pid_t) {
        self.pid = pid
    }

    /// util-linux's `setpriv` (Debian's essential util-linux package), when present.
    static let setpriv = FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") ? "/usr/bin/setpriv" : nil

    /// Starts `executable` with exactly `arguments` and `environment`, stdin from /dev/null and stdout and
    /// stderr appended to `logPath`; it gets SIGTERM if this process dies.
    public static func spawn(
        executable: String, arguments: [String], environment: [String: String],
        logPath: String
    ) throws -> SpawnedProcess {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw SpawnError(description: "cannot start \(executable): no executable file there")
        }
        let (program, argumentsWithWrapper) =
            if let setpriv { (setpriv, ["--pdeathsig", "TERM", "--", executable] + arguments) } else { (executable, arguments) }
        // The reaper thread spawns, reports the pid (or the error) through `started`, then waits.
        let started = Mutex<Result<SpawnedProcess, SpawnError>?>(nil)
        let ready = DispatchSemaphore(value: 0)
        let reaper = Thread {
            let result = Result { () throws(SpawnError) -> SpawnedProcess in
                try SpawnedProcess(pid: posixSpawn(program, argumentsWithWrapper, environment: environment, logPath: logPath))
            }
            started.withLock { $0 = result }
            ready.signal()
            guard case .success(let process) = result else { return }
            var status: Int32 = 0
            while waitpid(process.pid, &status, 0) < 0 {
                if errno != EINTR {
                    status = 0x7f00
                    break
                }  // unknowable; report as exit 127
            }
            process.finish(ExitStatus(waitStatus: status))
        }
        reaper.name = "kiln-dev-child"
        reaper.start()
        ready.wait()  // as long as posix_spawn takes: the same blocking the call always had
        return try started.withLock { $0! }.get()
    }

    private static func posixSpawn(
        _ executable: String, _ arguments: [String], environment: [String: String], logPath: String
    ) throws(SpawnError) -> pid_t {
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard logFD >= 0 else { throw SpawnError(description: "cannot open \(logPath): \(String(cString: strerror(errno)))") }
        defer { close(logFD) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, logFD, 1)
        posix_spawn_file_actions_adddup2(&actions, logFD, 2)
        // Nothing else of ours (listening sockets, the data-dir lock) may outlive us in a child.
        closeOthers(&actions)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setpgroup(&attributes, 0)
        // Signal handlers installed here (ServiceLifecycle ignores SIGINT/SIGTERM to watch them) would be
        // inherited as "ignored"; the children get the defaults and an empty mask.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(rc)))") }
        return pid
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// glibc ≥ 2.34 has `posix_spawn_file_actions_addclosefrom_np`, but Swift's Glibc module does not
    /// declare it, so it is looked up at run time; without it every descriptor above 2 is marked
    /// close-on-exec instead (harmless for us: this process never execs).
    private static func closeOthers(_ actions: inout posix_spawn_file_actions_t) {
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
            let addCloseFrom = unsafeBitCast(symbol, to: AddCloseFrom.self)
            if addCloseFrom(&actions, 3) == 0 { return }
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
            guard let fd = Int32(name), fd > 2 else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    private func finish(_ status: ExitStatus) {
        let waiters = state.withLock { s -> [CheckedContinuation<ExitStatus?, Never>] in
            s.status = status
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        waiters.forEach { $0.resume(returning: status) }
    }

    public var exitStatus: ExitStatus? { state.withLock { $0.status } }

    /// Sends `signal` unless the process was already reaped (its pid may then belong to someone else).
    public func signal(_ signal: Int32) {
        state.withLock { s in
            if s.status == nil { _ = kill(pid, signal) }
        }
    }

    /// Waits until the process has exited and returns how; nil if the waiting task is cancelled first.
    public func waitForExit() async -> ExitStatus? {
        let id = state.withLock { s -> UInt64 in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<ExitStatus?, Never>) in
                let now = state.withLock { s -> ExitStatus?? in
                    if let status = s.status { return .some(status) }
                    if Task.isCancelled { return .some(nil) }
                    s.waiters[id] = c
                    return .none
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }

    /// Waits at most `timeout` for the exit; nil when the process is still running then.
    public func waitForExit(timeout: Duration) async -> ExitStatus? {
        await withTaskGroup(of: ExitStatus?.self) { group in
            group.addTask { await self.waitForExit() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? exitStatus
        }
    }
}
