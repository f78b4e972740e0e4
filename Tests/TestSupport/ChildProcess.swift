import Foundation
import Synchronization

/// A real child process for tests: its stdout and stderr are collected line by line, so a test waits for
/// what the process says ("listening address=…") instead of sleeping.
public final class ChildProcess: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private struct State {
        var lines: [String] = []
        var openPipes = 2
        var exitStatus: Int32?
        var waiters: [CheckedContinuation<Void, Never>] = []
        /// Exited and both pipes drained: nothing more will arrive.
        var finished: Bool { exitStatus != nil && openPipes == 0 }
    }

    /// Shared with the pipe and termination handlers, which outlive no one but must not capture `self`.
    private final class Box: Sendable {
        let state = Mutex(State())
    }

    private let box = Box()
    public let name: String
    public let pid: Int32

    public init(_ executable: URL, _ arguments: [String], environment: [String: String] = [:]) throws {
        name = executable.lastPathComponent
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        // A crash prints only the crashed thread, unsymbolicated beyond what is fast, so the report arrives
        // within a test's wait and its first lines (the reason) stay in the failure message.
        env["SWIFT_BACKTRACE"] = env["SWIFT_BACKTRACE"] ?? "enable=yes,interactive=no,threads=crashed,registers=none,images=none,limit=30"
        env.merge(environment) { _, new in new }
        process.environment = env
        let outPipe = Pipe()
        let errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        let box = self.box
        // Each pipe is read by a thread of its own with blocking reads, not by a `readabilityHandler`:
        // libdispatch's event loop on Linux crashes now and then under pipe read sources
        // (`_dispatch_event_loop_drain`, swiftlang/swift#87033), which took a whole test run down.
        for pipe in [outPipe, errPipe] {
            // A descriptor of the reader's own (closed when it is done), so the pipe's handle may go.
            let fd = fcntl(pipe.fileHandleForReading.fileDescriptor, F_DUPFD_CLOEXEC, 0)
            guard fd >= 0 else { throw Failure(description: "cannot duplicate a pipe descriptor: errno \(errno)") }
            let reader = Thread {
                Self.readLines(fd, into: box)
                close(fd)
            }
            reader.name = "\(name) output"
            reader.start()
        }
        process.terminationHandler = { p in
            let status = p.terminationStatus
            Self.update(box) { $0.exitStatus = status }
        }
        try process.run()
        pid = process.processIdentifier
    }

    /// Reads `fd` to its end, adding each complete line (and a last unterminated one) to the state.
    private static func readLines(_ fd: Int32, into box: Box) {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var partial: [UInt8] = []
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            let eof = n <= 0
            if n > 0 { partial.append(contentsOf: chunk[..<n]) }
            if eof, !partial.isEmpty { partial.append(10) }
            var lines: [String] = []
            var start = 0
            while let newline = partial[start...].firstIndex(of: 10) {
                lines.append(String(decoding: partial[start..<newline], as: UTF8.self))
                start = newline + 1
            }
            partial.removeFirst(start)
            update(box) { s in
                s.lines.append(contentsOf: lines)
                if eof { s.openPipes -= 1 }
            }
            if eof { return }
        }
    }

    private static func update(_ box: Box, _ change: (inout State) -> Void) {
        let waiters = box.state.withLock { s -> [CheckedContinuation<Void, Never>] in
            change(&s)
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        waiters.forEach { $0.resume() }
    }

    public var lines: [String] { box.state.withLock { $0.lines } }
    public var isRunning: Bool { box.state.withLock { $0.exitStatus == nil } }

    /// Waits until `condition` holds for the state, or the deadline passes; returns its last value.
    private func wait<T>(until deadline: ContinuousClock.Instant, _ condition: @escaping @Sendable (State) -> T?) async -> T? {
        while true {
            if let value = box.state.withLock({ condition($0) }) { return value }
            if ContinuousClock.now >= deadline { return nil }
            // Sleep until the state changes; a timer task wakes us at the deadline.
            let timer = Task { [box] in
                try? await Task.sleep(until: deadline, clock: .continuous)
                Self.update(box) { _ in }
            }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = box.state.withLock { s -> Bool in
                    if condition(s) != nil { return true }
                    s.waiters.append(c)
                    return false
                }
                if resumeNow { c.resume() }
            }
            timer.cancel()
        }
    }

    /// Waits until a line satisfies `match` and returns it; fails at the deadline or when the process
    /// ends without one, showing the last output.
    public func waitForLine(timeout: Duration = .seconds(30), _ match: @escaping @Sendable (String) -> Bool) async throws -> String {
        let result: Result<String, Failure>? = await wait(until: .now + timeout) { s in
            if let line = s.lines.first(where: match) { return .success(line) }
            if s.finished { return .failure(Failure(description: "exited")) }
            return nil
        }
        switch result {
        case .success(let line)?: return line
        case .failure?: throw Failure(description: "\(name) exited before printing a matching line; output:\n" + tail)
        case nil: throw Failure(description: "\(name): no matching line within \(timeout); output:\n" + tail)
        }
    }

    public func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Waits for the process to exit (and its output to drain) and returns its status; kills it and
    /// fails after `timeout`.
    @discardableResult
    public func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        guard let status = await wait(until: .now + timeout, { $0.exitStatus }) else {
            signal(SIGKILL)
            throw Failure(description: "\(name) did not exit within \(timeout); output:\n" + tail)
        }
        // Let the last output drain; a grandchild that inherited the pipes may keep them open, so do
        // not wait for end-of-file for ever.
        _ = await wait(until: .now + .seconds(2)) { $0.finished ? true : nil }
        return status
    }

    /// The last output, preceded by any crash or fatal-error lines that scrolled out of it.
    private var tail: String {
        let all = lines
        let last = all.suffix(40)
        let reasons = all.dropLast(last.count).filter { $0.contains("Fatal error") || $0.contains("crashed") || $0.contains("Crash") }
        let shown = reasons.isEmpty ? Array(last) : reasons + ["…"] + last
        return shown.joined(separator: "\n")
    }

    deinit {
        if isRunning { kill(pid, SIGKILL) }
    }
}

/// Runs a command to completion and returns its exit status and combined output.
public func runToCompletion(
    _ executable: URL, _ arguments: [String], environment: [String: String] = [:],
    timeout: Duration = .seconds(120)
) async throws -> (status: Int32, output: String) {
    let child = try ChildProcess(executable, arguments, environment: environment)
    let status = try await child.waitForExit(timeout: timeout)
    return (status, child.lines.joined(separator: "\n"))
}
