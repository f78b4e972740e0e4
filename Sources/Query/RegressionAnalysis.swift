import Blocks
import Foundation
import KilnFoundation

public struct RegressionOptions: Sendable {
    /// The false discovery rate a change must pass.
    public var alpha = 0.05
    /// The smallest change of a function's total share reported (0.001 = 0.1 percentage points).
    public var minShareChange = 0.001
    /// Rows per list of the report.
    public var limit = 20
    /// Functions tested: those whose total share changed most. The rest count as p = 1 in the correction,
    /// which keeps it valid; it bounds the per-profile data kept to profiles × candidates.
    public var candidates = 200
    /// Call paths listed per function.
    public var paths = 3
    /// Regressions that carry a focused diff flame graph, and its largest size in nodes.
    public var focusTrees = 5
    public var focusNodes = 300

    public init() {}
}

extension QueryEngine {
    /// Ranks functions by the change of their total share between `baseline` and `comparison`, testing each
    /// change across the individual profiles of both sides (Mann–Whitney U, Benjamini–Hochberg). Two passes:
    /// the merged diff tree (shared with the diff view's cache) gives every function's aggregate shares and
    /// picks the candidates; one read of the samples then gives each candidate's share in every profile.
    public func regressions(
        baseline: Selection, comparison: Selection, queries: (baseline: String, comparison: String), unit: String,
        options: RegressionOptions = RegressionOptions()
    ) async throws -> RegressionReport {
        let (tree, names) = try await diff(left: baseline, right: comparison)
        let aggregate = FunctionTotals(tree, nameCount: names.names.count)
        let sums = (before: Double(tree.total(side: 0)), after: Double(tree.total(side: 1)))
        func share(_ v: Int64, _ side: Int) -> Double {
            let sum = side == 0 ? sums.before : sums.after
            return sum > 0 ? Double(v) / sum : 0
        }
        let seen = aggregate.functions.filter { aggregate.total(of: $0, side: 0) != 0 || aggregate.total(of: $0, side: 1) != 0 }
        func totalShareChange(_ f: Int32) -> Double {
            share(aggregate.total(of: f, side: 1), 1) - share(aggregate.total(of: f, side: 0), 0)
        }
        let candidates = Array(seen.sorted { abs(totalShareChange($0)) > abs(totalShareChange($1)) }.prefix(options.candidates))

        // Both sides at once: their blocks are read and resolved off the actor, in parallel.
        async let baselineShares = profileShares(baseline, functions: candidates)
        async let comparisonShares = profileShares(comparison, functions: candidates)
        let (before, after) = try await (baselineShares, comparisonShares)
        var tests: [RankSumTest.Result] = []
        for c in candidates.indices {
            let result =
                RankSumTest.test(
                    before: before.shares[c], beforeZeros: before.profiles - before.shares[c].count,
                    after: after.shares[c], afterZeros: after.profiles - after.shares[c].count)
                ?? RankSumTest.Result(p: 1, superiority: 0.5)
            tests.append(result)
        }
        let q = RankSumTest.adjusted(tests.map(\.p), total: seen.count)

        let seconds = (
            before: Double(baseline.time.upperBound - baseline.time.lowerBound + 1) / 1e9,
            after: Double(comparison.time.upperBound - comparison.time.lowerBound + 1) / 1e9
        )
        func change(_ c: Int) -> RegressionReport.FunctionChange {
            let f = candidates[c]
            let (t0, t1) = (aggregate.total(of: f, side: 0), aggregate.total(of: f, side: 1))
            let (s0, s1) = (aggregate.selfValue(of: f, side: 0), aggregate.selfValue(of: f, side: 1))
            let significant = q[c] < options.alpha && abs(share(t1, 1) - share(t0, 0)) >= options.minShareChange
            return RegressionReport.FunctionChange(
                function: names[f],
                totalShare: .init(before: share(t0, 0), after: share(t1, 1)),
                selfShare: .init(before: share(s0, 0), after: share(s1, 1)),
                totalPerProfile: .init(
                    before: before.profiles > 0 ? Double(t0) / Double(before.profiles) : 0,
                    after: after.profiles > 0 ? Double(t1) / Double(after.profiles) : 0),
                totalPerSecond: .init(before: Double(t0) / seconds.before, after: Double(t1) / seconds.after),
                p: tests[c].p, q: q[c], superiority: tests[c].superiority, significant: significant,
                paths: [], focus: nil)
        }
        // Each change with its function's name id, largest change of total share first.
        let changes = candidates.indices.map { (id: candidates[$0], change: change($0)) }
            .sorted { abs($0.change.totalShare.change) > abs($1.change.totalShare.change) }
        // A regression: more share on aggregate and in the typical profile; an improvement: less in both.
        func isRegression(_ c: RegressionReport.FunctionChange) -> Bool { c.significant && c.totalShare.change > 0 && c.superiority > 0.5 }
        func isImprovement(_ c: RegressionReport.FunctionChange) -> Bool { c.significant && c.totalShare.change < 0 && c.superiority < 0.5 }
        let regressions = changes.filter { isRegression($0.change) }.prefix(options.limit).enumerated().map { rank, entry in
            var c = entry.change
            c.paths = aggregate.paths(of: entry.id, tree: tree, names: names, sums: sums, largestIncrease: true, limit: options.paths)
            if rank < options.focusTrees { c.focus = aggregate.focus(on: entry.id, tree: tree, names: names, maxNodes: options.focusNodes) }
            return c
        }
        let improvements = changes.filter { isImprovement($0.change) }.prefix(options.limit).map { entry in
            var c = entry.change
            c.paths = aggregate.paths(of: entry.id, tree: tree, names: names, sums: sums, largestIncrease: false, limit: options.paths)
            return c
        }
        let insignificant = changes.map(\.change).filter { !isRegression($0) && !isImprovement($0) }.prefix(options.limit).map { $0 }

        func presence(onlyOn side: Int) -> [RegressionReport.FunctionPresence] {
            seen.filter { aggregate.total(of: $0, side: 1 - side) == 0 }
                .map {
                    RegressionReport.FunctionPresence(
                        function: names[$0], totalShare: share(aggregate.total(of: $0, side: side), side),
                        selfShare: share(aggregate.selfValue(of: $0, side: side), side))
                }
                .sorted { ($0.totalShare, $1.function) > ($1.totalShare, $0.function) }
                .prefix(options.limit).map { $0 }
        }
        func side(_ s: Selection, _ query: String, _ shares: ProfileShares, _ sum: Double) -> RegressionReport.Side {
            .init(
                query: query, fromMillis: s.time.lowerBound / 1_000_000, untilMillis: s.time.upperBound / 1_000_000,
                profiles: shares.profiles, total: Int64(sum))
        }
        return RegressionReport(
            unit: unit,
            baseline: side(baseline, queries.baseline, before, sums.before),
            comparison: side(comparison, queries.comparison, after, sums.after),
            method: .init(
                test: "Mann–Whitney U (two-sided) on each profile's total share of the function",
                correction: "Benjamini–Hochberg", alpha: options.alpha, minShareChange: options.minShareChange,
                functionsSeen: seen.count, functionsTested: candidates.count),
            regressions: regressions, improvements: improvements, insignificant: insignificant,
            newFunctions: presence(onlyOn: 1), vanishedFunctions: presence(onlyOn: 0))
    }

