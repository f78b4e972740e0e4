import APICommon

/// A minimal `multipart/form-data` reader (RFC 7578) for Pyroscope's pprof form: named parts with their
/// bytes. Works on the collected body; parts are slices of it, not copies.
public struct MultipartForm: Sendable {
    public struct Part: Sendable {
        public var name: String
        public var filename: String?
        public var body: ArraySlice<UInt8>
    }

    public var parts: [Part]

    public func field(_ name: String) -> ArraySlice<UInt8>? { parts.first { $0.name == name }?.body }

    /// The boundary parameter of a `multipart/form-data` Content-Type, or nil when it is not one.
    public static func boundary(contentType: String) -> String? {
        let pieces = contentType.split(separator: ";").map { String($0).trimmingSpaces }
        guard let type = pieces.first, type.lowercased() == "multipart/form-data" else { return nil }
        for p in pieces.dropFirst() {
            guard let eq = p.firstIndex(of: "=") else { continue }
            if String(p[..<eq]).trimmingSpaces.lowercased() == "boundary" {
                var v = String(p[p.index(after: eq)...]).trimmingSpaces
                if v.count >= 2, v.hasPrefix("\""), v.hasSuffix("\"") { v = String(v.dropFirst().dropLast()) }
                return v.isEmpty ? nil : v
            }
        }
        return nil
    }

    public init(body: [UInt8], boundary: String) throws(APIError) {
        let delimiter = Array("--\(boundary)".utf8)
        var parts: [Part] = []
        guard var position = Self.find(delimiter, in: body, from: 0) else {
            throw APIError(.invalidArgument, "multipart body has no boundary \"\(boundary)\"")
        }
        while true {
            position += delimiter.count
            // "--" after a delimiter closes the body.
            if position + 1 < body.count, body[position] == 0x2D, body[position + 1] == 0x2D { break }
            // Skip transport padding and the CRLF that ends the delimiter line.
            while position < body.count, body[position] == 0x20 || body[position] == 0x09 { position += 1 }
            guard position + 1 < body.count, body[position] == 0x0D, body[position + 1] == 0x0A else {
                throw APIError(.invalidArgument, "malformed multipart body: expected CRLF after the boundary")
            }
            position += 2
            guard let headerEnd = Self.find([0x0D, 0x0A, 0x0D, 0x0A], in: body, from: position) else {
                throw APIError(.invalidArgument, "malformed multipart body: part headers do not end")
            }
            let headers = String(decoding: body[position..<headerEnd], as: UTF8.self)
            let contentStart = headerEnd + 4
            guard let next = Self.find([0x0D, 0x0A] + delimiter, in: body, from: contentStart) else {
                throw APIError(.invalidArgument, "malformed multipart body: part does not end with the boundary")
            }
            var name: String?
            var filename: String?
            for line in headers.split(separator: "\r\n") {
                guard let colon = line.firstIndex(of: ":"),
                    line[..<colon].trimmingCharactersSpaces().lowercased() == "content-disposition"
                else { continue }
                for param in line[line.index(after: colon)...].split(separator: ";") {
                    guard let eq = param.firstIndex(of: "=") else { continue }
                    let key = param[..<eq].trimmingCharactersSpaces().lowercased()
                    var value = param[param.index(after: eq)...].trimmingCharactersSpaces()
                    if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
                    if key == "name" { name = value } else if key == "filename" { filename = value }
                }
            }
            guard let name else { throw APIError(.invalidArgument, "malformed multipart body: a part has no name") }
            parts.append(Part(name: name, filename: filename, body: body[contentStart..<next]))
            position = next + 2
        }
        self.parts = parts
    }

    /// First index of `needle` in `haystack` at or after `start`.
    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard let first = needle.first, needle.count <= haystack.count else { return nil }
        let last = haystack.count - needle.count
        var i = start
        return haystack.withUnsafeBufferPointer { h in
            needle.withUnsafeBufferPointer { n in
                while i <= last {
                    if h[i] == first {
                        var j = 1
                        while j < n.count, h[i + j] == n[j] { j += 1 }
                        if j == n.count { return i }
                    }
                    i += 1
                }
                return nil
            }
        }
    }
}

extension StringProtocol {
    func trimmingCharactersSpaces() -> String { String(self).trimmingSpaces }
}
