import AsyncHTTPClient
import Crypto
import Foundation
import KilnFoundation
import Logging
import NIOCore
import NIOHTTP1

/// How often, and how patiently, a failed S3 request is tried again.
public struct RetryPolicy: Sendable, Hashable {
    /// Tries per request, the first included (1 = never retry).
    public var maxAttempts: Int
    /// Backoff before retry n (n = 1, 2, ...) is a random duration in [0, min(maxDelay, baseDelay * 2^(n-1))]
    /// ("full jitter"), so a fleet of writers does not retry in step.
    public var baseDelay: Duration
    public var maxDelay: Duration

    public init(maxAttempts: Int = 5, baseDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(5)) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    func delay(beforeRetry n: Int) -> Duration {
        let capSeconds = min(maxDelay.seconds, baseDelay.seconds * pow(2, Double(min(n - 1, 30))))
        return .milliseconds(Int64(Double.random(in: 0...max(0, capSeconds)) * 1000))
    }
}

/// Everything an `S3ObjectStore` needs; `makeObjectStore(url:)` fills it from an `s3://` URL.
public struct S3Configuration: Sendable {
    public var bucket: String
    /// Keys live under `prefix/` in the bucket ('' for the bucket root); no leading or trailing '/'.
    public var prefix: String
    /// `scheme://host[:port]`, e.g. `https://s3.us-east-1.amazonaws.com` or `http://127.0.0.1:9000`.
    public var endpoint: String
    public var region: String
    public var credentials: AWSCredentials
    /// Objects at least this large go up as a multipart upload.
    public var multipartThreshold: Int = 64 << 20
    /// Size of each part but the last (S3 requires at least 5 MiB).
    public var partSize: Int = 16 << 20
    /// Parts uploaded at the same time.
    public var partConcurrency: Int = 4
    public var retry = RetryPolicy()
    /// Limit on one attempt of one request, connection and body included.
    public var requestTimeout: Duration = .seconds(60)
    public var connectTimeout: Duration = .seconds(10)
    /// ListObjectsV2 `max-keys` per page (S3 caps it at 1000).
    public var listPageSize: Int = 1000
    /// Compare returned ETags with the MD5 of what was sent / received. Turn off for SSE-KMS or SSE-C
    /// buckets, whose ETags are not MD5 digests.
    public var verifyChecksums = true

    public static let minimumPartSize = 5 << 20

    public init(bucket: String, prefix: String = "", endpoint: String, region: String, credentials: AWSCredentials) {
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint
        self.region = region
        self.credentials = credentials
    }

    func validate() throws {
        if partSize < Self.minimumPartSize {
            throw ObjectStoreError(.invalidArgument, "S3 part size \(partSize) is below S3's minimum of 5 MiB (\(Self.minimumPartSize))")
        }
        if multipartThreshold < 1 { throw ObjectStoreError(.invalidArgument, "multipart threshold must be positive") }
        if partConcurrency < 1 { throw ObjectStoreError(.invalidArgument, "part concurrency must be at least 1") }
        if !(1...1000).contains(listPageSize) { throw ObjectStoreError(.invalidArgument, "list page size must be 1...1000") }
    }
}

/// An S3-compatible object store (AWS S3, MinIO, Ceph RGW, moto...), path-style, SigV4-signed, with
/// retries, multipart uploads and checksums. One shared HTTP client per store; call `shutdown()` when done.
public final class S3ObjectStore: ObjectStore {
    public let configuration: S3Configuration
    public var location: String { "s3://\(configuration.bucket)" + (configuration.prefix.isEmpty ? "" : "/\(configuration.prefix)") }

    private let client: HTTPClient
    private let signer: SigV4Signer
    private let logger: Logger
    private let scheme: String
    /// The Host header: host, plus `:port` when not the scheme's default.
    private let hostHeader: String
    private let endpointBase: String

