import Foundation

/// A flat namespace of immutable byte objects, addressed by '/'-separated relative keys such as
/// `tenant/01HZX.../meta.json`. Implementations: `FileObjectStore` (`file:///path`) and `S3ObjectStore`
/// (`s3://bucket/prefix`). Create one with `makeObjectStore(url:)`.
///
/// Semantics every implementation keeps (the block writer relies on them):
/// - `put` is all-or-nothing: a reader sees the old object, no object, or the whole new object, never a part.
/// - `putIfAbsent` creates only when no object exists under the key, atomically (two racing writers: one wins).
/// - Keys are validated the same way everywhere (see `ObjectKey.validate`), so a layout that works on
///   one store works on all.
public protocol ObjectStore: Sendable {
    /// Where this store points, for logs and errors, e.g. `s3://bucket/prefix` or `file:///var/kiln`.
    var location: String { get }

    /// Writes the whole object, replacing any previous one.
    func put(_ key: String, _ bytes: [UInt8]) async throws

    /// Writes the object only if no object exists under `key`. Returns false (and writes nothing) when one does.
    /// When a retried request finds an object with exactly these bytes, that is taken as this writer's own
    /// earlier attempt and counts as success.
    func putIfAbsent(_ key: String, _ bytes: [UInt8]) async throws -> Bool

    /// Writes the object only if `condition` holds at that moment, atomically: no other write lands between
    /// the check and the write. Returns the new object's entity tag (what `head` reports), or nil (and writes
    /// nothing) when the condition does not hold. Made for small coordination objects such as leases: a
    /// compare-and-swap on one key, never across keys.
    func put(_ key: String, _ bytes: [UInt8], if condition: WriteCondition) async throws -> String?

    /// Reads the object, or the part of it that `range` selects. Throws `ObjectStoreError` of kind
    /// `.notFound` when there is no object and `.invalidRange` when the range starts past its end.
    func get(_ key: String, range: ByteRange?) async throws -> [UInt8]

    /// Size, entity tag and modification time of the object, or nil when there is none.
    func head(_ key: String) async throws -> ObjectInfo?

    /// Every object whose key starts with `prefix` (all pages), sorted by key. With a delimiter, keys that
    /// hold the delimiter after the prefix are rolled up into `commonPrefixes` (each ending in the delimiter),
    /// like S3's ListObjectsV2.
    func list(prefix: String, delimiter: String?) async throws -> ListResult

    /// Removes the object. Deleting a key that does not exist succeeds (as on S3).
    func delete(_ key: String) async throws

    /// Releases connections and threads. Call once, when done with the store.
    func shutdown() async throws
}

extension ObjectStore {
    /// The whole object.
    public func get(_ key: String) async throws -> [UInt8] { try await get(key, range: nil) }

    /// Every object under `prefix`, recursively.
    public func list(prefix: String) async throws -> ListResult { try await list(prefix: prefix, delimiter: nil) }

    /// Runs `body` (a process's services), then shuts the store down whether or not `body` threw: an S3
    /// store's HTTP client must be shut down before it is released (a debug build traps otherwise).
    public func shutDown(after body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            try? await shutdown()
            throw error
        }
        try? await shutdown()
    }
}

/// When a conditional `put` may write.
public enum WriteCondition: Sendable, Hashable {
    /// No object exists under the key (S3's `If-None-Match: *`).
    case absent
    /// The object under the key still has this entity tag (S3's `If-Match`).
    case matches(etag: String)
}

/// Part of an object to read.
public enum ByteRange: Sendable, Hashable, CustomStringConvertible {
    /// Bytes `range.lowerBound ..< range.upperBound`; clipped at the object's end.
    case bounded(Range<Int>)
    /// From `offset` to the end.
    case from(Int)
    /// The last `count` bytes (or the whole object when it is shorter) — how a Parquet footer is read.
    case suffix(Int)

    /// The HTTP `Range` header value (RFC 9110), e.g. `bytes=0-9`; nil for a range that selects nothing.
    public var httpHeaderValue: String? {
        switch self {
        case .bounded(let r): return r.isEmpty ? nil : "bytes=\(r.lowerBound)-\(r.upperBound - 1)"
        case .from(let offset): return "bytes=\(offset)-"
        case .suffix(let count): return count == 0 ? nil : "bytes=-\(count)"
        }
    }

    /// The byte positions selected in an object of `size` bytes, or nil when the range starts past the end.
    public func resolve(size: Int) -> Range<Int>? {
        switch self {
        case .bounded(let r):
            if r.isEmpty { return r.lowerBound <= size ? r.lowerBound..<r.lowerBound : nil }
            guard r.lowerBound < size else { return nil }
            return r.lowerBound..<min(r.upperBound, size)
        case .from(let offset):
            guard offset <= size else { return nil }
            return offset..<size
        case .suffix(let count):
            return max(0, size - count)..<size
        }
    }

