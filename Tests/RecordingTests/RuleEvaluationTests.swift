import KilnProtos
import ProfileModel
import Recording
import Testing

@Suite struct RuleEvaluationTests {
    static let cpu = ProfileTypeID(parsing: "process_cpu:cpu:nanoseconds:cpu:nanoseconds")!
    static let alloc = ProfileTypeID(parsing: "memory:alloc_space:bytes:space:bytes")!

    static func rule(
        _ id: String, metric: String, type: ProfileTypeID = cpu, matchers: [String] = [], groupBy: [String] = [], function: String? = nil
    ) throws -> CompiledRule {
        var r = Settings_V1_RecordingRule()
        r.id = id
        r.metricName = metric
        r.profileType = type.id
        r.matchers = ["{__profile_type__=\"\(type.id)\"}"] + matchers
        r.groupBy = groupBy
        var label = Types_V1_LabelPair()
        (label.name, label.value) = ("source", "kiln")
        r.externalLabels = [label]
        if let function { r.stacktraceFilter.functionName.functionName = function }
        return try CompiledRule(r)
    }

    /// Two services' CPU series and one allocation series; stacks main→a, main→a→b→a (recursive), main→c.
    static func batch(times: [Int64], values: [Int64], series: [UInt32], stacks: [UInt32]) -> SampleBatch {
        var b = SampleBatch(tenant: "t1", provenance: Provenance(topic: "raw", partition: 0, offset: 0))
        for (service, type) in [("api", cpu), ("db", cpu), ("api", alloc)] {
            b.series.append(
                BatchSeries(
                    labels: LabelSet([
                        Label("service_name", service), Label("__name__", type.name), Label("__profile_type__", type.id),
                        Label("env", "prod"),
                    ]), profileType: type))
        }
        b.symbols.strings = ["", "main", "a", "b", "c"]
        b.symbols.functions = (1...4).map { FunctionSymbol(name: UInt32($0), systemName: UInt32($0), filename: 0, startLine: 0) }
        b.symbols.frames = (0..<4).map { FrameSymbol(function: UInt32($0), line: 1) }
        // Leaf first.
        b.stacks.append([1, 0])
        b.stacks.append([1, 2, 1, 0])
        b.stacks.append([3, 0])
        b.sampleTimes = times
        b.sampleValues = values
        b.sampleSeries = series
        b.sampleStacks = stacks
        b.sampleSpans = Array(repeating: 0, count: times.count)
        return b
    }

    func points(_ out: [RuleEvaluation.CompletedStep], _ metric: String) -> [String: [(Int64, Double)]] {
        var byGroup: [String: [(Int64, Double)]] = [:]
        for completed in out where completed.tenant == "t1" {
            for s in completed.series where s.labels.contains(where: { $0.name == "__name__" && $0.value == metric }) {
                #expect(s.samples.map(\.timestamp) == [completed.step])
                let group = s.labels.first { $0.name == "service_name" }?.value ?? ""
                byGroup[group, default: []] += s.samples.map { ($0.timestamp, $0.value) }
            }
        }
        return byGroup
    }

    @Test func samplesFallIntoTheStepEndingAtOrAfterThemGroupedLikeSelectSeries() throws {
        let ms: Int64 = 1_000_000
        let base: Int64 = 1_700_000_010_000  // a multiple of 15 s, in ms
        var evaluation = RuleEvaluation(stepMillis: 15_000)
        let rules = [try Self.rule("bysvc", metric: "profiles_recorded_cpu", groupBy: ["service_name"])]
        let b = Self.batch(
            times: [base - 1, base, base + 1, base + 14_999, base + 15_000, base].map { $0 * ms },
            values: [1, 2, 4, 8, 16, 1000], series: [0, 0, 0, 1, 1, 2], stacks: [0, 0, 0, 0, 0, 0])
        let outcome = evaluation.add(b, rules: rules)
        #expect(outcome.samplesRecorded == 5, "the allocation sample is another profile type")
        #expect(outcome.latestStep == base + 15_000)
        #expect(evaluation.complete(through: base - 15_000).isEmpty)
        let out = evaluation.complete(through: base + 15_000)
        let got = points(out, "profiles_recorded_cpu")
        #expect(got["api"]?.map(\.0) == [base, base + 15_000])
        #expect(got["api"]?.map(\.1) == [3, 4])
        #expect(got["db"]?.map(\.0) == [base + 15_000])
        #expect(got["db"]?.map(\.1) == [24])
        #expect(out.map(\.step) == out.map(\.step).sorted(), "oldest step first")
        let labels = try #require(out.first?.series.first?.labels.map(\.name))
        #expect(labels == labels.sorted(), "remote write wants labels sorted by name")
        #expect(Set(labels) == ["__name__", "profiles_rule_id", "service_name", "source"])
        // A step handed out takes no more samples: they are counted as late.
        let late = evaluation.add(Self.batch(times: [base * ms], values: [5], series: [0], stacks: [0]), rules: rules)
        #expect(late.samplesLate == 1 && late.samplesRecorded == 0 && late.latestStep == nil)
        #expect(evaluation.earliestOpenStep == nil)
    }

