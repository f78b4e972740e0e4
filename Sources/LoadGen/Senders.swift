import AsyncHTTPClient
import Foundation
import KafkaClient
import NIOCore
import NIOHTTP1
import Records

/// One profile to send.
public struct Shot: Sendable {
    public var index: Int
    public var target: Fleet.Target
    public var payload: [UInt8]
    /// Profile window, nanoseconds since the epoch.
    public var startNanos: Int64
    public var endNanos: Int64
}

/// How a send ended: accepted, refused with a status, or not answered.
public enum SendOutcome: Sendable, Equatable {
    case accepted
    case status(Int)
    case failed(String)

    /// The key errors are counted under in the results (`"503"`, `"transport"`).
    public var errorKey: String? {
        switch self {
        case .accepted: nil
        case .status(let code): String(code)
        case .failed: "transport"
        }
    }
}

public protocol ProfileSender: Sendable {
    func send(_ shot: Shot) async -> SendOutcome
    func shutdown() async
}

/// Pyroscope's legacy push: `POST /ingest?name=…&from=…&until=…&format=pprof` with the gzipped pprof as body,
/// over a small pool of keep-alive connections.
public final class HTTPIngestSender: ProfileSender {
    let client: HTTPClient
    let baseURL: String
    let tenant: String?
    let timeout: TimeAmount

    public init(baseURL: String, tenant: String?, connections: Int, timeout: Duration = .seconds(30)) {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, connections))
        configuration.decompression = .disabled
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.tenant = tenant
        self.timeout = .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
    }

    public func url(for shot: Shot) -> String {
        "\(baseURL)/ingest?name=\(shot.target.ingestName)&from=\(shot.startNanos / 1_000_000)&until=\(shot.endNanos / 1_000_000)"
            + "&format=pprof&spyName=loadgen"
    }

    public func send(_ shot: Shot) async -> SendOutcome {
        var request = HTTPClientRequest(url: url(for: shot))
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        if let tenant { request.headers.add(name: "X-Scope-OrgID", value: tenant) }
        request.body = .bytes(ByteBuffer(bytes: shot.payload))
        do {
            let response = try await client.execute(request, timeout: timeout)
            _ = try await response.body.collect(upTo: 1 << 20)
            return response.status.code == 200 ? .accepted : .status(Int(response.status.code))
        } catch {
            return .failed("\(error)")
        }
    }

    public func shutdown() async { try? await client.shutdown() }
}

/// Straight into the raw topic, as the scraper would publish: a `RawEnvelope` with source `loadgen`,
/// acknowledged by the broker (idempotent, lz4, acks=all).
public final class KafkaRawSender: ProfileSender {
    let producer: KafkaProducer
    let topic: String
    let tenant: String

    public init(producer: KafkaProducer, topic: String, tenant: String) {
        self.producer = producer
        self.topic = topic
        self.tenant = tenant
    }

    public func send(_ shot: Shot) async -> SendOutcome {
        let envelope = RawEnvelope(
            tenant: tenant, labels: shot.target.labelSet, source: .loadgen, format: .pprof,
            startNanos: shot.startNanos, endNanos: shot.endNanos, cumulative: false,
            attributes: ["spyName": "loadgen"], payload: shot.payload)
        do {
            _ = try await producer.send(ProducerRecord(topic: topic, key: envelope.key, value: envelope.encoded()))
            return .accepted
        } catch {
            return .failed("\(error)")
        }
    }

    public func shutdown() async { try? await producer.close() }
}
