import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The data dir of `kiln dev`: created on first use, locked while a run uses it, and counting runs.
public final class DataDirLock: Sendable {
    private let fd: Int32
    public let generation: Int

    /// Creates `blocks/`, `logs/` and `pids/`, takes an exclusive lock (two runs on one dir would fight
    /// over ports' pid files and the generation), and bumps the run generation.
    public init(options: DevOptions) throws {
        let fm = FileManager.default
        for dir in [options.dataDir, options.blocksDir, options.logsDir, options.pidsDir] {
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        let lockPath = options.dataDir.appendingPathComponent("kiln-dev.lock").path
        fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SpawnError(description: "cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw SpawnError(description: "another kiln dev is running on \(options.dataDir.path)")
        }
        let counter = options.dataDir.appendingPathComponent("generation")
        let previous =
            (try? String(contentsOf: counter, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        generation = previous + 1
        try "\(generation)\n".write(to: counter, atomically: true, encoding: .utf8)
    }

    deinit { close(fd) }  // closing releases the lock
}

/// Children of an earlier run that was killed without a chance to stop them (SIGKILL, a crash). Their pids
/// are in `pids/`; a pid counts as ours only if the process still carries `KILN_DEV_DATA_DIR=<dir>`.
enum StaleChildren {
    static func stop(pidsDir: URL, dataDir: URL, timeout: Duration, log: (String) -> Void) async {
        let files = (try? FileManager.default.contentsOfDirectory(at: pidsDir, includingPropertiesForKeys: nil)) ?? []
        var alive: [(String, pid_t)] = []
        for file in files where file.pathExtension == "pid" {
            defer { try? FileManager.default.removeItem(at: file) }
            guard let text = try? String(contentsOf: file, encoding: .utf8),
                let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1,
                belongs(pid, to: dataDir)
            else { continue }
            log("stopping \(file.deletingPathExtension().lastPathComponent) (pid \(pid)) left over from an earlier run")
            kill(pid, SIGTERM)
            alive.append((file.lastPathComponent, pid))
        }
        guard !alive.isEmpty else { return }
        // Not our children, so no waitpid: poll until they are gone, then SIGKILL.
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, alive.contains(where: { kill($0.1, 0) == 0 }) {
            try? await Task.sleep(for: .milliseconds(100))
        }
        for (_, pid) in alive where kill(pid, 0) == 0 { kill(pid, SIGKILL) }
    }

    static func belongs(_ pid: pid_t, to dataDir: URL) -> Bool {
        guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
        let marker = Array("KILN_DEV_DATA_DIR=\(dataDir.path)".utf8)
        return environ.split(separator: 0).contains { Array($0) == marker }
    }
}

enum LoopbackPorts {
    /// Free TCP ports on 127.0.0.1, all held open until every one is chosen so they differ.
    static func free(_ count: Int) throws -> [Int] {
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw SpawnError(description: "socket: \(String(cString: strerror(errno)))") }
            fds.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    bind(fd, sa, length) == 0 && getsockname(fd, sa, &length) == 0
                }
            }
            guard bound else { throw SpawnError(description: "cannot pick a free port: \(String(cString: strerror(errno)))") }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}
