import Foundation
import KilnFoundation
import ObjectStore
import Parquet
import ProfileModel

/// A series of a block: its id in samples.parquet, labels and profile type.
public struct BlockSeries: Sendable, Equatable {
    public var id: Int32
    public var labels: LabelSet
    public var profileType: ProfileTypeID
    /// Sampling period in the profile type's period unit; 0 when unknown (blocks written before
    /// 2026-12-07 have no `period` column).
    public var period: Int64 = 0
}

/// A span's samples in one profile of a block, summed.
public struct SpanTotal: Sendable, Equatable {
    public struct Key: Hashable, Sendable {
        public var series: Int32
        public var timeNanos: Int64
        public var span: UInt64
    }

    public var key: Key
    public var total: Int64
}

/// One profile of a block: a series (block-local id) at one time.
public struct BlockProfileKey: Hashable, Sendable {
    public var series: Int32
    public var timeNanos: Int64

    public init(series: Int32, timeNanos: Int64) {
        self.series = series
        self.timeNanos = timeNanos
    }
}

/// Sample columns of a block (or of the row groups a time range selects), struct of arrays, in file order
/// (profile type, series, time, stack).
public struct SampleColumns: Sendable, Equatable {
    public var seriesIDs: [Int32] = []
    /// Index into `profileTypes` per sample.
    public var profileTypeIndex: [UInt16] = []
    public var profileTypes: [String] = []
    public var timeNanos: [Int64] = []
    public var stackIDs: [Int32] = []
    public var values: [Int64] = []
    /// 0 where the sample has no span.
    public var spanIDs: [UInt64] = []

    public var count: Int { values.count }

    public init() {}

    /// Keeps only samples with `range.contains(time)` and (when given) a series in `series`.
    public func filtered(time range: ClosedRange<Int64>, series: Set<Int32>? = nil) -> SampleColumns {
        var out = SampleColumns()
        out.profileTypes = profileTypes
        for i in 0..<count where range.contains(timeNanos[i]) && (series?.contains(seriesIDs[i]) ?? true) {
            out.seriesIDs.append(seriesIDs[i])
            out.profileTypeIndex.append(profileTypeIndex[i])
            out.timeNanos.append(timeNanos[i])
            out.stackIDs.append(stackIDs[i])
            out.values.append(values[i])
            out.spanIDs.append(spanIDs[i])
        }
        return out
    }

    public var totalsByProfileType: [String: Int64] {
        var t: [String: Int64] = [:]
        for i in 0..<count { t[profileTypes[Int(profileTypeIndex[i])], default: 0] &+= values[i] }
        return t
    }
}

/// The symbol side of a block: the stack tree, frames and functions, with stack resolution.
/// The columns of samples a stack or time-series query reads.
public struct StackSamples: Sendable {
    public var seriesIDs: [Int32] = []
    public var timeNanos: [Int64] = []
    public var stackIDs: [Int32] = []
    public var values: [Int64] = []

    public init() {}

    public var count: Int { values.count }

    mutating func reserve(_ n: Int) {
        seriesIDs.reserveCapacity(n)
        timeNanos.reserveCapacity(n)
        stackIDs.reserveCapacity(n)
        values.reserveCapacity(n)
    }
}

/// One row per profile — a series at one time — with the sum of its samples, in (series, time) order:
/// what time series, averages and heatmaps need, a row per profile instead of a row per stack.
public struct ProfileTotals: Sendable, Equatable {
    public var seriesIDs: [Int32] = []
    public var timeNanos: [Int64] = []
    public var totals: [Int64] = []
    /// The profiles each row stands for: 1, except in a downsampled block, whose row is a bucket.
    public var profiles: [Int32] = []

    public init() {}

    public var count: Int { totals.count }

    /// Adds a sample's value to the last profile when it is the same (series, time), else starts a profile
    /// standing for `profiles` profiles: samples in (series, time) order become one row per profile.
    public mutating func add(series: Int32, time: Int64, value: Int64, profiles: @autoclosure () -> Int32 = 1) {
        if let last = seriesIDs.last, last == series, timeNanos.last == time {
            totals[totals.count - 1] &+= value
        } else {
            seriesIDs.append(series)
            timeNanos.append(time)
            totals.append(value)
            self.profiles.append(profiles())
        }
    }
}

