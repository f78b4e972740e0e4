import Blocks
import Foundation
import Logging
import ObjectStore
import ProfileModel
import Synchronization
import TestSupport
import Testing

/// Two writers of one block ID with other contents (a level-0 block cut from the same first record by a
/// compactor paused past its session and by the one that took its partition): whatever order their puts
/// reach the store in, the block that commits reads back as its writer encoded it.
@Suite struct BlockUploadRaceTests {
    /// Two blocks with one ID and other contents.
    static func rivals() throws -> (EncodedBlock, EncodedBlock) {
        let ulid = ULID.make()
        func block(_ offset: Int64) throws -> EncodedBlock {
            var head = Head(tenant: "t1")
            head.append(makeBatch(offset: offset))
            return try BlockWriter().encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: []))
        }
        let pair = (try block(1), try block(2))
        #expect(pair.0.meta.totalsByProfileType != pair.1.meta.totalsByProfileType)
        return pair
    }

    static func objects(_ store: any ObjectStore, _ block: EncodedBlock) async throws -> Set<String> {
        Set(try await store.list(prefix: "t1/\(block.meta.ulid)/").objects.map { String($0.key.split(separator: "/").last!) })
    }

    /// The committed block answers with its own writer's totals and passes `verify` (sizes and sha256 of
    /// every table against meta.json).
    static func expectReads(_ store: any ObjectStore, as block: EncodedBlock) async throws {
        let reader = try await BlockReader.open(store: store, tenant: "t1", ulid: block.meta.ulid)
        #expect(reader.meta.sameTables(as: block.meta))
        #expect(await reader.verify() == [])
        var totals: [String: Int64] = [:]
        let series = Dictionary(uniqueKeysWithValues: try await reader.series().map { ($0.id, $0.profileType.id) })
        let samples = try await reader.samples()
        for i in 0..<samples.count { totals[series[samples.seriesIDs[i]]!, default: 0] += samples.values[i] }
        #expect(totals == block.meta.totalsByProfileType)
    }

    /// The loser put its tables first and stalled before meta.json; the winner's tables go beside them,
    /// the loser (resumed) is refused, and maintenance removes its tables once the grace period is over.
    @Test(arguments: Backend.allCases)
    func tablesOfAStalledWriterAreNotRead(backend: Backend) async throws {
        try await withStore(backend, "race-stalled") { store, _ in
            let (winner, loser) = try Self.rivals()
            for f in loser.files { try await store.put(BlockFile.key(tenant: "t1", ulid: loser.meta.ulid, f.name), f.bytes) }
            try await BlockWriter.upload(winner, to: store)
            try await Self.expectReads(store, as: winner)
            let committed = try await BlockReader.open(store: store, tenant: "t1", ulid: winner.meta.ulid).meta
            // A table that differs went beside the loser's; one the same in both (the series) is shared.
            let loserSums = Dictionary(uniqueKeysWithValues: loser.meta.files.map { ($0.name, $0.sha256) })
            let differing = Set(committed.files.filter { loserSums[$0.name] != $0.sha256 }.map(\.name))
            #expect(!differing.isEmpty && differing.count < committed.files.count)
            for f in committed.files {
                #expect(f.object == (differing.contains(f.name) ? BlockFile.contentAddressed(f.name, sha256: f.sha256) : nil))
            }

            await #expect(throws: BlockConflict.self) { try await BlockWriter.upload(loser, to: store) }
            let listing = try await BlockIndex.list(store, tenant: "t1")
            #expect(Set(listing.strays[winner.meta.ulid]?.map { String($0.key.split(separator: "/").last!) } ?? []) == differing)

            let compactor = Compactor(store: store, config: CompactionConfig(), logger: Logger(label: "t"))
            #expect(try await compactor.pass(tenant: "t1", now: Date()).straysRemoved == 0)
            let r = try await compactor.pass(tenant: "t1", now: Date().addingTimeInterval(2 * 3600))
            #expect(r.straysRemoved == differing.count)
            #expect(try await Self.objects(store, winner) == Set(committed.files.map(\.objectName) + [BlockFile.meta]))
            try await Self.expectReads(store, as: winner)
        }
    }

    /// Interleaved: the first writer has stored one table when the other uploads and commits the whole
    /// block; the first goes on with its other tables, then loses at meta.json and removes what it created.
    /// The committed block stays whole (before 2026-12-08 the first writer's later tables replaced the
    /// committed block's under the same names).
    @Test(arguments: Backend.allCases)
    func aWriterThatLosesRemovesItsTables(backend: Backend) async throws {
        try await withStore(backend, "race-lost") { store, _ in
            let (first, second) = try Self.rivals()
            let racing = RivalBeforeSecondTable(inner: store) { try await BlockWriter.upload(second, to: store) }
            await #expect(throws: BlockConflict.self) { try await BlockWriter.upload(first, to: racing) }
            #expect(racing.tablesWritten.withLock { $0 } > first.files.count)
            try await Self.expectReads(store, as: second)
            let committed = try await BlockReader.open(store: store, tenant: "t1", ulid: second.meta.ulid).meta
            #expect(try await Self.objects(store, second) == Set(committed.files.map(\.objectName) + [BlockFile.meta]))
            #expect(try await BlockIndex.list(store, tenant: "t1").strays.isEmpty)
            // A retry of the committed block's own upload succeeds and changes nothing.
            try await BlockWriter.upload(second, to: store)
            try await Self.expectReads(store, as: second)
        }
    }

    /// A retried upload (the first attempt's answer lost after its tables were stored) keeps the plain names.
    @Test func aRetriedUploadKeepsItsTables() async throws {
        try await withStore(.file, "race-retry") { store, _ in
            let (block, _) = try Self.rivals()
            for f in block.files.prefix(3) { try await store.put(BlockFile.key(tenant: "t1", ulid: block.meta.ulid, f.name), f.bytes) }
            try await BlockWriter.upload(block, to: store)
            let committed = try await BlockReader.open(store: store, tenant: "t1", ulid: block.meta.ulid).meta
            #expect(committed.files.allSatisfy { $0.object == nil })
            try await Self.expectReads(store, as: block)
        }
    }
}

/// A store that runs `rival` once, when the second table write begins (plain or create-only).
private final class RivalBeforeSecondTable: ForwardingObjectStore {
    let inner: any ObjectStore
    let rival: @Sendable () async throws -> Void
    let tablesWritten = Mutex(0)

    init(inner: any ObjectStore, rival: @escaping @Sendable () async throws -> Void) {
        self.inner = inner
        self.rival = rival
    }

    private func willWrite(_ key: String) async throws {
        guard key.hasSuffix(".parquet") else { return }
        if tablesWritten.withLock({ n in
            n += 1
            return n == 2
        }) {
            try await rival()
        }
    }

    func put(_ key: String, _ bytes: [UInt8]) async throws {
        try await willWrite(key)
        try await inner.put(key, bytes)
    }
    func putIfAbsent(_ key: String, _ bytes: [UInt8]) async throws -> Bool {
        try await willWrite(key)
        return try await inner.putIfAbsent(key, bytes)
    }
}
