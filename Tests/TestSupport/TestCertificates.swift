import Foundation

/// A certificate authority made for one test with Debian's `openssl`, issuing certificates for loopback
/// servers and clients (EC P-256: quick to make).
public struct TestCertificateAuthority: Sendable {
    public let directory: URL
    public var certificateFile: String { directory.appendingPathComponent("ca.crt").path }
    var keyFile: String { directory.appendingPathComponent("ca.key").path }

    static let openssl = URL(fileURLWithPath: "/usr/bin/openssl")

    static func run(_ arguments: [String]) async throws {
        let result = try await runToCompletion(openssl, arguments, timeout: .seconds(60))
        guard result.status == 0 else {
            throw ChildProcess.Failure(description: "openssl \(arguments.joined(separator: " ")) failed: \(result.output)")
        }
    }

    public static func make(in directory: URL, name: String = "kiln-test-ca") async throws -> TestCertificateAuthority {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let ca = TestCertificateAuthority(directory: directory)
        try await run([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca.keyFile,
            "-out", ca.certificateFile, "-days", "2", "-subj", "/CN=\(name)",
        ])
        return ca
    }

    /// A certificate for `commonName`, valid for 127.0.0.1 (servers) and usable by clients; returns the
    /// certificate and key files.
    public func issue(_ commonName: String) async throws -> (certificate: String, key: String) {
        let base = directory.appendingPathComponent(commonName).path
        try await Self.run([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", base + ".key", "-out",
            base + ".csr", "-subj", "/CN=\(commonName)",
        ])
        let extensions = base + ".ext"
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n".write(
            toFile: extensions, atomically: true, encoding: .utf8)
        try await Self.run([
            "x509", "-req", "-in", base + ".csr", "-CA", certificateFile, "-CAkey", keyFile, "-CAcreateserial", "-out", base + ".crt",
            "-days", "2", "-extfile", extensions,
        ])
        return (base + ".crt", base + ".key")
    }

    /// The subject CN of the certificate a TLS server at 127.0.0.1:`port` presents now.
    public static func presentedCommonName(port: Int) async throws -> String? {
        let result = try await runToCompletion(
            URL(fileURLWithPath: "/bin/sh"),
            ["-c", "openssl s_client -connect 127.0.0.1:\(port) </dev/null 2>/dev/null | openssl x509 -noout -subject"],
            timeout: .seconds(30))
        guard let range = result.output.range(of: "CN") else { return nil }
        return result.output[range.upperBound...].drop { $0 == " " || $0 == "=" }.split(separator: "\n").first.map(String.init)
    }
}
