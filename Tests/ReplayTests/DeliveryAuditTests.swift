import Blocks
import Foundation
import ObjectStore
import ProfileModel
import Records
import TestSupport
import Testing

@testable import Replay

/// `kiln blocks audit`'s store side: raw records held by no live block are lost, those held by two are
/// duplicated, and the totals must match what the raw records normalise to.
struct DeliveryAuditTests {
    static func ledger(_ batches: [SampleBatch], topicID: String? = nil) -> RawLedger {
        var ledger = RawLedger(topic: "raw", topicID: topicID)
        for b in batches {
            ledger.offsets[b.provenance.partition, default: OffsetRanges()].insert(b.provenance.offset)
            ledger.records += 1
            for (type, value) in b.totalsByProfileType { ledger.totals[type.id, default: 0] += value }
        }
        return ledger
    }

    static func upload(_ batches: [SampleBatch], tenant: String, to store: any ObjectStore) async throws {
        var head = Head(tenant: tenant)
        for b in batches { head.append(b) }
        let ulid = ULID.make()
        try await BlockWriter.upload(
            try BlockWriter().encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: [])), to: store)
    }

    @Test func lostAndDuplicatedRecordsAndTotals() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-audit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try makeObjectStore(url: "file://" + dir.path)

        // acme: records 0-3 in one block, 3-4 in another (3 twice), 5 in none.
        let acme = (0..<6).map { makeBatch(tenant: "acme", offset: Int64($0), samples: 40) }
        try await Self.upload(Array(acme[0...3]), tenant: "acme", to: store)
        try await Self.upload(Array(acme[3...4]), tenant: "acme", to: store)
        let broken = try await DeliveryAudit.compare(Self.ledger(acme), store: store, tenant: "acme")
        #expect(broken.records == 6 && broken.lost == 1 && broken.duplicated == 1)
        #expect(broken.expected != broken.stored && !broken.exact)

        // globex: every record in exactly one of two blocks.
        let globex = (0..<6).map { makeBatch(tenant: "globex", offset: Int64($0), samples: 40) }
        try await Self.upload(Array(globex[0...2]), tenant: "globex", to: store)
        try await Self.upload(Array(globex[3...5]), tenant: "globex", to: store)
        let whole = try await DeliveryAudit.compare(Self.ledger(globex), store: store, tenant: "globex")
        #expect(whole.lost == 0 && whole.duplicated == 0 && whole.expected == whole.stored && whole.exact)
        #expect(!whole.expected.isEmpty)
        // Blocks without topic IDs (the compactor could not learn it) count for a ledger that has one.
        let withID = try await DeliveryAudit.compare(Self.ledger(globex, topicID: "A"), store: store, tenant: "globex")
        #expect(withID.exact)
        try await store.shutdown()
    }
}