    public init(configuration: S3Configuration, logger: Logger = Logger(label: "kiln.objectstore.s3")) throws {
        try configuration.validate()
        guard let url = URL(string: configuration.endpoint), let scheme = url.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty
        else {
            throw ObjectStoreError(.invalidURL, "S3 endpoint \"\(configuration.endpoint)\" is not an http(s)://host[:port] URL")
        }
        if !(url.path.isEmpty || url.path == "/") || url.query != nil {
            throw ObjectStoreError(
                .invalidURL,
                "S3 endpoint \"\(configuration.endpoint)\" must not have a path or query (path-style addressing adds /bucket itself)")
        }
        self.configuration = configuration
        self.scheme = scheme
        let defaultPort = scheme == "https" ? 443 : 80
        let hostPart = host.contains(":") ? "[\(host)]" : host  // IPv6 literal
        self.hostHeader = (url.port.map { $0 == defaultPort ? hostPart : "\(hostPart):\($0)" }) ?? hostPart
        self.endpointBase = "\(scheme)://\(hostHeader)"
        self.signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region, service: "s3")
        self.logger = logger
        var config = HTTPClient.Configuration()
        config.timeout = .init(
            connect: .nanoseconds(Int64(configuration.connectTimeout.seconds * 1e9)),
            read: .nanoseconds(Int64(configuration.requestTimeout.seconds * 1e9)))
        config.redirectConfiguration = .disallow  // a redirect means a wrong region/endpoint; say so instead
        config.decompression = .disabled
        // Our retry policy decides about failed connects; the pool's own retrying would run until the
        // connect timeout on every attempt (15 s for three refused connects instead of milliseconds).
        config.connectionPool.retryConnectionEstablishment = false
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    public func shutdown() async throws {
        try await client.shutdown()
    }

    // MARK: - ObjectStore

    public func put(_ key: String, _ bytes: [UInt8]) async throws {
        try ObjectKey.validate(key)
        if bytes.count >= configuration.multipartThreshold && bytes.count > configuration.partSize {
            _ = try await multipartUpload(key, bytes, ifAbsent: false)
        } else {
            _ = try await singlePut(key, bytes, if: nil)
        }
    }

    public func putIfAbsent(_ key: String, _ bytes: [UInt8]) async throws -> Bool {
        try ObjectKey.validate(key)
        if bytes.count >= configuration.multipartThreshold && bytes.count > configuration.partSize {
            return try await multipartUpload(key, bytes, ifAbsent: true)
        }
        return try await singlePut(key, bytes, if: .absent) != nil
    }

    public func put(_ key: String, _ bytes: [UInt8], if condition: WriteCondition) async throws -> String? {
        try ObjectKey.validate(key)
        guard bytes.count < configuration.multipartThreshold || bytes.count <= configuration.partSize else {
            throw ObjectStoreError(
                .invalidArgument, "conditional PUT \(describe(key)): \(bytes.count) bytes; conditional writes are for small objects")
        }
        return try await singlePut(key, bytes, if: condition)
    }

    public func get(_ key: String, range: ByteRange?) async throws -> [UInt8] {
        try ObjectKey.validate(key)
        try range?.validate()
        let op = "GET \(describe(key))" + (range.map { " (\($0))" } ?? "")
        guard let range else {
            let response = try await send(op, .GET, key: key)
            guard response.status == 200 else { throw mapError(response, op: op, key: key) }
            try verifyWholeBody(response, key: key, op: op)
            return response.body
        }
        guard let header = range.httpHeaderValue else {
            // An empty range: no request can express it; check the object exists and the start is inside it.
            guard let info = try await head(key) else {
                throw ObjectStoreError(
                    .notFound, "\(op): no such key in bucket \"\(configuration.bucket)\"", code: "NoSuchKey", httpStatus: 404)
            }
            guard range.resolve(size: info.size) != nil else {
                throw ObjectStoreError(.invalidRange, "\(op): range starts past the end of the \(info.size)-byte object")
            }
            return []
        }
        let response = try await send(op, .GET, key: key, headers: [("Range", header)])
        switch response.status {
        case 206:
            return try checkedPartialBody(response, op: op)
        case 200:
            // The server ignored Range and sent everything: cut the range out ourselves.
            try verifyWholeBody(response, key: key, op: op)
            guard let r = range.resolve(size: response.body.count) else {
                throw ObjectStoreError(.invalidRange, "\(op): range starts past the end of the \(response.body.count)-byte object")
            }
            return Array(response.body[r])
        case 416:
            if case .suffix = range, let info = try await head(key), info.size == 0 { return [] }
            throw mapError(response, op: op, key: key)
        default:
            throw mapError(response, op: op, key: key)
        }
    }

