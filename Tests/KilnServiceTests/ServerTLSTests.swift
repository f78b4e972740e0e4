import AsyncHTTPClient
import Foundation
import KilnService
import Logging
import NIOSSL
import Prometheus
import TestSupport
import Testing

/// HTTPS on a Kiln listener with certificates a test CA issues: the server presents its certificate, plain
/// HTTP gets no answer, a renewed certificate is served without a restart, and with a client CA only
/// clients with a certificate it signed get in.
@Suite("Server TLS", .serialized, .timeLimit(.minutes(2)))
struct ServerTLSTests {
    static func serve(_ tls: ServerTLS, _ body: (Int) async throws -> Void) async throws {
        var logger = Logger(label: "test.tls")
        logger.logLevel = .critical
        let process = ServiceBootstrap(
            name: "test", logger: logger, registry: PrometheusCollectorRegistry(), listen: ListenAddress(host: "127.0.0.1", port: 0),
            tls: tls)
        process.readiness.markReady("none")
        let (bound, continuation) = AsyncStream.makeStream(of: Int.self)
        let group = try process.serviceGroup([], onBound: { continuation.yield($0) })
        let running = Task { try await group.run() }
        var ports = bound.makeAsyncIterator()
        let port = await ports.next() ?? 0
        do { try await body(port) } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await running.value
    }

    static func get(_ url: String, trusting ca: String, clientCertificate: (certificate: String, key: String)? = nil) async -> Int? {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(ca)
        if let clientCertificate {
            tls.certificateChain = (try? NIOSSLCertificate.fromPEMFile(clientCertificate.certificate))?.map { .certificate($0) } ?? []
            tls.privateKey = (try? NIOSSLPrivateKey(file: clientCertificate.key, format: .pem)).map { .privateKey($0) }
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(5))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let status = try? await client.execute(HTTPClientRequest(url: url), timeout: .seconds(10)).status.code
        try? await client.shutdown()
        return status.map { Int($0) }
    }

    @Test(.requires(.openssl))
    func servesHTTPSAndPicksUpARenewedCertificate() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-tls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ca = try await TestCertificateAuthority.make(in: dir)
        let first = try await ca.issue("kiln-first")
        let live = (certificate: dir.appendingPathComponent("live.crt").path, key: dir.appendingPathComponent("live.key").path)
        try FileManager.default.copyItem(atPath: first.certificate, toPath: live.certificate)
        try FileManager.default.copyItem(atPath: first.key, toPath: live.key)
        let tls = try ServerTLS(certificateFile: live.certificate, keyFile: live.key)
        try await Self.serve(tls) { port in
            #expect(await Self.get("https://127.0.0.1:\(port)/ready", trusting: ca.certificateFile) == 200)
            #expect(await ServiceBootstrapTests.status(port: port, path: "ready") == nil, "plain HTTP is not served")
            #expect(try await TestCertificateAuthority.presentedCommonName(port: port) == "kiln-first")

            // Renewal: new files in place (as cert-manager or certbot write them); no restart.
            let second = try await ca.issue("kiln-second")
            for (from, to) in [(second.certificate, live.certificate), (second.key, live.key)] {
                try FileManager.default.removeItem(atPath: to)
                try FileManager.default.copyItem(atPath: from, toPath: to)
            }
            var presented: String?
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline, presented != "kiln-second" {
                presented = try await TestCertificateAuthority.presentedCommonName(port: port)
                if presented != "kiln-second" { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(presented == "kiln-second")
            #expect(await Self.get("https://127.0.0.1:\(port)/ready", trusting: ca.certificateFile) == 200)
        }
    }

    @Test(.requires(.openssl))
    func clientCertificatesWhenAsked() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-mtls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ca = try await TestCertificateAuthority.make(in: dir)
        let server = try await ca.issue("kiln-server")
        let client = try await ca.issue("grafana")
        let stranger = try await TestCertificateAuthority.make(in: dir.appendingPathComponent("other"), name: "other-ca")
        let strangerClient = try await stranger.issue("intruder")
        let tls = try ServerTLS(certificateFile: server.certificate, keyFile: server.key, clientCAFile: ca.certificateFile)
        try await Self.serve(tls) { port in
            let url = "https://127.0.0.1:\(port)/ready"
            #expect(await Self.get(url, trusting: ca.certificateFile) == nil, "no client certificate: refused")
            #expect(await Self.get(url, trusting: ca.certificateFile, clientCertificate: strangerClient) == nil, "another CA's: refused")
            #expect(await Self.get(url, trusting: ca.certificateFile, clientCertificate: client) == 200)
        }
    }

    @Test("half a TLS configuration, or a missing file, is refused at start by name")
    func configurationErrors() throws {
        #expect(throws: ServiceConfigurationError.self) { try ServiceOptions.parse(["--tls-cert-file", "/x.crt"]).resolvedTLS() }
        #expect(throws: ServiceConfigurationError.self) { try ServiceOptions.parse(["--tls-client-ca-file", "/ca.crt"]).resolvedTLS() }
        do {
            _ = try ServerTLS(certificateFile: "/no/such.crt", keyFile: "/no/such.key")
            Issue.record("a missing certificate must be refused")
        } catch {
            #expect("\(error)".contains("/no/such.crt"))
        }
    }
}
