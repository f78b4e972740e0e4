import Foundation

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// A parsed XML element: enough structure for S3's small response documents.
struct XMLNode: Sendable {
    var name: String
    var text: String = ""
    var children: [XMLNode] = []

    func child(_ name: String) -> XMLNode? { children.first { $0.name == name } }
    func all(_ name: String) -> [XMLNode] { children.filter { $0.name == name } }
    func value(_ name: String) -> String? { child(name)?.text }

    /// Parses a document; nil when it is not well-formed XML.
    static func parse(_ bytes: [UInt8]) -> XMLNode? {
        let builder = TreeBuilder()
        let parser = XMLParser(data: Data(bytes))
        parser.delegate = builder
        guard parser.parse(), let root = builder.root else { return nil }
        return root
    }

    private final class TreeBuilder: NSObject, XMLParserDelegate {
        var stack: [XMLNode] = []
        var root: XMLNode?

        func parser(
            _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
            qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]
        ) {
            stack.append(XMLNode(name: elementName))
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if !stack.isEmpty { stack[stack.count - 1].text += string }
        }

        func parser(
            _ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?,
            qualifiedName qName: String?
        ) {
            guard let done = stack.popLast() else { return }
            if stack.isEmpty { root = done } else { stack[stack.count - 1].children.append(done) }
        }
    }
}

/// The `<Error>` document S3 returns with a failed request.
struct S3ErrorBody: Sendable {
    var code: String
    var message: String?
    var bucket: String?
    var key: String?

    init?(_ bytes: [UInt8]) {
        guard !bytes.isEmpty, let root = XMLNode.parse(bytes) else { return nil }
        // Most stores answer <Error>; some wrap it (<ErrorResponse><Error>...).
        let error = root.name == "Error" ? root : root.child("Error")
        guard let error, let code = error.value("Code"), !code.isEmpty else { return nil }
        self.code = code
        self.message = error.value("Message")
        self.bucket = error.value("BucketName")
        self.key = error.value("Key")
    }
}

/// One page of ListObjectsV2.
struct ListPage: Sendable {
    struct Object: Sendable {
        var key: String
        var size: Int
        var etag: String?
        var lastModified: Date
    }

    var objects: [Object] = []
    var commonPrefixes: [String] = []
    var isTruncated = false
    var nextContinuationToken: String?

    init?(_ bytes: [UInt8]) {
        guard let root = XMLNode.parse(bytes), root.name == "ListBucketResult" else { return nil }
        isTruncated = root.value("IsTruncated") == "true"
        nextContinuationToken = root.value("NextContinuationToken")
        for node in root.all("Contents") {
            guard let key = node.value("Key") else { return nil }
            objects.append(
                Object(
                    key: key,
                    size: Int(node.value("Size") ?? "") ?? 0,
                    etag: node.value("ETag").map(S3Format.unquoteETag),
                    lastModified: node.value("LastModified").flatMap(S3Format.parseISO8601) ?? Date(timeIntervalSince1970: 0)))
        }
        for node in root.all("CommonPrefixes") {
            if let p = node.value("Prefix") { commonPrefixes.append(p) }
        }
    }
}

enum S3Format {
    static func unquoteETag(_ etag: String) -> String {
        var s = etag.trimmingCharacters(in: .whitespaces)
        if s.hasPrefix("W/") { s.removeFirst(2) }
        if s.count >= 2, s.hasPrefix("\""), s.hasSuffix("\"") { s = String(s.dropFirst().dropLast()) }
        return s.replacingOccurrences(of: "&quot;", with: "")
    }

    /// `2024-05-01T12:00:00.000Z` (with or without fractional seconds). A format style, not an
    /// `ISO8601DateFormatter`: a listing parses one date per key, and a formatter costs ~200 µs a date.
    static func parseISO8601(_ s: String) -> Date? {
        (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(s)) ?? (try? Date.ISO8601FormatStyle().parse(s))
    }

    /// `Wed, 21 Oct 2015 07:28:00 GMT` (the Last-Modified header).
    static func parseHTTPDate(_ s: String) -> Date? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: s)
    }

    static func xmlEscape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
