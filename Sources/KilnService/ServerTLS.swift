import Foundation
import NIOCertificateReloading
import NIOCore
import NIOSSL
import Synchronization

/// TLS for a Kiln listener: a certificate chain and key from PEM files, picked up again when the files
/// change (so a renewed certificate needs no restart), and optionally client certificates signed by a CA
/// (`--tls-client-ca-file`): a client without one is refused at the handshake.
public final class ServerTLS: CertificateReloader {
    public let certificateFile: String
    public let keyFile: String
    public let clientCAFile: String?

    private struct Loaded: Sendable {
        var chain: [NIOSSLCertificateSource]
        var key: NIOSSLPrivateKeySource
        var stamps: [Stamp]
        var checked: ContinuousClock.Instant
    }
    /// Modification time and size of a file, to notice a replaced certificate.
    struct Stamp: Equatable {
        var modified: Date?
        var size: Int
    }
    private let loaded: Mutex<Loaded>
    /// How often a handshake may look at the files again.
    static let recheckInterval: Duration = .seconds(1)

    /// Loads the files now, so a wrong path or a bad PEM stops the process at start with the file's name.
    public init(certificateFile: String, keyFile: String, clientCAFile: String? = nil) throws {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.clientCAFile = clientCAFile
        if let clientCAFile { _ = try Self.read(clientCAFile, "client CA") { try NIOSSLCertificate.fromPEMFile($0) } }
        let (chain, key) = try Self.load(certificateFile: certificateFile, keyFile: keyFile)
        loaded = Mutex(
            Loaded(
                chain: chain, key: key, stamps: [Self.stamp(certificateFile), Self.stamp(keyFile)], checked: ContinuousClock.now))
    }

    static func read<T>(_ path: String, _ what: String, _ parse: (String) throws -> T) throws -> T {
        do { return try parse(path) } catch {
            throw ServiceConfigurationError("TLS \(what) file \(path) could not be read: \(error)")
        }
    }

    static func load(certificateFile: String, keyFile: String) throws -> ([NIOSSLCertificateSource], NIOSSLPrivateKeySource) {
        let chain = try read(certificateFile, "certificate") { try NIOSSLCertificate.fromPEMFile($0) }
        guard !chain.isEmpty else { throw ServiceConfigurationError("TLS certificate file \(certificateFile) holds no certificate") }
        let key = try read(keyFile, "key") { try NIOSSLPrivateKey(file: $0, format: .pem) }
        return (chain.map { .certificate($0) }, .privateKey(key))
    }

    static func stamp(_ path: String) -> Stamp {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        return Stamp(modified: attributes?[.modificationDate] as? Date, size: (attributes?[.size] as? NSNumber)?.intValue ?? -1)
    }

    /// The certificate and key to present now: read again when either file changed (checked at most once
    /// a second). A half-written pair (a key that does not match yet) keeps the previous one until both
    /// files read cleanly.
    func current() -> (chain: [NIOSSLCertificateSource], key: NIOSSLPrivateKeySource) {
        loaded.withLock { l in
            let now = ContinuousClock.now
            if now - l.checked >= Self.recheckInterval {
                l.checked = now
                let stamps = [Self.stamp(certificateFile), Self.stamp(keyFile)]
                if stamps != l.stamps, let (chain, key) = try? Self.load(certificateFile: certificateFile, keyFile: keyFile) {
                    l.chain = chain
                    l.key = key
                    l.stamps = stamps
                }
            }
            return (l.chain, l.key)
        }
    }

    /// What a handshake presents now (gRPC's transport asks through this).
    public var sslContextConfigurationOverride: NIOSSLContextConfigurationOverride {
        let (chain, key) = current()
        var change = NIOSSLContextConfigurationOverride()
        change.certificateChain = chain
        change.privateKey = key
        return change
    }

    /// NIOSSL's server configuration: every handshake asks `current()` for the certificate to present.
    public func configuration() throws -> TLSConfiguration {
        let (chain, key) = current()
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: key)
        if let clientCAFile {
            configuration.trustRoots = .file(clientCAFile)
            configuration.certificateVerification = .noHostnameVerification
        }
        configuration.sslContextCallback = { [self] _, promise in promise.succeed(sslContextConfigurationOverride) }
        return configuration
    }
}
