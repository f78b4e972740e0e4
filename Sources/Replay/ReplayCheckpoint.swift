import Foundation
import ObjectStore

/// Exact counts of a replay, kept across interruptions.
public struct ReplayCounts: Sendable, Codable, Equatable {
    /// Records fetched from the source topic.
    public var recordsRead = 0
    public var bytesRead = 0
    /// Records left out by the tenant, service or time selection.
    public var skippedBySelection = 0
    /// Records that could not be decoded or normalised (reasons in `rejectionReasons`).
    public var rejected = 0
    /// First profiles of a cumulative series, or resets: their cumulative types are kept only as the base
    /// of the next delta (other sample types of the same profile are written).
    public var baselines = 0
    /// Normalised profiles that left no sample: a baseline with only cumulative types, or every sample
    /// zero or with an empty stack.
    public var profilesWithoutSamples = 0
    /// Batches already in the output before this run (written just before an interruption).
    public var alreadyInOutput = 0
    /// Batches written to the output, and their samples and sample values per profile type.
    public var batchesWritten = 0
    public var samplesWritten = 0
    public var totalsByProfileType: [String: Int64] = [:]
    public var droppedSamples: Int64 = 0
    /// Blocks (or produced records) made durable, and their bytes.
    public var outputsWritten = 0
    public var outputBytes = 0
    /// How many times the replay was resumed from a checkpoint.
    public var resumes = 0
    /// Up to ten distinct reasons records were rejected, with how many each.
    public var rejectionReasons: [String: Int] = [:]

    public init() {}

    /// Every record read is accounted for exactly once by these.
    public var accountedRecords: Int {
        skippedBySelection + rejected + profilesWithoutSamples + alreadyInOutput + batchesWritten
    }

    mutating func reject(_ reason: String) {
        rejected += 1
        if rejectionReasons[reason] != nil || rejectionReasons.count < 10 { rejectionReasons[reason, default: 0] += 1 }
    }
}

/// A replay's durable state: written after each flush of the output, read on resume.
public struct ReplayCheckpoint: Sendable, Codable, Equatable {
    public var plan: ReplayPlan
    /// Per partition: where reading started, where it goes on (next offset to read) and where it stops.
    public var partitions: [PartitionProgress]
    public var counts: ReplayCounts
    /// The normaliser's cumulative values (DeltaTracker snapshot), so deltas continue exactly.
    public var deltaState: Data
    public var finished: Bool
    public var updated: Date

    public init(plan: ReplayPlan, partitions: [PartitionProgress], counts: ReplayCounts, deltaState: Data, finished: Bool, updated: Date) {
        self.plan = plan
        self.partitions = partitions
        self.counts = counts
        self.deltaState = deltaState
        self.finished = finished
        self.updated = updated
    }

    public struct PartitionProgress: Sendable, Codable, Equatable {
        public var partition: Int32
        public var start: Int64
        public var position: Int64
        /// Exclusive. While `endIsFinal` is false this is an estimate (the broker's high watermark when
        /// the replay started) and reading goes on until the partition's end is reached: some brokers
        /// (Tansu 0.6) report a batch's first offset + 1 as the high watermark.
        public var end: Int64
        public var endIsFinal: Bool

        public init(partition: Int32, start: Int64, position: Int64, end: Int64, endIsFinal: Bool = true) {
            self.partition = partition
            self.start = start
            self.position = position
            self.end = end
            self.endIsFinal = endIsFinal
        }

        public var isDone: Bool { endIsFinal && position >= end }
        public var remaining: Int64 { max(0, end - position) }
        public var total: Int64 { max(0, end - start) }
    }

    public var recordsToRead: Int64 { partitions.reduce(0) { $0 + $1.total } }
    public var recordsDone: Int64 { partitions.reduce(0) { $0 + ($1.total - $1.remaining) } }
}

/// Where a replay keeps its checkpoint: an object store (the output store for block replays) under
/// `_replay/<name>/checkpoint.json` — `_` folders are Kiln's own and never taken for tenants.
public struct ReplayCheckpointStore: Sendable {
    public let store: any ObjectStore
    public let name: String

    public init(store: any ObjectStore, name: String) throws(ReplayError) {
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw ReplayError("replay name '\(name)' may hold only letters, digits, '-', '_' and '.'")
        }
        self.store = store
        self.name = name
    }

    public var key: String { "_replay/\(name)/checkpoint.json" }

    public func load() async throws -> ReplayCheckpoint? {
        let bytes: [UInt8]
        do {
            bytes = try await store.get(key)
        } catch let error as ObjectStoreError where error.kind == .notFound {
            return nil
        }
        do {
            return try Self.decoder.decode(ReplayCheckpoint.self, from: Data(bytes))
        } catch {
            throw ReplayError("checkpoint \(store.location)/\(key) is unreadable (\(error)); remove it to start over")
        }
    }

    public func save(_ checkpoint: ReplayCheckpoint) async throws {
        try await store.put(key, Array(try Self.encoder.encode(checkpoint)))
    }

    public func remove() async throws { try await store.delete(key) }

    static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .iso8601
        return e
    }

    static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }
}
