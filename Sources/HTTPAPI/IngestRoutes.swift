import Foundation
import Hummingbird
import Logging
import NIOCore
import PprofCodec
import Records
import SwiftProtobuf

/// The push ingest routes, registered on a router the caller owns (the scraper's admin router, `kiln dev`'s
/// single server):
///
/// - `POST /ingest` and `POST /pyroscope/ingest`: Pyroscope's legacy ingest (raw pprof with
///   `format=pprof`, the multipart pprof form, folded text);
/// - `POST /push.v1.PusherService/Push`: Connect unary, `application/proto` or `application/json`,
///   optionally gzip-compressed (`Content-Encoding` or `Connect-Content-Encoding`).
///
/// The tenant is `X-Scope-OrgID` (default `anonymous`), or with `IngestOptions.access` authenticating, the
/// one the credentials allow (docs/security.md). A push is answered 200 only after the publisher has stored
/// every profile in it.
public enum IngestRoutes {
    public static let connectPushPath = "/push.v1.PusherService/Push"

    public static func register<Context: RequestContext>(on router: Router<Context>, ingester: PushIngester) {
        let legacy: @Sendable (Request, Context) async throws -> Response = { request, _ in
            await legacyIngest(request, ingester: ingester)
        }
        router.post("/ingest", use: legacy)
        router.post("/pyroscope/ingest", use: legacy)
        router.post(RouterPath(connectPushPath)) { request, _ in
            await connectPush(request, ingester: ingester)
        }
    }

    // MARK: /ingest

    static func legacyIngest(_ request: Request, ingester: PushIngester) async -> Response {
        var tenant = TenantID.defaultTenant
        do throws(IngestError) {
            tenant = try ingester.options.access.tenant(request, endpoint: "ingest").get()
            let body = try await readBody(request, limit: ingester.options.maxBodyBytes)
            let envelope = try LegacyIngestDecoder.envelope(
                query: FormQuery.parse(request.uri.query), contentType: request.headers[.contentType],
                body: body, tenant: tenant, now: Date(), options: ingester.options.forTenant(tenant))
            try await ingester.submit([envelope], tenant: tenant, endpoint: "ingest")
            return Response(status: .ok)
        } catch {
            LimitMetrics.discarded(error, tenant: tenant)
            var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
            if let challenge = error.challenge { headers[.wwwAuthenticate] = challenge }
            return Response(status: error.ingestStatus, headers: headers,
                            body: .init(byteBuffer: ByteBuffer(string: error.message + "\n")))
        }
    }

    // MARK: Connect push

    enum ConnectCodec { case proto, json }

    static func connectPush(_ request: Request, ingester: PushIngester) async -> Response {
        var tenant = TenantID.defaultTenant
        do throws(IngestError) {
            tenant = try ingester.options.access.tenant(request, endpoint: "connect").get()
            let codec = try connectCodec(request.headers[.contentType])
            var body = try await readBody(request, limit: ingester.options.maxBodyBytes)
            body = try decodeContentEncoding(body, request: request, limit: ingester.options.maxBodyBytes)
            let message: Push_V1_PushRequest
            do {
                switch codec {
                case .proto: message = try Push_V1_PushRequest(serializedBytes: body)
                case .json:
                    var decoding = JSONDecodingOptions()
                    decoding.ignoreUnknownFields = true
                    message = try Push_V1_PushRequest(jsonUTF8Bytes: body, options: decoding)
                }
            } catch {
                throw IngestError(.invalidArgument, "cannot decode push.v1.PushRequest (\(codec == .proto ? "protobuf" : "JSON")): \(error)")
            }
            let envelopes = try ConnectPushDecoder.envelopes(message, tenant: tenant, now: Date(), options: ingester.options.forTenant(tenant))
            try await ingester.submit(envelopes, tenant: tenant, endpoint: "connect")
            let (contentType, bytes): (String, [UInt8]) = switch codec {
            case .proto: ("application/proto", [])
            case .json: ("application/json", Array("{}".utf8))
            }
            return Response(status: .ok, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        } catch {
            LimitMetrics.discarded(error, tenant: tenant)
            return connectError(error)
        }
    }

    static func connectCodec(_ contentType: String?) throws(IngestError) -> ConnectCodec {
        let type = (contentType ?? "").split(separator: ";").first.map { String($0).trimmingSpaces.lowercased() } ?? ""
        switch type {
        case "application/proto", "application/protobuf", "application/x-protobuf": return .proto
        case "application/json": return .json
        default:
            throw IngestError(.unsupportedMediaType, "Content-Type \"\(contentType ?? "")\" is not supported: send application/proto or application/json (Connect unary)")
        }
    }

    static func decodeContentEncoding(_ body: [UInt8], request: Request, limit: Int) throws(IngestError) -> [UInt8] {
        let encoding = (request.headers[.contentEncoding] ?? header(request, "connect-content-encoding") ?? "identity")
            .trimmingSpaces.lowercased()
        switch encoding {
        case "", "identity": return body
        case "gzip":
            let result: Result<[UInt8], PprofError> = body.withUnsafeBytes { buffer in
                Result { () throws(PprofError) in try Gzip.decompress(buffer, limit: limit) }
            }
            switch result {
            case .success(let bytes): return bytes
            case .failure(let error):
                if error.kind == .limit {
                    throw IngestError(.bodyTooLarge, "request body exceeds \(ByteCount.format(limit)) after gzip decompression")
                }
                throw IngestError(.invalidArgument, "gzip request body: \(error)")
            }
        default:
            throw IngestError(.unsupportedEncoding, "Content-Encoding \"\(encoding)\" is not supported (use gzip or identity)")
        }
    }

    static func connectError(_ error: IngestError) -> Response {
        let json = try? JSONSerialization.data(withJSONObject: ["code": error.connectCode, "message": error.message], options: [.sortedKeys])
        var headers: HTTPFields = [.contentType: "application/json"]
        if let challenge = error.challenge { headers[.wwwAuthenticate] = challenge }
        return Response(status: error.connectStatus, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: json ?? Data())))
    }

    // MARK: body

    /// A header by lower-case name (Hummingbird exports HTTPFields but not its field-name type).
    static func header(_ request: Request, _ lowercasedName: String) -> String? {
        request.headers.first { $0.name.canonicalName == lowercasedName }?.value
    }

    /// The whole body, refusing (413) a declared or actual size over `limit` without reading further.
    static func readBody(_ request: Request, limit: Int) async throws(IngestError) -> [UInt8] {
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limit {
            throw IngestError(.bodyTooLarge, "request body of \(declared) bytes exceeds the limit of \(limit) bytes")
        }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw IngestError(.bodyTooLarge, "request body exceeds the limit of \(limit) bytes")
        } catch {
            throw IngestError(.invalidArgument, "reading the request body failed: \(error)")
        }
    }
}
