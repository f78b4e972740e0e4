import AsyncHTTPClient
import Foundation
import KilnProtos
import Logging
import NIOCore
import NIOHTTP1

/// Sends scraped profiles to the HTTP `endpoint`s of a `pyroscope.write` component the way Alloy does:
/// Connect `POST <url>/push.v1.PusherService/Push` in binary protobuf, so any Pyroscope-compatible server
/// (Pyroscope, Grafana Cloud, another Kiln) takes them. Failures that may pass (connection errors, 429, 5xx)
/// are retried with backoff; other answers fail at once with the server's message.
public final class PushForwarder: ProfileSink {
    public let endpoints: [WriteEndpoint]
    private let client: HTTPClient
    private let logger: Logger
    private let attempts: Int
    private let firstBackoff: Duration

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public init(
        endpoints: [WriteEndpoint], attempts: Int = 4, firstBackoff: Duration = .milliseconds(500),
        logger: Logger = Logger(label: "kiln.scrape.forward")
    ) {
        self.endpoints = endpoints
        self.attempts = max(1, attempts)
        self.firstBackoff = firstBackoff
        self.logger = logger
        // The process-wide client: it needs no shutdown, so a forwarder dropped on an error path (or by
        // a test that fails) cannot trap in the client's deinit.
        client = HTTPClient.shared
    }

    public func publish(_ scraped: ScrapedProfile) async throws {
        let body = Self.pushRequest(scraped)
        for endpoint in endpoints { try await send(body, to: endpoint, tenant: scraped.tenant) }
    }

    private func send(_ body: [UInt8], to endpoint: WriteEndpoint, tenant: String) async throws {
        let base = endpoint.url.hasSuffix("/") ? String(endpoint.url.dropLast()) : endpoint.url
        var backoff = firstBackoff
        for attempt in 1...attempts {
            var request = HTTPClientRequest(url: base + "/push.v1.PusherService/Push")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/proto")
            request.headers.add(name: "Connect-Protocol-Version", value: "1")
            request.headers.add(name: "X-Scope-OrgID", value: tenant)
            if let authorization = try HTTPProfileFetcher.authorization(endpoint.credentials) {
                request.headers.add(name: "Authorization", value: authorization)
            }
            for (name, value) in endpoint.headers {
                request.headers.replaceOrAdd(name: name, value: value)
            }
            request.body = .bytes(ByteBuffer(bytes: body))
            let retryable: String
            do {
                let response = try await client.execute(
                    request, timeout: .milliseconds(Int64(endpoint.remoteTimeout.components.seconds * 1000)))
                let answer = String(buffer: try await response.body.collect(upTo: 64 << 10))
                let code = Int(response.status.code)
                if (200..<300).contains(code) { return }
                guard code == 429 || code >= 500 else {
                    throw Failure(description: "\(endpoint.name ?? base) refused the profile: HTTP \(code) \(answer)")
                }
                retryable = "HTTP \(code) \(answer)"
            } catch let failure as Failure {
                throw failure
            } catch {
                retryable = "\(error)"
            }
            guard attempt < attempts else {
                throw Failure(description: "\(endpoint.name ?? base): \(retryable) (gave up after \(attempts) attempts)")
            }
            logger.warning(
                "push forward failed; retrying", metadata: ["endpoint": "\(base)", "error": "\(retryable)", "attempt": "\(attempt)"])
            try await Task.sleep(for: backoff)
            backoff *= 2
        }
    }

    /// `push.v1.PushRequest{series: [{labels, samples: [{raw_profile, ID}]}]}`. A cumulative profile
    /// carries `__delta__="true"`, so the receiver computes the deltas, as Alloy's scrapes ask Pyroscope to.
    static func pushRequest(_ scraped: ScrapedProfile) -> [UInt8] {
        var labels = scraped.labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        if scraped.cumulative { labels.append(("__delta__", "true")) }
        var series = Push_V1_RawProfileSeries()
        series.labels = labels.map { name, value in
            var pair = Types_V1_LabelPair()
            pair.name = name
            pair.value = value
            return pair
        }
        var sample = Push_V1_RawSample()
        sample.rawProfile = Data(scraped.body)
        sample.id = UUID().uuidString.lowercased()
        series.samples = [sample]
        var request = Push_V1_PushRequest()
        request.series = [series]
        // Serialising a message built here cannot fail (no required fields, no unknown types).
        return (try? request.serializedBytes()) ?? []
    }
}
