import Foundation
import ObjectStore
import Parquet
import ProfileModel

/// A block encoded in memory: its table files and its `meta.json`, ready to upload.
public struct EncodedBlock: Sendable {
    public var meta: BlockMeta
    /// Table files in upload order (meta.json is not among them).
    public var files: [(name: String, bytes: [UInt8])]

    public var totalBytes: Int { files.reduce(0) { $0 + $1.bytes.count } }
}

/// Turns a head into Parquet tables and uploads them, `meta.json` last.
public struct BlockWriter: Sendable {
    public struct Options: Sendable {
        /// Codec of every table. zstd level 1 measured smallest at nearly LZ4's write speed (docs/block-format.md).
        public var codec: CompressionCodec = .zstd
        public var zstdLevel: Int32 = 1
        /// Rows per row group of samples.parquet: small enough that time and series statistics prune reads,
        /// large enough that each column chunk compresses well.
        public var samplesPerRowGroup: Int = 128 * 1024

        public init() {}
    }

    public var options: Options

    public init(options: Options = Options()) { self.options = options }

    private func parquetOptions(rowsPerGroup: Int = 1 << 20) -> ParquetWriterOptions {
        var o = ParquetWriterOptions()
        o.codec = options.codec
        o.zstdLevel = options.zstdLevel
        o.maxRowsPerRowGroup = rowsPerGroup
        return o
    }

    /// The head's sample indices in block order: (series rank, time, span, stack). Samples arrive in runs of
    /// one (series, time) — a profile's samples of one type, appended batch by batch — so the runs are sorted
    /// and then each group of runs with the same (series, time) by span and stack: far fewer comparisons
    /// than sorting every sample, which was a tenth of the compactor's CPU. A span's samples end up
    /// contiguous, so the span column compresses to a few runs per profile.
    static func sampleOrder(_ head: Head, newSeriesID: [Int32]) -> [Int32] {
        let n = head.sampleCount
        return head.sampleSeries.withUnsafeBufferPointer { ser in
            head.sampleTimes.withUnsafeBufferPointer { times in
                head.sampleStacks.withUnsafeBufferPointer { stacks in
                    head.sampleSpans.withUnsafeBufferPointer { spans in
                        var runStarts: [Int32] = []
                        var i = 0
                        while i < n {
                            runStarts.append(Int32(truncatingIfNeeded: i))
                            let (series, time) = (ser[i], times[i])
                            i += 1
                            while i < n && ser[i] == series && times[i] == time { i += 1 }
                        }
                        runStarts.append(Int32(truncatingIfNeeded: n))
                        // Each run's key beside its number, so the sort compares contiguous values.
                        var runs = (0..<runStarts.count - 1).map { run in
                            let start = Int(runStarts[run])
                            return (series: newSeriesID[Int(ser[start])], time: times[start], run: Int32(truncatingIfNeeded: run))
                        }
                        runs.sort { ($0.series, $0.time) < ($1.series, $1.time) }
                        var order = [Int32]()
                        order.reserveCapacity(n)
                        var r = 0
                        while r < runs.count {
                            let (series, time) = (runs[r].series, runs[r].time)
                            let groupStart = order.count
                            while r < runs.count && runs[r].series == series && runs[r].time == time {
                                let run = Int(runs[r].run)
                                order.append(contentsOf: runStarts[run]..<runStarts[run + 1])
                                r += 1
                            }
                            order[groupStart...].sort { (spans[Int($0)], stacks[Int($0)]) < (spans[Int($1)], stacks[Int($1)]) }
                        }
                        return order
                    }
                }
            }
        }
    }

