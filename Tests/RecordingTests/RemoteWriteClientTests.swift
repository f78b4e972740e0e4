import Foundation
import KilnFoundation
import KilnProtos
import Logging
import RemoteWrite
import TestSupport
import Testing

/// The remote write client against Debian's Prometheus, through the fault proxy: answers that may succeed
/// later (503, a reset connection, 429) are retried until Prometheus takes the samples; a sample Prometheus
/// refuses for good (another value for a timestamp it holds) is counted and not retried. And what the
/// ruler's one-request-per-step rests on: Prometheus takes the newest sample of a series sent again
/// unchanged, but refuses a whole request holding a sample older than the series' newest, even one it
/// already has.
@Suite(.serialized) struct RemoteWriteClientTests {
    static func series(_ run: String, _ samples: [(Int64, Double)]) -> Prometheus_TimeSeries {
        var s = Prometheus_TimeSeries()
        s.labels = [("__name__", "kiln_test_remote_write"), ("run", run)].map { name, value in
            var l = Prometheus_Label()
            (l.name, l.value) = (name, value)
            return l
        }
        s.samples = samples.map { t, v in
            var sample = Prometheus_Sample()
            (sample.timestamp, sample.value) = (t, v)
            return sample
        }
        return s
    }

    @Test(.requires(.prometheus)) func retriesWhatMaySucceedAndCountsWhatCannot() async throws {
        let prometheus = try #require(TestEnvironment.prometheusURL)
        let proxy = try await FaultProxy.start(upstream: prometheus)
        let run = String((0..<8).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement()! })
        try proxy.plan("--first 503,reset,429")
        var options = RemoteWriteOptions(url: proxy.endpoint + "/api/v1/write")
        options.maxBackoff = .milliseconds(200)
        let client = try RemoteWriteClient(options: options, logger: Logger(label: "test"))
        let now = Int64(Date().timeIntervalSince1970) * 1000
        let written = Self.series(run, [(now - 10_000, 1.5), (now - 5_000, 2)])

        let first = try await client.write([written], tenant: "t1")
        #expect(first.samplesWritten == 2 && first.samplesRejected == 0 && first.firstRejection == nil, "\(first)")
        #expect(Array(proxy.actions().prefix(4)) == ["503", "reset", "429", "pass"])

        let conflicting = try await client.write([Self.series(run, [(now - 5_000, 3)])], tenant: "t1")
        #expect(conflicting.samplesWritten == 0 && conflicting.samplesRejected == 1)
        #expect(conflicting.firstRejection?.hasPrefix("HTTP 400") == true, "\(conflicting)")
        let newestAgain = try await client.write([Self.series(run, [(now - 5_000, 2)])], tenant: "t1")
        #expect(newestAgain.samplesWritten == 1 && newestAgain.samplesRejected == 0, "\(newestAgain)")
        let bothAgain = try await client.write([written], tenant: "t1")
        #expect(bothAgain.samplesRejected == 2 && bothAgain.firstRejection?.contains("out of order") == true, "\(bothAgain)")
        #expect(proxy.actions().count == 7, "nothing refused for good was sent twice: \(proxy.actions())")

        // Prometheus holds the first values, once each.
        let query = "kiln_test_remote_write%7Brun%3D%22\(run)%22%7D%5B5m%5D"
        let data = try Data(contentsOf: URL(string: prometheus + "/api/v1/query?query=\(query)&time=\(now / 1000)")!)
        let body = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let result = try #require(((body?["data"] as? [String: Any])?["result"] as? [[String: Any]])?.first)
        let pairs = result["values"] as? [[Any]] ?? []
        let times: [Int64] = pairs.map { Int64((($0[0] as? Double) ?? 0) * 1000 + 0.5) }
        let values: [Double] = pairs.map { Double($0[1] as? String ?? "") ?? .nan }
        #expect(times == [now - 10_000, now - 5_000] && values == [1.5, 2], "\(body ?? [:])")
        try await client.shutdown()
        await proxy.stop()
    }

    /// A bearer token read from a file as kiln-ruler reads it, against an authenticating gateway (the fault
    /// proxy with `--require-bearer`) in front of Prometheus, whose own web config has no bearer auth: the
    /// right token is taken, a wrong or missing one is a 401 counted once and not retried.
    @Test(.requires(.prometheus)) func bearerTokenFromAFile() async throws {
        let prometheus = try #require(TestEnvironment.prometheusURL)
        let token = "kiln-bearer-\(UInt64.random(in: 0 ... .max))"
        let proxy = try await FaultProxy.start(upstream: prometheus, requireBearer: token)
        let tokenFile = proxy.dir.appendingPathComponent("token")
        try Data((token + "\n").utf8).write(to: tokenFile)
        let run = "bearer\(UInt32.random(in: 0 ... .max))"
        let now = Int64(Date().timeIntervalSince1970) * 1000
        func write(bearer: String?, at time: Int64) async throws -> RemoteWriteResult {
            var options = RemoteWriteOptions(url: proxy.endpoint + "/api/v1/write")
            options.bearerToken = bearer
            options.maxBackoff = .milliseconds(100)
            let client = try RemoteWriteClient(options: options, logger: Logger(label: "test"))
            let result = try await client.write([Self.series(run, [(time, 7)])], tenant: "t1")
            try await client.shutdown()
            return result
        }
        let taken = try await write(bearer: try HTTPCredential.readSecretFile(tokenFile.path), at: now - 2_000)
        #expect(taken.samplesWritten == 1 && taken.firstRejection == nil, "\(taken)")
        let wrong = try await write(bearer: token + "x", at: now - 1_000)
        #expect(wrong.samplesRejected == 1 && wrong.firstRejection?.hasPrefix("HTTP 401") == true, "\(wrong)")
        let missing = try await write(bearer: nil, at: now)
        #expect(missing.samplesRejected == 1 && missing.firstRejection?.hasPrefix("HTTP 401") == true, "\(missing)")
        #expect(proxy.actions() == ["pass", "401", "401"], "each refusal is sent once, not retried")
        // Only the sample sent with the right token reached Prometheus.
        let query = "kiln_test_remote_write%7Brun%3D%22\(run)%22%7D%5B5m%5D"
        let data = try Data(contentsOf: URL(string: prometheus + "/api/v1/query?query=\(query)&time=\(now / 1000 + 1)")!)
        let body = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let result = try #require(((body?["data"] as? [String: Any])?["result"] as? [[String: Any]])?.first)
        let times = (result["values"] as? [[Any]] ?? []).map { Int64((($0[0] as? Double) ?? 0) * 1000 + 0.5) }
        #expect(times == [now - 2_000], "\(body ?? [:])")
        await proxy.stop()
    }
}

