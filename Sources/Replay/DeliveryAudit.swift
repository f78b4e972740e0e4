import Blocks
import Foundation
import KafkaClient
import Normalization
import ObjectStore
import ProfileModel
import Records

/// What a raw topic holds for one tenant, against what the block store's live blocks hold: every raw record
/// that carries samples must be in exactly one live block, and the live blocks' totals must equal what the
/// normaliser makes of those records. `kiln blocks audit` prints it; `make soak` ends with it.
public struct DeliveryAudit: Sendable, Codable, Equatable {
    /// Raw records of the tenant whose profile carries samples (what the store must hold).
    public var records: Int
    /// Raw records of the tenant the normaliser refuses (they go to the DLQ, not the store).
    public var refused: Int
    /// Of `records`, those no live block holds.
    public var lost: Int
    /// Raw records held by more than one live block, counted once per extra block.
    public var duplicated: Int
    /// Sums per profile type ID: of the raw records (normalised here), and of the live blocks.
    public var expected: [String: Int64]
    public var stored: [String: Int64]

    public var exact: Bool { lost == 0 && duplicated == 0 && expected == stored }

    /// The raw side: every record of `tenant` on `topic`, from each partition's low watermark to the high
    /// watermark at the start, normalised as kiln-normalizer would. Cumulative profiles are refused: their
    /// totals depend on the profile before them, which the audit does not replay.
    public static func readTopic(kafka: KafkaConfig, topic: String, tenant: String) async throws -> RawLedger {
        let admin = try KafkaAdmin(config: kafka)
        let metadata = try await admin.describeTopic(topic)
        // Blocks record the topic's ID when the compactor could learn it (see `compare`).
        var ledger = RawLedger(topic: topic, topicID: try? await admin.topicIDs([topic])[topic])
        var config = ConsumerConfig(kafka: kafka, groupID: nil)
        config.reportPartitionEOF = true
        let consumer = try KafkaConsumer(config: config)
        var remaining: [Int32: Int64] = [:]
        var starts: [TopicPartitionOffset] = []
        for index in metadata.partitions.indices {
            let partition = Int32(index)
            let (low, high) = try await consumer.watermarks(topic: topic, partition: partition)
            if high > low { remaining[partition] = high }
            starts.append(TopicPartitionOffset(topic, partition, offset: low))
        }
        try consumer.assign(starts)
        var normalizer = Normalizer()
        var lastProgress = ContinuousClock.now
        while !remaining.isEmpty {
            if ContinuousClock.now - lastProgress > .seconds(60) {
                try await consumer.close()
                throw AuditError("\(topic): partitions \(remaining.keys.sorted()) gave nothing for 60 s before their end")
            }
            for event in try await consumer.poll(max: 500, timeout: .seconds(1)) {
                switch event {
                case .partitionEOF(let tp, let next):
                    // The end as of the start was reached even if its last offsets were never delivered.
                    if let end = remaining[tp.partition], next >= end { remaining[tp.partition] = nil }
                case .record(let record):
                    guard let end = remaining[record.partition], record.offset < end else { continue }
                    lastProgress = .now
                    if record.offset + 1 >= end { remaining[record.partition] = nil }
                    guard let envelope = try? RawEnvelope(decoding: record.value), envelope.tenant == tenant else { continue }
                    guard !envelope.cumulative else {
                        try await consumer.close()
                        throw AuditError(
                            "\(topic)/\(record.partition)@\(record.offset) is a cumulative profile; the audit sums deltas only")
                    }
                    ledger.add(envelope, partition: record.partition, offset: record.offset, normalizer: &normalizer)
                case .rebalance: continue
                }
            }
        }
        try await consumer.close()
        return ledger
    }

    /// The store side against `ledger`. A block's offsets count for the ledger's topic when they carry its
    /// topic ID, or no ID (the compactor could not learn it, or the audit could not): the rule of
    /// `Dictionary.holds`. Offsets of another incarnation of the topic are not the ledger's records.
    public static func compare(_ ledger: RawLedger, store: any ObjectStore, tenant: String) async throws -> DeliveryAudit {
        var stored: [String: Int64] = [:]
        var held: [Int32: OffsetRanges] = [:]
        var duplicated = 0
        for meta in try await BlockIndex.liveBlocks(store, tenant: tenant) {
            for (type, value) in meta.totalsByProfileType { stored[type, default: 0] &+= value }
            for (key, offsets) in meta.kafka.rawByPartition where key.topic == ledger.topic {
                guard key.topicID == nil || ledger.topicID == nil || key.topicID == ledger.topicID else { continue }
                if let before = held[key.partition] { duplicated += Int(before.intersection(offsets).count) }
                held[key.partition, default: OffsetRanges()].formUnion(offsets)
            }
        }
        var lost = 0
        for (partition, offsets) in ledger.offsets {
            lost += Int(offsets.count) - Int(held[partition].map { $0.intersection(offsets).count } ?? 0)
        }
        return DeliveryAudit(
            records: ledger.records, refused: ledger.refused, lost: lost, duplicated: duplicated, expected: ledger.totals, stored: stored)
    }
}

/// The raw records of one tenant: their offsets (as blocks record them) and their normalised totals.
public struct RawLedger: Sendable {
    public var topic: String
    /// The topic's ID when the broker gave one.
    public var topicID: String?
    /// Offsets of the records with samples, by partition.
    public var offsets: [Int32: OffsetRanges] = [:]
    public var records = 0
    public var refused = 0
    public var totals: [String: Int64] = [:]

    public init(topic: String, topicID: String?) {
        self.topic = topic
        self.topicID = topicID
    }

    /// Adds one record of the topic, normalised as kiln-normalizer would: one the normaliser refuses counts
    /// as refused, one without samples not at all.
    public mutating func add(_ envelope: RawEnvelope, partition: Int32, offset: Int64, normalizer: inout Normalizer) {
        let provenance = Provenance(topic: topic, partition: partition, offset: offset)
        guard let result = try? normalizer.normalize(envelope, provenance: provenance) else {
            refused += 1
            return
        }
        guard let batch = result.batch else { return }
        offsets[partition, default: OffsetRanges()].insert(offset)
        records += 1
        for (type, value) in batch.totalsByProfileType { totals[type.id, default: 0] &+= value }
    }
}

public struct AuditError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
