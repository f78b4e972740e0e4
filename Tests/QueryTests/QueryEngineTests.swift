import Blocks
import Foundation
import KilnFoundation
import ObjectStore
import ProfileModel
import Query
import TestSupport
import Testing

/// Blocks written by Kiln's own writer into a real file:// store, then queried; expected values come from
/// the batches that went in, computed here without the engine.
@Suite struct QueryEngineTests {
    func samples(_ f: SyntheticBlocks, type: ProfileTypeID, where keep: (FlatSample) -> Bool = { _ in true }) -> [FlatSample] {
        f.batches.flatMap(flatten).filter { $0.profileType == type.id && keep($0) }
    }

    func flat(_ samples: [FlatSample]) -> [String: Int64] {
        var out: [String: Int64] = [:]
        for s in samples { out[s.stack.first!, default: 0] += s.value }
        return out
    }

    func flat(_ tree: StackTree, _ names: NameTable) -> [String: Int64] {
        var out: [String: Int64] = [:]
        for (path, value) in tree.stacks() { out[names[path.last!], default: 0] += value }
        return out
    }

    let everything = SyntheticBlocks.everything

    @Test func mergedStacksEqualWhatWentIn() async throws {
        try await SyntheticBlocks.with { f in try await checkMergedStacks(f) }
    }

    /// Blocks written before stack_totals.parquet: every range reads the samples.
    @Test func mergedStacksOfOlderBlocksEqualWhatWentIn() async throws {
        try await SyntheticBlocks.with { f in
            try await f.removeDerivedTables()
            try await checkMergedStacks(f)
        }
    }

