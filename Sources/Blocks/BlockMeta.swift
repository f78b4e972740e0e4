import Foundation
import ProfileModel

/// Sorted, disjoint, inclusive offset ranges: how a block records which Kafka offsets it holds. Offsets that
/// arrive in order collapse into one range, so the set stays small.
public struct OffsetRanges: Sendable, Equatable, Codable {
    /// `[first, last]` pairs, sorted, non-overlapping and non-adjacent.
    public private(set) var ranges: [ClosedRange<Int64>] = []

    public init() {}

    public init(_ ranges: [ClosedRange<Int64>]) {
        for r in ranges { insert(r) }
    }

    public var isEmpty: Bool { ranges.isEmpty }
    public var count: Int64 { ranges.reduce(0) { $0 + ($1.upperBound - $1.lowerBound + 1) } }
    public var lowerBound: Int64? { ranges.first?.lowerBound }
    public var upperBound: Int64? { ranges.last?.upperBound }

    /// Index of the first range whose upper bound is ≥ `offset`.
    private func firstIndex(notBelow offset: Int64) -> Int {
        var lo = 0
        var hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].upperBound < offset { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    public func contains(_ offset: Int64) -> Bool {
        let i = firstIndex(notBelow: offset)
        return i < ranges.count && ranges[i].lowerBound <= offset
    }

    public mutating func insert(_ offset: Int64) { insert(offset...offset) }

    public mutating func insert(_ range: ClosedRange<Int64>) {
        // Fast path: in-order appends.
        if let last = ranges.last, range.lowerBound > last.upperBound {
            if range.lowerBound == last.upperBound + 1 {
                ranges[ranges.count - 1] = last.lowerBound...range.upperBound
            } else {
                ranges.append(range)
            }
            return
        }
        var lower = range.lowerBound
        var upper = range.upperBound
        var i = firstIndex(notBelow: lower == .min ? lower : lower - 1)
        let start = i
        while i < ranges.count && ranges[i].lowerBound <= (upper == .max ? upper : upper + 1) {
            lower = min(lower, ranges[i].lowerBound)
            upper = max(upper, ranges[i].upperBound)
            i += 1
        }
        ranges.replaceSubrange(start..<i, with: [lower...upper])
    }

    public mutating func formUnion(_ other: OffsetRanges) {
        for r in other.ranges { insert(r) }
    }

    /// The offsets both hold.
    public func intersection(_ other: OffsetRanges) -> OffsetRanges {
        var out = OffsetRanges()
        var (i, j) = (0, 0)
        while i < ranges.count, j < other.ranges.count {
            let (a, b) = (ranges[i], other.ranges[j])
            let lower = max(a.lowerBound, b.lowerBound)
            let upper = min(a.upperBound, b.upperBound)
            if lower <= upper { out.insert(lower...upper) }
            if a.upperBound < b.upperBound { i += 1 } else { j += 1 }
        }
        return out
    }

    public func intersects(_ other: OffsetRanges) -> Bool {
        for r in other.ranges {
            let i = firstIndex(notBelow: r.lowerBound)
            if i < ranges.count && ranges[i].lowerBound <= r.upperBound { return true }
        }
        return false
    }

    // JSON: [[first, last], ...]
    public init(from decoder: Decoder) throws {
        let pairs = try decoder.singleValueContainer().decode([[Int64]].self)
        self.init()
        for p in pairs {
            guard p.count == 2, p[0] <= p[1] else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad offset range \(p)"))
            }
            insert(p[0]...p[1])
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(ranges.map { [$0.lowerBound, $0.upperBound] })
    }
}

/// A Kafka topic-partition as the block metadata names it, with the incarnation of the topic: the topic ID
/// the broker gave it. A topic deleted and created again under the same name has a new ID and numbers its
/// offsets from 0 again, so offsets are only comparable within one ID. nil means the ID is unknown (blocks
/// written before Kiln recorded it, or a broker or librdkafka without topic IDs).
public struct PartitionKey: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public var topicID: String?

    public init(topic: String, partition: Int32, topicID: String? = nil) {
        self.topic = topic
        self.partition = partition
        self.topicID = topicID
    }

    public static func < (a: Self, b: Self) -> Bool { (a.topic, a.partition, a.topicID ?? "") < (b.topic, b.partition, b.topicID ?? "") }
    public var description: String { topicID.map { "\(topic)/\(partition)@\($0)" } ?? "\(topic)/\(partition)" }

    /// The same partition with an unknown incarnation.
    public var withoutTopicID: PartitionKey { PartitionKey(topic: topic, partition: partition) }
}

extension Dictionary where Key == PartitionKey, Value == OffsetRanges {
    /// Whether the offset of this partition is held, by an entry of the same incarnation or by one whose
    /// incarnation is unknown (older blocks: counted as a match, the behaviour before incarnations).
    public func holds(_ key: PartitionKey, offset: Int64) -> Bool {
        if self[key]?.contains(offset) ?? false { return true }
        return key.topicID != nil && (self[key.withoutTopicID]?.contains(offset) ?? false)
    }
}