    public var description: String {
        switch self {
        case .bounded(let r): return "bytes \(r.lowerBound)..<\(r.upperBound)"
        case .from(let offset): return "bytes \(offset)..<end"
        case .suffix(let count): return "last \(count) bytes"
        }
    }

    func validate() throws {
        let negative: Bool
        switch self {
        case .bounded(let r): negative = r.lowerBound < 0
        case .from(let offset): negative = offset < 0
        case .suffix(let count): negative = count < 0
        }
        if negative { throw ObjectStoreError(.invalidArgument, "byte range \(self) is negative") }
    }
}

/// What `head` and `list` know about an object.
public struct ObjectInfo: Sendable, Hashable {
    /// The key relative to the store's root (the same string given to `put`).
    public var key: String
    public var size: Int
    /// S3: the ETag without quotes (the MD5 hex for single-part uploads, `md5-of-md5s-N` for multipart).
    /// file://: a version tag from the file's inode, size and modification time (it changes on every put).
    public var etag: String?
    public var lastModified: Date

    public init(key: String, size: Int, etag: String?, lastModified: Date) {
        self.key = key
        self.size = size
        self.etag = etag
        self.lastModified = lastModified
    }
}

/// The result of `list`: objects and, with a delimiter, the rolled-up prefixes (each ends in the delimiter).
public struct ListResult: Sendable, Hashable {
    public var objects: [ObjectInfo]
    public var commonPrefixes: [String]

    public init(objects: [ObjectInfo] = [], commonPrefixes: [String] = []) {
        self.objects = objects
        self.commonPrefixes = commonPrefixes
    }

    public var keys: [String] { objects.map(\.key) }
}

/// Every failure from an object store: a kind to branch on, and a message that names the store, bucket or
/// path, the key, and the cause.
public struct ObjectStoreError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case notFound  // no such key
        case noSuchBucket
        case accessDenied
        case invalidCredentials  // unknown access key, expired token, missing credentials
        case signatureMismatch
        case preconditionFailed  // conditional write lost
        case invalidRange
        case checksumMismatch  // bytes changed in transit or at rest
        case invalidURL
        case invalidKey
        case invalidArgument
        case noSpace  // the file system is full
        case io  // other local file-system failures
        case unavailable  // the server kept failing (5xx, throttling, resets) after every retry
        case timeout
        case connectionFailed  // could not reach the endpoint
        case protocolError  // a response we could not understand
    }

    public var kind: Kind
    public var message: String
    /// The S3 error code (e.g. `NoSuchBucket`) or the errno name for file stores, when there is one.
    public var code: String?
    /// The HTTP status, for S3.
    public var httpStatus: Int?

    public init(_ kind: Kind, _ message: String, code: String? = nil, httpStatus: Int? = nil) {
        self.kind = kind
        self.message = message
        self.code = code
        self.httpStatus = httpStatus
    }

    public var description: String { message }
}

/// Key rules shared by every store, so that a layout valid on one store is valid on all.
public enum ObjectKey {
    /// Names of in-progress files in a `file://` store; keys may not use it.
    static let temporaryMarker = ".kiln-tmp-"

    /// Throws `.invalidKey` unless `key` is a '/'-separated relative path of non-empty segments that are not
    /// `.` or `..`, without control characters, and at most 1024 UTF-8 bytes (S3's limit).
    public static func validate(_ key: String) throws {
        func bad(_ why: String) -> ObjectStoreError {
            ObjectStoreError(.invalidKey, "invalid object key \"\(key)\": \(why)")
        }
        if key.isEmpty { throw bad("it is empty") }
        if key.utf8.count > 1024 { throw bad("longer than 1024 bytes") }
        if key.hasPrefix("/") { throw bad("it must be relative (no leading '/')") }
        // Control characters cannot travel in S3's XML listings (XML 1.0 forbids most of them).
        if key.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) { throw bad("it contains a control character") }
        for segment in key.split(separator: "/", omittingEmptySubsequences: false) {
            if segment.isEmpty { throw bad("it has an empty path segment") }
            if segment == "." || segment == ".." { throw bad("'.' and '..' segments are not allowed") }
            if segment.hasPrefix(temporaryMarker) { throw bad("segments starting with \(temporaryMarker) are reserved") }
        }
    }

    /// A listing prefix may be empty or end anywhere (even mid-segment), but may not escape the root.
    static func validatePrefix(_ prefix: String) throws {
        if prefix.isEmpty { return }
        if prefix.hasPrefix("/") || prefix.utf8.contains(0) {
            throw ObjectStoreError(.invalidKey, "invalid list prefix \"\(prefix)\": must be relative, without NUL")
        }
        for segment in prefix.split(separator: "/", omittingEmptySubsequences: false).dropLast()
        where segment.isEmpty || segment == "." || segment == ".." {
            throw ObjectStoreError(.invalidKey, "invalid list prefix \"\(prefix)\": empty, '.' or '..' segment")
        }
    }
}