    /// Encodes the head as block `ulid`. Samples are sorted by (profile type, series, time, span, stack); series
    /// ids are renumbered so that this order is also series-id order.
    public func encode(
        _ head: Head, ulid: ULID, compaction: BlockMeta.Compaction, createdAt: Date = Date(), resolutionMillis: Int64? = nil
    ) throws -> EncodedBlock {
        // Series order: profile type, then labels. A type's id is built from its parts, so once per series.
        let typeIDs = head.series.map(\.profileType.id)
        let seriesOrder = head.series.indices.sorted {
            if typeIDs[$0] != typeIDs[$1] { return typeIDs[$0] < typeIDs[$1] }
            return head.series[$0].labels.labels.lexicographicallyPrecedes(head.series[$1].labels.labels)
        }
        var newSeriesID = [Int32](repeating: 0, count: head.series.count)
        for (rank, old) in seriesOrder.enumerated() { newSeriesID[old] = Int32(rank) }

        let n = head.sampleCount
        // Stack ids are 32-bit in the block, so a head is far smaller than 2^31 samples; the sort order is
        // kept in 32-bit row numbers.
        guard n <= Int(Int32.max) else { throw BlockError("a head of \(n) samples is over the \(Int32.max) a block can hold") }
        let order = Self.sampleOrder(head, newSeriesID: newSeriesID)

        var files: [(String, [UInt8], Int, Int)] = []
        func table(_ name: String, _ schema: ParquetSchema, _ columns: [ColumnData], rowsPerGroup: Int = 1 << 20) throws {
            let w = try ParquetWriter(schema: schema, options: parquetOptions(rowsPerGroup: rowsPerGroup))
            try w.writeRowGroup(columns)
            let bytes = try w.finish()
            let rows = columns.first?.rowCount ?? 0
            files.append((name, bytes, rows, try ParquetFileReader(bytes: bytes).rowGroupCount))
        }

        // samples.parquet, one row group at a time: the sorted columns exist for one group only, so
        // encoding a head costs little memory beyond the head itself (the sort order).
        // Per-type counts by a small index per series, not by hashing the type's name per sample.
        var typeNames: [String] = []
        var typeSlots: [String: Int] = [:]
        let typeOfSeries = typeIDs.map { id in
            if let slot = typeSlots[id] { return slot }
            typeNames.append(id)
            typeSlots[id] = typeNames.count - 1
            return typeNames.count - 1
        }
        var typeSamples = [Int64](repeating: 0, count: typeNames.count)
        var typeTotals = [Int64](repeating: 0, count: typeNames.count)
        var typeProfiles = [Int64](repeating: 0, count: typeNames.count)
        let longestTypeID = typeIDs.map(\.utf8.count).max() ?? 0
        let rowsPerGroup = max(1, options.samplesPerRowGroup)
        let samplesWriter = try ParquetWriter(schema: BlockSchemas.samples, options: parquetOptions(rowsPerGroup: rowsPerGroup))
        // Samples arrive in (series, time) runs: each run is one profile, summed for profiles.parquet.
        var profiles = ProfileTotals()
        // Per series, each stack's sum over the block (stack_totals.parquet), written when the series changes.
        var stackTotals = (series: [Int32](), stacks: [Int32](), totals: [Int64]())
        var stackSums = StackRunSums(stacks: head.nodeParents.count)
        var currentSeries: Int32 = -1
        func flushStackSums() {
            stackSums.drain { stack, sum in
                stackTotals.series.append(currentSeries)
                stackTotals.stacks.append(stack)
                stackTotals.totals.append(sum)
            }
        }
        for groupStart in stride(from: 0, to: n, by: rowsPerGroup) {
            let rows = order[groupStart..<min(n, groupStart + rowsPerGroup)]
            var seriesCol = [Int32]()
            seriesCol.reserveCapacity(rows.count)
            var typeCol = ByteArrays()
            typeCol.reserveCapacity(values: rows.count, bytes: rows.count * longestTypeID)
            var timeCol = [Int64]()
            timeCol.reserveCapacity(rows.count)
            var stackCol = [Int32]()
            stackCol.reserveCapacity(rows.count)
            var valueCol = [Int64]()
            valueCol.reserveCapacity(rows.count)
            var spanCol = [Int64?]()
            spanCol.reserveCapacity(rows.count)
            for row in rows {
                let i = Int(row)
                let s = Int(head.sampleSeries[i])
                seriesCol.append(newSeriesID[s])
                typeCol.append(typeIDs[s])
                timeCol.append(head.sampleTimes[i])
                stackCol.append(Int32(head.sampleStacks[i]))
                valueCol.append(head.sampleValues[i])
                let span = head.sampleSpans[i]
                spanCol.append(span == 0 ? nil : Int64(bitPattern: span))
                typeSamples[typeOfSeries[s]] += 1
                typeTotals[typeOfSeries[s]] &+= head.sampleValues[i]
                // Only downsampled heads count profiles; a live head's are one each.
                let profileCount =
                    head.profileCounts.isEmpty
                    ? 1 : head.profileCounts[Downsampling.SeriesTime(series: UInt32(s), time: head.sampleTimes[i])] ?? 1
                let profileRows = profiles.count
                profiles.add(series: newSeriesID[s], time: head.sampleTimes[i], value: head.sampleValues[i], profiles: profileCount)
                if profiles.count != profileRows { typeProfiles[typeOfSeries[s]] += 1 }
                if newSeriesID[s] != currentSeries {
                    flushStackSums()
                    currentSeries = newSeriesID[s]
                }
                stackSums.add(stack: Int(head.sampleStacks[i]), head.sampleValues[i])
            }
            try samplesWriter.writeRowGroup([
                .int32(seriesCol), .byteArrays(typeCol), .int64(timeCol), .int32(stackCol), .int64(valueCol), .int64(spanCol),
            ])
        }
        var typeStats: [String: BlockMeta.ProfileTypeStats] = [:]
        for (slot, name) in typeNames.enumerated() where typeSamples[slot] > 0 {
            typeStats[name] = .init(samples: typeSamples[slot], total: typeTotals[slot], profiles: typeProfiles[slot])
        }
        let samplesBytes = try samplesWriter.finish()
        files.append((BlockFile.samples, samplesBytes, n, try ParquetFileReader(bytes: samplesBytes).rowGroupCount))
        flushStackSums()
        try table(
            BlockFile.stackTotals, BlockSchemas.stackTotals,
            [.int32(stackTotals.series), .int32(stackTotals.stacks), .int64(stackTotals.totals)], rowsPerGroup: rowsPerGroup)
        try table(
            BlockFile.profiles, BlockSchemas.profiles,
            [.int32(profiles.seriesIDs), .int64(profiles.timeNanos), .int64(profiles.totals), .int32(profiles.profiles)],
            rowsPerGroup: rowsPerGroup)

        // series.parquet: one row per (series, label).
        var sID = [Int32]()
        var sType = [String]()
        var sName = [String]()
        var sValue = [String]()
        var sPeriod = [Int64]()
        for (rank, old) in seriesOrder.enumerated() {
            let s = head.series[old]
            for l in s.labels.labels {
                sID.append(Int32(rank))
                sType.append(s.profileType.id)
                sName.append(l.name)
                sValue.append(l.value)
                sPeriod.append(head.seriesPeriods[old])
            }
        }
        try table(
            BlockFile.series, BlockSchemas.series, [.int32(sID), .strings(sType), .strings(sName), .strings(sValue), .int64(sPeriod)])

        let nodes = head.nodeParents.count
        try table(
            BlockFile.stacks, BlockSchemas.stacks,
            [
                .int32((0..<nodes).map { Int32($0) }),
                .int32(head.nodeParents.map { $0 < 0 ? nil : Optional($0) }),
                .int32(head.nodeFrames.map { Int32($0) }),
            ])
        try table(
            BlockFile.frames, BlockSchemas.frames,
            [
                .int32((0..<head.frames.count).map { Int32($0) }),
                .int32(head.frames.map { Int32($0.function) }),
                .int64(head.frames.map(\.line)),
            ])
        try table(
            BlockFile.functions, BlockSchemas.functions,
            [
                .int32((0..<head.functions.count).map { Int32($0) }),
                .strings(head.functions.map(\.name)),
                .strings(head.functions.map(\.systemName)),
                .strings(head.functions.map(\.filename)),
                .int64(head.functions.map(\.startLine)),
            ])

        let meta = BlockMeta(
            ulid: ulid, tenant: head.tenant,
            minTime: n == 0 ? 0 : head.minTime, maxTime: n == 0 ? 0 : head.maxTime,
            createdAt: Int64(createdAt.timeIntervalSince1970 * 1000),
            compaction: compaction,
            kafka: KafkaProvenance(raw: head.rawOffsets, normalized: head.normalizedOffsets),
            stats: .init(
                samples: Int64(n), series: Int64(head.series.count), stacks: Int64(nodes),
                frames: Int64(head.frames.count), functions: Int64(head.functions.count), profileTypes: typeStats),
            files: files.map { .init(name: $0.0, sizeBytes: $0.1.count, sha256: SigV4Signer.sha256Hex($0.1), rows: $0.2, rowGroups: $0.3) },
            resolutionMillis: resolutionMillis)
        return EncodedBlock(meta: meta, files: files.map { ($0.0, $0.1) })
    }