    /// Each profile's inclusive share of each function, kept only where non-zero: `shares[i]` for
    /// `functions[i]`; profiles without the function hold share 0.
    struct ProfileShares: Sendable {
        var profiles = 0
        var shares: [[Double]]
    }

    /// One block's profiles: per timestamp the total, and the candidates' inclusive values, dense
    /// (`values[profile * candidates + candidate]`).
    struct ProfileValues: Sendable {
        var times: [Int64] = []
        var totals: [Int64] = []
        var values: [Int64] = []
    }

    /// A profile is every sample of the selection at one timestamp: one scrape or push of one process,
    /// whose pprof labels (a span name, say) may have split it into several series. Blocks are read in
    /// parallel; a timestamp found in more than one block is one profile. Memory: profiles × candidates.
    func profileShares(_ selection: Selection, functions: [Int32]) async throws -> ProfileShares {
        struct Job: Sendable {
            var block: LoadedBlock
            var series: Set<Int32>
            var nodes: BlockNodeNames
        }
        let planned = try await plan(selection, individualProfiles: "a regression report")
        let nodes = try await nodes(planned.map(\.0), labels: .functions)
        let jobs = planned.map { block, series in Job(block: block, series: series, nodes: nodes[block.meta.ulid]!) }
        let count = functions.count
        let candidateIndex = Dictionary(uniqueKeysWithValues: functions.enumerated().map { ($1, Int32($0)) })
        let (time, spans) = (selection.time, selection.spans)
        var profileIndex: [Int64: Int] = [:]
        var totals: [Int64] = []
        var values: [Int64] = []
        try await concurrently(jobs, parallelism: options.parallelism) { job in
            let samples = try await job.block.reader.stackSamples(time: time, series: job.series, spans: spans)
            return try Self.profileValues(
                of: samples, nodes: job.nodes, candidates: candidateIndex, count: count, blockID: job.block.meta.ulid)
        } merge: { _, partial in
            for (local, t) in partial.times.enumerated() {
                let p = profileIndex[t] ?? totals.count
                if p == totals.count {
                    profileIndex[t] = p
                    totals.append(0)
                    values.append(contentsOf: repeatElement(0, count: count))
                }
                totals[p] += partial.totals[local]
                for c in 0..<count { values[p * count + c] += partial.values[local * count + c] }
            }
        }
        var out = ProfileShares(profiles: 0, shares: Array(repeating: [], count: count))
        for p in totals.indices where totals[p] != 0 {
            out.profiles += 1
            let total = Double(totals[p])
            for c in 0..<count where values[p * count + c] != 0 { out.shares[c].append(Double(values[p * count + c]) / total) }
        }
        return out
    }

