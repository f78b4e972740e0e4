import KilnProtos
import ProfileModel
import Query

/// A recording rule ready to run over sample batches.
public struct CompiledRule: Sendable {
    public let id: String
    public let profileType: String
    let selector: LabelSelector
    let groupBy: [String]
    /// `__name__`, `profiles_rule_id` (as Pyroscope labels its recorded series) and the rule's external labels.
    let fixedLabels: LabelSet
    /// Only stacks through this function count ("the total of this function"), when set.
    let functionName: String?

    public init(_ rule: Settings_V1_RecordingRule) throws {
        id = rule.id
        profileType = rule.profileType
        var matchers: [LabelMatcher] = []
        for text in rule.matchers { matchers += try LabelSelector(parsing: text).matchers }
        selector = LabelSelector(matchers)
        groupBy = rule.groupBy
        var labels = LabelSet(rule.externalLabels.map { Label($0.name, $0.value) })
        labels[LabelName.metricName] = rule.metricName
        labels[CompiledRule.ruleIDLabel] = rule.id
        fixedLabels = labels
        let function = rule.stacktraceFilter.functionName.functionName
        functionName = rule.hasStacktraceFilter && rule.stacktraceFilter.hasFunctionName && !function.isEmpty ? function : nil
    }

    public static let ruleIDLabel = "profiles_rule_id"

    /// The recorded series a batch series falls in, or nil when the rule does not select it. The group's
    /// labels are taken as `SelectSeries` takes them: a series without a `group_by` label has none.
    func output(for series: BatchSeries) -> LabelSet? {
        guard series.profileType.id == profileType, selector.matches(series.labels) else { return nil }
        var labels = fixedLabels
        for name in groupBy { if let v = series.labels[name] { labels[name] = v } }
        return labels
    }
}

/// Recording rules evaluated over the normalized stream: each sample adds its value to its rules' series
/// at the step that holds it, and a step is handed out whole once the caller knows no more samples for it
/// will come. Steps are aligned as `SelectSeries` aligns them when its range starts on a step boundary:
/// the point at T (ms, a multiple of the step) holds the samples in (T − step, T]. Sums are kept as
/// integers, so a recorded value equals what `SelectSeries` adds up for the same samples.
public struct RuleEvaluation: Sendable {
    public struct SeriesKey: Hashable, Sendable {
        public var tenant: String
        public var labels: LabelSet
    }

    public let stepMillis: Int64
    /// The most recorded series one rule may make in a step; samples of further groups are dropped and counted.
    public let maxSeriesPerRule: Int
    /// Every step ending at or before this (ms) was handed out; samples for them arrive too late.
    public private(set) var completedThrough: Int64
    /// Open steps by their end (ms).
    private(set) var open: [Int64: [SeriesKey: Int64]] = [:]
    /// Recorded series per rule ID in each open step.
    private var seriesPerRule: [Int64: [String: Int]] = [:]

    public init(stepMillis: Int64, completedThrough: Int64 = 0, maxSeriesPerRule: Int = 10_000) {
        precondition(stepMillis > 0)
        self.stepMillis = stepMillis
        self.completedThrough = completedThrough
        self.maxSeriesPerRule = maxSeriesPerRule
    }

    /// The step (its end, ms) a sample at `nanos` counts toward.
    public func stepEnd(ofNanos nanos: Int64) -> Int64 {
        let ms = nanos / 1_000_000
        let steps = ms >= 0 ? (ms + stepMillis - 1) / stepMillis : ms / stepMillis
        return steps * stepMillis
    }

    public struct Outcome: Sendable, Equatable {
        /// The latest step a sample of the batch went to (nil: none went anywhere).
        public var latestStep: Int64?
        public var samplesRecorded = 0
        /// Samples of steps already handed out.
        public var samplesLate = 0
        /// Samples of groups past a rule's series limit.
        public var samplesOverLimit = 0
    }

