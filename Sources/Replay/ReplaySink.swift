import Blocks
import Foundation
import KafkaClient
import KilnFoundation
import ObjectStore
import ProfileModel
import Records
import Synchronization

/// Where replayed batches go. `append` runs on the replay's worker thread; `flush` makes everything
/// appended durable before the replay saves its checkpoint.
public protocol ReplaySink: Sendable {
    /// Raw provenance the output already holds: batches written just before an interruption, after
    /// the last checkpoint. The replay skips them instead of writing them twice.
    func heldProvenance() async throws -> [PartitionKey: OffsetRanges]
    func append(_ batch: SampleBatch)
    /// True when enough is buffered that it should be flushed now.
    var isFull: Bool { get }
    var isEmpty: Bool { get }
    /// Writes what was appended; returns how many outputs (blocks or records) and bytes were made durable.
    func flush() async throws -> (outputs: Int, bytes: Int)
    func close() async throws
}

/// Writes blocks straight into an object store (a new prefix), one head per tenant, as the compactor
/// would: tables first, `meta.json` last, recording each batch's raw provenance.
public final class BlockReplaySink: ReplaySink {
    private let store: any ObjectStore
    private let cut: CutPolicy
    private let writer: BlockWriter
    private let worker = BlockingWork(label: "kiln.replay.blocks")
    private let heads = Mutex<[String: Head]>([:])

    public init(store: any ObjectStore, cut: CutPolicy = CutPolicy(), writer: BlockWriter = BlockWriter()) {
        self.store = store
        self.cut = cut
        self.writer = writer
    }

    public func heldProvenance() async throws -> [PartitionKey: OffsetRanges] {
        var held: [PartitionKey: OffsetRanges] = [:]
        for tenant in try await BlockIndex.tenants(in: store) {
            for meta in try await BlockIndex.list(store, tenant: tenant).metas {
                for (key, ranges) in meta.kafka.rawByPartition { held[key, default: OffsetRanges()].formUnion(ranges) }
            }
        }
        return held
    }

    public func append(_ batch: SampleBatch) {
        heads.withLock { $0[batch.tenant, default: Head(tenant: batch.tenant)].append(batch) }
    }

    public var isFull: Bool { heads.withLock { $0.values.contains { cut.shouldCut($0) } } }
    public var isEmpty: Bool { heads.withLock { $0.values.allSatisfy(\.isEmpty) } }

    public func flush() async throws -> (outputs: Int, bytes: Int) {
        let taken = heads.withLock { h in
            defer { h = [:] }
            return h
        }
        var outputs = 0
        var bytes = 0
        for (_, head) in taken.sorted(by: { $0.key < $1.key }) where head.sampleCount > 0 {
            // A fresh ULID: a resumed replay never rewrites a folder; it skips the batches already held.
            let ulid = ULID.make()
            let writer = self.writer
            let block = try await worker.run {
                try writer.encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: []))
            }
            try await BlockWriter.upload(block, to: store)
            outputs += 1
            bytes += block.totalBytes
        }
        return (outputs, bytes)
    }

    public func close() async throws {}
}

/// Produces batches to a topic (for a compactor that writes a new prefix). Kafka's acknowledgement is
/// the durability; batches a resumed replay sends again are dropped by the compactor by provenance.
public final class TopicReplaySink: ReplaySink {
    private let topic: String
    private let producer: KafkaProducer
    private let pending = Mutex<[ProducerRecord]>([])
    private let maxPending: Int

    public init(topic: String, kafka: KafkaConfig, maxPending: Int = 512) throws {
        self.topic = topic
        self.maxPending = maxPending
        producer = try KafkaProducer(config: ProducerConfig(kafka: kafka))
    }

    public func heldProvenance() async throws -> [PartitionKey: OffsetRanges] { [:] }

    public func append(_ batch: SampleBatch) {
        let service = batch.series.first?.labels[LabelName.serviceName] ?? "unknown_service"
        let record = ProducerRecord(
            topic: topic, key: RecordKeys.normalized(tenant: batch.tenant, serviceName: service),
            value: BatchCodec.encode(batch))
        pending.withLock { $0.append(record) }
    }

    public var isFull: Bool { pending.withLock { $0.count >= maxPending } }
    public var isEmpty: Bool { pending.withLock { $0.isEmpty } }

    public func flush() async throws -> (outputs: Int, bytes: Int) {
        let records = pending.withLock { p in
            defer { p = [] }
            return p
        }
        guard !records.isEmpty else { return (0, 0) }
        _ = try await producer.sendBatch(records)
        return (records.count, records.reduce(0) { $0 + $1.value.count })
    }

    public func close() async throws { try await producer.close() }
}