/// The offsets of one topic-partition a block holds. `topic_id` is absent in blocks written before Kiln
/// recorded topic incarnations, and when the broker gave none.
public struct PartitionOffsets: Sendable, Equatable, Codable {
    public var topic: String
    public var partition: Int32
    public var topicID: String?
    public var offsets: OffsetRanges

    enum CodingKeys: String, CodingKey {
        case topic, partition, offsets
        case topicID = "topic_id"
    }

    public init(topic: String, partition: Int32, topicID: String? = nil, offsets: OffsetRanges) {
        self.topic = topic
        self.partition = partition
        self.topicID = topicID
        self.offsets = offsets
    }

    public var key: PartitionKey { PartitionKey(topic: topic, partition: partition, topicID: topicID) }
}

/// Which Kafka records a block holds, for exactly-once ingestion: `raw` are the provenances of the batches
/// (records on the raw topic the normaliser read), `normalized` the offsets of the batch records themselves.
public struct KafkaProvenance: Sendable, Equatable, Codable {
    public var raw: [PartitionOffsets]
    public var normalized: [PartitionOffsets]

    public init(raw: [PartitionOffsets] = [], normalized: [PartitionOffsets] = []) {
        self.raw = raw
        self.normalized = normalized
    }

    public init(raw: [PartitionKey: OffsetRanges], normalized: [PartitionKey: OffsetRanges]) {
        self.raw = raw.sorted { $0.key < $1.key }.map {
            PartitionOffsets(topic: $0.key.topic, partition: $0.key.partition, topicID: $0.key.topicID, offsets: $0.value)
        }
        self.normalized = normalized.sorted { $0.key < $1.key }.map {
            PartitionOffsets(topic: $0.key.topic, partition: $0.key.partition, topicID: $0.key.topicID, offsets: $0.value)
        }
    }

    public var rawByPartition: [PartitionKey: OffsetRanges] { Self.index(raw) }
    public var normalizedByPartition: [PartitionKey: OffsetRanges] { Self.index(normalized) }

    static func index(_ list: [PartitionOffsets]) -> [PartitionKey: OffsetRanges] {
        var out: [PartitionKey: OffsetRanges] = [:]
        for p in list { out[p.key, default: OffsetRanges()].formUnion(p.offsets) }
        return out
    }

    public mutating func formUnion(_ other: KafkaProvenance) {
        var r = rawByPartition
        var n = normalizedByPartition
        for (k, v) in other.rawByPartition { r[k, default: OffsetRanges()].formUnion(v) }
        for (k, v) in other.normalizedByPartition { n[k, default: OffsetRanges()].formUnion(v) }
        self = KafkaProvenance(raw: r, normalized: n)
    }
}

/// `meta.json`: written last, after every table; its presence makes the block live.
public struct BlockMeta: Sendable, Equatable, Codable {
    public struct Compaction: Sendable, Equatable, Codable {
        /// 0 for blocks cut from Kafka, n+1 for a merge of level-n blocks.
        public var level: Int
        /// The level-0 blocks whose data this block holds (itself for a level-0 block).
        public var sources: [ULID]
        /// The blocks merged into this one (empty for level 0). They are superseded by it.
        public var parents: [ULID]

        public init(level: Int, sources: [ULID], parents: [ULID]) {
            self.level = level
            self.sources = sources
            self.parents = parents
        }
    }

    public struct ProfileTypeStats: Sendable, Equatable, Codable {
        public var samples: Int64
        public var total: Int64
        /// Rows of profiles.parquet of this type: one per profile at full resolution, one per series and
        /// bucket in a downsampled block. Absent in blocks written before it was counted.
        public var profiles: Int64?

        public init(samples: Int64, total: Int64, profiles: Int64? = nil) {
            self.samples = samples
            self.total = total
            self.profiles = profiles
        }
    }

    public struct Stats: Sendable, Equatable, Codable {
        public var samples: Int64
        public var series: Int64
        /// Nodes of the stack tree (every stack is one node; prefixes are shared).
        public var stacks: Int64
        public var frames: Int64
        public var functions: Int64
        /// Keyed by profile-type ID.
        public var profileTypes: [String: ProfileTypeStats]

        public init(samples: Int64, series: Int64, stacks: Int64, frames: Int64, functions: Int64, profileTypes: [String: ProfileTypeStats])
        {
            self.samples = samples
            self.series = series
            self.stacks = stacks
            self.frames = frames
            self.functions = functions
            self.profileTypes = profileTypes
        }
    }

    public struct File: Sendable, Equatable, Codable {
        public var name: String
        public var sizeBytes: Int
        public var sha256: String
        public var rows: Int?
        public var rowGroups: Int?
        /// The object holding the table in the block folder, when it is not `name`: the writer found another
        /// writer's table of other contents under `name` (two writers of one block ID, see
        /// `BlockWriter.upload`). Absent otherwise.
        public var object: String?

        public init(name: String, sizeBytes: Int, sha256: String, rows: Int?, rowGroups: Int?, object: String? = nil) {
            self.name = name
            self.sizeBytes = sizeBytes
            self.sha256 = sha256
            self.rows = rows
            self.rowGroups = rowGroups
            self.object = object
        }

