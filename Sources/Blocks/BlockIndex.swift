import Foundation
import KilnFoundation
import ObjectStore

/// What the store holds for one tenant: committed blocks, deletion marks, and folders without meta.json.
public struct TenantListing: Sendable {
    public var tenant: String
    public var metas: [BlockMeta]
    public var deletionMarks: [ULID: DeletionMark]
    /// Folders with objects but no meta.json (an upload in progress, or a crash mid-upload), with the time
    /// of their newest object.
    public var partial: [ULID: Date]
    /// Every object key per block folder.
    public var keys: [ULID: [String]]
    /// Objects in a committed block's folder that its meta.json does not list: tables of a writer that lost
    /// the race to commit the same block ID and died before removing them (`BlockWriter.upload`).
    public var strays: [ULID: [ObjectInfo]] = [:]
}

/// Listing of blocks in the store. `liveBlocks` is what a query engine reads: every committed block that is
/// neither marked for deletion nor superseded by a compacted block holding its data.
public enum BlockIndex {
    /// Objects read at once while listing, unless the caller says otherwise.
    public static let defaultFetchParallelism = 16

    /// Tenants are the top-level folders; names starting with `_` are Kiln's own (leases).
    public static func tenants(in store: any ObjectStore) async throws -> [String] {
        let result = try await store.list(prefix: "", delimiter: "/")
        return result.commonPrefixes.map { String($0.dropLast()) }.filter { !$0.hasPrefix("_") }.sorted()
    }

    /// Lists the tenant's folders. With `createdAfterMillis`, blocks whose ULID time is older are skipped
    /// without reading their meta.json (ULIDs are minted at creation).
    public static func list(
        _ store: any ObjectStore, tenant: String, createdAfterMillis: UInt64? = nil,
        skipping known: Set<ULID> = [], fetchParallelism: Int = defaultFetchParallelism
    ) async throws -> TenantListing {
        let objects = try await store.list(prefix: tenant + "/").objects
        // Per block folder, its objects with their file names (`<tenant>/<ulid>/<file>`).
        var byBlock: [ULID: [(file: String, object: ObjectInfo)]] = [:]
        for o in objects {
            let parts = o.key.split(separator: "/")
            guard parts.count == 3, let ulid = ULID(string: String(parts[1])) else { continue }
            byBlock[ulid, default: []].append((String(parts[2]), o))
        }
        var listing = TenantListing(tenant: tenant, metas: [], deletionMarks: [:], partial: [:], keys: [:])
        // What to read, then read it at once: a store answers one small GET in milliseconds, a tenant has
        // hundreds of blocks.
        enum Fetch: Sendable {
            case meta(ULID)
            case deletionMark(ULID)
        }
        var fetches: [Fetch] = []
        for (ulid, objs) in byBlock {
            listing.keys[ulid] = objs.map(\.object.key)
            if let after = createdAfterMillis, ulid.timestampMillis < after { continue }
            let names = Set(objs.map(\.file))
            if names.contains(BlockFile.deletionMark) { fetches.append(.deletionMark(ulid)) }
            if names.contains(BlockFile.meta) {
                if !known.contains(ulid) { fetches.append(.meta(ulid)) }
            } else {
                listing.partial[ulid] = objs.map(\.object.lastModified).max()
            }
        }
        try await concurrently(fetches, parallelism: fetchParallelism) { fetch -> [UInt8]? in
            let ulid: ULID
            let file: String
            switch fetch {
            case .meta(let u): (ulid, file) = (u, BlockFile.meta)
            case .deletionMark(let u): (ulid, file) = (u, BlockFile.deletionMark)
            }
            do {
                return try await store.get(BlockFile.key(tenant: tenant, ulid: ulid, file))
            } catch let e as ObjectStoreError where e.kind == .notFound {
                return nil  // deleted between list and get
            }
        } merge: { fetch, bytes in
            guard let bytes else { return }
            switch fetch {
            case .meta: listing.metas.append(try BlockMeta.decode(bytes))
            case .deletionMark(let ulid):
                if let m = try? JSONDecoder().decode(DeletionMark.self, from: Data(bytes)) { listing.deletionMarks[ulid] = m }
            }
        }
        listing.metas.sort { $0.ulid < $1.ulid }
        for meta in listing.metas {
            let listed = Set(meta.files.map(\.objectName) + [BlockFile.meta, BlockFile.deletionMark])
            let strays = (byBlock[meta.ulid] ?? []).filter { !listed.contains($0.file) }
            if !strays.isEmpty { listing.strays[meta.ulid] = strays.map(\.object) }
        }
        return listing
    }

    /// The blocks to read: committed, not marked for deletion, not superseded. A block is superseded by
    /// another whose sources strictly include its sources, or that has the same sources and a smaller ULID
    /// (two compactors that raced on one job).
    public static func live(_ metas: [BlockMeta], deletionMarks: [ULID: DeletionMark]) -> [BlockMeta] {
        let candidates = metas.filter { deletionMarks[$0.ulid] == nil }
        let sourceSets = candidates.map { Set($0.compaction.sources) }
        // Index: source ULID → candidates containing it, to keep this near-linear.
        var bySource: [ULID: [Int]] = [:]
        for (i, s) in sourceSets.enumerated() { for u in s { bySource[u, default: []].append(i) } }
        var out: [BlockMeta] = []
        for (i, b) in candidates.enumerated() {
            let mine = sourceSets[i]
            guard let first = mine.first else {
                out.append(b)
                continue
            }
            let superseded = (bySource[first] ?? []).contains { j in
                guard j != i else { return false }
                let other = sourceSets[j]
                guard mine.isSubset(of: other) else { return false }
                return other.count > mine.count || candidates[j].ulid < b.ulid
            }
            if !superseded { out.append(b) }
        }
        return out.sorted { $0.ulid < $1.ulid }
    }

    /// Live blocks of a tenant, optionally only those overlapping a time range (Unix nanoseconds).
    public static func liveBlocks(_ store: any ObjectStore, tenant: String, time range: ClosedRange<Int64>? = nil) async throws
        -> [BlockMeta]
    {
        let listing = try await list(store, tenant: tenant)
        let live = live(listing.metas, deletionMarks: listing.deletionMarks)
        guard let range else { return live }
        return live.filter { $0.minTime <= range.upperBound && $0.maxTime >= range.lowerBound }
    }
}
