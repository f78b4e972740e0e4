import Blocks
import Foundation
import ObjectStore
import ProfileModel

/// A real file:// store holding level-0 blocks written by Kiln's own writer from synthetic batches (batch i's
/// samples lie in second i after `base`), for query tests that compute their expectations from the batches.
public struct SyntheticBlocks: Sendable {
    public static let base: Int64 = 1_700_000_000_000_000_000
    /// Covers every sample.
    public static let everything = base - 1_000_000_000...base + 60_000_000_000

    public let store: any ObjectStore
    public let dir: URL
    public let batches: [SampleBatch]
    public let l0: [ULID]

    /// Writes `blocks` blocks of `batchesPerBlock` batches each, runs `body`, removes the store.
    public static func with<T>(
        tenant: String = "t1", blocks: Int = 2, batchesPerBlock: Int = 6,
        _ body: (SyntheticBlocks) async throws -> T
    ) async throws -> T {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-synthetic-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try makeObjectStore(url: "file://" + dir.path)
        let batches = (0..<blocks * batchesPerBlock).map { makeBatch(tenant: tenant, offset: Int64($0), samples: 400, baseTimeNanos: base) }
        var l0: [ULID] = []
        for b in 0..<blocks {
            var head = Head(tenant: tenant)
            for i in b * batchesPerBlock..<(b + 1) * batchesPerBlock {
                head.append(batches[i], from: RecordPosition(topic: "n", partition: 0, offset: Int64(i)))
            }
            let ulid = ULID.make()
            var writer = BlockWriter()
            writer.options.samplesPerRowGroup = 500
            try await BlockWriter.upload(
                try writer.encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: [])), to: store)
            l0.append(ulid)
        }
        let fixture = SyntheticBlocks(store: store, dir: dir, batches: batches, l0: l0)
        do {
            let result = try await body(fixture)
            try await store.shutdown()
            return result
        } catch {
            try? await store.shutdown()
            throw error
        }
    }

    /// Makes every level-0 block look as written before blocks held profiles.parquet and
    /// stack_totals.parquet (2026-12-06): the tables and their meta.json entries removed, so readers must
    /// sum samples instead.
    public func removeDerivedTables(tenant: String = "t1") async throws {
        let derived = [BlockFile.profiles, BlockFile.stackTotals]
        for ulid in l0 {
            let metaKey = BlockFile.key(tenant: tenant, ulid: ulid, BlockFile.meta)
            var meta = try BlockMeta.decode(try await store.get(metaKey))
            meta.files.removeAll { derived.contains($0.name) }
            for name in derived { try await store.delete(BlockFile.key(tenant: tenant, ulid: ulid, name)) }
            try await store.put(metaKey, try meta.encoded())
        }
    }

    /// Deletes every level-0 block's samples.parquet: what is answered afterwards came from other tables.
    public func removeSamples(tenant: String = "t1") async throws {
        for ulid in l0 { try await store.delete(BlockFile.key(tenant: tenant, ulid: ulid, BlockFile.samples)) }
    }

    /// The batches' samples of one profile type, optionally only some services and a time range.
    public func samples(type: ProfileTypeID, services: Set<String>? = nil, time: ClosedRange<Int64>? = nil) -> [FlatSample] {
        batches.flatMap(flatten).filter { s in
            s.profileType == type.id && (time.map { $0.contains(s.time) } ?? true)
                && (services.map { set in set.contains { s.labels.contains("service_name=\"\($0)\"") } } ?? true)
        }
    }

    /// Root-first `a;b;c` paths with their summed values.
    public static func paths(_ samples: [FlatSample]) -> [String: Int64] {
        var out: [String: Int64] = [:]
        for s in samples { out[s.stack.reversed().joined(separator: ";"), default: 0] += s.value }
        return out
    }
}