    public func head(_ key: String) async throws -> ObjectInfo? {
        try ObjectKey.validate(key)
        let op = "HEAD \(describe(key))"
        let response = try await send(op, .HEAD, key: key)
        switch response.status {
        case 200:
            let size = response.headers.first(name: "Content-Length").flatMap { Int($0) } ?? 0
            let etag = response.headers.first(name: "ETag").map(S3Format.unquoteETag)
            let modified = response.headers.first(name: "Last-Modified").flatMap(S3Format.parseHTTPDate) ?? Date(timeIntervalSince1970: 0)
            return ObjectInfo(key: key, size: size, etag: etag, lastModified: modified)
        case 404:
            // A HEAD response has no body, so NoSuchKey and NoSuchBucket look alike; tell them apart.
            if try await bucketExists() { return nil }
            throw noSuchBucket(op: op)
        default:
            throw mapError(response, op: op, key: key)
        }
    }

    public func list(prefix: String, delimiter: String?) async throws -> ListResult {
        try ObjectKey.validatePrefix(prefix)
        if let delimiter, delimiter.isEmpty { throw ObjectStoreError(.invalidArgument, "list delimiter must not be empty") }
        let fullPrefix = configuration.prefix.isEmpty ? prefix : configuration.prefix + "/" + prefix
        let strip = configuration.prefix.isEmpty ? 0 : configuration.prefix.count + 1
        var result = ListResult()
        var token: String?
        var pages = 0
        repeat {
            var query: [(String, String)] = [("list-type", "2"), ("max-keys", String(configuration.listPageSize))]
            if !fullPrefix.isEmpty { query.append(("prefix", fullPrefix)) }
            if let delimiter { query.append(("delimiter", delimiter)) }
            if let token { query.append(("continuation-token", token)) }
            let op = "LIST \(location)/\(prefix)* (page \(pages + 1))"
            let response = try await send(op, .GET, key: nil, query: query)
            guard response.status == 200 else { throw mapError(response, op: op, key: nil) }
            guard let page = ListPage(response.body) else {
                throw ObjectStoreError(
                    .protocolError, "\(op): the ListObjectsV2 response from \(endpointBase) is not a ListBucketResult document")
            }
            for object in page.objects where object.key.count >= strip {
                result.objects.append(
                    ObjectInfo(
                        key: String(object.key.dropFirst(strip)), size: object.size,
                        etag: object.etag, lastModified: object.lastModified))
            }
            result.commonPrefixes += page.commonPrefixes.map { String($0.dropFirst(strip)) }
            pages += 1
            if page.isTruncated {
                guard let next = page.nextContinuationToken, !next.isEmpty, next != token else {
                    throw ObjectStoreError(.protocolError, "\(op): listing is truncated but has no new continuation token")
                }
                token = next
            } else {
                token = nil
            }
        } while token != nil
        result.objects.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        result.commonPrefixes.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        return result
    }

    public func delete(_ key: String) async throws {
        try ObjectKey.validate(key)
        let op = "DELETE \(describe(key))"
        let response = try await send(op, .DELETE, key: key)
        if response.status == 204 || response.status == 200 { return }
        if response.status == 404, S3ErrorBody(response.body)?.code == "NoSuchKey" { return }
        throw mapError(response, op: op, key: key)
    }

    // MARK: - Bucket helpers

    /// Creates the bucket (in the configured region). Succeeds when this account already owns it.
    public func createBucket() async throws {
        let op = "CREATE BUCKET \(configuration.bucket) at \(endpointBase)"
        var body: [UInt8] = []
        if configuration.region != "us-east-1" {
            body = Array(
                ("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                    + "<LocationConstraint>\(S3Format.xmlEscape(configuration.region))</LocationConstraint>"
                    + "</CreateBucketConfiguration>").utf8)
        }
        let response = try await send(op, .PUT, key: nil, body: body)
        if response.status == 200 { return }
        if S3ErrorBody(response.body)?.code == "BucketAlreadyOwnedByYou" { return }
        throw mapError(response, op: op, key: nil)
    }

    /// True when the bucket exists and these credentials may see it.
    public func bucketExists() async throws -> Bool {
        let op = "HEAD BUCKET \(configuration.bucket) at \(endpointBase)"
        let response = try await send(op, .HEAD, key: nil)
        switch response.status {
        case 200: return true
        case 404: return false
        default: throw mapError(response, op: op, key: nil)
        }
    }

    // MARK: - Uploads