    /// Adds the batch's samples to the open steps of the rules that select them.
    public mutating func add(_ batch: SampleBatch, rules: [CompiledRule]) -> Outcome {
        var outcome = Outcome()
        guard !rules.isEmpty, batch.sampleCount > 0 else { return outcome }
        // Per batch series: the (rule, recorded series) pairs it feeds.
        let targets: [[(rule: Int, key: SeriesKey)]] = batch.series.map { series in
            rules.indices.compactMap { r in rules[r].output(for: series).map { (r, SeriesKey(tenant: batch.tenant, labels: $0)) } }
        }
        guard targets.contains(where: { !$0.isEmpty }) else { return outcome }
        let throughFunction = Self.stacksThroughFunctions(of: rules, in: batch)
        for i in 0..<batch.sampleCount {
            let feeds = targets[Int(batch.sampleSeries[i])]
            if feeds.isEmpty { continue }
            let step = stepEnd(ofNanos: batch.sampleTimes[i])
            for (r, key) in feeds {
                if let stacks = throughFunction[r], !stacks.contains(batch.sampleStacks[i]) { continue }
                guard step > completedThrough else {
                    outcome.samplesLate += 1
                    continue
                }
                if let sum = open[step]?[key] {
                    open[step]![key] = sum &+ batch.sampleValues[i]
                } else if seriesPerRule[step]?[rules[r].id] ?? 0 >= maxSeriesPerRule {
                    outcome.samplesOverLimit += 1
                    continue
                } else {
                    open[step, default: [:]][key] = batch.sampleValues[i]
                    seriesPerRule[step, default: [:]][rules[r].id, default: 0] += 1
                }
                outcome.samplesRecorded += 1
                outcome.latestStep = max(outcome.latestStep ?? step, step)
            }
        }
        return outcome
    }

    /// For each rule with a function filter: the batch's stacks holding a frame of that function.
    static func stacksThroughFunctions(of rules: [CompiledRule], in batch: SampleBatch) -> [Int: Set<UInt32>] {
        var out: [Int: Set<UInt32>] = [:]
        var byName: [String: Set<UInt32>] = [:]
        for (r, rule) in rules.enumerated() {
            guard let name = rule.functionName else { continue }
            if let known = byName[name] {
                out[r] = known
                continue
            }
            var frames = Set<UInt32>()
            for (f, frame) in batch.symbols.frames.enumerated()
            where batch.symbols.strings[Int(batch.symbols.functions[Int(frame.function)].name)] == name {
                frames.insert(UInt32(f))
            }
            var stacks = Set<UInt32>()
            if !frames.isEmpty {
                for s in 0..<batch.stacks.count where batch.stacks.stack(s).contains(where: frames.contains) {
                    stacks.insert(UInt32(s))
                }
            }
            byName[name] = stacks
            out[r] = stacks
        }
        return out
    }

    /// Hands out every open step ending at or before `through` (ms), per tenant as remote-write series
    /// (labels sorted, samples in time order), and records them as complete.
    public mutating func complete(through: Int64) -> [String: [Prometheus_TimeSeries]] {
        guard through > completedThrough else { return [:] }
        var points: [SeriesKey: [(Int64, Int64)]] = [:]
        for (step, sums) in open where step <= through {
            for (key, value) in sums { points[key, default: []].append((step, value)) }
            open[step] = nil
            seriesPerRule[step] = nil
        }
        completedThrough = through
        var out: [String: [Prometheus_TimeSeries]] = [:]
        for (key, steps) in points.sorted(by: { $0.key.labels.description < $1.key.labels.description }) {
            var series = Prometheus_TimeSeries()
            series.labels = key.labels.labels.map { label in
                var l = Prometheus_Label()
                (l.name, l.value) = (label.name, label.value)
                return l
            }
            series.samples = steps.sorted { $0.0 < $1.0 }.map { step, value in
                var sample = Prometheus_Sample()
                (sample.timestamp, sample.value) = (step, Double(value))
                return sample
            }
            out[key.tenant, default: []].append(series)
        }
        return out
    }

    /// The earliest open step's end, if any step is open.
    public var earliestOpenStep: Int64? { open.keys.min() }
}
