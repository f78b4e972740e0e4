import Foundation
import Normalization
import PprofCodec

/// What a replay reads, what it keeps and where it writes. Saved in the checkpoint, so a resumed replay is
/// the same replay (a different plan under the same name is refused).
public struct ReplayPlan: Sendable, Codable, Equatable {
    /// Where reading starts in each partition.
    public enum Start: Sendable, Codable, Equatable {
        case earliest
        /// Records whose Kafka timestamp is at or after this (milliseconds since the epoch).
        case time(millis: Int64)
        /// Per partition; partitions not listed start at their earliest offset.
        case offsets([PartitionOffset])
    }

    /// Where reading stops in each partition. Fixed when the replay first starts: records produced later
    /// are not part of it, so an interrupted replay resumes toward the same end.
    public enum End: Sendable, Codable, Equatable {
        /// Each partition's end when the replay started.
        case latest
        /// Records whose Kafka timestamp is before this (milliseconds since the epoch).
        case time(millis: Int64)
        /// Per partition, exclusive; partitions not listed end at their end when the replay started.
        case offsets([PartitionOffset])
    }

    public enum Output: Sendable, Codable, Equatable {
        /// Blocks written straight into this object store URL (a new prefix).
        case blocks(store: String)
        /// Sample batches produced to this topic, for a compactor writing a new prefix.
        case topic(String)
    }

    public var sourceTopic: String
    public var start: Start
    public var end: End
    /// Empty: every tenant.
    public var tenants: [String]
    /// `service_name` values; empty: every service.
    public var services: [String]
    public var output: Output
    public var limits: Limits

    public init(
        sourceTopic: String, start: Start = .earliest, end: End = .latest, tenants: [String] = [], services: [String] = [],
        output: Output, limits: Limits = Limits(PprofLimits.default)
    ) {
        self.sourceTopic = sourceTopic
        self.start = start
        self.end = end
        self.tenants = tenants.sorted()
        self.services = services.sorted()
        self.output = output
        self.limits = limits
    }

    /// The normaliser's decoding limits, part of the plan because changing them is a common reason to replay.
    public struct Limits: Sendable, Codable, Equatable {
        public var maxDecompressedBytes: Int
        public var maxSamples: Int
        public var maxStackDepth: Int
        public var maxLabelsPerSample: Int
        public var maxSymbolLength: Int

        public init(_ limits: PprofLimits) {
            maxDecompressedBytes = limits.maxDecompressedBytes
            maxSamples = limits.maxSamples
            maxStackDepth = limits.maxStackDepth
            maxLabelsPerSample = limits.maxLabelsPerSample
            maxSymbolLength = limits.maxSymbolLength
        }

        public var pprofLimits: PprofLimits {
            PprofLimits(
                maxDecompressedBytes: maxDecompressedBytes, maxSamples: maxSamples, maxStackDepth: maxStackDepth,
                maxLabelsPerSample: maxLabelsPerSample, maxSymbolLength: maxSymbolLength)
        }
    }

    var startMillis: Int64? {
        if case .time(let millis) = start { return millis }
        return nil
    }

    var endMillis: Int64? {
        if case .time(let millis) = end { return millis }
        return nil
    }

    /// True when a record of this tenant and service is part of the replay.
    func selects(tenant: String, service: String) -> Bool {
        (tenants.isEmpty || tenants.contains(tenant)) && (services.isEmpty || services.contains(service))
    }

    /// True when a record with this Kafka timestamp is inside the time bounds.
    func selects(timestampMillis: Int64) -> Bool {
        if let s = startMillis, timestampMillis < s { return false }
        if let e = endMillis, timestampMillis >= e { return false }
        return true
    }
}

public struct PartitionOffset: Sendable, Codable, Equatable, Hashable {
    public var partition: Int32
    public var offset: Int64

    public init(partition: Int32, offset: Int64) {
        self.partition = partition
        self.offset = offset
    }

    /// `partition:offset`, as the command line takes it.
    public init(parsing text: Substring) throws(ReplayError) {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let p = Int32(parts[0]), p >= 0, let o = Int64(parts[1]), o >= 0 else {
            throw ReplayError("'\(text)' is not partition:offset (e.g. 0:1500)")
        }
        self.init(partition: p, offset: o)
    }

    /// A comma-separated list of `partition:offset`.
    public static func list(parsing text: String) throws(ReplayError) -> [PartitionOffset] {
        var out: [PartitionOffset] = []
        for item in text.split(separator: ",") { out.append(try PartitionOffset(parsing: item)) }
        guard Set(out.map(\.partition)).count == out.count else { throw ReplayError("'\(text)' names a partition twice") }
        return out
    }
}

public struct ReplayError: Error, Sendable, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
