import Foundation
import ObjectStore
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The moto endpoint from scripts/test-env.sh. Tests that call this are marked `.requires(.s3)`, so without
/// it they are skipped (or fail under `make test`) before they get here.
func s3Endpoint() throws -> String {
    try TestEnvironment.requireS3Endpoint()
}

/// A bucket name no other test uses.
func uniqueBucket(_ label: String) -> String {
    "kiln-\(label)-\(UInt32.random(in: 0...UInt32.max))-\(UInt32.random(in: 0...UInt32.max))".lowercased()
}

let testCredentials = AWSCredentials(accessKeyID: "testing", secretAccessKey: "testing")

func s3Config(endpoint: String, bucket: String, prefix: String = "", credentials: AWSCredentials = testCredentials) -> S3Configuration {
    var config = S3Configuration(bucket: bucket, prefix: prefix, endpoint: endpoint, region: "us-east-1", credentials: credentials)
    config.requestTimeout = .seconds(20)
    config.connectTimeout = .seconds(5)
    config.retry = RetryPolicy(maxAttempts: 4, baseDelay: .milliseconds(20), maxDelay: .milliseconds(200))
    return config
}

/// Runs `body` with a store, shutting it down afterwards whatever happens.
func withStore<T>(_ config: S3Configuration, _ body: (S3ObjectStore) async throws -> T) async throws -> T {
    let store = try S3ObjectStore(configuration: config)
    do {
        let result = try await body(store)
        try await store.shutdown()
        return result
    } catch {
        try? await store.shutdown()
        throw error
    }
}

/// Deterministic pseudo-random bytes (so a failure can be reproduced from the seed).
func patternBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    var out = [UInt8](repeating: 0, count: count)
    for i in 0..<count {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        out[i] = UInt8(truncatingIfNeeded: state >> 33)
    }
    return out
}

/// Runs a blocking call on a thread of its own, never on the cooperative pool.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Polls `condition` until it holds or `deadline` passes (waiting on a real condition, not a fixed sleep).
func waitUntil(_ what: String, timeout: Duration, _ condition: () throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !(try condition()) {
        if ContinuousClock.now > deadline { throw TestFailure("timed out after \(timeout) waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(50))
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A port nothing listens on (bound, then released).
func closedLocalPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
    }
    _ = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// True when a TCP connect to 127.0.0.1:port succeeds.
func portAccepts(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

/// Runs a Python script with SIGTERM unblocked: a child inherits the signal mask of the test runner's thread,
/// which may block SIGTERM, and Python does not unblock it itself.
func pythonScriptArguments(_ script: String, _ arguments: [String]) -> [String] {
    [
        "-c",
        "import runpy, signal, sys; signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT}); "
            + "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')", script,
    ] + arguments
}

/// The Python interpreter for helper scripts: the repo's .venv, else the system's.
var python: String {
    let venv = TestEnvironment.repoRoot.appendingPathComponent(".venv/bin/python").path
    return FileManager.default.isExecutableFile(atPath: venv) ? venv : "/usr/bin/python3"
}

/// A helper process (moto, the fault proxy) a test started; `stop()` sends SIGTERM and waits (with a deadline) for it to exit.
final class HelperProcess {
    let process: Process
    let name: String

    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], log: URL, name: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)  // if not, FileHandle below throws
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
        self.name = name
    }

    func stop() async {
        guard process.isRunning else { return }
        process.terminate()
        try? await waitUntil("\(name) to exit", timeout: .seconds(3)) { !process.isRunning }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            try? await waitUntil("\(name) to exit after SIGKILL", timeout: .seconds(3)) { !process.isRunning }
        }
    }
}

/// A scratch folder under the system temp dir, removed by `remove()`.
struct ScratchDir {
    let url: URL
    init(_ label: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-os-\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    var path: String { url.path }
    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// Expects `body` to throw an `ObjectStoreError` of `kind`, and returns it.
@discardableResult
func expectStoreError(
    _ kind: ObjectStoreError.Kind, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async -> ObjectStoreError? {
    do {
        try await body()
        Issue.record("expected an ObjectStoreError of kind \(kind), but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as ObjectStoreError {
        #expect(error.kind == kind, "got \(error.kind): \(error.message)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected an ObjectStoreError of kind \(kind), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
