import KilnProtos
import ProfileModel
import Query
import Records

/// A recording rule ready to run over sample batches.
public struct CompiledRule: Sendable {
    public let id: String
    public let profileType: String
    /// `profileType` parsed, so a series' type is compared without spelling it out.
    let profileTypeID: ProfileTypeID?
    let selector: LabelSelector
    let groupBy: [String]
    /// `__name__`, `profiles_rule_id` (as Pyroscope labels its recorded series) and the rule's external labels.
    let fixedLabels: LabelSet
    /// Only stacks through this function count ("the total of this function"), when set.
    let functionName: String?

    public init(_ rule: Settings_V1_RecordingRule) throws {
        id = rule.id
        profileType = rule.profileType
        profileTypeID = ProfileTypeID(parsing: rule.profileType)
        selector = try RecordingRules.selector(rule)
        groupBy = rule.groupBy
        var labels = LabelSet(rule.externalLabels.map { Label($0.name, $0.value) })
        labels[LabelName.metricName] = rule.metricName
        labels[CompiledRule.ruleIDLabel] = rule.id
        fixedLabels = labels
        let function = rule.stacktraceFilter.functionName.functionName
        functionName = rule.hasStacktraceFilter && rule.stacktraceFilter.hasFunctionName && !function.isEmpty ? function : nil
    }

    public static let ruleIDLabel = "profiles_rule_id"

    /// Whether the rule records samples of this series.
    func selects(_ series: BatchSeries) -> Bool { series.profileType == profileTypeID && selector.matches(series.labels) }

    /// The recorded series a batch series falls in, or nil when the rule does not select it. The group's
    /// labels are taken as `SelectSeries` takes them: a series without a `group_by` label has none.
    func output(for series: BatchSeries) -> LabelSet? {
        guard selects(series) else { return nil }
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
        /// The rule that records it (a series is limited per rule).
        var rule: String
    }

    public let stepMillis: Int64
    /// The most recorded series one rule may make in a step; samples of further groups are dropped and counted.
    public let maxSeriesPerRule: Int
    /// Every step ending at or before this (ms) was handed out; samples for them arrive too late.
    public private(set) var completedThrough: Int64
    /// Recorded series by a dense ID, so the per-sample work adds to integers keyed by integers.
    private var seriesIDs: [SeriesKey: Int] = [:]
    private var seriesKeys: [SeriesKey] = []
    /// Open steps by their end (ms): the sum of each recorded series (by ID).
    private(set) var open: [Int64: [Int: Int64]] = [:]
    /// Recorded series per rule ID in each open step.
    private var seriesPerRule: [Int64: [String: Int]] = [:]

    public init(stepMillis: Int64, completedThrough: Int64 = 0, maxSeriesPerRule: Int = RecordingRules.maxSeriesPerRule) {
        precondition(stepMillis > 0)
        self.stepMillis = stepMillis
        self.completedThrough = completedThrough
        self.maxSeriesPerRule = maxSeriesPerRule
    }

    /// The step (its end, ms) a sample at `nanos` counts toward.
    public func stepEnd(ofNanos nanos: Int64) -> Int64 { Self.stepEnd(ofNanos: nanos, stepMillis: stepMillis) }

