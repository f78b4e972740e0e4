import ObjectStore

/// A test store that wraps another and changes a few calls (to fail, stall or race them): it implements
/// only those, and every other call goes to `inner` as is.
public protocol ForwardingObjectStore: ObjectStore {
    var inner: any ObjectStore { get }
}

extension ForwardingObjectStore {
    public var location: String { inner.location }
    public func put(_ key: String, _ bytes: [UInt8]) async throws { try await inner.put(key, bytes) }
    public func putIfAbsent(_ key: String, _ bytes: [UInt8]) async throws -> Bool { try await inner.putIfAbsent(key, bytes) }
    public func put(_ key: String, _ bytes: [UInt8], if condition: WriteCondition) async throws -> String? {
        try await inner.put(key, bytes, if: condition)
    }
    public func get(_ key: String, range: ByteRange?) async throws -> [UInt8] { try await inner.get(key, range: range) }
    public func head(_ key: String) async throws -> ObjectInfo? { try await inner.head(key) }
    public func list(prefix: String, delimiter: String?) async throws -> ListResult {
        try await inner.list(prefix: prefix, delimiter: delimiter)
    }
    public func delete(_ key: String) async throws { try await inner.delete(key) }
    /// The inner store belongs to whoever made it.
    public func shutdown() async throws {}
}