    /// PUT Object. Returns the new ETag, or nil when `condition` did not hold.
    private func singlePut(_ key: String, _ bytes: [UInt8], if condition: WriteCondition?) async throws -> String? {
        let op = "PUT \(describe(key)) (\(bytes.count) bytes)"
        let md5 = Array(Insecure.MD5.hash(data: bytes))
        var headers: [(String, String)] = [
            ("Content-MD5", Data(md5).base64EncodedString()),
            ("Content-Type", "application/octet-stream"),
        ]
        switch condition {
        case .absent: headers.append(("If-None-Match", "*"))
        case .matches(let etag): headers.append(("If-Match", "\"\(etag)\""))
        case nil: break
        }
        let response = try await send(op, .PUT, key: key, headers: headers, body: bytes)
        let etag = SigV4Signer.hex(md5)
        switch response.status {
        case 200:
            try verifyETag(response, expected: etag, op: op)
            return response.headers.first(name: "ETag").map(S3Format.unquoteETag) ?? etag
        case 412 where condition != nil:
            return try await isOwnEarlierWrite(key, etag: etag) ? etag : nil
        case 404 where condition != .absent && condition != nil:
            return nil  // If-Match on a key that holds no object
        default:
            throw mapError(response, op: op, key: key)
        }
    }

    /// A conditional write lost to an existing object. If that object carries exactly our bytes it is our
    /// own earlier attempt whose response was lost (then retried), so the write did happen.
    private func isOwnEarlierWrite(_ key: String, etag: String) async throws -> Bool {
        guard let info = try await head(key) else { return false }
        return info.etag == etag
    }

    /// CreateMultipartUpload, UploadPart (in parallel), CompleteMultipartUpload; AbortMultipartUpload on failure.
    private func multipartUpload(_ key: String, _ bytes: [UInt8], ifAbsent: Bool) async throws -> Bool {
        let partSize = configuration.partSize
        let partCount = (bytes.count + partSize - 1) / partSize
        if partCount > 10_000 {
            throw ObjectStoreError(
                .invalidArgument,
                "PUT \(describe(key)): \(bytes.count) bytes need \(partCount) parts of \(partSize) bytes; S3 allows 10000 — raise the part size"
            )
        }
        let op = "MULTIPART PUT \(describe(key)) (\(bytes.count) bytes, \(partCount) parts)"

        let created = try await send(
            "\(op): create", .POST, key: key, query: [("uploads", "")],
            headers: [("Content-Type", "application/octet-stream")])
        guard created.status == 200 else { throw mapError(created, op: "\(op): create", key: key) }
        guard let uploadID = XMLNode.parse(created.body)?.value("UploadId"), !uploadID.isEmpty else {
            throw ObjectStoreError(.protocolError, "\(op): CreateMultipartUpload response has no UploadId")
        }

        do {
            let partMD5s = try await uploadParts(key, bytes, uploadID: uploadID, partCount: partCount, op: op)
            // The multipart ETag S3 computes: MD5 of the concatenated part MD5s, then "-<part count>".
            let expectedETag = SigV4Signer.hex(Insecure.MD5.hash(data: partMD5s.flatMap { $0 })) + "-\(partCount)"
            var body = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            for (i, md5) in partMD5s.enumerated() {
                body += "<Part><PartNumber>\(i + 1)</PartNumber><ETag>\"\(SigV4Signer.hex(md5))\"</ETag></Part>"
            }
            body += "</CompleteMultipartUpload>"
            var headers: [(String, String)] = [("Content-Type", "application/xml")]
            if ifAbsent { headers.append(("If-None-Match", "*")) }
            let completeOp = "\(op): complete"
            // S3 may answer 200 and still report an error in the body; that is retried like a 5xx.
            let response = try await send(
                completeOp, .POST, key: key, query: [("uploadId", uploadID)], headers: headers,
                body: Array(body.utf8),
                retryOn: { Self.isRetryable($0) || ($0.status == 200 && S3ErrorBody($0.body) != nil) })
            switch response.status {
            case 200 where S3ErrorBody(response.body) == nil:
                if configuration.verifyChecksums,
                    let etag = XMLNode.parse(response.body)?.value("ETag").map(S3Format.unquoteETag),
                    etag != expectedETag
                {
                    throw ObjectStoreError(
                        .checksumMismatch, "\(completeOp): the store reports ETag \(etag), expected \(expectedETag) from the parts sent")
                }
                return true
            case 412 where ifAbsent:
                await abortUpload(key, uploadID: uploadID, op: op)
                return try await isOwnEarlierWrite(key, etag: expectedETag)
            case 404 where S3ErrorBody(response.body)?.code == "NoSuchUpload":
                // A retried Complete whose first attempt succeeded finds the upload gone; the object is there.
                if let info = try await head(key), info.etag == expectedETag { return true }
                throw mapError(response, op: completeOp, key: key)
            default:
                throw mapError(response, op: completeOp, key: key)
            }
        } catch {
            await abortUpload(key, uploadID: uploadID, op: op)
            throw error
        }
    }

