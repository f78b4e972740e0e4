import AsyncHTTPClient
import Foundation
import KilnFoundation
import KilnProtos
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOSSL
import SwiftProtobuf

/// Where and how to send: Prometheus remote write 1.0 to `url`, with optional credentials and TLS.
public struct RemoteWriteOptions: Sendable {
    public var url: String
    public var basicAuth: (username: String, password: String)?
    public var bearerToken: String?
    /// PEM CA bundle that signs the receiver's certificate (the system's roots otherwise).
    public var caFile: String?
    /// Client certificate and key, for receivers that authenticate clients.
    public var certFile: String?
    public var keyFile: String?
    public var timeout: Duration = .seconds(30)
    /// The longest wait between two attempts of a request the receiver may accept later.
    public var maxBackoff: Duration = .seconds(30)
    /// Samples per request (Prometheus's own `max_samples_per_send` default).
    public var maxSamplesPerRequest = 2000

    public init(url: String) { self.url = url }
}

/// What became of a write: every sample acknowledged, or some refused for good by the receiver.
public struct RemoteWriteResult: Sendable, Equatable {
    public var samplesWritten = 0
    /// Samples of requests answered with a 4xx other than 429: resending them cannot succeed.
    public var samplesRejected = 0
    /// The receiver's words for the first refusal.
    public var firstRejection: String?
}

/// Sends time series with Prometheus remote write 1.0: protobuf `WriteRequest`, snappy block compression,
/// the protocol's headers, one request per `maxSamplesPerRequest` samples. A 5xx, a 429 or a connection
/// failure is retried with backoff (0.5 s doubling to `maxBackoff`) until it succeeds or the task is
/// cancelled: the caller commits its input only after `write` returns, so giving up would lose samples.
/// Other 4xx answers (a malformed or out-of-order sample) cannot succeed on resend; they are counted and
/// returned.
public final class RemoteWriteClient: Sendable {
    let options: RemoteWriteOptions
    let http: HTTPClient
    let logger: Logger
    let failures = Counter(label: "kiln_ruler_remote_write_failures_total")
    /// Encoding and compressing a request is whole-buffer work: off the cooperative pool.
    let encoder = BlockingWork(label: "kiln.remote-write.encode")

    public init(options: RemoteWriteOptions, logger: Logger) throws {
        guard let url = URL(string: options.url), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw RemoteWriteError("remote write URL \(options.url) is not an http:// or https:// URL")
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile = options.caFile { tls.trustRoots = .file(caFile) }
        switch (options.certFile, options.keyFile) {
        case (let cert?, let key?):
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        case (nil, nil):
            break
        default:
            throw RemoteWriteError("a client certificate needs both its certificate and its key file")
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(Int64(options.timeout.components.seconds)))
        self.options = options
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.logger = logger
    }

    public func shutdown() async throws { try await http.shutdown() }

    /// Writes `series` on behalf of `tenant` (sent as `X-Scope-OrgID`, which Mimir and Cortex read and
    /// Prometheus ignores).
    public func write(_ series: [Prometheus_TimeSeries], tenant: String) async throws -> RemoteWriteResult {
        var result = RemoteWriteResult()
        for chunk in Self.requests(series, maxSamples: options.maxSamplesPerRequest) {
            let samples = chunk.reduce(0) { $0 + $1.samples.count }
            let body = try await encoder.run { () throws -> [UInt8] in
                var request = Prometheus_WriteRequest()
                request.timeseries = chunk
                return Snappy.compress(try request.serializedBytes())
            }
            if let refusal = try await send(body, tenant: tenant) {
                result.samplesRejected += samples
                if result.firstRejection == nil { result.firstRejection = refusal }
            } else {
                result.samplesWritten += samples
            }
        }
        return result
    }

    /// Series grouped so that no request holds more than `maxSamples` samples (a longer series alone).
    static func requests(_ series: [Prometheus_TimeSeries], maxSamples: Int) -> [[Prometheus_TimeSeries]] {
        var out: [[Prometheus_TimeSeries]] = []
        var current: [Prometheus_TimeSeries] = []
        var count = 0
        for s in series {
            if count > 0, count + s.samples.count > maxSamples {
                out.append(current)
                (current, count) = ([], 0)
            }
            current.append(s)
            count += s.samples.count
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// Sends one request until the receiver takes it (nil) or refuses it for good (its answer).
    func send(_ body: [UInt8], tenant: String) async throws -> String? {
        var delay = Duration.milliseconds(500)
        while true {
            var request = HTTPClientRequest(url: options.url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-protobuf")
            request.headers.add(name: "Content-Encoding", value: "snappy")
            request.headers.add(name: "X-Prometheus-Remote-Write-Version", value: "0.1.0")
            request.headers.add(name: "User-Agent", value: "kiln-ruler")
            request.headers.add(name: "X-Scope-OrgID", value: tenant)
            if let (user, password) = options.basicAuth {
                request.headers.add(name: "Authorization", value: HTTPCredential.basic(username: user, password: password))
            } else if let token = options.bearerToken {
                request.headers.add(name: "Authorization", value: "Bearer " + token)
            }
            request.body = .bytes(ByteBuffer(bytes: body))
            let problem: String
            do {
                let response = try await http.execute(request, timeout: .seconds(options.timeout.components.seconds))
                let text = String(buffer: try await response.body.collect(upTo: 64 * 1024))
                switch response.status.code {
                case 200..<300:
                    return nil
                case 429, 500...:
                    problem = "HTTP \(response.status.code): \(text.prefix(300))"
                default:
                    return "HTTP \(response.status.code): \(text.prefix(300))"
                }
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                problem = "\(error)"
            }
            failures.increment()
            logger.warning(
                "remote write failed; sending again", metadata: ["url": "\(options.url)", "error": "\(problem)", "retry_in": "\(delay)"])
            try await Task.sleep(for: delay)
            delay = min(delay * 2, options.maxBackoff)
        }
    }
}

public struct RemoteWriteError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}