    /// One block's profiles and each candidate's inclusive value in each. A function counts once per
    /// stack however often it recurs on it.
    static func profileValues(
        of samples: StackSamples, nodes: BlockNodeNames, candidates: [Int32: Int32], count: Int, blockID: ULID
    ) throws -> ProfileValues {
        var paths = CandidatePaths(nodes: nodes, candidates: candidates)
        var out = ProfileValues()
        var profileIndex: [Int64: Int] = [:]
        // Samples come ordered by series, then time: a profile's samples of one series are a run, so the
        // previous sample's profile is nearly always this one's.
        var lastTime = Int64.min
        var p = -1
        for i in 0..<samples.count {
            let t = samples.timeNanos[i]
            if t != lastTime {
                lastTime = t
                if let known = profileIndex[t] {
                    p = known
                } else {
                    p = out.times.count
                    profileIndex[t] = p
                    out.times.append(t)
                    out.totals.append(0)
                    out.values.append(contentsOf: repeatElement(0, count: count))
                }
            }
            let value = samples.values[i]
            out.totals[p] += value
            let stack = samples.stackIDs[i]
            guard stack >= 0, Int(stack) < nodes.parents.count else {
                throw QueryError(.unavailable, "block \(blockID): a sample references missing stack \(stack)")
            }
            let row = p * count
            for c in paths.resolve(stack) { out.values[row + Int(paths.items[c])] += value }
        }
        return out
    }
}

/// The candidates on the path from the root to each stack node of one block, each listed once, computed
/// once per node reached and shared with the nodes below it.
struct CandidatePaths {
    let nodes: BlockNodeNames
    let candidates: [Int32: Int32]
    private var start: [Int32]
    private var count: [Int32]
    private(set) var items: [Int32] = []
    private var pending: [Int32] = []

    init(nodes: BlockNodeNames, candidates: [Int32: Int32]) {
        self.nodes = nodes
        self.candidates = candidates
        start = Array(repeating: -1, count: nodes.parents.count)
        count = Array(repeating: 0, count: nodes.parents.count)
    }

    /// Indexes into `items` of the candidates on `node`'s path (`node` must be a valid node).
    mutating func resolve(_ node: Int32) -> Range<Int> {
        var n = node
        while n >= 0 && start[Int(n)] < 0 {
            pending.append(n)
            n = nodes.parents[Int(n)]
        }
        while let m = pending.popLast() {
            let parent = nodes.parents[Int(m)]
            let first = items.count
            if parent >= 0 {
                let p = Int(start[Int(parent)])
                // Element by element: appending a slice of the array to itself would copy the whole array.
                for k in p..<p + Int(count[Int(parent)]) { items.append(items[k]) }
            }
            if let own = candidates[nodes.names[Int(m)]], !items[first...].contains(own) { items.append(own) }
            start[Int(m)] = Int32(first)
            count[Int(m)] = Int32(items.count - first)
        }
        let s = Int(start[Int(node)])
        return s..<s + Int(count[Int(node)])
    }
}

/// Every function's inclusive and self value per side of a diff tree. Inclusive counts a function once per
/// stack: a node adds to it only when no ancestor has the same name (recursion is not double-counted).
struct FunctionTotals {
    private var totals: [Int64]
    private var selves: [Int64]
    /// Per tree node: whether it is its name's topmost occurrence on its path.
    private(set) var topmost: [Bool]
    private let nodeTotals: [Int64]
    /// Children of every tree node.
    private let children: [[Int32]]
    private(set) var functions: [Int32] = []

