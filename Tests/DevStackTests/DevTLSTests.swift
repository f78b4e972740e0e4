import AsyncHTTPClient
import Foundation
import NIOSSL
import TestSupport
import Testing

@testable import DevStack

/// `kiln dev --tls-cert-file … --tls-key-file …`: the front address speaks HTTPS and the OTLP gRPC listener
/// TLS, with a certificate a test CA issued; profiles sent by the real OTLP client over both arrive, and a
/// plaintext gRPC client gets nowhere.
@Suite(.serialized) struct DevTLSTests {
    @Test(.requires(.kilnDev, .fixtures, .openssl, .python("opentelemetry.proto.profiles.v1development.profiles_pb2", "grpc")))
    func httpsAndGRPCWithTLS() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-dev-tls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ca = try await TestCertificateAuthority.make(in: dir.appendingPathComponent("ca"))
        let server = try await ca.issue("kiln-dev")
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(ca.certificateFile)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        do {
            let dev = try KilnDevHarness.start(
                dataDir: dir.appendingPathComponent("dev"), client: client,
                extraArguments: ["--tls-cert-file", server.certificate, "--tls-key-file", server.key])
            let process = dev.process
            defer { process.signal(SIGTERM) }
            #expect(dev.baseURL.hasPrefix("https://"))
            _ = try await dev.waitUntilReady()
            let file = "go_cpu_ap-query_2026.pb.gz"
            let overHTTPS = try await OTLPIngestTests.send(
                file, ["--transport", "http-proto", "--url", dev.baseURL, "--ca", ca.certificateFile, "--tenant", "tls-http"])
            #expect(overHTTPS.status == 0, "\(overHTTPS.output)")
            let overGRPC = try await OTLPIngestTests.send(
                file, ["--transport", "grpc", "--grpc", dev.otlpGRPCAddress, "--ca", ca.certificateFile, "--tenant", "tls-grpc"])
            #expect(overGRPC.status == 0, "\(overGRPC.output)")
            let plaintext = try await OTLPIngestTests.send(
                file, ["--transport", "grpc", "--grpc", dev.otlpGRPCAddress, "--tenant", "tls-plain"])
            #expect(plaintext.status != 0, "a plaintext gRPC client must not get through: \(plaintext.output)")
            _ = try await dev.waitForNewBlock(tenant: "tls-http")
            _ = try await dev.waitForNewBlock(tenant: "tls-grpc")
            #expect(dev.blocks(tenant: "tls-plain").isEmpty)
            #expect(try await dev.stop() == 0)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }
}
