import Blocks
import Foundation
import ObjectStore
import ProfileModel
import Reports
import TestSupport
import Testing

@testable import Query

/// The rank test and the correction on synthetic shares with known answers.
@Suite struct RankSumTestTests {
    /// U counted pair by pair, the definition the ranks shortcut.
    func bruteForceSuperiority(_ a: [Double], _ b: [Double]) -> Double {
        var u = 0.0
        for x in a { for y in b { u += y > x ? 1 : (y == x ? 0.5 : 0) } }
        return u / Double(a.count * b.count)
    }

    func uniform(_ rng: inout SplitMix, _ range: ClosedRange<Double>) -> Double {
        range.lowerBound + Double(rng.next() >> 11) / Double(1 << 53) * (range.upperBound - range.lowerBound)
    }

    @Test func textbookCaseAndTies() throws {
        // R: wilcox.test(c(1,2,3), c(4,5,6), exact = FALSE, correct = TRUE)$p.value = 0.08085
        let separated = try #require(RankSumTest.test(before: [1, 2, 3], beforeZeros: 0, after: [4, 5, 6], afterZeros: 0))
        #expect(abs(separated.p - 0.08085) < 0.0001)
        #expect(separated.superiority == 1)
        // Zeros given as a count rank as one tie group below the rest.
        let before = [0.2, 0.5, 0.5, 0.1]
        let after = [0.5, 0.7, 0.3]
        let r = try #require(RankSumTest.test(before: before, beforeZeros: 3, after: after, afterZeros: 1))
        #expect(abs(r.superiority - bruteForceSuperiority(before + [0, 0, 0], after + [0])) < 1e-12)
        #expect(RankSumTest.test(before: [], beforeZeros: 0, after: [1], afterZeros: 0) == nil)
        // Every value equal: no evidence at all.
        #expect(RankSumTest.test(before: [], beforeZeros: 5, after: [], afterZeros: 5)?.p == 1)
    }

    @Test func noEffectIsRarelySignificant() {
        var rng = SplitMix(state: 7)
        var rejected = 0
        let trials = 2000
        for _ in 0..<trials {
            let a = (0..<30).map { _ in uniform(&rng, 0.1...0.3) }
            let b = (0..<30).map { _ in uniform(&rng, 0.1...0.3) }
            if RankSumTest.test(before: a, beforeZeros: 0, after: b, afterZeros: 0)!.p < 0.05 { rejected += 1 }
        }
        // The test keeps its level: about 5 % of true nulls rejected (binomial sd ≈ 0.5 %).
        let rate = Double(rejected) / Double(trials)
        print("rank test: \(rejected) of \(trials) samples without an effect rejected at p < 0.05")
        #expect(rate > 0.03 && rate < 0.065, "false-positive rate \(rate)")
    }

    @Test func smallEffectWithManyProfilesAndLargeEffectWithFew() {
        var rng = SplitMix(state: 11)
        let a = (0..<600).map { _ in uniform(&rng, 0.10...0.12) }
        let b = (0..<600).map { _ in uniform(&rng, 0.1025...0.1225) }
        let small = RankSumTest.test(before: a, beforeZeros: 0, after: b, afterZeros: 0)!
        #expect(small.p < 0.001 && small.superiority > 0.5, "\(small)")
        let fewA = (0..<6).map { _ in uniform(&rng, 0.10...0.12) }
        let fewB = (0..<6).map { _ in uniform(&rng, 0.30...0.36) }
        let large = RankSumTest.test(before: fewA, beforeZeros: 0, after: fewB, afterZeros: 0)!
        #expect(large.p < 0.01 && large.superiority == 1, "\(large)")
        // The same small effect with few profiles is not distinguishable from noise.
        let weak = RankSumTest.test(before: Array(a.prefix(4)), beforeZeros: 0, after: Array(b.prefix(4)), afterZeros: 0)!
        #expect(weak.p > 0.05, "\(weak)")
    }

