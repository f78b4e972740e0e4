import APICommon
import Foundation
import GRPCCore
import GRPCProtobuf
import Hummingbird
import IngestAPI
import KilnFoundation
import NIOCore

/// `POST /v1development/profiles` (OTLP/HTTP): `application/x-protobuf` or `application/json`, optionally
/// gzip-compressed. Answers in the request's encoding: 200 with `ExportProfilesServiceResponse` (its
/// `partial_success` naming rejected profiles), or an error status with a `google.rpc.Status` body and,
/// when retrying helps (429, 503), `Retry-After`.
public enum OTLPRoutes {
    public static let path = "/v1development/profiles"

    /// The `endpoint` label of this transport's counters.
    static let endpoint = "otlp_http"

    public static func register<Context: RequestContext>(on router: Router<Context>, ingester: OTLPIngester) {
        OTLPIngester.zeroCounters(endpoint: endpoint)
        router.post(RouterPath(path)) { request, _ in
            await export(request, ingester: ingester)
        }
    }

    static func export(_ request: Request, ingester: OTLPIngester) async -> Response {
        var encoding = OTLPIngester.Encoding.protobuf
        var tenant = TenantID.defaultTenant
        do throws(APIError) {
            encoding = try Self.encoding(request.headers[.contentType])
            tenant = try ingester.ingester.options.access.tenant(request, endpoint: "otlp").get()
            let limit = ingester.maxRequestBytes
            let body = try await Connect.readBody(request, limit: limit, timeout: ingester.ingester.options.bodyReadTimeout)
            let decompressed = try Connect.decodeContentEncoding(
                body, encoding: request.headers[.contentEncoding] ?? "identity", limit: limit)
            let response = try await ingester.export(decompressed, encoding: encoding, tenant: tenant, endpoint: endpoint)
            return try answer(response, encoding: encoding)
        } catch {
            LimitMetrics.discarded(error, tenant: tenant)
            return errorResponse(error, encoding: encoding)
        }
    }

    static func encoding(_ contentType: String?) throws(APIError) -> OTLPIngester.Encoding {
        let type = (contentType ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        switch type {
        case "application/x-protobuf", "application/protobuf": return .protobuf
        case "application/json": return .json
        default:
            throw APIError(
                .unsupportedMediaType,
                "Content-Type \"\(clip(contentType ?? ""))\" is not supported: send application/x-protobuf or application/json")
        }
    }

    static func contentType(_ encoding: OTLPIngester.Encoding) -> String {
        encoding == .json ? "application/json" : "application/x-protobuf"
    }

    static func answer(_ response: OTLPExportResponse, encoding: OTLPIngester.Encoding) throws(APIError) -> Response {
        do {
            let bytes: [UInt8] = encoding == .json ? try response.jsonUTF8Bytes() : try response.serializedBytes()
            return Response(
                status: .ok, headers: [.contentType: contentType(encoding)], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        } catch {
            throw APIError(.unavailable, "encoding the answer failed: \(error)")
        }
    }

    static func errorResponse(_ error: APIError, encoding: OTLPIngester.Encoding) -> Response {
        let status = OTLPStatus.googleStatus(error)
        var headers: HTTPFields = [.contentType: contentType(encoding)]
        if let challenge = error.challenge { headers[.wwwAuthenticate] = challenge }
        if let seconds = OTLPStatus.retryAfterSeconds(error) { headers[.retryAfter] = String(seconds) }
        let bytes: [UInt8]
        switch encoding {
        case .protobuf:
            bytes = (try? status.serializedBytes()) ?? []
        case .json:
            let object: [String: Any] = ["code": status.code.rawValue, "message": status.message]
            bytes = Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
        }
        return Response(status: error.ingestStatus, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// How an ingest refusal reads in gRPC terms (OTLP/gRPC, and the `google.rpc.Status` body of OTLP/HTTP).
enum OTLPStatus {
    static func code(_ error: APIError) -> RPCError.Code {
        switch error.kind {
        case .invalidArgument, .unprocessable, .unsupportedField: .invalidArgument
        case .bodyTooLarge, .rateLimited: .resourceExhausted
        case .unavailable: .unavailable
        case .unauthenticated, .missingCredentials: .unauthenticated
        case .forbidden: .permissionDenied
        case .unsupportedMediaType, .unsupportedEncoding, .unimplemented: .unimplemented
        case .requestTimeout: .deadlineExceeded
        case .notFound: .notFound
        case .conflict: .alreadyExists
        }
    }

    /// When the client should retry, per the OTLP specification: throttling and a busy or unreachable backend.
    static func retryAfterSeconds(_ error: APIError) -> Int? {
        switch error.kind {
        case .rateLimited, .unavailable: 1
        default: nil
        }
    }

    static func googleStatus(_ error: APIError) -> GoogleRPCStatus {
        var details: [ErrorDetails] = []
        if let seconds = retryAfterSeconds(error) { details.append(.retryInfo(delay: .seconds(seconds))) }
        return GoogleRPCStatus(code: code(error), message: error.message, details: details)
    }
}
