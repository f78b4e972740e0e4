import Foundation
import Logging

/// A parsed object-store URL, before any store is created (useful to validate flags early).
public enum ObjectStoreURL: Sendable {
    case file(root: URL)
    case s3(S3Configuration)

    /// Parses `file:///absolute/path` or `s3://bucket[/prefix][?endpoint=...&region=...]`.
    ///
    /// s3 query parameters: `endpoint` (http(s)://host[:port]; default `https://s3.<region>.amazonaws.com`),
    /// `region` (default AWS_REGION, AWS_DEFAULT_REGION, else us-east-1), `multipart_threshold` and
    /// `part_size` (bytes, or with a KiB/MiB/GiB suffix), `max_attempts`, `timeout` (seconds per attempt),
    /// `verify_checksums` (true/false). Credentials come from `credentials`, else from AWS_ACCESS_KEY_ID /
    /// AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN in `environment`.
    public static func parse(
        _ string: String, credentials: AWSCredentials? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ObjectStoreURL {
        func bad(_ why: String) -> ObjectStoreError {
            ObjectStoreError(
                .invalidURL,
                "invalid object store URL \"\(string)\": \(why). Expected file:///absolute/path or s3://bucket/prefix?endpoint=http://host:port&region=us-east-1"
            )
        }
        guard let schemeEnd = string.range(of: "://") else { throw bad("no scheme") }
        let scheme = string[..<schemeEnd.lowerBound].lowercased()
        let rest = String(string[schemeEnd.upperBound...])
        switch scheme {
        case "file":
            // file:///path (empty authority) or file://localhost/path.
            var path = rest
            if path.hasPrefix("localhost/") { path.removeFirst("localhost".count) }
            guard path.hasPrefix("/") else { throw bad("file URLs need an absolute path (three slashes: file:///var/kiln)") }
            if path.contains("?") || path.contains("#") { throw bad("file URLs take no query or fragment") }
            guard let decoded = path.removingPercentEncoding else { throw bad("bad percent-encoding in the path") }
            return .file(root: URL(fileURLWithPath: decoded))
        case "s3":
            let (location, queryString) = rest.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
                .map(String.init).splitFirst()
            let parts = location.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let bucket = parts[0]
            try validateBucket(bucket, bad)
            var prefix = parts.count > 1 ? parts[1] : ""
            while prefix.hasSuffix("/") { prefix.removeLast() }
            if prefix.hasPrefix("/") { throw bad("the prefix must not start with '/' (s3://bucket/prefix)") }
            guard let decodedPrefix = prefix.removingPercentEncoding else { throw bad("bad percent-encoding in the prefix") }
            if !decodedPrefix.isEmpty { try ObjectKey.validate(decodedPrefix) }

            var params: [String: String] = [:]
            for pair in (queryString ?? "").split(separator: "&") where !pair.isEmpty {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(kv[0])
                guard let value = (kv.count > 1 ? String(kv[1]) : "").removingPercentEncoding else {
                    throw bad("bad percent-encoding in parameter \(name)")
                }
                if params[name] != nil { throw bad("parameter \(name) is given twice") }
                params[name] = value
            }
            let known: Set = ["endpoint", "region", "multipart_threshold", "part_size", "max_attempts", "timeout", "verify_checksums"]
            if let unknown = params.keys.sorted().first(where: { !known.contains($0) }) {
                throw bad("unknown parameter \"\(unknown)\" (known: \(known.sorted().joined(separator: ", ")))")
            }
            // First non-empty of these; a plain loop, as a chain of `??` over closures takes seconds to type-check.
            let region = firstNonEmpty([params["region"], environment["AWS_REGION"], environment["AWS_DEFAULT_REGION"]]) ?? "us-east-1"
            let endpoint = firstNonEmpty([params["endpoint"]]) ?? "https://s3.\(region).amazonaws.com"
            guard let endpointURL = URL(string: endpoint), ["http", "https"].contains(endpointURL.scheme?.lowercased() ?? ""),
                endpointURL.host?.isEmpty == false
            else {
                throw bad("endpoint \"\(endpoint)\" is not an http(s)://host[:port] URL")
            }
            guard let creds = credentials ?? AWSCredentials.fromEnvironment(environment) else {
                throw ObjectStoreError(
                    .invalidCredentials,
                    "no S3 credentials for \(string): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)"
                )
            }
            var config = S3Configuration(bucket: bucket, prefix: decodedPrefix, endpoint: endpoint, region: region, credentials: creds)
            if let v = params["multipart_threshold"] { config.multipartThreshold = try byteCount(v, "multipart_threshold", bad) }
            if let v = params["part_size"] { config.partSize = try byteCount(v, "part_size", bad) }
            if let v = params["max_attempts"] {
                guard let n = Int(v), n >= 1 else { throw bad("max_attempts must be a whole number ≥ 1") }
                config.retry.maxAttempts = n
            }
            if let v = params["timeout"] {
                guard let s = Double(v), s > 0 else { throw bad("timeout must be a positive number of seconds") }
                config.requestTimeout = .milliseconds(Int64(s * 1000))
            }
            if let v = params["verify_checksums"] {
                guard let b = Bool(v) else { throw bad("verify_checksums must be true or false") }
                config.verifyChecksums = b
            }
            do { try config.validate() } catch let error as ObjectStoreError { throw bad(error.message) }
            return .s3(config)
        default:
            throw bad("unsupported scheme \"\(scheme)\"")
        }
    }

    /// S3's bucket naming rules (3-63 characters of a-z, 0-9, '.', '-'; starts and ends with a letter or digit).
    static func validateBucket(_ bucket: String, _ bad: (String) -> ObjectStoreError) throws {
        if bucket.isEmpty { throw bad("no bucket name (s3://bucket/prefix)") }
        func isLowercaseLetterOrDigit(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        let allowed = bucket.utf8.allSatisfy { isLowercaseLetterOrDigit($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
        let edges = isLowercaseLetterOrDigit(bucket.utf8.first!) && isLowercaseLetterOrDigit(bucket.utf8.last!)
        if !(3...63).contains(bucket.count) || !allowed || !edges {
            throw bad("bucket name \"\(bucket)\" breaks S3's rules (3-63 characters: lowercase letters, digits, '.', '-')")
        }
    }

    private static func firstNonEmpty(_ candidates: [String?]) -> String? {
        for case let value? in candidates where !value.isEmpty { return value }
        return nil
    }

    static func byteCount(_ text: String, _ name: String, _ bad: (String) -> ObjectStoreError) throws -> Int {
        let units: [(String, Int)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let n = Int(text.dropLast(suffix.count)), n > 0 { return n * scale }
        }
        if let n = Int(text), n > 0 { return n }
        throw bad("\(name) \"\(text)\" is not a positive byte count (e.g. 16777216 or 16MiB)")
    }
}

extension Array where Element == String {
    fileprivate func splitFirst() -> (String, String?) { (self[0], count > 1 ? self[1] : nil) }
}

/// Creates the store a URL names: `file:///path` or `s3://bucket/prefix?endpoint=...&region=...`.
/// See `ObjectStoreURL.parse` for the parameters. Call `shutdown()` on the result when done.
public func makeObjectStore(
    url: String, credentials: AWSCredentials? = nil,
    environment: [String: String] = ProcessInfo.processInfo.environment,
    logger: Logger = Logger(label: "kiln.objectstore")
) throws -> any ObjectStore {
    switch try ObjectStoreURL.parse(url, credentials: credentials, environment: environment) {
    case .file(let root): return FileObjectStore(root: root)
    case .s3(let config): return try S3ObjectStore(configuration: config, logger: logger)
    }
}