    /// A range covering whole blocks reads their per-(series, stack) sums: with the samples deleted, the
    /// answer is still every stack that went in, per selector.
    @Test func rangesCoveringWholeBlocksReadStackTotals() async throws {
        try await SyntheticBlocks.with { f in
            try await f.removeSamples()
            var options = QueryEngineOptions()
            options.cachedBlockTrees = 0
            let engine = QueryEngine(store: f.store, options: options)
            for (selectorText, services) in [(#"{service_name="api"}"#, ["api"]), ("{}", ["api", "db", "worker"])] {
                let (tree, names) = try await engine.mergeStacks(
                    Selection(tenant: "t1", profileType: cpuType.id, selector: try LabelSelector(parsing: selectorText), time: everything))
                let want = samples(f, type: cpuType) { s in services.contains { s.labels.contains("service_name=\"\($0)\"") } }
                var got: [String: Int64] = [:]
                for (path, value) in tree.stacks() { got[path.map { names[$0] }.joined(separator: ";"), default: 0] += value }
                #expect(got == SyntheticBlocks.paths(want) && !want.isEmpty, "\(selectorText)")
            }
        }
    }

    func checkMergedStacks(_ f: SyntheticBlocks) async throws {
        let engine = QueryEngine(store: f.store)
        let cases: [(String, Set<String>)] = [
            (#"{service_name="api"}"#, ["api"]),
            (#"{service_name!="api"}"#, ["db", "worker"]),
            (#"{service_name=~"w.*|db"}"#, ["db", "worker"]),
            (#"{service_name!~"w.*|db", env="prod"}"#, ["api"]),
            ("{}", ["api", "db", "worker"]),
        ]
        for (selectorText, services) in cases {
            let selection = Selection(
                tenant: "t1", profileType: cpuType.id, selector: try LabelSelector(parsing: selectorText), time: everything)
            let (tree, names) = try await engine.mergeStacks(selection)
            let want = samples(f, type: cpuType) { s in services.contains { s.labels.contains("service_name=\"\($0)\"") } }
            #expect(tree.total() == want.reduce(0) { $0 + $1.value }, "\(selectorText)")
            #expect(flat(tree, names) == flat(want), "\(selectorText)")
            // Whole stacks, not just leaves: every root-first path and its value.
            var wantPaths: [String: Int64] = [:]
            for s in want { wantPaths[s.stack.reversed().joined(separator: ";"), default: 0] += s.value }
            var gotPaths: [String: Int64] = [:]
            for (path, value) in tree.stacks() { gotPaths[path.map { names[$0] }.joined(separator: ";"), default: 0] += value }
            #expect(gotPaths == wantPaths, "\(selectorText)")
        }
        // A time range inside the data reads only what lies in it.
        let range = SyntheticBlocks.base + 3_000_000_000...SyntheticBlocks.base + 7_999_999_999
        let (tree, _) = try await engine.mergeStacks(
            Selection(tenant: "t1", profileType: cpuType.id, selector: LabelSelector(), time: range))
        let want = samples(f, type: cpuType) { range.contains($0.time) }
        #expect(tree.total() == want.reduce(0) { $0 + $1.value } && !want.isEmpty)
        // Another tenant sees nothing.
        let (other, _) = try await engine.mergeStacks(
            Selection(tenant: "t2", profileType: cpuType.id, selector: LabelSelector(), time: everything))
        #expect(other.total() == 0)
    }

    @Test func compactedBlocksSupersedeTheirSources() async throws {
        try await SyntheticBlocks.with { f in
            // A level-1 block holding both level-0 blocks' data: a query must count each sample once.
            var head = Head(tenant: "t1")
            for b in f.batches { head.append(b) }
            let ulid = ULID.make()
            try await BlockWriter.upload(
                try BlockWriter().encode(head, ulid: ulid, compaction: .init(level: 1, sources: f.l0, parents: f.l0)), to: f.store)
            let engine = QueryEngine(store: f.store)
            #expect(try await engine.liveBlocks(tenant: "t1").map(\.ulid) == [ulid])
            let (tree, _) = try await engine.mergeStacks(
                Selection(tenant: "t1", profileType: allocType.id, selector: LabelSelector(), time: everything))
            #expect(tree.total() == samples(f, type: allocType).reduce(0) { $0 + $1.value })
        }
    }

    /// Per-profile totals come from profiles.parquet — the samples are not read: they are deleted here —
    /// or, in blocks written before that table, from the samples.
    @Test(arguments: [true, false]) func timeSeriesSumsPerStepAndGroup(profileTable: Bool) async throws {
        try await SyntheticBlocks.with { f in
            if profileTable { try await f.removeSamples() } else { try await f.removeDerivedTables() }
            let engine = QueryEngine(store: f.store)
            let selection = Selection(tenant: "t1", profileType: cpuType.id, selector: LabelSelector(), time: everything)
            let step: Int64 = 2000
            let series = try await engine.timeSeries(selection, stepMillis: step, groupBy: ["service_name"], aggregation: .sum, limit: nil)
            #expect(series.map { $0.labels[LabelName.serviceName] } == ["api", "db", "worker"])
            let start = everything.lowerBound / 1_000_000
            for s in series {
                var want: [Int64: Double] = [:]
                for x in samples(f, type: cpuType, where: { $0.labels.contains("service_name=\"\(s.labels[LabelName.serviceName]!)\"") }) {
                    // Pyroscope's alignment: the point at T holds (T - step, T].
                    let ms = x.time / 1_000_000
                    let steps = ms <= start ? 0 : (ms - start + step - 1) / step
                    want[start + steps * step, default: 0] += Double(x.value)
                }
                #expect(s.points.map(\.0) == want.keys.sorted())
                #expect(s.points.map(\.1) == want.keys.sorted().map { want[$0]! })
            }
            // No grouping: one series; limit keeps the largest groups.
            let one = try await engine.timeSeries(selection, stepMillis: step, groupBy: [], aggregation: .sum, limit: nil)
            #expect(
                one.count == 1 && one[0].points.reduce(0) { $0 + $1.1 } == Double(samples(f, type: cpuType).reduce(0) { $0 + $1.value }))
            let top = try await engine.timeSeries(selection, stepMillis: step, groupBy: ["service_name"], aggregation: .sum, limit: 1)
            let biggest = series.max { $0.points.reduce(0) { $0 + $1.1 } < $1.points.reduce(0) { $0 + $1.1 } }!
            #expect(top == [biggest])
            // Average divides each step by its profiles (series × timestamp).
            let avg = try await engine.timeSeries(selection, stepMillis: step, groupBy: [], aggregation: .average, limit: nil)
            var profiles: [Int64: Set<String>] = [:]
            for x in samples(f, type: cpuType) {
                let ms = x.time / 1_000_000
                profiles[start + (ms <= start ? 0 : (ms - start + step - 1) / step) * step, default: []].insert("\(x.labels)@\(x.time)")
            }
            for (i, p) in avg[0].points.enumerated() { #expect(p.1 == one[0].points[i].1 / Double(profiles[p.0]!.count)) }
            await #expect(throws: QueryError.self) {
                try await engine.timeSeries(selection, stepMillis: 0, groupBy: [], aggregation: .sum, limit: nil)
            }
        }
    }

    @Test func labelsProfileTypesAndStats() async throws {
        try await SyntheticBlocks.with { f in
            let engine = QueryEngine(store: f.store)
            #expect(try await engine.profileTypes(tenant: "t1", time: everything) == [allocType, cpuType].sorted())
            #expect(try await engine.profileTypes(tenant: "t1", time: 0...1) == [])
            #expect(
                try await engine.labelValues(tenant: "t1", name: "service_name", selectors: [], time: everything) == [
                    "api", "db", "worker",
                ])
            let onlyAPI = try LabelSelector(parsing: #"{service_name="api"}"#)
            #expect(try await engine.labelValues(tenant: "t1", name: "service_name", selectors: [onlyAPI], time: everything) == ["api"])
            #expect(
                try await engine.labelNames(tenant: "t1", selectors: [], time: everything) == [
                    "__name__", "__profile_type__", "env", "service_name",
                ])
            #expect(try await engine.seriesLabels(tenant: "t1", selectors: [onlyAPI], time: everything).count == 2)
            let stats = try await engine.stats(tenant: "t1")
            let times = f.batches.flatMap(\.sampleTimes)
            #expect(stats == .init(dataIngested: true, oldestMillis: times.min()! / 1_000_000, newestMillis: times.max()! / 1_000_000))
            #expect(try await engine.stats(tenant: "nobody").dataIngested == false)
        }
    }

    @Test func diffHoldsBothSelections() async throws {
        try await SyntheticBlocks.with { f in
            let engine = QueryEngine(store: f.store)
            let early = SyntheticBlocks.base...SyntheticBlocks.base + 5_999_999_999
            let late = SyntheticBlocks.base + 6_000_000_000...SyntheticBlocks.base + 11_999_999_999
            let (tree, names) = try await engine.diff(
                left: Selection(tenant: "t1", profileType: cpuType.id, selector: LabelSelector(), time: early),
                right: Selection(tenant: "t1", profileType: cpuType.id, selector: LabelSelector(), time: late))
            #expect(tree.total(side: 0) == samples(f, type: cpuType) { early.contains($0.time) }.reduce(0) { $0 + $1.value })
            #expect(tree.total(side: 1) == samples(f, type: cpuType) { late.contains($0.time) }.reduce(0) { $0 + $1.value })
            let graph = FlameGraphLevels(tree: tree, nameTable: names, maxNodes: 8192)
            #expect(graph.leftTicks == tree.total(side: 0) && graph.rightTicks == tree.total(side: 1))
        }
    }

    @Test func absurdRangesAreRefused() async throws {
        try await SyntheticBlocks.with { f in
            let engine = QueryEngine(store: f.store)
            await #expect(throws: QueryError.self) {
                try await engine.mergeStacks(
                    Selection(tenant: "t1", profileType: cpuType.id, selector: LabelSelector(), time: 0...Int64.max / 2))
            }
        }
    }

    /// A store answers each small GET in milliseconds; a query over hundreds of blocks must not wait for them
    /// one by one. The store holds every series and symbol table read until all `blocks` of one kind are in
    /// flight together: an engine reading them one at a time never gets past the first, and the query fails
    /// when its deadline passes.
    @Test func blocksAreOpenedConcurrently() async throws {
        try await SyntheticBlocks.with(blocks: 4) { f in
            let store = GatheringStore(inner: f.store, files: [BlockFile.series, BlockFile.stacks], width: 4)
            let engine = QueryEngine(store: store)
            let selection = Selection(tenant: "t1", profileType: cpuType.id, selector: LabelSelector(), time: everything)
            let (tree, names) = try await withDeadline(.seconds(20), timeout: { GatheringStore.Stuck() }) {
                try await engine.mergeStacks(selection)
            }
            #expect(flat(tree, names) == flat(samples(f, type: cpuType)))
            #expect(await store.released == [BlockFile.series: 4, BlockFile.stacks: 4])
        }
    }
}

/// The file store, except that a GET of one of `files` waits until `width` GETs of that file are waiting,
/// then all go on together.
private actor GatheringStore: ForwardingObjectStore {
    struct Stuck: Error {}
    let inner: any ObjectStore
    let files: Set<String>
    let width: Int
    private var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]
    private(set) var released: [String: Int] = [:]

    init(inner: any ObjectStore, files: Set<String>, width: Int) {
        self.inner = inner
        self.files = files
        self.width = width
    }

    func get(_ key: String, range: ByteRange?) async throws -> [UInt8] {
        if let file = key.split(separator: "/").last.map(String.init), files.contains(file) {
            // Cancelled (the test's deadline passed): nothing waits any more, so the query ends and the test fails.
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    guard !Task.isCancelled else { return continuation.resume() }
                    waiting[file, default: []].append(continuation)
                    guard let group = waiting[file], group.count >= width else { return }
                    waiting[file] = nil
                    released[file, default: 0] += group.count
                    for c in group { c.resume() }
                }
            } onCancel: {
                Task { await self.releaseAll() }
            }
        }
        return try await inner.get(key, range: range)
    }
    private func releaseAll() {
        for c in waiting.values.joined() { c.resume() }
        waiting = [:]
    }
}
