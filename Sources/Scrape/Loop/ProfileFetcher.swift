import AsyncHTTPClient
import Foundation
import KilnFoundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// One HTTP request for a profile.
public struct ProfileRequest: Sendable {
    public var url: String
    public var timeout: Duration
    public var maxBodyBytes: Int
    public var credentials: ScrapeCredentials
    public var tls: TLSSettings?
}

public struct ScrapeError: Error, Sendable, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Fetches a profile body; a seam so the loop can be tested without sockets.
public protocol ProfileFetcher: Sendable {
    func fetch(_ request: ProfileRequest) async throws -> [UInt8]
}

/// Fetches over HTTP(S) with AsyncHTTPClient: one client per distinct TLS setting, no decompression
/// (the body is kept exactly as received), a hard deadline over the whole exchange, a body limit.
public final class HTTPProfileFetcher: ProfileFetcher {
    private let clients = Mutex<[TLSSettings?: HTTPClient]>([:])

    public init() {}

    private func client(for tls: TLSSettings?) throws -> HTTPClient {
        try clients.withLock { clients in
            if let c = clients[tls] { return c }
            var configuration = HTTPClient.Configuration()
            configuration.timeout = .init(connect: .seconds(5))
            configuration.decompression = .disabled
            configuration.redirectConfiguration = .follow(max: 5, allowCycles: false)
            if let tls { configuration.tlsConfiguration = try tls.clientConfiguration() }
            let c = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            clients[tls] = c
            return c
        }
    }

    public func fetch(_ request: ProfileRequest) async throws -> [UInt8] {
        let client = try client(for: request.tls)
        var http = HTTPClientRequest(url: request.url)
        http.headers.add(name: "User-Agent", value: "kiln-scraper")
        http.headers.add(name: "Accept", value: "*/*")
        if let authorization = try Self.authorization(request.credentials) {
            http.headers.add(name: "Authorization", value: authorization)
        }
        let limit = request.maxBodyBytes
        let prepared = http
        return try await withDeadline(
            request.timeout, timeout: { ScrapeError("scrape timed out after \(DurationText.format(request.timeout))") }
        ) {
            let response = try await client.execute(prepared, timeout: .nanoseconds(Int64(request.timeout.secondsDouble * 1e9)))
            guard response.status == .ok else {
                // Read a little of the body: pprof handlers explain errors there.
                let text = (try? await response.body.collect(upTo: 512)).map { String(buffer: $0) } ?? ""
                let detail = text.trimmingCharacters(in: .whitespacesAndNewlines)
                throw ScrapeError(
                    "server returned HTTP status \(response.status.code) \(response.status.reasonPhrase)"
                        + (detail.isEmpty ? "" : ": \(detail.prefix(200))"))
            }
            do {
                var buffer = try await response.body.collect(upTo: limit)
                return buffer.readBytes(length: buffer.readableBytes) ?? []
            } catch is NIOTooManyBytesError {
                throw ScrapeError("response body exceeds body_size_limit of \(limit) bytes")
            }
        }
    }

    static func authorization(_ credentials: ScrapeCredentials) throws -> String? {
        if let basic = credentials.basicAuth {
            var password = basic.password ?? ""
            if let file = basic.passwordFile {
                password = try HTTPCredential.readSecretFile(file)
            }
            return HTTPCredential.basic(username: basic.username, password: password)
        }
        if let token = credentials.bearerToken { return "Bearer \(token)" }
        if let file = credentials.bearerTokenFile {
            return "Bearer " + (try HTTPCredential.readSecretFile(file))
        }
        return nil
    }

    public func shutdown() async throws {
        let all = clients.withLock { c in
            defer { c.removeAll() }
            return Array(c.values)
        }
        for c in all { try await c.shutdown() }
    }
}

extension TLSSettings {
    /// NIOSSL's client configuration for a `tls_config` block.
    func clientConfiguration() throws -> TLSConfiguration {
        var t = TLSConfiguration.makeClientConfiguration()
        if insecureSkipVerify { t.certificateVerification = .none }
        if let caFile { t.trustRoots = .file(caFile) }
        if let certFile, let keyFile {
            t.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) }
            t.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
        }
        return t
    }
}