    /// A batch whose samples go back and forth over 20 steps (more than the evaluation sums at once) adds
    /// up as the same samples sent one batch each.
    @Test func aBatchOfManyStepsAddsUpAsItsSamplesOneByOne() throws {
        let ms: Int64 = 1_000_000
        let base: Int64 = 1_700_000_010_000
        let rules = [
            try Self.rule("bysvc", metric: "profiles_recorded_cpu", groupBy: ["service_name"]),
            try Self.rule("fn", metric: "profiles_recorded_b", groupBy: ["service_name"], function: "b"),
        ]
        let n = 120
        let times = (0..<n).map { (base + Int64(($0 * 7) % 20) * 15_000 - 1) * ms }
        let values = (0..<n).map { Int64($0 + 1) }
        let series = (0..<n).map { UInt32($0 % 2) }
        let stacks = (0..<n).map { UInt32($0 % 3) }
        var whole = RuleEvaluation(stepMillis: 15_000)
        var oneByOne = RuleEvaluation(stepMillis: 15_000)
        let outcome = whole.add(Self.batch(times: times, values: values, series: series, stacks: stacks), rules: rules)
        var recorded = 0
        for i in 0..<n {
            recorded +=
                oneByOne.add(Self.batch(times: [times[i]], values: [values[i]], series: [series[i]], stacks: [stacks[i]]), rules: rules)
                .samplesRecorded
        }
        #expect(outcome.samplesRecorded == recorded && recorded == n + n / 3)
        let end = base + 20 * 15_000
        let (a, b) = (whole.complete(through: end), oneByOne.complete(through: end))
        for metric in ["profiles_recorded_cpu", "profiles_recorded_b"] {
            let got = points(a, metric)
            #expect(got.mapValues { $0.map(\.1) } == points(b, metric).mapValues { $0.map(\.1) })
            #expect(got["api"]?.count == 10 && got["db"]?.count == 10, "\(metric): each service's samples fall in 10 of the 20 steps")
        }
    }

    @Test func aFunctionFilterCountsEachStackThroughTheFunctionOnce() throws {
        var evaluation = RuleEvaluation(stepMillis: 15_000)
        let rules = [
            try Self.rule("througha", metric: "profiles_recorded_a", function: "a"),
            try Self.rule("throughc", metric: "profiles_recorded_c", matchers: ["{service_name=\"db\"}"], function: "c"),
            try Self.rule("nowhere", metric: "profiles_recorded_none", function: "missing"),
        ]
        let t: Int64 = 1_700_000_005_000 * 1_000_000
        _ = evaluation.add(
            Self.batch(times: [t, t, t, t], values: [10, 20, 40, 80], series: [0, 0, 0, 1], stacks: [0, 1, 2, 2]), rules: rules)
        let out = evaluation.complete(through: 1_700_000_010_000)
        // Stacks 0 and 1 pass through a (stack 1 twice: counted once); stack 2 does not.
        #expect(points(out, "profiles_recorded_a")[""]?.map(\.1) == [30])
        // Only db's sample through c.
        #expect(points(out, "profiles_recorded_c")[""]?.map(\.1) == [80])
        #expect(points(out, "profiles_recorded_none").isEmpty)
    }

    @Test func groupsPastTheSeriesLimitAreDroppedAndCounted() throws {
        var evaluation = RuleEvaluation(stepMillis: 15_000, maxSeriesPerRule: 1)
        let rules = [try Self.rule("bysvc", metric: "profiles_recorded_cpu", groupBy: ["service_name"])]
        let t: Int64 = 1_700_000_005_000 * 1_000_000
        let outcome = evaluation.add(
            Self.batch(times: [t, t, t], values: [1, 2, 4], series: [0, 1, 0], stacks: [0, 0, 0]), rules: rules)
        #expect(outcome.samplesRecorded == 2 && outcome.samplesOverLimit == 1)
        #expect(points(evaluation.complete(through: 1_700_000_010_000), "profiles_recorded_cpu").mapValues { $0.map(\.1) } == ["api": [5]])
    }

    @Test func discardedStepsAreRebuiltFromTheSameSamplesWithTheSameValues() throws {
        let rules = [try Self.rule("bysvc", metric: "profiles_recorded_cpu", groupBy: ["service_name"])]
        let t: Int64 = 1_700_000_005_000 * 1_000_000
        let b = Self.batch(times: [t, t + 1_000_000_000], values: [3, 4], series: [0, 1], stacks: [0, 2])
        var once = RuleEvaluation(stepMillis: 15_000)
        _ = once.add(b, rules: rules)
        var again = RuleEvaluation(stepMillis: 15_000)
        _ = again.add(b, rules: rules)
        // A rebalance drops the open steps; the partition is read again from the first record that fed them.
        again.discardOpenSteps()
        #expect(again.earliestOpenStep == nil)
        _ = again.add(b, rules: rules)
        let first = points(once.complete(through: 1_700_000_010_000), "profiles_recorded_cpu")
        let second = points(again.complete(through: 1_700_000_010_000), "profiles_recorded_cpu")
        #expect(first.mapValues { $0.map(\.1) } == ["api": [3], "db": [4]])
        #expect(second.mapValues { $0.map(\.1) } == first.mapValues { $0.map(\.1) })
    }
}