    /// Uploads every part, `partConcurrency` at a time; returns each part's MD5 in part order.
    private func uploadParts(_ key: String, _ bytes: [UInt8], uploadID: String, partCount: Int, op: String) async throws -> [[UInt8]] {
        let partSize = configuration.partSize
        var digests = [[UInt8]](repeating: [], count: partCount)
        // Each part is copied out of `bytes` only when its upload starts: at most `partConcurrency` copies.
        try await concurrently(Array(0..<partCount), parallelism: configuration.partConcurrency) { index in
            let start = index * partSize
            let part = Array(bytes[start..<min(start + partSize, bytes.count)])
            let partOp = "\(op): part \(index + 1)/\(partCount)"
            let md5 = Array(Insecure.MD5.hash(data: part))
            let response = try await self.send(
                partOp, .PUT, key: key,
                query: [("partNumber", String(index + 1)), ("uploadId", uploadID)],
                headers: [("Content-MD5", Data(md5).base64EncodedString())], body: part)
            guard response.status == 200 else { throw self.mapError(response, op: partOp, key: key) }
            try self.verifyETag(response, expected: SigV4Signer.hex(md5), op: partOp)
            return md5
        } merge: { index, md5 in
            digests[index] = md5
        }
        return digests
    }

    private func abortUpload(_ key: String, uploadID: String, op: String) async {
        do {
            let response = try await send("\(op): abort", .DELETE, key: key, query: [("uploadId", uploadID)])
            if !(200..<300).contains(response.status) && response.status != 404 {
                logger.warning(
                    "abort of multipart upload failed; the bucket's lifecycle rule must clean it up",
                    metadata: ["key": "\(describe(key))", "upload_id": "\(uploadID)", "status": "\(response.status)"])
            }
        } catch {
            logger.warning(
                "abort of multipart upload failed; the bucket's lifecycle rule must clean it up",
                metadata: ["key": "\(describe(key))", "upload_id": "\(uploadID)", "error": "\(error)"])
        }
    }

    // MARK: - Checks

    private func verifyETag(_ response: S3Response, expected: String, op: String) throws {
        guard configuration.verifyChecksums, let raw = response.headers.first(name: "ETag") else { return }
        let etag = S3Format.unquoteETag(raw)
        if etag.lowercased() != expected {
            throw ObjectStoreError(
                .checksumMismatch, "\(op): the store reports ETag \(etag) but the bytes sent have MD5 \(expected) — data changed in transit"
            )
        }
    }

    /// For a whole-object GET: the size matches Content-Length and, for single-part objects, the MD5 the ETag.
    private func verifyWholeBody(_ response: S3Response, key: String, op: String) throws {
        if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length != response.body.count {
            throw ObjectStoreError(.checksumMismatch, "\(op): received \(response.body.count) bytes, Content-Length said \(length)")
        }
        guard configuration.verifyChecksums, let raw = response.headers.first(name: "ETag") else { return }
        let etag = S3Format.unquoteETag(raw).lowercased()
        guard etag.count == 32, etag.allSatisfy(\.isHexDigit) else { return }  // multipart or not an MD5
        let actual = SigV4Signer.hex(Insecure.MD5.hash(data: response.body))
        if actual != etag {
            throw ObjectStoreError(
                .checksumMismatch,
                "\(op): received bytes have MD5 \(actual) but the object's ETag is \(etag) — data corrupted in transit or at rest")
        }
    }

    private func checkedPartialBody(_ response: S3Response, op: String) throws -> [UInt8] {
        // Content-Range: bytes first-last/size
        if let contentRange = response.headers.first(name: "Content-Range"),
            let spec = contentRange.split(separator: " ").last?.split(separator: "/").first
        {
            let bounds = spec.split(separator: "-").compactMap { Int($0) }
            if bounds.count == 2, bounds[1] - bounds[0] + 1 != response.body.count {
                throw ObjectStoreError(.checksumMismatch, "\(op): received \(response.body.count) bytes for Content-Range \(contentRange)")
            }
        }
        return response.body
    }