public struct BlockSymbols: Sendable {
    /// Per stack node: parent node (-1 at a root) and frame.
    public var nodeParents: [Int32]
    public var nodeFrames: [Int32]
    /// Per frame: function and line.
    public var frameFunctions: [Int32]
    public var frameLines: [Int64]
    public var functions: [FunctionKey]

    /// Frames of stack `id`, leaf first. Throws on a dangling reference or a cycle.
    public func frames(ofStack id: Int32) throws -> [Int32] {
        var out: [Int32] = []
        var n = id
        while n >= 0 {
            guard Int(n) < nodeParents.count else { throw BlockError("stack node \(n) out of range (\(nodeParents.count) nodes)") }
            out.append(nodeFrames[Int(n)])
            let p = nodeParents[Int(n)]
            guard p < n else { throw BlockError("stack node \(n) has parent \(p) that is not older") }
            n = p
        }
        return out
    }

    /// Function names of stack `id`, leaf first.
    public func functionNames(ofStack id: Int32) throws -> [String] {
        try frames(ofStack: id).map { functions[Int(frameFunctions[Int($0)])].name }
    }

    public func function(ofFrame frame: Int32) -> FunctionKey { functions[Int(frameFunctions[Int(frame)])] }
}

/// Reads one block from the store. Tables are fetched on first use and kept; a query engine can read only
/// meta, series and the sample row groups of a time range, and symbols only when it resolves stacks.
public actor BlockReader {
    public nonisolated let store: any ObjectStore
    public nonisolated let meta: BlockMeta
    private var tables: [String: ParquetFileReader] = [:]

    public init(store: any ObjectStore, meta: BlockMeta) {
        self.store = store
        self.meta = meta
    }

    /// Opens a block by reading its meta.json.
    public static func open(store: any ObjectStore, tenant: String, ulid: ULID) async throws -> BlockReader {
        let meta = try BlockMeta.decode(try await store.get(BlockFile.key(tenant: tenant, ulid: ulid, BlockFile.meta)))
        return BlockReader(store: store, meta: meta)
    }

    /// The raw bytes of a table file, checked against meta.json's size and sha256 when `verify` is set.
    public func fileBytes(_ name: String, verify: Bool = false) async throws -> [UInt8] {
        let bytes = try await store.get(meta.key(of: name))
        if verify {
            guard let entry = meta.files.first(where: { $0.name == name }) else { throw BlockError("\(name) is not listed in meta.json") }
            guard entry.sizeBytes == bytes.count else {
                throw BlockError("\(name): \(bytes.count) bytes, meta.json says \(entry.sizeBytes)")
            }
            let sum = SigV4Signer.sha256Hex(bytes)
            guard sum == entry.sha256 else { throw BlockError("\(name): sha256 \(sum), meta.json says \(entry.sha256)") }
        }
        return bytes
    }

    /// A table file, fetched on first use. `keep: false` is for tables read once and decoded (series,
    /// symbols): their callers keep what they decode, and an open block need not hold their bytes too.
    func table(_ name: String, keep: Bool = true) async throws -> ParquetFileReader {
        if let t = tables[name] { return t }
        let t = try ParquetFileReader(bytes: try await fileBytes(name))
        if keep { tables[name] = t }
        return t
    }

    public func series() async throws -> [BlockSeries] {
        let t = try await table(BlockFile.series, keep: false)
        let ids = try Self.int32s(t, "series_id")
        let types = try Self.strings(t, "profile_type")
        let names = try Self.strings(t, "name")
        let values = try Self.strings(t, "value")
        let periods = t.leafIndex(named: "period") == nil ? nil : try Self.int64s(t, "period")
        var out: [BlockSeries] = []
        var parsedTypes: [String: ProfileTypeID] = [:]  // a block has a few types and many series
        var i = 0
        while i < ids.count {
            let id = ids[i]
            var labels: [Label] = []
            let type = types[i]
            let period = periods?[i] ?? 0
            while i < ids.count && ids[i] == id {
                labels.append(Label(names[i], values[i]))
                i += 1
            }
            if parsedTypes[type] == nil { parsedTypes[type] = ProfileTypeID(parsing: type) }
            guard let pt = parsedTypes[type] else { throw BlockError("series \(id): bad profile type \(type)") }
            out.append(BlockSeries(id: id, labels: LabelSet(labels), profileType: pt, period: period))
        }
        return out
    }

    /// Row groups of samples.parquet whose statistics overlap the time range and hold one of the series
    /// (all when both are nil). Rows are sorted by series, then time, so a series filter prunes well.
    /// With `spans`, only those whose `span_id` Bloom filter may hold one of them (blocks written before
    /// 2026-12-07 have no filters: every row group may).
    public func sampleRowGroups(time range: ClosedRange<Int64>?, series: Set<Int32>? = nil, spans: Set<UInt64>? = nil) async throws
        -> [Int]
    {
        let t = try await table(BlockFile.samples)
        let groups = Self.rowGroups(of: t, time: range, series: series)
        guard let spans, let column = t.leafIndex(named: "span_id") else { return groups }
        let hashes = spans.map { SplitBlockBloomFilter.hash(Int64(bitPattern: $0)) }
        return try groups.filter { rg in
            guard let filter = try t.bloomFilter(rowGroup: rg, column: column) else { return true }
            return hashes.contains { filter.mightContain(hash: $0) }
        }
    }

    /// Row groups of a table sorted by `series_id` then `time_nanos` (samples, profiles) whose statistics
    /// overlap the time range and hold one of the series.
    static func rowGroups(of t: ParquetFileReader, time range: ClosedRange<Int64>?, series: Set<Int32>?) -> [Int] {
        let timeCol = t.leafIndex(named: "time_nanos")
        let seriesCol = t.leafIndex(named: "series_id")
        let wanted = series.map { $0.sorted() }
        return (0..<t.rowGroupCount).filter { rg in
            if let range, let timeCol, let s = t.statistics(rowGroup: rg, column: timeCol),
                case .int64(let lo)? = s.min, case .int64(let hi)? = s.max,
                lo > range.upperBound || hi < range.lowerBound
            {
                return false
            }
            if let wanted, let seriesCol, let s = t.statistics(rowGroup: rg, column: seriesCol),
                case .int32(let lo)? = s.min, case .int32(let hi)? = s.max,
                !wanted.contains(where: { $0 >= lo && $0 <= hi })
            {
                return false
            }
            return true
        }
    }

    /// Samples whose time is in `range` and whose series is in `series` (all when nil); row groups whose
    /// statistics rule them out are not decoded.
    public func samples(time range: ClosedRange<Int64>? = nil, series: Set<Int32>? = nil) async throws -> SampleColumns {
        let t = try await table(BlockFile.samples)
        let groups = try await sampleRowGroups(time: range, series: series)
        return try await BlockingWork.shared.run(bytes: t.byteCount) {
            try Self.decodeSamples(t, groups: groups, time: range, series: series)
        }
    }

    static func decodeSamples(_ t: ParquetFileReader, groups: [Int], time range: ClosedRange<Int64>?, series: Set<Int32>?) throws
        -> SampleColumns
    {
        var out = SampleColumns()
        out.seriesIDs = try Self.int32s(t, "series_id", groups)
        // The per-row strings and optional spans are read one row group at a time, so only one group's
        // worth exists at once beside the compact columns they become.
        var typeIndex: [String: UInt16] = [:]
        out.profileTypeIndex.reserveCapacity(out.seriesIDs.count)
        out.spanIDs.reserveCapacity(out.seriesIDs.count)
        for group in groups {
            let types = try t.readColumn(named: "profile_type", rowGroups: [group])
            guard case .byteArrays(let values) = types.values, types.validity == nil else {
                throw BlockError("column profile_type: expected required string")
            }
            // Rows are sorted by profile type, so a value is nearly always its predecessor's: compared as
            // bytes, it becomes a String only when it changes.
            var previous: (bytes: ArraySlice<UInt8>, index: UInt16)?
            for row in 0..<values.count {
                let bytes = values[row]
                if let previous, previous.bytes.elementsEqual(bytes) {
                    out.profileTypeIndex.append(previous.index)
                    continue
                }
                let name = String(decoding: bytes, as: UTF8.self)
                let index: UInt16
                if let known = typeIndex[name] {
                    index = known
                } else {
                    index = UInt16(out.profileTypes.count)
                    out.profileTypes.append(name)
                    typeIndex[name] = index
                }
                out.profileTypeIndex.append(index)
                previous = (bytes, index)
            }
            out.spanIDs.append(contentsOf: try Self.spanIDs(t, [group]))
        }
        out.timeNanos = try Self.int64s(t, "time_nanos", groups)
        out.stackIDs = try Self.int32s(t, "stack_id", groups)
        out.values = try Self.int64s(t, "value", groups)
        if range == nil && series == nil { return out }
        return out.filtered(time: range ?? Int64.min...Int64.max, series: series)
    }

    /// What a stack query needs of the samples — series, time, stack and value, without the profile-type
    /// strings and span ids — for the series in `series` within `range`.
    /// With `spans`, only the samples whose span id is one of them (span profiles); with `profiles`, only
    /// the samples of those profiles.
    public func stackSamples(
        time range: ClosedRange<Int64>, series: Set<Int32>, spans: Set<UInt64>? = nil, profiles: Set<BlockProfileKey>? = nil
    ) async throws -> StackSamples {
        let t = try await table(BlockFile.samples)
        let groups = try await sampleRowGroups(time: range, series: series, spans: spans)
        return try await BlockingWork.shared.run(bytes: t.byteCount) {
            try Self.decodeStackSamples(t, groups: groups, time: range, series: series, spans: spans, profiles: profiles)
        }
    }

    static func decodeStackSamples(
        _ t: ParquetFileReader, groups: [Int], time range: ClosedRange<Int64>, series: Set<Int32>, spans: Set<UInt64>? = nil,
        profiles: Set<BlockProfileKey>? = nil
    ) throws -> StackSamples {
        let ids = try Self.int32s(t, "series_id", groups)
        let times = try Self.int64s(t, "time_nanos", groups)
        let stacks = try Self.int32s(t, "stack_id", groups)
        let values = try Self.int64s(t, "value", groups)
        // Read only for span queries. A sample without a span (null or 0) belongs to no span selection.
        let spanIDs = try spans.map { _ in try Self.spanIDs(t, groups) }
        if let spanIDs, spanIDs.count != ids.count { throw BlockError("column span_id: \(spanIDs.count) rows, series_id \(ids.count)") }
        var out = StackSamples()
        if spans == nil { out.reserve(ids.count) }
        let selected = seriesMask(series)
        // Rows come in runs of one profile, and within it of one span: each set is asked once per run.
        var lastSpan: UInt64 = 0
        var lastSpanSelected = false
        var lastProfile: BlockProfileKey?
        var lastProfileSelected = false
        for i in ids.indices where range.contains(times[i]) && ids[i] >= 0 && Int(ids[i]) < selected.count && selected[Int(ids[i])] {
            if let spans, let spanIDs {
                if spanIDs[i] != lastSpan {
                    lastSpan = spanIDs[i]
                    lastSpanSelected = spans.contains(lastSpan)
                }
                // Span 0 is "no span": never selected.
                guard lastSpan != 0, lastSpanSelected else { continue }
            }
            if let profiles {
                let profile = BlockProfileKey(series: ids[i], timeNanos: times[i])
                if profile != lastProfile {
                    lastProfile = profile
                    lastProfileSelected = profiles.contains(profile)
                }
                guard lastProfileSelected else { continue }
            }
            out.seriesIDs.append(ids[i])
            out.timeNanos.append(times[i])
            out.stackIDs.append(stacks[i])
            out.values.append(values[i])
        }
        return out
    }

    /// The samples that carry a span, summed per (series, time, span), for the series in `series` within
    /// `range`: what a span heatmap counts. Reads the samples' span ids (there is no span index).
    public func spanTotals(time range: ClosedRange<Int64>, series: Set<Int32>) async throws -> [SpanTotal] {
        let t = try await table(BlockFile.samples)
        let groups = try await sampleRowGroups(time: range, series: series)
        return try await BlockingWork.shared.run(bytes: t.byteCount) {
            let ids = try Self.int32s(t, "series_id", groups)
            let times = try Self.int64s(t, "time_nanos", groups)
            let values = try Self.int64s(t, "value", groups)
            let spans = try Self.spanIDs(t, groups)
            guard times.count == ids.count, values.count == ids.count, spans.count == ids.count else {
                throw BlockError("samples.parquet: columns of \(ids.count), \(times.count), \(values.count) and \(spans.count) rows")
            }
            let selected = Self.seriesMask(series)
            var index: [SpanTotal.Key: Int] = [:]
            var out: [SpanTotal] = []
            for i in ids.indices where range.contains(times[i]) && ids[i] >= 0 && Int(ids[i]) < selected.count && selected[Int(ids[i])] {
                guard spans[i] != 0 else { continue }
                let key = SpanTotal.Key(series: ids[i], timeNanos: times[i], span: spans[i])
                if let at = index[key] {
                    out[at].total &+= values[i]
                } else {
                    index[key] = out.count
                    out.append(SpanTotal(key: key, total: values[i]))
                }
            }
            return out
        }
    }

    /// Each profile's total for the series in `series` within `range`, from profiles.parquet; in blocks
    /// written before that table existed (or for a span selection, which needs the samples' span ids),
    /// summed from samples.parquet.
    public func profileTotals(time range: ClosedRange<Int64>, series: Set<Int32>, spans: Set<UInt64>? = nil) async throws
        -> ProfileTotals
    {
        guard spans == nil, meta.files.contains(where: { $0.name == BlockFile.profiles }) else {
            let samples = try await stackSamples(time: range, series: series, spans: spans)
            var out = ProfileTotals()
            for i in 0..<samples.count { out.add(series: samples.seriesIDs[i], time: samples.timeNanos[i], value: samples.values[i]) }
            return out
        }
        let t = try await table(BlockFile.profiles)
        let groups = Self.rowGroups(of: t, time: range, series: series)
        return try await BlockingWork.shared.run(bytes: t.byteCount) {
            let ids = try Self.int32s(t, "series_id", groups)
            let times = try Self.int64s(t, "time_nanos", groups)
            let totals = try Self.int64s(t, "total", groups)
            let profiles = try Self.int32s(t, "profiles", groups)
            guard times.count == ids.count, totals.count == ids.count, profiles.count == ids.count else {
                throw BlockError("profiles.parquet: columns of \(ids.count), \(times.count), \(totals.count) and \(profiles.count) rows")
            }
            let selected = Self.seriesMask(series)
            var out = ProfileTotals()
            for i in ids.indices where range.contains(times[i]) && ids[i] >= 0 && Int(ids[i]) < selected.count && selected[Int(ids[i])] {
                out.seriesIDs.append(ids[i])
                out.timeNanos.append(times[i])
                out.totals.append(totals[i])
                out.profiles.append(profiles[i])
            }
            return out
        }
    }

    /// Each stack's sum over the whole block for the series in `series`, from stack_totals.parquet — what a
    /// query whose range covers the block needs of it; nil for blocks written before that table.
    public func stackTotals(series: Set<Int32>) async throws -> (stackIDs: [Int32], values: [Int64])? {
        guard meta.files.contains(where: { $0.name == BlockFile.stackTotals }) else { return nil }
        let t = try await table(BlockFile.stackTotals)
        let groups = Self.rowGroups(of: t, time: nil, series: series)
        return try await BlockingWork.shared.run(bytes: t.byteCount) {
            let ids = try Self.int32s(t, "series_id", groups)
            let stacks = try Self.int32s(t, "stack_id", groups)
            let totals = try Self.int64s(t, "total", groups)
            guard stacks.count == ids.count, totals.count == ids.count else {
                throw BlockError("stack_totals.parquet: columns of \(ids.count), \(stacks.count) and \(totals.count) rows")
            }
            let selected = Self.seriesMask(series)
            var out = (stackIDs: [Int32](), values: [Int64]())
            for i in ids.indices where ids[i] >= 0 && Int(ids[i]) < selected.count && selected[Int(ids[i])] {
                out.stackIDs.append(stacks[i])
                out.values.append(totals[i])
            }
            return out
        }
    }

    /// A lookup table of the selected block-local series ids: an index per row instead of a hash.
    static func seriesMask(_ series: Set<Int32>) -> [Bool] {
        var selected = [Bool](repeating: false, count: Int(series.max() ?? -1) + 1)
        for id in series where id >= 0 { selected[Int(id)] = true }
        return selected
    }

    public func symbols() async throws -> BlockSymbols {
        async let stacks = table(BlockFile.stacks, keep: false)
        async let frames = table(BlockFile.frames, keep: false)
        async let functions = table(BlockFile.functions, keep: false)
        let (st, fr, fn) = try await (stacks, frames, functions)
        return try await BlockingWork.shared.run(bytes: st.byteCount + fr.byteCount + fn.byteCount) {
            try Self.decodeSymbols(stacks: st, frames: fr, functions: fn)
        }
    }

    static func decodeSymbols(stacks st: ParquetFileReader, frames fr: ParquetFileReader, functions fn: ParquetFileReader) throws
        -> BlockSymbols
    {
        let nodeIDs = try Self.int32s(st, "node_id")
        for (i, id) in nodeIDs.enumerated() where Int(id) != i { throw BlockError("stacks.parquet: node_id \(id) at row \(i)") }
        let parents = (try st.readColumn(named: "parent_id").int32Values ?? []).map { $0 ?? -1 }
        let frameIDs = try Self.int32s(fr, "frame_id")
        for (i, id) in frameIDs.enumerated() where Int(id) != i { throw BlockError("frames.parquet: frame_id \(id) at row \(i)") }
        let fnIDs = try Self.int32s(fn, "function_id")
        for (i, id) in fnIDs.enumerated() where Int(id) != i { throw BlockError("functions.parquet: function_id \(id) at row \(i)") }
        let names = try Self.strings(fn, "name")
        let sys = try Self.strings(fn, "system_name")
        let files = try Self.strings(fn, "filename")
        let starts = try Self.int64s(fn, "start_line")
        return BlockSymbols(
            nodeParents: parents, nodeFrames: try Self.int32s(st, "frame_id"),
            frameFunctions: try Self.int32s(fr, "function_id"), frameLines: try Self.int64s(fr, "line"),
            functions: names.indices.map { FunctionKey(name: names[$0], systemName: sys[$0], filename: files[$0], startLine: starts[$0]) })
    }

    /// The whole block as one batch (stacks as leaf-first runs), for compaction and checks.
    public func asBatch() async throws -> SampleBatch {
        let series = try await series()
        let samples = try await samples()
        let symbols = try await symbols()
        let tenant = meta.tenant
        // A pass over every sample of the block: off the cooperative pool, as its decoding is.
        return try await BlockingWork.shared.run(bytes: samples.count * 32) {
            try Self.batch(tenant: tenant, series: series, samples: samples, symbols: symbols)
        }
    }

    /// The batch of `asBatch`, built from the decoded tables.
    static func batch(tenant: String, series: [BlockSeries], samples: SampleColumns, symbols: BlockSymbols) throws -> SampleBatch {
        var batch = SampleBatch(tenant: tenant, provenance: Provenance(topic: "", partition: -1, offset: -1))
        // Series and stack ids are small block-local integers: tables, not hashes, map them per sample.
        var seriesIndex = [UInt32](repeating: .max, count: Int(series.map(\.id).max() ?? -1) + 1)
        for s in series where s.id >= 0 {
            seriesIndex[Int(s.id)] = UInt32(batch.series.count)
            batch.series.append(BatchSeries(labels: s.labels, profileType: s.profileType))
            batch.seriesPeriods.append(s.period)
        }
        var strings: StringTable = [""]
        var stringIndex = ["": UInt32(0)]
        func intern(_ s: String) -> UInt32 {
            if let i = stringIndex[s] { return i }
            strings.append(s)
            stringIndex[s] = UInt32(strings.count - 1)
            return UInt32(strings.count - 1)
        }
        let fns = symbols.functions.map {
            FunctionSymbol(name: intern($0.name), systemName: intern($0.systemName), filename: intern($0.filename), startLine: $0.startLine)
        }
        let frames = symbols.frameFunctions.indices.map {
            FrameSymbol(function: UInt32(symbols.frameFunctions[$0]), line: symbols.frameLines[$0])
        }
        batch.symbols = SymbolTable(strings: strings, functions: fns, frames: frames)
        var stackIndex = [UInt32](repeating: .max, count: symbols.nodeParents.count)
        batch.sampleSeries.reserveCapacity(samples.count)
        batch.sampleStacks.reserveCapacity(samples.count)
        batch.sampleValues.reserveCapacity(samples.count)
        batch.sampleTimes.reserveCapacity(samples.count)
        batch.sampleSpans.reserveCapacity(samples.count)
        for i in 0..<samples.count {
            let sid = samples.stackIDs[i]
            guard sid >= 0, Int(sid) < stackIndex.count else { throw BlockError("sample \(i): stack \(sid) out of range") }
            if stackIndex[Int(sid)] == .max {
                stackIndex[Int(sid)] = UInt32(batch.stacks.count)
                batch.stacks.append(try symbols.frames(ofStack: sid).map { UInt32($0) })
            }
            let id = samples.seriesIDs[i]
            guard id >= 0, Int(id) < seriesIndex.count, seriesIndex[Int(id)] != .max else {
                throw BlockError("sample references unknown series \(id)")
            }
            batch.sampleSeries.append(seriesIndex[Int(id)])
            batch.sampleStacks.append(stackIndex[Int(sid)])
            batch.sampleValues.append(samples.values[i])
            batch.sampleTimes.append(samples.timeNanos[i])
            batch.sampleSpans.append(samples.spanIDs[i])
        }
        return batch
    }

    /// Checks every file's size and sha256, that every table parses, and that every reference resolves:
    /// sample → series and stack node, node → parent and frame, frame → function. Returns the problems found.
    public func verify() async -> [String] {
        var problems: [String] = []
        for f in meta.files {
            do {
                let bytes = try await fileBytes(f.name, verify: true)
                let t = try ParquetFileReader(bytes: bytes)
                if let rows = f.rows, rows != t.numRows { problems.append("\(f.name): \(t.numRows) rows, meta.json says \(rows)") }
                tables[f.name] = t
            } catch {
                problems.append("\(f.name): \(error)")
            }
        }
        for name in BlockFile.requiredTables where !meta.files.contains(where: { $0.name == name }) {
            problems.append("\(name) is missing from meta.json")
        }
        guard problems.isEmpty else { return problems }
        do {
            let series = try await series()
            let seriesIDs = Set(series.map(\.id))
            let samples = try await samples()
            let symbols = try await symbols()
            let nodes = symbols.nodeParents.count
            let frames = symbols.frameFunctions.count
            let fns = symbols.functions.count
            for i in 0..<nodes {
                let p = symbols.nodeParents[i]
                if p >= Int32(i) {
                    problems.append("stack node \(i): parent \(p) not older")
                    break
                }
                let f = symbols.nodeFrames[i]
                if f < 0 || Int(f) >= frames {
                    problems.append("stack node \(i): frame \(f) out of range")
                    break
                }
            }
            for (i, f) in symbols.frameFunctions.enumerated() where f < 0 || Int(f) >= fns {
                problems.append("frame \(i): function \(f) out of range")
                break
            }
            var totals: [String: BlockMeta.ProfileTypeStats] = [:]
            // Profiles per type as the writer counts them: runs of one (series, time) in file order.
            let countsProfiles = meta.stats.profileTypes.values.contains { $0.profiles != nil }
            for i in 0..<samples.count {
                if !seriesIDs.contains(samples.seriesIDs[i]) {
                    problems.append("sample \(i): unknown series \(samples.seriesIDs[i])")
                    break
                }
                let s = samples.stackIDs[i]
                if s < 0 || Int(s) >= nodes {
                    problems.append("sample \(i): stack \(s) out of range")
                    break
                }
                let pt = samples.profileTypes[Int(samples.profileTypeIndex[i])]
                totals[pt, default: .init(samples: 0, total: 0)].samples += 1
                totals[pt, default: .init(samples: 0, total: 0)].total &+= samples.values[i]
                if countsProfiles {
                    let newProfile =
                        i == 0 || samples.seriesIDs[i] != samples.seriesIDs[i - 1] || samples.timeNanos[i] != samples.timeNanos[i - 1]
                    totals[pt]!.profiles = (totals[pt]!.profiles ?? 0) + (newProfile ? 1 : 0)
                }
            }
            if totals != meta.stats.profileTypes { problems.append("per-profile-type totals differ from meta.json: \(totals)") }
            if Int64(samples.count) != meta.stats.samples {
                problems.append("\(samples.count) samples, meta.json says \(meta.stats.samples)")
            }
            if meta.files.contains(where: { $0.name == BlockFile.stackTotals }) {
                struct SeriesStack: Hashable {
                    var series: Int32
                    var stack: Int32
                }
                var expected: [SeriesStack: Int64] = [:]
                for i in 0..<samples.count {
                    expected[SeriesStack(series: samples.seriesIDs[i], stack: samples.stackIDs[i]), default: 0] &+= samples.values[i]
                }
                let t = try await table(BlockFile.stackTotals)
                let ids = try Self.int32s(t, "series_id")
                let stacks = try Self.int32s(t, "stack_id")
                let totals = try Self.int64s(t, "total")
                var stored: [SeriesStack: Int64] = [:]
                for i in ids.indices { stored[SeriesStack(series: ids[i], stack: stacks[i]), default: 0] &+= totals[i] }
                if ids.count != expected.count || stored != expected {
                    problems.append(
                        "stack_totals.parquet: \(ids.count) rows differ from the \(expected.count) (series, stack) sums of the samples")
                }
            }
            if meta.files.contains(where: { $0.name == BlockFile.profiles }) {
                var expected = ProfileTotals()
                for i in 0..<samples.count {
                    expected.add(series: samples.seriesIDs[i], time: samples.timeNanos[i], value: samples.values[i])
                }
                let stored = try await profileTotals(time: Int64.min...Int64.max, series: seriesIDs)
                if meta.resolutionMillis != nil { expected.profiles = stored.profiles }  // a bucket's profiles are not in its samples
                if stored != expected {
                    problems.append("profiles.parquet: \(stored.count) profiles differ from the \(expected.count) the samples sum to")
                }
            }
        } catch {
            problems.append("\(error)")
        }
        return problems
    }

    // MARK: Column helpers

    static func int32s(_ t: ParquetFileReader, _ name: String, _ groups: [Int]? = nil) throws -> [Int32] {
        let c = try t.readColumn(named: name, rowGroups: groups)
        guard case .int32(let v) = c.values, c.validity == nil else { throw BlockError("column \(name): expected required int32") }
        return v
    }

    static func int64s(_ t: ParquetFileReader, _ name: String, _ groups: [Int]? = nil) throws -> [Int64] {
        let c = try t.readColumn(named: name, rowGroups: groups)
        guard case .int64(let v) = c.values, c.validity == nil else { throw BlockError("column \(name): expected required int64") }
        return v
    }

    /// The samples' span ids, 0 where a sample has none (null).
    static func spanIDs(_ t: ParquetFileReader, _ groups: [Int]) throws -> [UInt64] {
        let c = try t.readColumn(named: "span_id", rowGroups: groups)
        guard let spans = c.int64Values(nullAs: 0) else { throw BlockError("column span_id: expected optional int64") }
        return spans.map { UInt64(bitPattern: $0) }
    }

    static func strings(_ t: ParquetFileReader, _ name: String, _ groups: [Int]? = nil) throws -> [String] {
        let c = try t.readColumn(named: name, rowGroups: groups)
        guard case .byteArrays(let v) = c.values, c.validity == nil else { throw BlockError("column \(name): expected required string") }
        return v.strings
    }
}
