import Blocks
import Foundation
import KilnFoundation
import Logging
import ObjectStore
import ProfileModel

/// What a query selects: a tenant's samples of one profile type whose series match a selector, within a
/// time range (Unix nanoseconds, inclusive).
public struct Selection: Sendable {
    public var tenant: String
    public var profileType: String
    public var selector: LabelSelector
    public var time: ClosedRange<Int64>
    /// Only the samples of these spans (span profiles); nil selects every sample.
    public var spans: Set<UInt64>?
    /// Only these profiles (`profile_id_selector`); nil selects every profile.
    public var profiles: ProfileSelection?

    public init(
        tenant: String, profileType: String, selector: LabelSelector, time: ClosedRange<Int64>, spans: Set<UInt64>? = nil,
        profiles: ProfileSelection? = nil
    ) {
        self.tenant = tenant
        self.profileType = profileType
        self.selector = selector
        self.time = time
        self.spans = spans
        self.profiles = profiles
    }

    /// Selects some samples only (spans or profiles), so whole-block sums and trees do not answer it.
    var selectsPartOfProfiles: Bool { spans != nil || profiles != nil }

    /// The range to read: with profile IDs only the instants they name; nil when none of them is in range.
    var readRange: ClosedRange<Int64>? {
        guard let named = profiles?.timeRange else { return time }
        guard named.overlaps(time) else { return nil }
        return max(named.lowerBound, time.lowerBound)...min(named.upperBound, time.upperBound)
    }
}

extension Selection {
    /// Span IDs as Pyroscope and the OpenTelemetry SDKs write them (a `span_id` sample label): 16 hex
    /// digits. An empty list selects every sample (nil).
    public static func spanIDs(_ texts: [String]) throws(QueryError) -> Set<UInt64>? {
        guard !texts.isEmpty else { return nil }
        var out = Set<UInt64>()
        for text in texts {
            guard (1...16).contains(text.utf8.count), let id = UInt64(text, radix: 16) else {
                throw QueryError(.invalidArgument, "span_selector \"\(text.prefix(64))\" is not a span ID (16 hex digits)")
            }
            out.insert(id)
        }
        return out
    }
}

public struct QueryEngineOptions: Sendable {
    /// How long a tenant's block listing is reused before the store is listed again.
    public var listingTTL: Duration = .seconds(2)
    /// Blocks kept open (their Parquet bytes, series and symbols), least recently used evicted first.
    public var openBlocks: Int = 512
    /// The longest time range a query may span.
    public var maxQueryRange: Duration = .seconds(31 * 24 * 3600)
    /// Whole-block trees kept for reuse, least recently used evicted first.
    public var cachedBlockTrees: Int = 256
    /// Blocks decoded at once (CPU-bound: a core each).
    public var parallelism: Int = max(2, ProcessInfo.processInfo.activeProcessorCount)
    /// Blocks opened (their series and symbols) and metas listed at once: bound by the store's latency, not
    /// by cores.
    public var fetchParallelism: Int = BlockIndex.defaultFetchParallelism

    public init() {}
}