        /// The table's object name in the block folder.
        public var objectName: String { object ?? name }

        /// Same table contents, wherever they are stored.
        func sameContents(as other: File) -> Bool {
            name == other.name && sizeBytes == other.sizeBytes && sha256 == other.sha256
        }
    }

    /// The store key of table `name`: the object meta.json lists for it (`name` itself unless a writer
    /// had to store it beside another writer's table).
    public func key(of name: String) -> String {
        BlockFile.key(tenant: tenant, ulid: ulid, files.first { $0.name == name }?.objectName ?? name)
    }

    /// Whether both list the same tables with the same contents (where each is stored may differ).
    public func sameTables(as other: BlockMeta) -> Bool {
        files.count == other.files.count && zip(files, other.files).allSatisfy { $0.sameContents(as: $1) }
    }

    public static let currentVersion = 1

    public var version: Int
    public var ulid: ULID
    public var tenant: String
    /// Earliest and latest sample time, Unix nanoseconds, inclusive.
    public var minTime: Int64
    public var maxTime: Int64
    /// When the block was written, Unix milliseconds.
    public var createdAt: Int64
    public var compaction: Compaction
    public var kafka: KafkaProvenance
    public var stats: Stats
    public var files: [File]
    /// Absent at full resolution (every profile at its own time). Otherwise the block is downsampled: its
    /// samples are summed per (series, stack) into buckets of this many milliseconds, each stamped with its
    /// end — a sample at T stands for (T − resolution, T] — and span ids are gone.
    public var resolutionMillis: Int64?

    public init(
        version: Int = BlockMeta.currentVersion, ulid: ULID, tenant: String, minTime: Int64, maxTime: Int64, createdAt: Int64,
        compaction: Compaction, kafka: KafkaProvenance, stats: Stats, files: [File], resolutionMillis: Int64? = nil
    ) {
        self.resolutionMillis = resolutionMillis
        self.version = version
        self.ulid = ulid
        self.tenant = tenant
        self.minTime = minTime
        self.maxTime = maxTime
        self.createdAt = createdAt
        self.compaction = compaction
        self.kafka = kafka
        self.stats = stats
        self.files = files
    }

    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(self))
    }

    public static func decode(_ bytes: [UInt8]) throws -> BlockMeta {
        try JSONDecoder().decode(BlockMeta.self, from: Data(bytes))
    }

    /// Totals per profile type, the figure every stage conserves.
    public var totalsByProfileType: [String: Int64] { stats.profileTypes.mapValues(\.total) }
}

/// `deletion-mark.json`: the block is superseded (or expired) and will be removed after the delete delay.
public struct DeletionMark: Sendable, Equatable, Codable {
    public var ulid: ULID
    /// Unix milliseconds.
    public var deletionTime: Int64
    public var reason: String
    /// The block that replaces this one, when compaction wrote the mark.
    public var supersededBy: ULID?

    public init(ulid: ULID, deletionTime: Int64, reason: String, supersededBy: ULID?) {
        self.ulid = ulid
        self.deletionTime = deletionTime
        self.reason = reason
        self.supersededBy = supersededBy
    }
}

/// File names inside a block folder.
public enum BlockFile {
    public static let meta = "meta.json"
    public static let deletionMark = "deletion-mark.json"
    public static let samples = "samples.parquet"
    public static let series = "series.parquet"
    public static let stacks = "stacks.parquet"
    public static let frames = "frames.parquet"
    public static let functions = "functions.parquet"
    /// One row per profile (series, time) with its total: what time series and heatmaps read. Absent from
    /// blocks written before 2026-12-06; readers then sum the samples.
    public static let profiles = "profiles.parquet"
    /// One row per (series, stack) with its sum over the whole block: what a query whose range covers the
    /// block reads instead of its samples. Absent from blocks written before 2026-12-06.
    public static let stackTotals = "stack_totals.parquet"
    /// The tables a block holds, and those every block holds, however old.
    public static let tables = [samples, profiles, stackTotals, series, stacks, frames, functions]
    public static let requiredTables = [samples, series, stacks, frames, functions]

    /// `<tenant>/<ulid>/<file>`
    public static func key(tenant: String, ulid: ULID, _ file: String) -> String { "\(tenant)/\(ulid)/\(file)" }

    /// Where a writer stores table `name` when the folder already holds another writer's table of that name
    /// with other contents: named by its own contents, so a retry of the same upload writes the same object.
    /// `samples.parquet` → `samples.<first 16 hex digits of its sha256>.parquet`.
    public static func contentAddressed(_ name: String, sha256: String) -> String {
        let stem = name.hasSuffix(".parquet") ? String(name.dropLast(".parquet".count)) : name
        return "\(stem).\(sha256.prefix(16)).parquet"
    }
}

public struct BlockError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Another writer committed a block under the same ULID with other contents: for a level-0 block, a
/// compactor that held the partition before a rebalance (or paused past its session) cut a head that starts
/// at the same record but holds other records.
public struct BlockConflict: Error, CustomStringConvertible, Sendable {
    public var tenant: String
    public var ulid: ULID
    public var description: String { "block \(tenant)/\(ulid) already exists with other contents" }
}