    init(_ tree: StackTree, nameCount: Int) {
        nodeTotals = tree.totals()
        totals = Array(repeating: 0, count: nameCount * 2)
        selves = Array(repeating: 0, count: nameCount * 2)
        topmost = Array(repeating: false, count: tree.nodeCount)
        var children = [[Int32]](repeating: [], count: tree.nodeCount)
        for n in 1..<max(tree.nodeCount, 1) { children[Int(tree.parents[n])].append(Int32(n)) }
        self.children = children
        var onPath = [Int32](repeating: 0, count: nameCount)
        var present = [Bool](repeating: false, count: nameCount)
        // Depth-first with an explicit stack; a negative entry leaves the node.
        var stack: [Int32] = children[0].reversed()
        while let entry = stack.popLast() {
            if entry < 0 {
                onPath[Int(tree.names[Int(-entry)])] -= 1
                continue
            }
            let n = Int(entry)
            let name = Int(tree.names[n])
            if !present[name] {
                present[name] = true
                functions.append(Int32(name))
            }
            for s in 0..<2 { selves[name * 2 + s] += tree.selfValues[n * 2 + s] }
            if onPath[name] == 0 {
                topmost[n] = true
                for s in 0..<2 { totals[name * 2 + s] += nodeTotals[n * 2 + s] }
            }
            onPath[name] += 1
            stack.append(-entry)
            stack.append(contentsOf: children[n].reversed())
        }
    }

    func total(of f: Int32, side: Int) -> Int64 { totals[Int(f) * 2 + side] }
    func selfValue(of f: Int32, side: Int) -> Int64 { selves[Int(f) * 2 + side] }

    /// The call paths (root first, ending at the function's topmost occurrences) whose share changed most in
    /// the given direction.
    func paths(
        of f: Int32, tree: StackTree, names: NameTable, sums: (before: Double, after: Double), largestIncrease: Bool, limit: Int
    ) -> [RegressionReport.CallPath] {
        var found: [(node: Int, share: RegressionReport.Pair)] = []
        for n in 1..<max(tree.nodeCount, 1) where topmost[n] && tree.names[n] == f {
            let share = RegressionReport.Pair(
                before: sums.before > 0 ? Double(nodeTotals[n * 2]) / sums.before : 0,
                after: sums.after > 0 ? Double(nodeTotals[n * 2 + 1]) / sums.after : 0)
            found.append((n, share))
        }
        // Only the paths that moved the way the function did: a regression's paths that shrank are not
        // what carries it.
        found.removeAll { largestIncrease ? $0.share.change <= 0 : $0.share.change >= 0 }
        found.sort { largestIncrease ? $0.share.change > $1.share.change : $0.share.change < $1.share.change }
        return found.prefix(limit).map { entry in
            var frames: [String] = []
            var c = Int32(entry.node)
            while c > 0 {
                frames.append(names[tree.names[Int(c)]])
                c = tree.parents[Int(c)]
            }
            return RegressionReport.CallPath(frames: frames.reversed(), share: entry.share)
        }
    }

    /// The function's subtrees merged at every topmost occurrence, pruned to the `maxNodes` largest nodes.
    func focus(on f: Int32, tree: StackTree, names: NameTable, maxNodes: Int) -> RegressionReport.FocusTree {
        var merged = StackTree(sides: 2)
        let root = merged.child(of: 0, name: f)
        for n in 1..<max(tree.nodeCount, 1) where topmost[n] && tree.names[n] == f {
            var stack: [(Int32, Int32)] = [(Int32(n), root)]
            while let (source, target) = stack.popLast() {
                for s in 0..<2 where tree.selfValues[Int(source) * 2 + s] != 0 {
                    merged.addSelf(tree.selfValues[Int(source) * 2 + s], to: target, side: s)
                }
                for c in children[Int(source)] { stack.append((c, merged.child(of: target, name: tree.names[Int(c)]))) }
            }
        }
        let mergedTotals = merged.totals()
        // Keep the largest nodes (by either side); a kept node's parent is larger, so it is kept too.
        let order = (1..<merged.nodeCount).sorted {
            max(mergedTotals[$0 * 2], mergedTotals[$0 * 2 + 1]) > max(mergedTotals[$1 * 2], mergedTotals[$1 * 2 + 1])
        }
        let kept = Set(order.prefix(maxNodes))
        var out = RegressionReport.FocusTree()
        var mapped = [Int](repeating: -1, count: merged.nodeCount)
        for n in 1..<merged.nodeCount where kept.contains(n) {
            let parent = Int(merged.parents[n])
            if parent != 0 && mapped[parent] < 0 { continue }
            mapped[n] = out.names.count
            out.names.append(names[merged.names[n]])
            out.parents.append(parent == 0 ? -1 : mapped[parent])
            out.before.append(mergedTotals[n * 2])
            out.after.append(mergedTotals[n * 2 + 1])
        }
        return out
    }
}