    static func stepEnd(ofNanos nanos: Int64, stepMillis: Int64) -> Int64 {
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

    /// One recorded series a batch series feeds, and which of the batch's sums it takes: 0 every stack,
    /// k > 0 the stacks through the k-th function filter.
    private struct Feed {
        var series: Int
        var filter: Int
    }

    private struct StepSeries: Hashable {
        var step: Int64
        var series: Int
    }

    /// The function names `rules` filter by, each once: what `BatchCodec.decodeForRules` is asked for.
    public static func functionNames(_ rules: [CompiledRule]) -> [String] {
        var names: [String] = []
        for rule in rules { if let name = rule.functionName, !names.contains(name) { names.append(name) } }
        return names
    }

    /// What `BatchCodec.decodeForRules` must read of a record with these series: nil when no rule selects
    /// one of them, else the names the rules that do filter by.
    public static func functionNames(_ rules: [CompiledRule], forSeries series: [BatchSeries]) -> [String]? {
        var names: [String] = []
        var selected = false
        for rule in rules where series.contains(where: rule.selects) {
            selected = true
            if let name = rule.functionName, !names.contains(name) { names.append(name) }
        }
        return selected ? names : nil
    }

    /// Adds a whole batch's samples (tests; the ruler reads records with `BatchCodec.decodeForRules`).
    public mutating func add(_ batch: SampleBatch, rules: [CompiledRule]) -> Outcome {
        add(RuleBatch(batch, functionNames: Self.functionNames(rules)), rules: rules)
    }

    /// Adds the batch's samples to the open steps of the rules that select them. The batch was read for
    /// these rules: it answers every function name they filter by.
    public mutating func add(_ batch: RuleBatch, rules: [CompiledRule]) -> Outcome {
        var outcome = Outcome()
        guard !rules.isEmpty, batch.sampleCount > 0 else { return outcome }
        // Per batch series: the rules that select it (a handful of label sets per batch, not per sample).
        let selected: [[(rule: Int, labels: LabelSet)]] = batch.series.map { series in
            rules.indices.compactMap { r in rules[r].output(for: series).map { (r, $0) } }
        }
        guard selected.contains(where: { !$0.isEmpty }) else { return outcome }
        // Sum 0 takes every stack, sum k > 0 the stacks through the batch's k-th function name.
        func filter(_ rule: CompiledRule) -> Int {
            guard let name = rule.functionName else { return 0 }
            guard let k = batch.functionNames.firstIndex(of: name) else {
                preconditionFailure("the batch was read without function \(name) of rule \(rule.id)")
            }
            return 1 + k
        }
        let filters = 1 + batch.functionNames.count
        let feeds: [[Feed]] = selected.map { list in
            list.map { r, labels in
                let filter = filter(rules[r])
                let key = SeriesKey(tenant: batch.tenant, labels: labels, rule: rules[r].id)
                if let known = seriesIDs[key] { return Feed(series: known, filter: filter) }
                seriesIDs[key] = seriesKeys.count
                seriesKeys.append(key)
                return Feed(series: seriesKeys.count - 1, filter: filter)
            }
        }
        // One pass over the samples sums each (step, batch series, filter) into dense arrays: a batch
        // holds one or a few profile times, so steps change rarely and the rules only meet the sums. The
        // arrays hold a few steps at a time (a batch of many times must not make them steps × series large):
        // when full they are moved into `local`, the batch's sums per recorded series and step in the order
        // first met (a rule's series limit admits the first groups), merged into the open steps below.
        let width = batch.series.count * filters
        let stepsAtOnce = 8
        let stepMillis = self.stepMillis
        let completedThrough = self.completedThrough
        var stepOfBlock: [Int64] = []
        var sums = [Int64](repeating: 0, count: stepsAtOnce * width)
        var counts = [Int](repeating: 0, count: stepsAtOnce * width)
        var localIndex: [StepSeries: Int] = [:]
        var local: [(key: StepSeries, sum: Int64, samples: Int)] = []
        var samplesLate = 0
        // Moves the blocks' sums into `local` and zeroes them (called with the arrays' pointers: the loop
        // below holds them, and a pointer write costs no uniqueness or exclusivity check).
        func moveSumsToLocal(_ sums: UnsafeMutableBufferPointer<Int64>, _ counts: UnsafeMutableBufferPointer<Int>) {
            for (block, step) in stepOfBlock.enumerated() {
                for (b, list) in feeds.enumerated() {
                    for feed in list {
                        let at = block * width + b * filters + feed.filter
                        guard counts[at] > 0 else { continue }
                        guard step > completedThrough else {
                            samplesLate += counts[at]
                            continue
                        }
                        let key = StepSeries(step: step, series: feed.series)
                        if let j = localIndex[key] {
                            local[j].sum &+= sums[at]
                            local[j].samples += counts[at]
                        } else {
                            localIndex[key] = local.count
                            local.append((key, sums[at], counts[at]))
                        }
                    }
                }
            }
            let used = stepOfBlock.count * width
            sums.baseAddress!.update(repeating: 0, count: used)
            counts.baseAddress!.update(repeating: 0, count: used)
            stepOfBlock.removeAll(keepingCapacity: true)
        }
        // Per batch series, whether a rule reads it.
        let read = feeds.map { !$0.isEmpty }
        let stackCount = batch.stackCount
        var lastTime = Int64.min
        var block = 0
        sums.withUnsafeMutableBufferPointer { sums in
            counts.withUnsafeMutableBufferPointer { counts in
                batch.sampleSeries.withUnsafeBufferPointer { seriesOf in
                    batch.sampleTimes.withUnsafeBufferPointer { times in
                        batch.sampleStacks.withUnsafeBufferPointer { stacks in
                            batch.sampleValues.withUnsafeBufferPointer { values in
                                batch.stacksThrough.withUnsafeBufferPointer { passes in
                                    for i in 0..<values.count {
                                        let b = Int(seriesOf[i])
                                        guard read[b] else { continue }
                                        if times[i] != lastTime {
                                            lastTime = times[i]
                                            let step = Self.stepEnd(ofNanos: lastTime, stepMillis: stepMillis)
                                            if let known = stepOfBlock.firstIndex(of: step) {
                                                block = known
                                            } else {
                                                if stepOfBlock.count == stepsAtOnce { moveSumsToLocal(sums, counts) }
                                                block = stepOfBlock.count
                                                stepOfBlock.append(step)
                                            }
                                        }
                                        let at = block &* width &+ b &* filters
                                        let value = values[i]
                                        sums[at] &+= value
                                        counts[at] &+= 1
                                        // Without filters the batch was read without its stacks.
                                        guard filters > 1 else { continue }
                                        var pass = Int(stacks[i])
                                        for f in 1..<filters {
                                            if passes[pass] {
                                                sums[at &+ f] &+= value
                                                counts[at &+ f] &+= 1
                                            }
                                            pass &+= stackCount
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                moveSumsToLocal(sums, counts)
            }
        }
        outcome.samplesLate += samplesLate
        for (key, sum, samples) in local {
            if let current = open[key.step]?[key.series] {
                open[key.step]![key.series] = current &+ sum
            } else {
                let rule = seriesKeys[key.series].rule
                guard seriesPerRule[key.step]?[rule] ?? 0 < maxSeriesPerRule else {
                    outcome.samplesOverLimit += samples
                    continue
                }
                open[key.step, default: [:]][key.series] = sum
                seriesPerRule[key.step, default: [:]][rule, default: 0] += 1
            }
            outcome.samplesRecorded += samples
            outcome.latestStep = max(outcome.latestStep ?? key.step, key.step)
        }
        return outcome
    }

    /// One completed step of one tenant: a sample per recorded series, labels sorted by name.
    public struct CompletedStep: Sendable {
        public var tenant: String
        /// The step's end (ms), every sample's timestamp.
        public var step: Int64
        public var series: [Prometheus_TimeSeries]
    }

    /// Hands out every open step ending at or before `through` (ms), oldest first (remote write wants a
    /// series' samples in time order), and records them as complete.
    public mutating func complete(through: Int64) -> [CompletedStep] {
        guard through > completedThrough else { return [] }
        var out: [CompletedStep] = []
        for step in open.keys.filter({ $0 <= through }).sorted() {
            var byTenant: [String: [Prometheus_TimeSeries]] = [:]
            for (id, value) in open[step]!.sorted(by: { seriesKeys[$0.key].labels.description < seriesKeys[$1.key].labels.description }) {
                let key = seriesKeys[id]
                var series = Prometheus_TimeSeries()
                series.labels = key.labels.labels.map { label in
                    var l = Prometheus_Label()
                    (l.name, l.value) = (label.name, label.value)
                    return l
                }
                var sample = Prometheus_Sample()
                (sample.timestamp, sample.value) = (step, Double(value))
                series.samples = [sample]
                byTenant[key.tenant, default: []].append(series)
            }
            for (tenant, series) in byTenant.sorted(by: { $0.key < $1.key }) {
                out.append(CompletedStep(tenant: tenant, step: step, series: series))
            }
            open[step] = nil
            seriesPerRule[step] = nil
        }
        completedThrough = through
        forgetSeriesOfCompletedSteps()
        return out
    }

    /// Keeps only the IDs the open steps still use, so series that stopped do not pile up.
    private mutating func forgetSeriesOfCompletedSteps() {
        var remap: [Int: Int] = [:]
        var keys: [SeriesKey] = []
        for sums in open.values {
            for id in sums.keys where remap[id] == nil {
                remap[id] = keys.count
                keys.append(seriesKeys[id])
            }
        }
        open = open.mapValues { sums in Dictionary(uniqueKeysWithValues: sums.map { (remap[$0.key]!, $0.value) }) }
        seriesKeys = keys
        seriesIDs = Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($0.element, $0.offset) })
    }

    /// Forgets every open step, for a caller that will read their samples again (after a rebalance).
    public mutating func discardOpenSteps() {
        open.removeAll()
        seriesPerRule.removeAll()
        forgetSeriesOfCompletedSteps()
    }

    /// The earliest open step's end, if any step is open.
    public var earliestOpenStep: Int64? { open.keys.min() }
}