/// Reads what Kiln stored: lists a tenant's live blocks (compacted blocks supersede their sources), keeps
/// blocks' series and symbol tables open, and answers the questions the query API asks. Only blocks whose
/// time range overlaps the query, that hold the profile type, and that have a matching series are read;
/// within a block, row-group statistics skip the rest.
public actor QueryEngine {
    public nonisolated let store: any ObjectStore
    public nonisolated let options: QueryEngineOptions
    let logger: Logger

    private var listings: [String: CachedListing] = [:]
    private var open: [ULID: OpenBlock] = [:]
    private var useClock: UInt64 = 0
    private var names = NameTable()
    private var frameTable = FrameTable()
    /// Merged trees of whole blocks, by (block, profile type, series ids): a query whose range covers a block
    /// reuses its tree instead of decompressing its samples again (dashboards re-ask overlapping ranges).
    private var blockTrees: [BlockTreeKey: (tree: StackTree, lastUse: UInt64)] = [:]

    struct BlockTreeKey: Hashable {
        var block: ULID
        var profileType: String
        var series: Set<Int32>
        var labels: StackLabels
    }

    /// What the nodes of a merged tree stand for.
    enum StackLabels: Hashable, Sendable {
        /// Function names (`nameTable`): what flame graphs, tables and diffs show.
        case functions
        /// Frames, a function and a line (`frames`): what pprof output carries.
        case frames
    }

    struct CachedListing {
        var metas: [ULID: BlockMeta]
        var live: [BlockMeta]
        var fetchedAt: ContinuousClock.Instant
    }

    public init(store: any ObjectStore, options: QueryEngineOptions = QueryEngineOptions(), logger: Logger = Logger(label: "kiln.query")) {
        self.store = store
        self.options = options
        self.logger = logger
    }

    // MARK: block listing and cache

    /// The tenant's live blocks overlapping `time` (all when nil).
    public func liveBlocks(tenant: String, time: ClosedRange<Int64>? = nil) async throws -> [BlockMeta] {
        let now = ContinuousClock.now
        var cached = listings[tenant]
        if cached == nil || now - cached!.fetchedAt > options.listingTTL {
            let known = Set(cached?.metas.keys ?? [:].keys)
            let listing = try await BlockIndex.list(store, tenant: tenant, skipping: known, fetchParallelism: options.fetchParallelism)
            var metas: [ULID: BlockMeta] = [:]
            // Keep known metas that still exist (their folders are listed); add the new ones.
            for ulid in listing.keys.keys { if let m = cached?.metas[ulid] { metas[ulid] = m } }
            for m in listing.metas { metas[m.ulid] = m }
            let live = BlockIndex.live(Array(metas.values), deletionMarks: listing.deletionMarks)
            cached = CachedListing(metas: metas, live: live, fetchedAt: now)
            listings[tenant] = cached
            for ulid in open.keys where metas[ulid] == nil && open[ulid]?.block.meta.tenant == tenant { open[ulid] = nil }
        }
        let live = cached!.live
        guard let time else { return live }
        return live.filter { $0.minTime <= time.upperBound && $0.maxTime >= time.lowerBound }
    }

    struct OpenBlock {
        var block: LoadedBlock
        var lastUse: UInt64
        var nodeNames: BlockNodeNames?
        var nodeFrames: BlockNodeNames?
    }

    /// The blocks of `metas`, in order: open ones from the cache, the others read at once (their series).
    func loaded(_ metas: [BlockMeta]) async throws -> [LoadedBlock] {
        let store = store
        var read: [ULID: LoadedBlock] = [:]
        try await concurrently(metas.filter { open[$0.ulid] == nil }, parallelism: options.fetchParallelism) { meta in
            try await Self.read(meta, store: store)
        } merge: { meta, block in
            read[meta.ulid] = block
        }
        var blocks: [LoadedBlock] = []
        blocks.reserveCapacity(metas.count)
        for meta in metas {
            if open[meta.ulid] == nil {
                // Read now, or again when another query evicted it while this one was reading.
                var block = read[meta.ulid]
                if block == nil { block = try await Self.read(meta, store: store) }
                open[meta.ulid] = OpenBlock(block: block!, lastUse: 0, nodeNames: nil, nodeFrames: nil)
            }
            useClock += 1
            open[meta.ulid]!.lastUse = useClock
            blocks.append(open[meta.ulid]!.block)
        }
        if open.count > options.openBlocks {
            for (ulid, _) in open.sorted(by: { $0.value.lastUse < $1.value.lastUse }).prefix(open.count - options.openBlocks) {
                open[ulid] = nil
            }
        }
        return blocks
    }

    private static func read(_ meta: BlockMeta, store: any ObjectStore) async throws -> LoadedBlock {
        let reader = BlockReader(store: store, meta: meta)
        return LoadedBlock(meta: meta, reader: reader, series: try await reader.series())
    }

    /// What each block's stack nodes stand for (`labels`), decoded once per block; the symbols of the blocks
    /// not decoded yet are read at once.
    func nodes(_ blocks: [LoadedBlock], labels: StackLabels) async throws -> [ULID: BlockNodeNames] {
        var out: [ULID: BlockNodeNames] = [:]
        var missing: [ULID: LoadedBlock] = [:]
        for block in blocks {
            let entry = open[block.meta.ulid]
            if let cached = labels == .functions ? entry?.nodeNames : entry?.nodeFrames {
                out[block.meta.ulid] = cached
            } else {
                missing[block.meta.ulid] = block
            }
        }
        try await concurrently(Array(missing.values), parallelism: options.fetchParallelism) { block in
            try await block.reader.symbols()
        } merge: { block, symbols in
            let ulid = block.meta.ulid
            switch labels {
            case .functions:
                let names = try nodeNames(ulid, symbols)
                open[ulid]?.nodeNames = names
                out[ulid] = names
            case .frames:
                let frames = try nodeFrames(ulid, symbols)
                open[ulid]?.nodeFrames = frames
                out[ulid] = frames
            }
        }
        return out
    }

    /// Function-name ids (`names`) of every stack node of a block.
    private func nodeNames(_ block: ULID, _ symbols: BlockSymbols) throws -> BlockNodeNames {
        let functionNames = symbols.functions.map { names.intern($0.name) }
        var nodeNames = [Int32](repeating: 0, count: symbols.nodeParents.count)
        for n in nodeNames.indices {
            let frame = Int(symbols.nodeFrames[n])
            guard frame >= 0, frame < symbols.frameFunctions.count else {
                throw QueryError(.unavailable, "block \(block): stack node \(n) references missing frame \(frame)")
            }
            let function = Int(symbols.frameFunctions[frame])
            guard function >= 0, function < functionNames.count else {
                throw QueryError(.unavailable, "block \(block): frame \(frame) references missing function \(function)")
            }
            nodeNames[n] = functionNames[function]
        }
        return BlockNodeNames(parents: symbols.nodeParents, names: nodeNames)
    }

    /// Frame ids (`frames`) of every stack node of a block.
    private func nodeFrames(_ block: ULID, _ symbols: BlockSymbols) throws -> BlockNodeNames {
        var frameIDs = [Int32](repeating: -1, count: symbols.frameFunctions.count)
        var nodeFrames = [Int32](repeating: 0, count: symbols.nodeParents.count)
        for n in nodeFrames.indices {
            let frame = Int(symbols.nodeFrames[n])
            guard frame >= 0, frame < frameIDs.count else {
                throw QueryError(.unavailable, "block \(block): stack node \(n) references missing frame \(frame)")
            }
            if frameIDs[frame] < 0 {
                let function = Int(symbols.frameFunctions[frame])
                guard function >= 0, function < symbols.functions.count else {
                    throw QueryError(.unavailable, "block \(block): frame \(frame) references missing function \(function)")
                }
                frameIDs[frame] = frameTable.intern(StackFrame(function: symbols.functions[function], line: symbols.frameLines[frame]))
            }
            nodeFrames[n] = frameIDs[frame]
        }
        return BlockNodeNames(parents: symbols.nodeParents, names: nodeFrames)
    }

    public var nameTable: NameTable { names }

    // MARK: selection

    /// The blocks and series ids a selection reads. A question about individual profiles (`feature`: a
    /// heatmap, a regression report; a span selection always is one) is refused when the range reaches
    /// downsampled blocks, which keep sums per bucket instead.
    func plan(_ selection: Selection, individualProfiles feature: String? = nil) async throws -> [(LoadedBlock, Set<Int32>)] {
        try checkRange(selection.time)
        guard let time = selection.readRange else { return [] }
        var out: [(LoadedBlock, Set<Int32>)] = []
        let metas = try await liveBlocks(tenant: selection.tenant, time: time).filter {
            $0.stats.profileTypes[selection.profileType] != nil
        }
        // Compared parsed: a series' `profileType.id` is built anew each time it is read.
        let profileType = ProfileTypeID(parsing: selection.profileType)
        for block in try await loaded(metas) {
            let ids = Set(
                block.series.lazy.filter {
                    $0.profileType == profileType && selection.selector.matches($0.labels)
                }.map(\.id))
            if !ids.isEmpty { out.append((block, ids)) }
        }
        let selector = selection.spans != nil ? "span_selector" : (selection.profiles != nil ? "profile_id_selector" : nil)
        guard let feature = feature ?? selector else { return out }
        let coarse = out.map(\.0.meta).filter { $0.resolutionMillis != nil }
        if let newest = coarse.map(\.maxTime).max(), let resolution = coarse.compactMap(\.resolutionMillis).min() {
            let until = Date(timeIntervalSince1970: Double(newest) / 1e9).formatted(.iso8601)
            throw QueryError(
                .invalidArgument,
                "\(feature) needs individual profiles; this range reaches data kept only as \(resolution / 60_000)-minute sums "
                    + "(downsampled, up to \(until)): choose a range after that")
        }
        return out
    }

    func checkRange(_ time: ClosedRange<Int64>) throws(QueryError) {
        let limit = options.maxQueryRange.components.seconds * 1_000_000_000
        if time.upperBound - time.lowerBound > limit {
            throw QueryError(
                .invalidArgument,
                "the query time range is \((time.upperBound - time.lowerBound) / 3_600_000_000_000) h; the limit is \(limit / 3_600_000_000_000) h"
            )
        }
    }

    /// Stacks of the selection merged by function name. The tree's name ids index `nameTable`.
    public func mergeStacks(_ selection: Selection) async throws -> (StackTree, NameTable) {
        let tree = try await mergeStacks([selection], sides: 1, labels: .functions)
        return (tree, names)
    }

    /// Stacks of the selection merged frame by frame (function and line), for pprof output: the tree's
    /// labels index the returned `FrameTable`.
    public func mergeFrames(_ selection: Selection) async throws -> (StackTree, FrameTable) {
        let tree = try await mergeStacks([selection], sides: 1, labels: .frames)
        return (tree, frameTable)
    }

    /// The sampling period of what `selection` merges: the largest its series were sent with (as pprof's
    /// merge keeps the largest), 0 when none is known.
    public func period(_ selection: Selection) async throws -> Int64 {
        var period: Int64 = 0
        for (block, matching) in try await plan(selection) {
            for s in block.series where matching.contains(s.id) { period = max(period, s.period) }
        }
        return period
    }

    /// Two selections merged into one tree with a left and a right side, for a diff.
    public func diff(left: Selection, right: Selection) async throws -> (StackTree, NameTable) {
        let tree = try await mergeStacks([left, right], sides: 2, labels: .functions)
        return (tree, names)
    }

    private func mergeStacks(_ selections: [Selection], sides: Int, labels: StackLabels) async throws -> StackTree {
        struct Job: Sendable {
            var side: Int
            var block: LoadedBlock
            var series: Set<Int32>
            var time: ClosedRange<Int64>
            var spans: Set<UInt64>?
            var profiles: Set<BlockProfileKey>?
            var cacheKey: BlockTreeKey?
            /// Set once the jobs are known: a block whose tree is cached needs no symbols.
            var nodes = BlockNodeNames(parents: [], names: [])
        }
        var tree = StackTree(sides: sides)
        var jobs: [Job] = []
        for (side, selection) in selections.enumerated() {
            for (block, matching) in try await plan(selection) {
                var series = matching
                let profiles = selection.profiles.map { profiles in
                    profiles.blockProfiles(series: block.labels(of: matching))
                }
                if let profiles {
                    series = Set(profiles.map(\.series))
                    if series.isEmpty { continue }
                }
                // A whole block's tree is reused only for the whole block's samples, not a span or profile selection.
                let covered =
                    !selection.selectsPartOfProfiles && selection.time.contains(block.meta.minTime)
                    && selection.time.contains(block.meta.maxTime)
                let key =
                    covered ? BlockTreeKey(block: block.meta.ulid, profileType: selection.profileType, series: series, labels: labels) : nil
                if let key, let cached = blockTrees[key] {
                    useClock += 1
                    blockTrees[key]?.lastUse = useClock
                    tree.merge(cached.tree, into: side)
                    continue
                }
                jobs.append(
                    Job(
                        side: side, block: block, series: series, time: selection.readRange ?? selection.time, spans: selection.spans,
                        profiles: profiles, cacheKey: key))
            }
        }
        let nodes = try await nodes(jobs.map(\.block), labels: labels)
        for i in jobs.indices { jobs[i].nodes = nodes[jobs[i].block.meta.ulid]! }
        var finished: [(BlockTreeKey, StackTree)] = []
        try await concurrently(jobs, parallelism: options.parallelism) { job in
            // A range covering the block reads its per-stack sums, a row per (series, stack), not its samples.
            if job.cacheKey != nil, let totals = try await job.block.reader.stackTotals(series: job.series) {
                return try Self.tree(stacks: totals.stackIDs, values: totals.values, nodes: job.nodes, blockID: job.block.meta.ulid)
            }
            let samples = try await job.block.reader.stackSamples(
                time: job.time, series: job.series, spans: job.spans, profiles: job.profiles)
            return try Self.tree(stacks: samples.stackIDs, values: samples.values, nodes: job.nodes, blockID: job.block.meta.ulid)
        } merge: { job, partial in
            tree.merge(partial, into: job.side)
            if let key = job.cacheKey { finished.append((key, partial)) }
        }
        for (key, partial) in finished {
            useClock += 1
            blockTrees[key] = (partial, useClock)
        }
        while blockTrees.count > options.cachedBlockTrees,
            let oldest = blockTrees.min(by: { $0.value.lastUse < $1.value.lastUse })?.key
        {
            blockTrees[oldest] = nil
        }
        return tree
    }

    /// One block's (stack, value) pairs as a name tree: values summed per stack node first, then each
    /// distinct stack resolved once, sharing the path above it with the stacks already resolved.
    static func tree(stacks: [Int32], values: [Int64], nodes: BlockNodeNames, blockID: ULID) throws -> StackTree {
        var perStack: [Int32: Int64] = [:]
        perStack.reserveCapacity(min(stacks.count, nodes.parents.count))
        for i in stacks.indices { perStack[stacks[i], default: 0] += values[i] }
        var tree = StackTree()
        var mapped = [Int32](repeating: -1, count: nodes.parents.count)
        var path: [Int32] = []
        for (stack, value) in perStack where value != 0 {
            guard stack >= 0, Int(stack) < nodes.parents.count else {
                throw QueryError(.unavailable, "block \(blockID): a sample references missing stack \(stack)")
            }
            path.removeAll(keepingCapacity: true)
            var n = stack
            while n >= 0 && mapped[Int(n)] < 0 {
                path.append(n)
                n = nodes.parents[Int(n)]
            }
            var parent: Int32 = n >= 0 ? mapped[Int(n)] : 0
            for node in path.reversed() {
                parent = tree.child(of: parent, name: nodes.names[Int(node)])
                mapped[Int(node)] = parent
            }
            tree.addSelf(value, to: mapped[Int(stack)])
        }
        return tree
    }

    // MARK: time series

    public enum Aggregation: Sendable { case sum, average }

    public struct Series: Sendable, Equatable {
        public var labels: LabelSet
        /// (timestamp in ms, value), ascending.
        public var points: [(Int64, Double)]
        /// The largest individual profile of a point, by the point's timestamp (when asked for).
        public var exemplars: [Int64: Exemplar] = [:]

        public static func == (a: Series, b: Series) -> Bool {
            a.labels == b.labels && a.points.elementsEqual(b.points, by: { $0 == $1 }) && a.exemplars == b.exemplars
        }
    }

    /// One stored profile (or span, in a span heatmap) standing for a point.
    public struct Exemplar: Sendable, Equatable {
        /// The profile; for a span, the earliest profile holding its samples.
        public var id: ProfileID
        public var spanID: UInt64?
        /// The profile's own time, ms.
        public var timestampMillis: Int64
        /// The profile's total.
        public var value: Int64
        /// The profile's series labels that the point's group does not already name.
        public var labels: LabelSet

        init(id: ProfileID, spanID: UInt64? = nil, value: Int64, seriesLabels: LabelSet, groupBy: [String]) {
            var labels = seriesLabels
            for name in groupBy { labels[name] = nil }
            (self.id, self.spanID, self.timestampMillis, self.value, self.labels) = (id, spanID, id.timeNanos / 1_000_000, value, labels)
        }
    }

    /// Values per step (ms) for each group of series. `sum` adds every sample in a step; `average` divides
    /// by the number of profiles (series × timestamp) that step holds. `limit` keeps the series with the
    /// largest totals.
    /// Which instant a point stands for.
    public enum PointAlignment: Sendable {
        /// The point at T holds (T−step, T], the first at the range's start (Pyroscope's SelectSeries).
        case stepEnd
        /// The point at T holds [T, T+step) (the legacy render timeline's buckets).
        case stepStart
    }

    /// With `exemplars`, each point also names its largest individual profile (Pyroscope keeps one per
    /// point too); downsampled blocks hold sums per bucket, not profiles, so their points have none.
    public func timeSeries(
        _ selection: Selection, stepMillis: Int64, groupBy: [String], aggregation: Aggregation,
        limit: Int?, alignment: PointAlignment = .stepEnd, exemplars: Bool = false
    ) async throws -> [Series] {
        let range = selection.time
        let steps = try TimeSteps(range: range, stepMillis: stepMillis, alignment: alignment)
        struct Key: Hashable {
            var group: Int
            var bucket: Int64
        }
        var groups: [LabelSet] = []
        var groupIndex: [LabelSet: Int] = [:]
        var sums: [Key: Double] = [:]
        var profiles: [Key: Int] = [:]
        var largest: [Key: (value: Int64, labels: LabelSet, timeNanos: Int64)] = [:]
        for (block, ids) in try await plan(selection) {
            let seriesGroup = Self.groups(of: block, series: ids, by: groupBy, groups: &groups, index: &groupIndex)
            let seriesLabels = exemplars && block.meta.resolutionMillis == nil ? block.labels(of: ids) : [:]
            // A row per profile (a series at one time); a profile lives in one block.
            let totals = try await block.reader.profileTotals(time: range, series: ids, spans: selection.spans)
            for i in 0..<totals.count {
                guard let g = seriesGroup[totals.seriesIDs[i]] else { continue }
                let key = Key(group: g, bucket: steps.point(ofNanos: totals.timeNanos[i]))
                sums[key, default: 0] += Double(totals.totals[i])
                if aggregation == .average { profiles[key, default: 0] += Int(totals.profiles[i]) }
                // The largest profile; of equal ones the earliest, so the answer does not depend on block order.
                if let labels = seriesLabels[totals.seriesIDs[i]] {
                    let (value, time) = (totals.totals[i], totals.timeNanos[i])
                    if let best = largest[key], best.value > value || (best.value == value && best.timeNanos <= time) { continue }
                    largest[key] = (value, labels, time)
                }
            }
        }
        var out = groups.map { Series(labels: $0, points: []) }
        for (key, sum) in sums {
            let value = aggregation == .average ? sum / Double(max(profiles[key] ?? 1, 1)) : sum
            out[key.group].points.append((key.bucket, value))
        }
        for (key, profile) in largest {
            out[key.group].exemplars[key.bucket] = Exemplar(
                id: ProfileID(timeNanos: profile.timeNanos, labels: profile.labels), value: profile.value, seriesLabels: profile.labels,
                groupBy: groupBy)
        }
        for i in out.indices { out[i].points.sort { $0.0 < $1.0 } }
        out.removeAll { $0.points.isEmpty }
        if let limit, limit > 0, out.count > limit {
            out.sort { $0.points.reduce(0) { $0 + $1.1 } > $1.points.reduce(0) { $0 + $1.1 } }
            out = Array(out.prefix(limit))
        }
        out.sort { $0.labels.description < $1.labels.description }
        return out
    }

    /// The group (by the `groupBy` labels' values) of each selected series of a block, new groups appended.
    static func groups(
        of block: LoadedBlock, series ids: Set<Int32>, by groupBy: [String], groups: inout [LabelSet], index: inout [LabelSet: Int]
    ) -> [Int32: Int] {
        var seriesGroup: [Int32: Int] = [:]
        for s in block.series where ids.contains(s.id) {
            var labels = LabelSet()
            for name in groupBy { if let v = s.labels[name] { labels[name] = v } }
            if let g = index[labels] {
                seriesGroup[s.id] = g
            } else {
                index[labels] = groups.count
                seriesGroup[s.id] = groups.count
                groups.append(labels)
            }
        }
        return seriesGroup
    }

    // MARK: heatmap

    public struct Heatmap: Sendable, Equatable {
        public struct Slot: Sendable, Equatable {
            /// The slot's right edge (ms): it holds profiles in (timestamp − step, timestamp].
            public var timestamp: Int64
            /// Profiles per value bucket, bucket i starting at `Heatmap.bucketStarts[i]`.
            public var counts: [Int32]
            /// When asked for: the largest profile of each non-empty bucket, in bucket order.
            public var exemplars: [Exemplar] = []
        }

        public struct Series: Sendable, Equatable {
            public var labels: LabelSet
            public var slots: [Slot]
        }

        /// Lower bounds of the value buckets, evenly spaced from the smallest to the largest profile total
        /// over every series, so every series is drawn on the same axis.
        public var bucketStarts: [Double]
        public var series: [Series]
    }

    /// Each individual profile's total (a series' samples at one time) — or with `spans`, each span's total
    /// (its samples, in every profile they fall in, at the time of the first) — counted into a time slot and
    /// a value bucket of its group: how the cost of individual profiles or requests spreads over time.
    /// `limit` keeps the groups with the largest totals; `exemplars` names each cell's largest, as Pyroscope
    /// does.
    public func heatmap(
        _ selection: Selection, stepMillis: Int64, groupBy: [String], buckets: Int = 20, limit: Int?, spans: Bool = false,
        exemplars: Bool = false
    ) async throws -> Heatmap {
        let range = selection.time
        let steps = try TimeSteps(range: range, stepMillis: stepMillis, alignment: .stepEnd)
        enum Subject: Hashable {
            case profile(ProfileID)
            case span(UInt64)
        }
        struct Profile: Hashable {
            var group: Int
            var subject: Subject
        }
        var groups: [LabelSet] = []
        var groupIndex: [LabelSet: Int] = [:]
        // Per point: its total, its series' labels, and the (earliest) profile it lies in, whose time places it.
        var totals: [Profile: (value: Int64, labels: LabelSet, id: ProfileID)] = [:]
        for (block, ids) in try await plan(selection, individualProfiles: "SelectHeatmap") {
            let seriesGroup = Self.groups(of: block, series: ids, by: groupBy, groups: &groups, index: &groupIndex)
            let seriesLabels = block.labels(of: ids).mapValues { ($0, ProfileID.seriesHash($0)) }
            func add(series: Int32, time: Int64, span: UInt64?, value: Int64) {
                guard let g = seriesGroup[series], let (labels, hash) = seriesLabels[series] else { return }
                let id = ProfileID(timeNanos: time, seriesHash: hash)
                let key = Profile(group: g, subject: span.map { .span($0) } ?? .profile(id))
                if var entry = totals[key] {
                    entry.value += value
                    if time < entry.id.timeNanos { (entry.id, entry.labels) = (id, labels) }
                    totals[key] = entry
                } else {
                    totals[key] = (value, labels, id)
                }
            }
            if spans {
                for t in try await block.reader.spanTotals(time: range, series: ids) {
                    add(series: t.key.series, time: t.key.timeNanos, span: t.key.span, value: t.total)
                }
            } else {
                let profiles = try await block.reader.profileTotals(time: range, series: ids, spans: selection.spans)
                for i in 0..<profiles.count {
                    add(series: profiles.seriesIDs[i], time: profiles.timeNanos[i], span: nil, value: profiles.totals[i])
                }
            }
        }
        let values = totals.values.map(\.value).filter { $0 > 0 }
        guard let low = values.min(), let high = values.max() else { return Heatmap(bucketStarts: [], series: []) }
        let width = Double(max(high - low, 1)) / Double(buckets)
        let bucketStarts = (0..<buckets).map { Double(low) + Double($0) * width }
        struct Cell: Hashable {
            var slot: Int64
            var bucket: Int
        }
        var counts: [Int: [Int64: [Int32]]] = [:]
        var largest: [Int: [Cell: (id: ProfileID, span: UInt64?, value: Int64, labels: LabelSet)]] = [:]
        var groupTotals = [Int64](repeating: 0, count: groups.count)
        for (profile, entry) in totals where entry.value > 0 {
            let slot = steps.point(ofNanos: entry.id.timeNanos)
            let bucket = min(buckets - 1, Int(Double(entry.value - low) / width))
            counts[profile.group, default: [:]][slot, default: [Int32](repeating: 0, count: buckets)][bucket] += 1
            groupTotals[profile.group] += entry.value
            guard exemplars else { continue }
            let cell = Cell(slot: slot, bucket: bucket)
            // Of equal profiles the earliest, so the answer does not depend on hashing order.
            if let best = largest[profile.group]?[cell],
                best.value > entry.value || (best.value == entry.value && best.id.timeNanos <= entry.id.timeNanos)
            {
                continue
            }
            let span: UInt64? = if case .span(let id) = profile.subject { id } else { nil }
            largest[profile.group, default: [:]][cell] = (entry.id, span, entry.value, entry.labels)
        }
        var kept = Array(counts.keys)
        if let limit, limit > 0, kept.count > limit {
            kept = Array(kept.sorted { groupTotals[$0] > groupTotals[$1] }.prefix(limit))
        }
        let series = kept.map { g in
            let slots = counts[g]!.map { time, bucketCounts in
                var slot = Heatmap.Slot(timestamp: time, counts: bucketCounts)
                for bucket in bucketCounts.indices where bucketCounts[bucket] > 0 {
                    guard let best = largest[g]?[Cell(slot: time, bucket: bucket)] else { continue }
                    slot.exemplars.append(
                        Exemplar(id: best.id, spanID: best.span, value: best.value, seriesLabels: best.labels, groupBy: groupBy))
                }
                return slot
            }
            return Heatmap.Series(labels: groups[g], slots: slots.sorted { $0.timestamp < $1.timestamp })
        }.sorted { $0.labels.description < $1.labels.description }
        return Heatmap(bucketStarts: bucketStarts, series: series)
    }

    // MARK: query cost

    /// What a query would read, from block metadata and series tables alone (no sample is read).
    public struct QueryCost: Sendable, Equatable {
        /// Live blocks in the range holding a matching series, and the distinct matching series.
        public var blocks = 0
        public var series = 0
        /// Samples of the profile type (every type when none is given) in those blocks: exact when every
        /// series of the type matches, at most that otherwise (block metadata counts per type, not series).
        public var samples: Int64 = 0
        /// Profiles (rows of profiles.parquet) of the profile type in those blocks, exact or at most as
        /// `samples` is. Blocks written before meta.json counted them per type give an upper bound: their
        /// profiles.parquet rows of every type, or their samples.
        public var profiles: Int64 = 0
        /// Sizes of those blocks' series table, sample table, and symbol tables (stacks, frames, functions).
        public var indexBytes: Int64 = 0
        public var profileBytes: Int64 = 0
        public var symbolBytes: Int64 = 0
        /// Every file of every live block overlapping the range, matching or not.
        public var bytesInRange: Int64 = 0

        public init() {}
    }

    public func cost(tenant: String, profileType: String?, selector: LabelSelector, time: ClosedRange<Int64>) async throws -> QueryCost {
        try checkRange(time)
        var cost = QueryCost()
        var series = Set<LabelSet>()
        let metas = try await liveBlocks(tenant: tenant, time: time)
        let parsedType = profileType.flatMap(ProfileTypeID.init(parsing:))
        for meta in metas { cost.bytesInRange += meta.files.reduce(0) { $0 + Int64($1.sizeBytes) } }
        for block in try await loaded(metas.filter { meta in profileType.map { meta.stats.profileTypes[$0] != nil } ?? true }) {
            let meta = block.meta
            let sizes = Dictionary(meta.files.map { ($0.name, Int64($0.sizeBytes)) }, uniquingKeysWith: +)
            let matching = block.series.filter {
                (profileType == nil || $0.profileType == parsedType) && selector.matches($0.labels)
            }
            guard !matching.isEmpty else { continue }
            cost.blocks += 1
            for s in matching { series.insert(s.labels) }
            cost.samples += profileType.map { meta.stats.profileTypes[$0]?.samples ?? 0 } ?? meta.stats.samples
            cost.profiles += profileType.map { meta.stats.profileTypes[$0]?.profiles ?? profileRows(meta) } ?? profileRows(meta)
            cost.indexBytes += sizes[BlockFile.series] ?? 0
            cost.profileBytes += sizes[BlockFile.samples] ?? 0
            cost.symbolBytes += [BlockFile.stacks, BlockFile.frames, BlockFile.functions].reduce(0) { $0 + (sizes[$1] ?? 0) }
        }
        cost.series = series.count
        return cost
    }

    /// Profiles of every type in a block from its metadata: a profile has at least one sample.
    private func profileRows(_ meta: BlockMeta) -> Int64 {
        if let rows = meta.files.first(where: { $0.name == BlockFile.profiles })?.rows { return Int64(rows) }
        return meta.stats.samples
    }

    // MARK: labels, series, profile types, stats

    /// Series of the tenant in the time range matching any of the selectors (all when none), across the live
    /// blocks; profile type labels included.
    public func seriesLabels(tenant: String, selectors: [LabelSelector], time: ClosedRange<Int64>) async throws -> [LabelSet] {
        try checkRange(time)
        var seen = Set<LabelSet>()
        for block in try await loaded(try await liveBlocks(tenant: tenant, time: time)) {
            for s in block.series where selectors.isEmpty || selectors.contains(where: { $0.matches(s.labels) }) {
                seen.insert(s.labels)
            }
        }
        return seen.sorted { $0.description < $1.description }
    }

    public func labelNames(tenant: String, selectors: [LabelSelector], time: ClosedRange<Int64>) async throws -> [String] {
        var names = Set<String>()
        for labels in try await seriesLabels(tenant: tenant, selectors: selectors, time: time) {
            for l in labels.labels { names.insert(l.name) }
        }
        return names.sorted()
    }

    public func labelValues(tenant: String, name: String, selectors: [LabelSelector], time: ClosedRange<Int64>) async throws -> [String] {
        var values = Set<String>()
        for labels in try await seriesLabels(tenant: tenant, selectors: selectors, time: time) {
            if let v = labels[name] { values.insert(v) }
        }
        return values.sorted()
    }

    public func profileTypes(tenant: String, time: ClosedRange<Int64>) async throws -> [ProfileTypeID] {
        var ids = Set<String>()
        for meta in try await liveBlocks(tenant: tenant, time: time) { ids.formUnion(meta.stats.profileTypes.keys) }
        return ids.compactMap { ProfileTypeID(parsing: $0) }.sorted()
    }

    public struct Stats: Sendable, Equatable {
        public var dataIngested: Bool
        /// Unix ms; 0 when nothing is stored.
        public var oldestMillis: Int64
        public var newestMillis: Int64

        public init(dataIngested: Bool, oldestMillis: Int64, newestMillis: Int64) {
            self.dataIngested = dataIngested
            self.oldestMillis = oldestMillis
            self.newestMillis = newestMillis
        }
    }

    public func stats(tenant: String) async throws -> Stats {
        let live = try await liveBlocks(tenant: tenant)
        guard let oldest = live.map(\.minTime).min(), let newest = live.map(\.maxTime).max() else {
            return Stats(dataIngested: false, oldestMillis: 0, newestMillis: 0)
        }
        return Stats(dataIngested: true, oldestMillis: oldest / 1_000_000, newestMillis: newest / 1_000_000)
    }
}

