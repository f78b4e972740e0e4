/// `--shard i/n`: this replica scrapes a target only when `hashmod(job/address, n) == i`, so each
/// target is owned by exactly one of n replicas that share a configuration. The hash is Prometheus'
/// `hashmod` (MD5), so the same split can be written as a relabel rule.
public struct ShardSelector: Sendable, Hashable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    /// Owns every target.
    public static let all = ShardSelector(uncheckedIndex: 0, count: 1)

    private init(uncheckedIndex: Int, count: Int) {
        self.index = uncheckedIndex
        self.count = count
    }

    public init(index: Int, count: Int) throws(ShardSelectorError) {
        guard count >= 1 else { throw ShardSelectorError(message: "shard count must be at least 1, got \(count)") }
        guard index >= 0, index < count else {
            throw ShardSelectorError(message: "shard index must be in 0..<\(count), got \(index)")
        }
        self.index = index
        self.count = count
    }

    /// Parses `i/n` (e.g. `0/3`).
    public init(parsing text: String) throws(ShardSelectorError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw ShardSelectorError(message: "shard must look like i/n (e.g. 0/3), got \"\(text)\"")
        }
        try self.init(index: i, count: n)
    }

    public var description: String { "\(index)/\(count)" }

    /// The shard a target belongs to.
    public static func shard(job: String, address: String, count: Int) -> Int {
        Int(PrometheusHash.of("\(job)/\(address)") % UInt64(count))
    }

    public func owns(job: String, address: String) -> Bool {
        count == 1 || Self.shard(job: job, address: address, count: count) == index
    }
}

public struct ShardSelectorError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
