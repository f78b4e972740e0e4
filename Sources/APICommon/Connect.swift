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

    /// What to do with fields the request's message type does not define.
    public enum UnknownFields: Sendable {
        /// Skip them (push ingest: SDKs newer than Kiln may add metadata Pyroscope also drops).
        case ignore
        /// Refuse the request naming them (queries: an answer must not ignore part of its question).
        case refuse
    }

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
    /// Inflating and decoding a large body runs off the cooperative pool. Fields the message type does not
    /// define are skipped or refused as `unknownFields` says.
    public static func message<M: SwiftProtobuf.Message>(
        _ request: Request, limit: Int, timeout: Duration = bodyReadTimeout, as type: M.Type = M.self,
        unknownFields: UnknownFields = .ignore
    ) async throws(APIError) -> (M, Codec) {
        let codec = try codec(request.headers[.contentType])
        let body = try await readBody(request, limit: limit, timeout: timeout)
        let encoding = (request.headers[.contentEncoding] ?? header(request, "connect-content-encoding") ?? "identity")
        let message: M = try await BlockingWork.shared.run(bytes: body.count) { () throws(APIError) -> M in
            try decode(body, codec: codec, encoding: encoding, limit: limit, unknownFields: unknownFields)
        }
        return (message, codec)
    }

    /// A request body (compressed as `encoding` names) decoded as `M`: what `message` does once the body is read.
    public static func decode<M: SwiftProtobuf.Message>(
        _ body: [UInt8], codec: Codec, encoding: String, limit: Int, as type: M.Type = M.self, unknownFields: UnknownFields
    ) throws(APIError) -> M {
        let decompressed = try decodeContentEncoding(body, encoding: encoding, limit: limit)
        let message: M
        do {
            switch codec {
            case .proto: message = try M(serializedBytes: decompressed)
            case .json:
                var options = JSONDecodingOptions()
                options.ignoreUnknownFields = unknownFields == .ignore
                message = try M(jsonUTF8Bytes: decompressed.isEmpty ? Array("{}".utf8) : decompressed, options: options)
            }
        } catch JSONDecodingError.unknownField(let name) {
            throw APIError(.unsupportedField, "\(M.protoMessageName) field \"\(name)\" is not known to Kiln, so it cannot be honoured")
        } catch {
            throw APIError(.invalidArgument, "cannot decode \(M.protoMessageName) (\(codec == .proto ? "protobuf" : "JSON")): \(error)")
        }
        if codec == .proto, unknownFields == .refuse { try refuseUnknownFields(message, bytes: decompressed) }
        return message
    }

    /// Refuses a binary message that carried fields its type does not define, at any depth, naming the
    /// top-level ones by number (SwiftProtobuf keeps such fields as bytes, and they take part in equality:
    /// decoded again without them, a message that had some is no longer equal).
    static func refuseUnknownFields<M: SwiftProtobuf.Message>(_ message: M, bytes: [UInt8]) throws(APIError) {
        var discarding = BinaryDecodingOptions()
        discarding.discardUnknownFields = true
        guard let known = try? M(serializedBytes: bytes, options: discarding), !known.isEqualTo(message: message) else { return }
        let numbers = fieldNumbers(Array(message.unknownFields.data))
        let which = numbers.isEmpty ? "a nested message carries fields" : "fields \(numbers.map(String.init).joined(separator: ", "))"
        throw APIError(.unsupportedField, "\(M.protoMessageName): \(which) not known to Kiln, so they cannot be honoured")
    }

    /// The field numbers of protobuf wire data, in order, each once.
    public static func fieldNumbers(_ data: [UInt8]) -> [Int] {
        var numbers: [Int] = []
        var position = 0
        while position < data.count {
            guard let tag = try? Varint.read(data, at: &position) else { break }
            let number = Int(tag >> 3)
            if !numbers.contains(number) { numbers.append(number) }
            switch tag & 7 {
            case 0: guard (try? Varint.read(data, at: &position)) != nil else { return numbers }
            case 1: position += 8
            case 2:
                guard let length = try? Varint.read(data, at: &position), length <= UInt64(data.count) else { return numbers }
                position += Int(length)
            case 5: position += 4
            default: return numbers
            }
        }
        return numbers
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

    /// How long a client may take to send its whole body (408 after that).
    public static let bodyReadTimeout: Duration = .seconds(30)

    /// The whole body, refusing (413) a declared or actual size over `limit` without reading further, and
    /// (408) a body not complete within `timeout`: a trickling client holds a connection, not the server.
    public static func readBody(_ request: Request, limit: Int, timeout: Duration = bodyReadTimeout) async throws(APIError) -> [UInt8] {
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limit {
            throw APIError(.bodyTooLarge, "request body of \(declared) bytes exceeds the limit of \(limit) bytes")
        }
        let body = request.body
        do {
            let buffer = try await withDeadline(
                timeout, timeout: { APIError(.requestTimeout, "the request body was not complete within \(DurationText.format(timeout))") }
            ) { try await body.collect(upTo: limit) }
            return Array(buffer.readableBytesView)
        } catch let error as APIError {
            throw error
        } catch is NIOTooManyBytesError {
            throw APIError(.bodyTooLarge, "request body exceeds the limit of \(limit) bytes")
        } catch {
            throw APIError(.invalidArgument, "reading the request body failed: \(error)")
        }
    }
}