/// An open block: its reader (which keeps the Parquet bytes) and its series.
struct LoadedBlock: Sendable {
    let meta: BlockMeta
    let reader: BlockReader
    let series: [BlockSeries]

    /// The labels of the series `ids` names, by block-local id.
    func labels(of ids: Set<Int32>) -> [Int32: LabelSet] {
        Dictionary(series.lazy.filter { ids.contains($0.id) }.map { ($0.id, $0.labels) }, uniquingKeysWith: { a, _ in a })
    }
}

struct BlockNodeNames: Sendable {
    var parents: [Int32]
    var names: [Int32]
}

/// The points of a time series or the slots of a heatmap: `stepMillis` apart from the range's start, at most
/// 11,000 of them, each standing for the step before it (`.stepEnd`) or after it (`.stepStart`).
struct TimeSteps {
    let startMillis: Int64
    let stepMillis: Int64
    let alignment: QueryEngine.PointAlignment

    init(range: ClosedRange<Int64>, stepMillis: Int64, alignment: QueryEngine.PointAlignment) throws(QueryError) {
        guard stepMillis > 0 else { throw QueryError(.invalidArgument, "step must be positive") }
        let count = (range.upperBound - range.lowerBound) / 1_000_000 / stepMillis
        guard count <= 11_000 else {
            throw QueryError(.invalidArgument, "step of \(stepMillis) ms over this range gives \(count) points; the limit is 11000")
        }
        self.startMillis = range.lowerBound / 1_000_000
        self.stepMillis = stepMillis
        self.alignment = alignment
    }

    /// The point (ms) a sample at `nanos` counts toward.
    func point(ofNanos nanos: Int64) -> Int64 {
        let ms = nanos / 1_000_000
        let steps =
            switch alignment {
            case .stepStart: (ms - startMillis) / stepMillis
            case .stepEnd: ms <= startMillis ? 0 : (ms - startMillis + stepMillis - 1) / stepMillis
            }
        return startMillis + steps * stepMillis
    }
}