    /// Uploads the tables, then `meta.json` (create-only). Throws if a different block already committed
    /// under this ULID — before touching its tables, so a committed block is never overwritten — and
    /// succeeds when the same meta is already there (a retried upload).
    ///
    /// Two writers can upload one block ID with other contents at once (a level-0 block's ID comes from its
    /// first record, and a compactor paused past its session may cut a head from the same record as the one
    /// that took its partition); `meta.json`'s create-only put decides which block commits. So that the
    /// winner's tables are its own whatever the interleaving, every table is created only if absent; a
    /// table already there with other contents is another writer's, and this writer's goes beside it under
    /// a name from its contents (`BlockFile.contentAddressed`), listed in meta.json as the file's `object`.
    /// A writer that loses removes the objects it created that the committed block does not list; objects
    /// left by a writer that died are removed by maintenance (`Compactor.pass`).
    public static func upload(_ block: EncodedBlock, to store: any ObjectStore) async throws {
        let tenant = block.meta.tenant
        let ulid = block.meta.ulid
        let metaKey = BlockFile.key(tenant: tenant, ulid: ulid, BlockFile.meta)
        if try await store.head(metaKey) != nil {
            guard try BlockMeta.decode(try await store.get(metaKey)).sameTables(as: block.meta) else {
                throw BlockConflict(tenant: tenant, ulid: ulid)
            }
            return
        }
        var meta = block.meta
        var created: [String] = []
        for f in block.files {
            let key = BlockFile.key(tenant: tenant, ulid: ulid, f.name)
            if try await store.putIfAbsent(key, f.bytes) {
                created.append(key)
                continue
            }
            // Ours from an earlier attempt (a retry after a crash or a lost answer), or another writer's.
            if try await store.get(key) == f.bytes { continue }
            guard let i = meta.files.firstIndex(where: { $0.name == f.name }) else {
                throw BlockError("\(f.name) is not listed in the block's meta.json")
            }
            let object = BlockFile.contentAddressed(f.name, sha256: meta.files[i].sha256)
            let objectKey = BlockFile.key(tenant: tenant, ulid: ulid, object)
            try await store.put(objectKey, f.bytes)
            created.append(objectKey)
            meta.files[i].object = object
        }
        if try await store.putIfAbsent(metaKey, try meta.encoded()) { return }
        let existing = try BlockMeta.decode(try await store.get(metaKey))
        let committed = Set(existing.files.map { BlockFile.key(tenant: tenant, ulid: ulid, $0.objectName) })
        for key in created where !committed.contains(key) { try await store.delete(key) }
        guard existing.sameTables(as: meta) else { throw BlockConflict(tenant: tenant, ulid: ulid) }
    }
}