    @Test func benjaminiHochberg() {
        // Sorted: 0.005·4/1, 0.01·4/2, 0.03·4/3, 0.04·4/4, then the running minimum from the largest.
        #expect(RankSumTest.adjusted([0.01, 0.04, 0.03, 0.005], total: 4).map { ($0 * 1e9).rounded() / 1e9 } == [0.02, 0.04, 0.04, 0.02])
        // Untested hypotheses count as p = 1: twice as many hypotheses, twice the q-values.
        #expect(RankSumTest.adjusted([0.01, 0.04, 0.03, 0.005], total: 8).map { ($0 * 1e9).rounded() / 1e9 } == [0.04, 0.08, 0.08, 0.04])
        #expect(RankSumTest.adjusted([0.5], total: 1) == [0.5])
    }
}

/// The report from blocks: profiles written by Kiln's block writer, one function made hotter halfway.
@Suite struct RegressionReportTests {
    static let base: Int64 = 1_800_000_000_000_000_000
    static let second: Int64 = 1_000_000_000

    /// A batch with one profile (one timestamp) of `values` per root-first stack. The `checkout` stacks
    /// carry a `span_name` pprof label, so the profile is split into two series, as the normaliser splits one.
    static func profile(at time: Int64, offset: Int64, stacks: [([String], Int64)]) -> SampleBatch {
        var batch = SampleBatch(tenant: "t1", provenance: Provenance(topic: "raw", partition: 0, offset: offset))
        let labels = [Label("service_name", "shop"), Label("__name__", cpuType.name), Label("__profile_type__", cpuType.id)]
        batch.series = [
            BatchSeries(labels: LabelSet(labels), profileType: cpuType),
            BatchSeries(labels: LabelSet(labels + [Label("span_name", "checkout")]), profileType: cpuType),
        ]
        var strings: StringTable = [""]
        var frames: [String: UInt32] = [:]
        var functions: [FunctionSymbol] = []
        var frameSymbols: [FrameSymbol] = []
        func frame(_ name: String) -> UInt32 {
            if let f = frames[name] { return f }
            strings.append(name)
            let s = UInt32(strings.count - 1)
            functions.append(FunctionSymbol(name: s, systemName: s, filename: 0, startLine: 0))
            frameSymbols.append(FrameSymbol(function: UInt32(functions.count - 1), line: 1))
            frames[name] = UInt32(frameSymbols.count - 1)
            return frames[name]!
        }
        for (i, (names, value)) in stacks.enumerated() {
            batch.stacks.append(names.map(frame).reversed())
            batch.sampleSeries.append(names.contains("checkout") ? 1 : 0)
            batch.sampleStacks.append(UInt32(i))
            batch.sampleValues.append(value)
            batch.sampleTimes.append(time)
            batch.sampleSpans.append(0)
        }
        batch.symbols = SymbolTable(strings: strings, functions: functions, frames: frameSymbols)
        return batch
    }

    /// 120 one-second profiles: `hashLoop` (under `cpuWorker`) costs `hot`× from profile 60 on; the other
    /// functions keep their cost, each with its own noise; `sha` is called by both workers. With a change,
    /// `oldPath` is replaced by `newPath` at the same time.
    static func profiles(seed: UInt64, hot: Int64) -> [SampleBatch] {
        var rng = SplitMix(state: seed)
        func noisy(_ v: Int64) -> Int64 { v + Int64(rng.below(Int(v / 2))) - v / 4 }
        return (0..<120).map { i in
            let factor = i >= 60 ? hot : 1
            return profile(
                at: base + Int64(i) * second, offset: Int64(i),
                stacks: [
                    (["main", "cpuWorker", "computePrimes"], noisy(400)),
                    (["main", "cpuWorker", "hashLoop", "sha"], noisy(100) * factor),
                    (["main", "cpuWorker", "hashLoop"], noisy(20) * factor),
                    (["main", "checkout", "sha"], noisy(100)),
                    (["main", "alloc", "mallocgc"], noisy(200)),
                    (["main", "alloc", "mallocgc", "gc"], noisy(50)),
                ] + (hot == 1 ? [] : i < 60 ? [(["main", "alloc", "oldPath"], 10)] : [(["main", "alloc", "newPath"], 10)]))
        }
    }

