import APICommon
import AsyncHTTPClient
import Foundation
import Hummingbird
import IngestAPI
import KilnFoundation
import NIOCore
import OTLPIngest
import PprofCodec
import Testing

/// `POST /v1development/profiles` on a real server with an in-memory publisher: what OTLP/HTTP clients get
/// back for partial success, size limits and a broker that is down.
@Suite struct OTLPRouteTests {
    static func server<T: Sendable>(
        publisher: any RawProfilePublisher, limits: OTLPLimits = OTLPLimits(), _ body: @Sendable (String) async throws -> T
    ) async throws -> T {
        var options = IngestOptions()
        options.publishTimeout = .seconds(2)
        let router = Router()
        OTLPRoutes.register(
            on: router, ingester: OTLPIngester(ingester: PushIngester(publisher: publisher, options: options), limits: limits))
        return try await withServer(router, body)
    }

    /// `google.rpc.Status` fields 1 (code) and 2 (message), read by hand: the test does not trust Kiln's encoder.
    static func status(_ body: [UInt8]) -> (code: UInt64, message: String) {
        var code: UInt64 = 0
        var message = ""
        var at = 0
        while at < body.count, let key = try? Varint.read(body, at: &at) {
            switch key {
            case 0x08: code = (try? Varint.read(body, at: &at)) ?? 0
            case 0x12:
                let length = Int((try? Varint.read(body, at: &at)) ?? 0)
                message = String(decoding: body[at..<min(body.count, at + length)], as: UTF8.self)
                at += length
            default: return (code, message)
            }
        }
        return (code, message)
    }

    static let protobuf = [("Content-Type", "application/x-protobuf")]

    @Test func partialSuccessStoresTheGoodProfileOnly() async throws {
        let builder = OTLPRequestBuilder()
        var bad = builder.profile
        bad.samples[0].stackIndex = 99
        let request: [UInt8] = try builder.adding(bad).serializedBytes()
        let publisher = InMemoryRawPublisher()
        try await Self.server(publisher: publisher) { base in
            let gzip = try await post(
                base + OTLPRoutes.path, body: Gzip.compress(request, level: 6), headers: Self.protobuf + [("Content-Encoding", "gzip")])
            #expect(gzip.status == 200 && gzip.contentType == "application/x-protobuf", "\(gzip.text)")
            let answer = try OTLPExportResponse(serializedBytes: gzip.body)
            #expect(answer.partialSuccess.rejectedProfiles == 1)
            #expect(answer.partialSuccess.errorMessage.contains("profiles[1]: a sample's stack_index 99"), "\(answer)")
        }
        #expect(publisher.envelopes.count == 1 && publisher.envelopes[0].labels["service_name"] == "checkout")
    }

    @Test func aRequestOverTheLimitIsRefusedBeforeItIsRead() async throws {
        // A string table far beyond the request limit: refused with 413 and RESOURCE_EXHAUSTED, nothing stored.
        var builder = OTLPRequestBuilder()
        builder.request.dictionary.stringTable += (0..<20_000).map { "padding-\($0)" }
        let request: [UInt8] = try builder.request.serializedBytes()
        var limits = OTLPLimits()
        limits.maxRequestBytes = 64 << 10
        let publisher = InMemoryRawPublisher()
        try await Self.server(publisher: publisher, limits: limits) { base in
            let refused = try await post(base + OTLPRoutes.path, body: request, headers: Self.protobuf)
            #expect(refused.status == 413)
            let status = Self.status(refused.body)
            #expect(status.code == 8 && status.message.contains("exceeds the limit"), "\(status)")
            // The same limit holds after decompression (a small gzip body that inflates past it).
            let inflating = try await post(
                base + OTLPRoutes.path, body: Gzip.compress(request, level: 9), headers: Self.protobuf + [("Content-Encoding", "gzip")])
            #expect(inflating.status == 413, "\(inflating.text)")
        }
        #expect(publisher.envelopes.isEmpty)
    }

    @Test func aBrokerThatIsDownAnswers503WithRetryAfter() async throws {
        let request: [UInt8] = try OTLPRequestBuilder().request.serializedBytes()
        try await Self.server(publisher: FailingPublisher()) { base in
            var raw = HTTPClientRequest(url: base + OTLPRoutes.path)
            raw.method = .POST
            raw.headers.add(name: "Content-Type", value: "application/x-protobuf")
            raw.body = .bytes(ByteBuffer(bytes: request))
            let response = try await HTTPClient.shared.execute(raw, timeout: .seconds(30))
            #expect(response.status.code == 503 && response.headers.first(name: "retry-after") == "1")
            let status = Self.status(Array(try await response.body.collect(upTo: 1 << 20).readableBytesView))
            #expect(status.code == 14 && status.message.contains("retry later"), "\(status)")
            let json = try await post(
                base + OTLPRoutes.path, body: Array(try OTLPRequestBuilder().request.jsonString().utf8),
                headers: [
                    ("Content-Type", "application/json")
                ])
            #expect(json.status == 503 && json.contentType == "application/json", "\(json.text)")
            let object = try JSONSerialization.jsonObject(with: Data(json.body)) as? [String: Any]
            #expect(object?["code"] as? Int == 14)
        }
    }
}