/// Remote write over TLS with basic auth, to a Prometheus of the test's own started with a web config
/// (Prometheus's TLS and bcrypt basic auth): the right password is taken; a wrong one is a 401 that is
/// counted, not retried; a server whose certificate the CA did not sign is not trusted.
@Suite(.serialized) struct RemoteWriteTLSTests {
    /// bcrypt of "kiln-test-password" (a test credential, not a secret).
    static let passwordHash = "$2b$12$EzXHaWqASm9SxrKek8yXHeuH/n8PvRYU6RZy6AWkKfgNVVlTl/gzC"

    @Test(.requires(.prometheus, .openssl)) func basicAuthOverTLS() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-rw-tls-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ca = try await TestCertificateAuthority.make(in: dir.appendingPathComponent("ca"))
        let server = try await ca.issue("prometheus")
        let web = dir.appendingPathComponent("web.yml")
        try """
        tls_server_config:
          cert_file: \(server.certificate)
          key_file: \(server.key)
        basic_auth_users:
          kiln: \(Self.passwordHash)
        """.write(to: web, atomically: true, encoding: .utf8)
        try "global: {}\n".write(to: dir.appendingPathComponent("prometheus.yml"), atomically: true, encoding: .utf8)
        let port = try freeLoopbackPort()
        let prometheus = try ChildProcess(
            URL(fileURLWithPath: "/usr/bin/prometheus"),
            [
                "--config.file=\(dir.appendingPathComponent("prometheus.yml").path)", "--web.config.file=\(web.path)",
                "--storage.tsdb.path=\(dir.appendingPathComponent("data").path)", "--web.listen-address=127.0.0.1:\(port)",
                "--web.enable-remote-write-receiver",
            ])
        defer { prometheus.signal(SIGTERM) }
        _ = try await prometheus.waitForLine(timeout: .seconds(60)) { $0.contains("Server is ready to receive web requests") }

        func write(password: String, caFile: String) async throws -> RemoteWriteResult {
            var options = RemoteWriteOptions(url: "https://127.0.0.1:\(port)/api/v1/write")
            options.basicAuth = ("kiln", password)
            options.caFile = caFile
            options.maxBackoff = .milliseconds(100)
            let client = try RemoteWriteClient(options: options, logger: Logger(label: "test"))
            defer { Task { try? await client.shutdown() } }
            let now = Int64(Date().timeIntervalSince1970) * 1000
            return try await client.write([RemoteWriteClientTests.series("tls", [(now, 1)])], tenant: "t1")
        }
        let taken = try await write(password: "kiln-test-password", caFile: ca.certificateFile)
        #expect(taken.samplesWritten == 1 && taken.firstRejection == nil, "\(taken)")
        let refused = try await write(password: "wrong", caFile: ca.certificateFile)
        #expect(refused.samplesRejected == 1 && refused.firstRejection?.hasPrefix("HTTP 401") == true, "\(refused)")
        // Another CA does not vouch for this server: the client keeps retrying, so give it a deadline.
        let other = try await TestCertificateAuthority.make(in: dir.appendingPathComponent("other-ca"), name: "other-ca")
        let untrusted = Task { try await write(password: "kiln-test-password", caFile: other.certificateFile) }
        try await Task.sleep(for: .seconds(2))
        untrusted.cancel()
        await #expect(throws: CancellationError.self) { try await untrusted.value }
    }
}
