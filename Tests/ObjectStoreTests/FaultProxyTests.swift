import Foundation
import ObjectStore
import TestSupport
import Testing

/// scripts/s3-fault-proxy.py in front of the shared moto server: real HTTP over 127.0.0.1 that answers
/// 500/503/429/403, resets connections or hangs for chosen requests.
struct FaultProxy {
    let process: HelperProcess
    let dir: ScratchDir
    let endpoint: String

    /// `plan` is the proxy's arguments, e.g. ["--first", "503,reset,500"].
    static func start(upstream: String, _ plan: [String]) async throws -> FaultProxy {
        let dir = try ScratchDir("proxy")
        let script = TestEnvironment.repoRoot.appendingPathComponent("scripts/s3-fault-proxy.py").path
        let portFile = dir.url.appendingPathComponent("port").path
        let process = try HelperProcess(
            python,
            [
                script, "--upstream", String(upstream.dropFirst("http://".count)),
                "--port-file", portFile, "--log", dir.url.appendingPathComponent("requests.log").path,
                "--max-lifetime", "120",
            ] + plan,
            log: dir.url.appendingPathComponent("proxy.log"), name: "s3-fault-proxy")
        do {
            try await waitUntil("the fault proxy's port file", timeout: .seconds(15)) {
                guard process.process.isRunning else {
                    throw TestFailure(
                        "fault proxy exited: \((try? String(contentsOfFile: dir.path + "/proxy.log", encoding: .utf8)) ?? "")")
                }
                return FileManager.default.fileExists(atPath: portFile)
            }
        } catch {
            await process.stop()
            dir.remove()
            throw error
        }
        let port = try String(contentsOfFile: portFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        return FaultProxy(process: process, dir: dir, endpoint: "http://127.0.0.1:\(port)")
    }

    /// One entry per request the proxy saw: (method, path, action).
    func requests() throws -> [(method: String, path: String, action: String)] {
        let text = (try? String(contentsOfFile: dir.path + "/requests.log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map { line in
            let f = line.split(separator: " ").map(String.init)
            return (f[1], f[2], f[3])
        }
    }

    func stop() async {
        await process.stop()
        dir.remove()
    }
}

@Suite(.requires(.s3)) struct FaultProxyTests {
    /// Runs `body` with a proxy in front of moto and a bucket created directly on moto.
    func withProxy(
        _ plan: [String], configure: (inout S3Configuration) -> Void = { _ in },
        _ body: (S3ObjectStore, FaultProxy, String) async throws -> Void
    ) async throws {
        let moto = try s3Endpoint()
        let bucket = uniqueBucket("fault")
        try await withStore(s3Config(endpoint: moto, bucket: bucket)) { try await $0.createBucket() }
        let proxy = try await FaultProxy.start(upstream: moto, plan)
        do {
            var config = s3Config(endpoint: proxy.endpoint, bucket: bucket)
            configure(&config)
            try await withStore(config) { try await body($0, proxy, bucket) }
        } catch {
            await proxy.stop()
            throw error
        }
        await proxy.stop()
    }

    @Test func uploadSurvivesErrorsAndResets() async throws {
        try await withProxy(["--first", "503,reset,500"]) { store, proxy, bucket in
            let bytes = patternBytes(300_000, seed: 41)
            try await store.put("t/b/samples.parquet", bytes)
            let seen = try proxy.requests()
            #expect(seen.map(\.action) == ["503", "reset", "500", "pass"])
            #expect(seen.allSatisfy { $0.method == "PUT" && $0.path == "/\(bucket)/t/b/samples.parquet" })
            #expect(try await store.get("t/b/samples.parquet") == bytes)
        }
    }

    @Test func throttlingIsRetriedForReadsToo() async throws {
        try await withProxy(["--every", "2:429"]) { store, proxy, _ in
            try await store.put("k", [1, 2, 3])  // request 1 passes
            #expect(try await store.get("k") == [1, 2, 3])  // 2 throttled, 3 passes
            #expect(try await store.list(prefix: "").keys == ["k"])  // 4 throttled, 5 passes
            let actions = try proxy.requests().map(\.action)
            #expect(actions == ["pass", "429", "pass", "429", "pass"])
        }
    }

    /// Every other request fails; with one part at a time each step needs exactly two attempts.
    @Test func multipartRetriesEachStep() async throws {
        try await withProxy(
            ["--every", "2:503"],
            configure: {
                $0.multipartThreshold = 6 << 20
                $0.partSize = 5 << 20
                $0.partConcurrency = 1
            }
        ) { store, proxy, _ in
            let bytes = patternBytes((11 << 20) + 7, seed: 42)  // 3 parts
            // Request 1 (create) passes, then every part and the completion fails once before passing.
            try await store.put("big", bytes)
            let seen = try proxy.requests()
            #expect(seen.filter { $0.action == "503" }.count == 4, "\(seen)")
            #expect(seen.filter { $0.method == "POST" && $0.path.contains("uploadId=") && $0.action == "pass" }.count == 1)
            #expect(seen.filter { $0.method == "PUT" && $0.action == "pass" }.count == 3)
            let info = try #require(try await store.head("big"))
            #expect(info.etag?.hasSuffix("-3") == true)
            #expect(try await store.get("big") == bytes)
        }
    }

    @Test func permanentFailureIsClearAndBounded() async throws {
        try await withProxy(
            ["--always", "503"],
            configure: {
                $0.retry = RetryPolicy(maxAttempts: 4, baseDelay: .milliseconds(50), maxDelay: .milliseconds(200))
            }
        ) { store, proxy, bucket in
            let started = ContinuousClock.now
            let error = await expectStoreError(.unavailable) { try await store.put("t/k", [1]) }
            // Three backoffs of at most 200 ms each, plus four quick answers.
            #expect(ContinuousClock.now - started < .seconds(30))  // bounded: 4 short backoffs, not a hang
            #expect(error?.message.contains("s3://\(bucket)/t/k") == true, "\(error?.message ?? "")")
            #expect(error?.message.contains("HTTP 503 SlowDown") == true, "\(error?.message ?? "")")
            #expect(error?.message.contains("4 attempt(s)") == true, "\(error?.message ?? "")")
            #expect(error?.httpStatus == 503)
            let seen = try proxy.requests().count
            #expect(seen == 4)
        }
    }

    @Test func clientErrorsAreNotRetried() async throws {
        try await withProxy(["--always", "403"]) { store, proxy, bucket in
            let error = await expectStoreError(.accessDenied) { _ = try await store.get("t/k") }
            #expect(error?.message.contains(bucket) == true, "\(error?.message ?? "")")
            let seen = try proxy.requests().count
            #expect(seen == 1)
        }
    }

    @Test func aHungServerTimesOut() async throws {
        try await withProxy(
            ["--always", "hang", "--hang-seconds", "20"],
            configure: {
                $0.requestTimeout = .seconds(1)
                $0.retry = RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(10), maxDelay: .milliseconds(50))
            }
        ) { store, proxy, _ in
            let started = ContinuousClock.now
            let error = await expectStoreError(.timeout) { _ = try await store.get("t/k") }
            // Two 1-second attempts and one short backoff; the proxy would hold each for 20 s.
            let elapsed = ContinuousClock.now - started
            #expect(elapsed >= .seconds(2) && elapsed < .seconds(30), "\(elapsed)")
            #expect(error?.message.contains("2 attempt(s)") == true, "\(error?.message ?? "")")
            let seen = try proxy.requests().count
            #expect(seen == 2)
        }
    }
}