    // MARK: - Requests, signing and retries

    struct S3Response: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    static func isRetryable(_ response: S3Response) -> Bool {
        switch response.status {
        case 500, 502, 503, 504, 429: return true
        case 400:
            // RequestTimeout: the server gave up waiting for our body; a new attempt may succeed.
            return S3ErrorBody(response.body)?.code == "RequestTimeout"
        case 409:
            // Two conditional writes raced; S3 asks for a retry, which then gets 412 if the other one won.
            return S3ErrorBody(response.body)?.code == "ConditionalRequestConflict"
        default:
            return false
        }
    }

    /// Sends one request, retrying 5xx, throttling, timeouts and connection failures per the retry policy.
    /// Returns the first non-retryable response (success or not); throws once every attempt failed.
    private func send(
        _ op: String, _ method: HTTPMethod, key: String?, query: [(String, String)] = [],
        headers: [(String, String)] = [], body: [UInt8] = [],
        retryOn: @Sendable (S3Response) -> Bool = S3ObjectStore.isRetryable
    ) async throws -> S3Response {
        let policy = configuration.retry
        let started = ContinuousClock.now
        let payloadHash = SigV4Signer.sha256Hex(body)
        var rawPath = "/" + configuration.bucket
        if let key { rawPath += "/" + (configuration.prefix.isEmpty ? key : configuration.prefix + "/" + key) }
        let path = SigV4Signer.encodePath(rawPath)
        let queryString = SigV4Signer.canonicalQuery(query)
        let url = endpointBase + path + (queryString.isEmpty ? "" : "?" + queryString)

        var lastProblem = ""
        var lastKind = ObjectStoreError.Kind.unavailable
        var lastResponse: S3Response?
        for attempt in 1...policy.maxAttempts {
            try Task.checkCancellation()
            if attempt > 1 {
                let delay = policy.delay(beforeRetry: attempt - 1)
                logger.debug(
                    "retrying S3 request",
                    metadata: ["op": "\(op)", "attempt": "\(attempt)", "after": "\(lastProblem)", "delay": "\(delay)"])
                try await Task.sleep(for: delay)
            }
            let signed = signer.sign(
                method: method.rawValue, path: path, query: query,
                headers: [("Host", hostHeader)] + headers, payloadHash: payloadHash, date: Date())
            var request = HTTPClientRequest(url: url)
            request.method = method
            for (name, value) in signed.headers { request.headers.add(name: name, value: value) }
            if !body.isEmpty || method == .PUT || method == .POST {
                request.headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
                request.body = .bytes(ByteBuffer(bytes: body))
            }
            do {
                let deadline = NIODeadline.now() + .nanoseconds(Int64(configuration.requestTimeout.seconds * 1e9))
                let response = try await client.execute(request, deadline: deadline, logger: nil)
                var buffer = try await response.body.collect(upTo: Int.max)
                let result = S3Response(
                    status: Int(response.status.code), headers: response.headers,
                    body: buffer.readBytes(length: buffer.readableBytes) ?? [])
                if !retryOn(result) { return result }
                lastResponse = result
                let code = S3ErrorBody(result.body)?.code
                lastProblem = "HTTP \(result.status)" + (code.map { " \($0)" } ?? "")
                lastKind = .unavailable
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                (lastKind, lastProblem) = classifyTransport(error)
                lastResponse = nil
            }
        }
        let elapsed = ContinuousClock.now - started
        var message =
            "\(op) via \(endpointBase): \(lastProblem) — gave up after \(policy.maxAttempts) attempt(s) in "
            + String(format: "%.1f s", elapsed.seconds)
        if let lastResponse, let error = S3ErrorBody(lastResponse.body), let text = error.message { message += " (\(text))" }
        throw ObjectStoreError(
            lastKind, message, code: lastResponse.flatMap { S3ErrorBody($0.body)?.code },
            httpStatus: lastResponse?.status)
    }