/// The Parquet schemas of a block's tables.
public enum BlockSchemas {
    public static let samples = ParquetSchema([
        ColumnSchema("series_id", .int32),
        ColumnSchema("profile_type", .string, encoding: .dictionary),
        ColumnSchema("time_nanos", .int64, encoding: .deltaBinaryPacked),
        ColumnSchema("stack_id", .int32),
        ColumnSchema("value", .int64),
        ColumnSchema("span_id", .int64, optional: true, bloomFilter: true),
    ])
    public static let profiles = ParquetSchema([
        ColumnSchema("series_id", .int32, encoding: .deltaBinaryPacked),
        ColumnSchema("time_nanos", .int64, encoding: .deltaBinaryPacked),
        ColumnSchema("total", .int64),
        ColumnSchema("profiles", .int32),
    ])
    public static let stackTotals = ParquetSchema([
        ColumnSchema("series_id", .int32, encoding: .deltaBinaryPacked),
        ColumnSchema("stack_id", .int32),
        ColumnSchema("total", .int64),
    ])
    public static let series = ParquetSchema([
        ColumnSchema("series_id", .int32, encoding: .deltaBinaryPacked),
        ColumnSchema("profile_type", .string, encoding: .dictionary),
        ColumnSchema("name", .string, encoding: .dictionary),
        ColumnSchema("value", .string, encoding: .dictionary),
        ColumnSchema("period", .int64),
    ])
    public static let stacks = ParquetSchema([
        ColumnSchema("node_id", .int32, encoding: .deltaBinaryPacked),
        ColumnSchema("parent_id", .int32, optional: true),
        ColumnSchema("frame_id", .int32),
    ])
    public static let frames = ParquetSchema([
        ColumnSchema("frame_id", .int32, encoding: .deltaBinaryPacked),
        ColumnSchema("function_id", .int32),
        ColumnSchema("line", .int64),
    ])
    public static let functions = ParquetSchema([
        ColumnSchema("function_id", .int32, encoding: .deltaBinaryPacked),
        ColumnSchema("name", .string),
        ColumnSchema("system_name", .string),
        ColumnSchema("filename", .string, encoding: .dictionary),
        ColumnSchema("start_line", .int64),
    ])
}