    static func withBlocks<T>(_ batches: [SampleBatch], _ body: (QueryEngine) async throws -> T) async throws -> T {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-regression-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try makeObjectStore(url: "file://" + dir.path)
        // Two blocks, split across the change, so profiles are gathered from both.
        for part in [batches[..<45], batches[45...]] {
            var head = Head(tenant: "t1")
            for b in part { head.append(b, from: RecordPosition(topic: "n", partition: 0, offset: b.provenance.offset)) }
            let ulid = ULID.make()
            try await BlockWriter.upload(
                try BlockWriter().encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: [])), to: store)
        }
        let result = try await body(QueryEngine(store: store))
        try await store.shutdown()
        return result
    }

    func selection(_ from: Int, _ until: Int) -> Selection {
        Selection(
            tenant: "t1", profileType: cpuType.id, selector: LabelSelector(),
            time: Self.base + Int64(from) * Self.second...Self.base + Int64(until) * Self.second - 1)
    }

    @Test func theHotterFunctionRanksFirstAndNothingElseRegresses() async throws {
        try await Self.withBlocks(Self.profiles(seed: 3, hot: 3)) { engine in
            let report = try await engine.regressions(
                baseline: selection(0, 60), comparison: selection(60, 120), queries: ("q", "q"), unit: "nanoseconds")
            #expect(report.baseline.profiles == 60 && report.comparison.profiles == 60)
            let top = try #require(report.regressions.first)
            #expect(top.function == "hashLoop", "\(report.regressions.map(\.function))")
            #expect(top.significant && top.q < 0.001 && top.superiority > 0.9)
            // Its callers and its callee rise too, by less: sha is shared with checkout, cpuWorker holds computePrimes.
            let change = Dictionary(
                uniqueKeysWithValues: (report.regressions + report.improvements + report.insignificant).map { ($0.function, $0) })
            #expect(change["sha"]!.totalShare.change < top.totalShare.change)
            #expect(change["cpuWorker"]!.totalShare.change < top.totalShare.change)
            // Unchanged work loses share: improvements, not regressions.
            #expect(Set(report.improvements.map(\.function)).isSuperset(of: ["computePrimes", "alloc", "mallocgc"]))
            #expect(
                !report.regressions.contains { ["computePrimes", "checkout", "alloc", "mallocgc", "gc", "main"].contains($0.function) })
            // Per profile, hashLoop's inclusive cost tripled (noise within a few percent over 60 profiles).
            let ratio = top.totalPerProfile.after / top.totalPerProfile.before
            #expect(ratio > 2.8 && ratio < 3.2, "\(ratio)")
            #expect(top.paths.first?.frames == ["main", "cpuWorker", "hashLoop"])
            let focus = try #require(top.focus)
            #expect(focus.names.first == "hashLoop" && focus.names.contains("sha") && focus.parents.first == -1)
            #expect(Double(focus.after[0]) / Double(focus.before[0]) == ratio)
            #expect(report.newFunctions.map(\.function) == ["newPath"] && report.vanishedFunctions.map(\.function) == ["oldPath"])
            try checkRenderings(report)
            // Shares add up: main is every stack's root.
            #expect(abs(change["main"]!.totalShare.before - 1) < 1e-12 && abs(change["main"]!.totalShare.after - 1) < 1e-12)
        }
    }

    @Test func unchangedWindowsAreRarelyReported() async throws {
        // The false-positive rate: pairs of windows of unchanged behaviour (40 random fleets, 3 pairs each),
        // each tested in full. With q < 0.05 and every hypothesis true, the chance that a pair reports any
        // function is at most 5 %; measured here: 5 of 120 pairs (4.2 %), and never the made-up hot path.
        var pairsReporting = 0
        var pairs = 0
        for seed in UInt64(1)...40 {
            try await Self.withBlocks(Self.profiles(seed: seed, hot: 1)) { engine in
                for (a, b) in [((0, 30), (30, 60)), ((60, 90), (90, 120)), ((0, 40), (80, 120))] {
                    let report = try await engine.regressions(
                        baseline: selection(a.0, a.1), comparison: selection(b.0, b.1), queries: ("q", "q"), unit: "nanoseconds")
                    #expect(report.baseline.profiles == a.1 - a.0 && report.comparison.profiles == b.1 - b.0)
                    if !(report.regressions + report.improvements).isEmpty { pairsReporting += 1 }
                    pairs += 1
                }
            }
        }
        print("regression report: \(pairsReporting) of \(pairs) pairs of unchanged windows reported a significant change")
        #expect(Double(pairsReporting) / Double(pairs) <= 0.075, "\(pairsReporting) of \(pairs) pairs")
    }

    func checkRenderings(_ report: RegressionReport) throws {
        let json = try RegressionReportJSON.render(report)
        #expect(try JSONDecoder().decode(RegressionReport.self, from: Data(json.utf8)) == report)
        let markdown = RegressionReportMarkdown.render(report)
        let regressionsTable = try #require(markdown.components(separatedBy: "## Regressions").last)
        let firstRow = try #require(regressionsTable.split(separator: "\n").first { $0.hasPrefix("| 1 |") })
        #expect(firstRow.contains("`hashLoop`"), "\(firstRow)")
        #expect(markdown.contains("`main › cpuWorker › hashLoop`"))
        let html = RegressionReportHTML.render(report)
        // One focused flame graph per regression that carries one, each box titled with its shares.
        #expect(html.components(separatedBy: "<svg").count - 1 == report.regressions.filter { $0.focus != nil }.count)
        #expect(html.contains("<title>hashLoop: "))
        #expect(!html.contains("<script"))
    }

    @Test func renderingsEscapeNames() throws {
        let odd = "operator<<(ostream&, \"x\")|`y`"
        let change = RegressionReport.FunctionChange(
            function: odd, totalShare: .init(before: 0.1, after: 0.3), selfShare: .init(before: 0.1, after: 0.3),
            totalPerProfile: .init(before: 1e6, after: 3e6), totalPerSecond: .init(before: 1e6, after: 3e6),
            p: 1e-9, q: 1e-8, superiority: 1, significant: true,
            paths: [.init(frames: ["main", odd], share: .init(before: 0.1, after: 0.3))],
            focus: .init(names: [odd, "leaf<T>"], parents: [-1, 0], before: [10, 5], after: [30, 20]))
        let report = RegressionReport(
            unit: "nanoseconds", baseline: .init(query: "q{a=\"<b>\"}", fromMillis: 0, untilMillis: 1000, profiles: 2, total: 100),
            comparison: .init(query: "q", fromMillis: 0, untilMillis: 1000, profiles: 2, total: 100),
            method: .init(test: "t", correction: "c", alpha: 0.05, minShareChange: 0.001, functionsSeen: 2, functionsTested: 2),
            regressions: [change], improvements: [], insignificant: [], newFunctions: [], vanishedFunctions: [])
        let html = RegressionReportHTML.render(report)
        #expect(html.contains("operator&lt;&lt;(ostream&amp;, &quot;x&quot;)|`y`") && !html.contains("operator<<"))
        #expect(html.contains("leaf&lt;T&gt;") && html.contains("q{a=&quot;&lt;b&gt;&quot;}"))
        let markdown = RegressionReportMarkdown.render(report)
        // A `|` would split the table row and a backtick would end the code span.
        #expect(markdown.contains("`operator<<(ostream&, \"x\")\\|'y'`"))
    }
}
