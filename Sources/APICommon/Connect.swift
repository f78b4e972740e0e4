import Foundation
import Hummingbird
import KilnFoundation
import NIOCore
import PprofCodec
import SwiftProtobuf

/// Connect unary over HTTP/1.1 (https://connectrpc.com/docs/protocol), as push ingest and the query API
/// speak it: `application/proto` or `application/json` bodies, optionally gzip-compressed, errors as
/// Connect's JSON error body with its HTTP status.
public enum Connect {
    public enum Codec: Sendable { case proto, json }

    /// The codec the request's `Content-Type` names, or 415.
    public static func codec(_ contentType: String?) throws(APIError) -> Codec {
        let type = (contentType ?? "").split(separator: ";").first.map { String($0).trimmingSpaces.lowercased() } ?? ""
        switch type {
        case "application/proto", "application/protobuf", "application/x-protobuf": return .proto
        case "application/json": return .json
        default:
            throw APIError(
                .unsupportedMediaType,
                "Content-Type \"\(contentType ?? "")\" is not supported: send application/proto or application/json (Connect unary)")
        }
    }

    /// The request's message: its body read (at most `limit` bytes, also after decompression) and decoded.
    /// Inflating and decoding a large body runs off the cooperative pool. JSON's unknown fields are
    /// ignored (clients newer than Kiln may send them); the caller refuses known fields it cannot honour.
    public static func message<M: SwiftProtobuf.Message>(_ request: Request, limit: Int, as type: M.Type = M.self) async throws(APIError)
        -> (M, Codec)
    {
        let codec = try codec(request.headers[.contentType])
        let body = try await readBody(request, limit: limit)
        let encoding = (request.headers[.contentEncoding] ?? header(request, "connect-content-encoding") ?? "identity")
        let message: M = try await BlockingWork.shared.run(bytes: body.count) { () throws(APIError) -> M in
            let decompressed = try decodeContentEncoding(body, encoding: encoding, limit: limit)
            do {
                switch codec {
                case .proto: return try M(serializedBytes: decompressed)
                case .json:
                    var options = JSONDecodingOptions()
                    options.ignoreUnknownFields = true
                    return try M(jsonUTF8Bytes: decompressed.isEmpty ? Array("{}".utf8) : decompressed, options: options)
                }
            } catch {
                throw APIError(.invalidArgument, "cannot decode \(M.protoMessageName) (\(codec == .proto ? "protobuf" : "JSON")): \(error)")
            }
        }
        return (message, codec)
    }

    /// A 200 answer carrying `message` in `codec`.
    public static func response(_ message: some SwiftProtobuf.Message, codec: Codec) throws -> Response {
        let bytes: [UInt8]
        let type: String
        switch codec {
        case .proto: (bytes, type) = (try message.serializedBytes(), "application/proto")
        case .json: (bytes, type) = (try message.jsonUTF8Bytes(), "application/json")
        }
        return Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// `body` after the `Content-Encoding` (or `Connect-Content-Encoding`) `encoding`: identity or gzip.
    public static func decodeContentEncoding(_ body: [UInt8], encoding: String, limit: Int) throws(APIError) -> [UInt8] {
        switch encoding.trimmingSpaces.lowercased() {
        case "", "identity": return body
        case "gzip":
            let result: Result<[UInt8], PprofError> = body.withUnsafeBytes { buffer in
                Result { () throws(PprofError) in try Gzip.decompress(buffer, limit: limit) }
            }
            switch result {
            case .success(let bytes): return bytes
            case .failure(let error):
                if error.kind == .limit {
                    throw APIError(.bodyTooLarge, "request body exceeds \(ByteCount.format(limit)) after gzip decompression")
                }
                throw APIError(.invalidArgument, "gzip request body: \(error)")
            }
        default:
            throw APIError(.unsupportedEncoding, "Content-Encoding \"\(encoding)\" is not supported (use gzip or identity)")
        }
    }

    /// Connect's error answer: `{"code": …, "message": …}` with the code's HTTP status.
    public static func errorResponse(_ error: APIError) -> Response {
        let json = try? JSONSerialization.data(
            withJSONObject: ["code": error.connectCode, "message": error.message], options: [.sortedKeys])
        var headers: HTTPFields = [.contentType: "application/json"]
        if let challenge = error.challenge { headers[.wwwAuthenticate] = challenge }
        return Response(status: error.connectStatus, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: json ?? Data())))
    }

    /// A header by lower-case name (Hummingbird exports HTTPFields but not its field-name type).
    public static func header(_ request: Request, _ lowercasedName: String) -> String? {
        request.headers.first { $0.name.canonicalName == lowercasedName }?.value
    }

    /// The whole body, refusing (413) a declared or actual size over `limit` without reading further.
    public static func readBody(_ request: Request, limit: Int) async throws(APIError) -> [UInt8] {
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limit {
            throw APIError(.bodyTooLarge, "request body of \(declared) bytes exceeds the limit of \(limit) bytes")
        }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw APIError(.bodyTooLarge, "request body exceeds the limit of \(limit) bytes")
        } catch {
            throw APIError(.invalidArgument, "reading the request body failed: \(error)")
        }
    }
}
