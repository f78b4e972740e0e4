import Foundation

/// scripts/s3-fault-proxy.py in front of an HTTP server (moto, Prometheus), with a plan the test changes
/// while its client runs.
public struct FaultProxy: Sendable {
    public let child: ChildProcess
    public let dir: URL
    public let endpoint: String

    /// `requireBearer`: answer 401 to requests without `Authorization: Bearer <token>` (an authenticating gateway).
    public static func start(upstream: String, slowSeconds: Double = 2, requireBearer: String? = nil) async throws -> FaultProxy {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-s3-proxy-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let python = TestEnvironment.repoRoot.appendingPathComponent(".venv/bin/python")
        let script = TestEnvironment.repoRoot.appendingPathComponent("scripts/s3-fault-proxy.py").path
        let portFile = dir.appendingPathComponent("port").path
        let child = try ChildProcess(
            python,
            [
                script, "--upstream", String(upstream.dropFirst("http://".count)),
                "--port-file", portFile, "--log", dir.appendingPathComponent("requests.log").path,
                "--plan-file", dir.appendingPathComponent("plan").path,
                "--slow-seconds", String(slowSeconds), "--hang-seconds", "5", "--max-lifetime", "300",
            ] + (requireBearer.map { ["--require-bearer", $0] } ?? []))
        let listening = await eventually(timeout: .seconds(15)) { FileManager.default.fileExists(atPath: portFile) || !child.isRunning }
        guard listening, child.isRunning else {
            throw ChildProcess.Failure(description: "s3-fault-proxy did not start: \(child.lines.suffix(20).joined(separator: "\n"))")
        }
        let port = try String(contentsOfFile: portFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        return FaultProxy(child: child, dir: dir, endpoint: "http://127.0.0.1:\(port)")
    }

    /// Replaces the plan, e.g. `--every 3:503`, `--always 503` or `pass`; the next request follows it.
    public func plan(_ line: String) throws {
        let tmp = dir.appendingPathComponent("plan.tmp")
        try Data((line + "\n").utf8).write(to: tmp)
        _ = rename(tmp.path, dir.appendingPathComponent("plan").path)
    }

    /// The action taken for each request so far (`pass`, `503`, `reset`, `slow`, ...).
    public func actions() -> [String] {
        let text = (try? String(contentsOfFile: dir.appendingPathComponent("requests.log").path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) }
    }

    public func faults() -> Int { actions().filter { $0 != "pass" }.count }

    /// Every request so far, in the order the proxy read them.
    public func requests() -> [(method: String, path: String)] {
        let text = (try? String(contentsOfFile: dir.appendingPathComponent("requests.log").path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count >= 3 ? (String(fields[1]), String(fields[2])) : nil
        }
    }

    public func stop() async {
        child.signal(SIGTERM)
        _ = try? await child.waitForExit()
        try? FileManager.default.removeItem(at: dir)
    }
}

/// Waits until `condition` holds, polling every 200 ms; false at the deadline.
public func eventually(timeout: Duration, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(200))
    }
    return try await condition()
}

/// A loopback port that was free a moment ago (the kernel hands out ephemeral ports in rotation, so it stays
/// free for the process the test starts next).
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard ok else { throw ChildProcess.Failure(description: "no free loopback port") }
    return Int(UInt16(bigEndian: addr.sin_port))
}