    private func classifyTransport(_ error: any Error) -> (ObjectStoreError.Kind, String) {
        let text = String(describing: error)
        if let http = error as? HTTPClientError {
            switch http {
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return (.timeout, "no complete response within \(configuration.requestTimeout) (\(http))")
            case .connectTimeout:
                return (.connectionFailed, "cannot connect to \(endpointBase) within \(configuration.connectTimeout)")
            case .remoteConnectionClosed:
                return (.unavailable, "the server closed the connection (\(http))")
            default:
                break
            }
        }
        let lowered = text.lowercased()
        if lowered.contains("connection refused") || lowered.contains("econnrefused") {
            return (.connectionFailed, "connection refused by \(endpointBase) — is the S3 endpoint running and the port right?")
        }
        if lowered.contains("connection reset") || lowered.contains("econnreset") {
            return (.unavailable, "the connection to \(endpointBase) was reset (\(text))")
        }
        if lowered.contains("timeout") || lowered.contains("timed out") {
            return (.timeout, "timed out talking to \(endpointBase) (\(text))")
        }
        if lowered.contains("name") && (lowered.contains("resol") || lowered.contains("lookup")) {
            return (.connectionFailed, "cannot resolve \(endpointBase) (\(text))")
        }
        return (.unavailable, "request to \(endpointBase) failed: \(text)")
    }

    // MARK: - Errors

    private func describe(_ key: String) -> String { "\(location)/\(key)" }

    private func noSuchBucket(op: String) -> ObjectStoreError {
        ObjectStoreError(
            .noSuchBucket,
            "\(op): bucket \"\(configuration.bucket)\" does not exist at \(endpointBase) (region \(configuration.region)) (NoSuchBucket)",
            code: "NoSuchBucket", httpStatus: 404)
    }

    /// Turns a failed response into an error that names the operation, bucket, key and cause.
    private func mapError(_ response: S3Response, op: String, key: String?) -> ObjectStoreError {
        let error = S3ErrorBody(response.body)
        let status = response.status
        let code = error?.code ?? Self.codeForStatus(status)
        let detail = error?.message.map { ": \($0)" } ?? ""
        let bucket = configuration.bucket
        let accessKey = configuration.credentials.accessKeyID
        let object = key.map { "key \"\($0)\" in bucket \"\(bucket)\"" } ?? "bucket \"\(bucket)\""
        func make(_ kind: ObjectStoreError.Kind, _ text: String) -> ObjectStoreError {
            ObjectStoreError(kind, "\(op): \(text) (\(code), HTTP \(status))", code: code, httpStatus: status)
        }
        switch code {
        case "NoSuchBucket":
            return make(.noSuchBucket, "bucket \"\(bucket)\" does not exist at \(endpointBase)")
        case "NoSuchKey":
            return make(.notFound, "no \(object)")
        case "InvalidAccessKeyId":
            return make(.invalidCredentials, "access key id \"\(accessKey)\" is not known to \(endpointBase) — check AWS_ACCESS_KEY_ID")
        case "SignatureDoesNotMatch":
            return make(
                .signatureMismatch,
                "the request signature for access key \"\(accessKey)\" does not match — check AWS_SECRET_ACCESS_KEY (and that no proxy rewrites requests)\(detail)"
            )
        case "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
            return make(
                .invalidCredentials, "the session token for access key \"\(accessKey)\" is invalid or expired — check AWS_SESSION_TOKEN")
        case "AccessDenied", "AllAccessDisabled":
            return make(.accessDenied, "access key \"\(accessKey)\" may not access \(object)\(detail)")
        case "PreconditionFailed", "ConditionalRequestConflict":
            return make(.preconditionFailed, "the condition on \(object) failed (another writer got there first)")
        case "InvalidRange":
            return make(.invalidRange, "the requested range is outside \(object)")
        case "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch":
            return make(.checksumMismatch, "the store rejected the bytes of \(object): checksum mismatch in transit")
        case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
            return make(
                .invalidArgument,
                "bucket \"\(bucket)\" is not in region \"\(configuration.region)\" at \(endpointBase) — set region= in the s3:// URL\(detail)"
            )
        case "EntityTooSmall":
            return make(.invalidArgument, "a multipart part of \(object) is below the store's minimum part size\(detail)")
        default:
            return make(.protocolError, "\(object) failed\(detail.isEmpty ? " with no error document" : detail)")
        }
    }

    static func codeForStatus(_ status: Int) -> String {
        switch status {
        case 403: return "AccessDenied"
        case 404: return "NoSuchKey"
        case 412: return "PreconditionFailed"
        case 416: return "InvalidRange"
        case 301: return "PermanentRedirect"
        default: return "HTTP\(status)"
        }
    }
}

extension Duration {
    /// This duration in seconds, as a Double.
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}
