import PprofCodec
import ProfileModel
import Records

/// Why a raw record could not be normalised; the text goes into the DLQ record's reason header.
public struct NormalizationError: Error, Sendable, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// What one raw profile became.
public struct NormalizationResult: Sendable {
    /// nil when nothing is left to publish (a cumulative baseline, or every sample dropped).
    public var batch: SampleBatch?
    public var deltaOutcome: DeltaOutcome
    public var samplesIn: Int

    public enum DeltaOutcome: String, Sendable {
        case notCumulative = "not_cumulative"
        case baseline
        case reset
        case delta
    }
}

public struct NormalizerOptions: Sendable {
    public var limits: PprofLimits
    /// Series whose cumulative values are remembered for deltas (least recently used forgotten).
    public var maxDeltaSeries: Int

    public init(limits: PprofLimits = .default, maxDeltaSeries: Int = 100_000) {
        self.limits = limits
        self.maxDeltaSeries = maxDeltaSeries
    }
}

/// pprof (or folded text) in, one deduplicated `SampleBatch` out.
///
/// - one profile type per sample type, named `__name__:type:unit:period_type:period_unit`;
/// - series labels = envelope labels + the sample's string labels, except `span_id`/`trace_id`, which stay
///   per sample; `__`-prefixed labels other than `__name__` are dropped; `service_name` always present;
/// - cumulative sample types become deltas (`DeltaTracker`);
/// - stacks are expanded (inline frames become frames) and deduplicated, with their symbols;
/// - samples with a zero value or an empty stack are dropped and counted.
///
/// Not thread-safe by design: one normaliser owns one partition's stream (deltas need order).
public struct Normalizer: Sendable {
    public let options: NormalizerOptions
    private let decoder: PprofDecoder
    private var deltas: DeltaTracker

    public init(options: NormalizerOptions = NormalizerOptions()) {
        self.options = options
        decoder = PprofDecoder(limits: options.limits)
        deltas = DeltaTracker(maxSeries: options.maxDeltaSeries)
    }

    public var deltaSeriesCount: Int { deltas.seriesCount }

    public mutating func normalize(_ envelope: RawEnvelope, provenance: Provenance) throws(NormalizationError) -> NormalizationResult {
        let profile: PprofProfile
        switch envelope.format {
        case .pprof:
            do { profile = try decoder.decode(envelope.payload) } catch { throw NormalizationError("pprof: \(error.description)") }
        case .folded:
            profile = try FoldedProfile.parse(envelope.payload, attributes: envelope.attributes, limits: options.limits)
        }
        guard !profile.sampleTypes.isEmpty else { throw NormalizationError("profile has no sample types") }
        return try normalize(profile, envelope: envelope, provenance: provenance)
    }

    mutating func normalize(_ p: PprofProfile, envelope: RawEnvelope, provenance: Provenance) throws(NormalizationError) -> NormalizationResult {
        var builder = BatchBuilder(profile: p)
        let typeCount = p.sampleTypes.count
        let sampleTypeNames = p.sampleTypes.map { p.string($0.type) }
        let periodType = p.periodType.map { p.string($0.type) } ?? ""
        let periodUnit = p.periodType.map { p.string($0.unit) } ?? ""

        var baseLabels = LabelSet()
        for label in envelope.labels.labels where !label.name.hasPrefix("__") || label.name == LabelName.metricName {
            baseLabels[label.name] = label.value
        }
        let name = baseLabels[LabelName.metricName] ?? ProfileNaming.inferName(sampleTypes: sampleTypeNames, periodType: periodType)
        baseLabels[LabelName.metricName] = name
        if baseLabels[LabelName.serviceName] == nil { baseLabels[LabelName.serviceName] = "unknown_service" }
        let types = (0..<typeCount).map { t in
            ProfileTypeID(name: name, sampleType: sampleTypeNames[t], sampleUnit: p.string(p.sampleTypes[t].unit),
                          periodType: periodType, periodUnit: periodUnit)
        }
        let cumulativeTypes = (0..<typeCount).filter { envelope.cumulative && ProfileNaming.cumulativeSampleTypes.contains(sampleTypeNames[$0]) }
        let profileTime = p.timeNanos != 0 ? p.timeNanos : envelope.startNanos

        // Per sample: its series-label variant (index into `labelVariants`) and span id.
        var labelVariants: [LabelSet] = []
        var variantIndex: [[Label]: Int] = [:]
        var sampleVariant = [Int32](repeating: 0, count: p.sampleCount)
        var sampleSpan = [UInt64](repeating: 0, count: p.sampleCount)
        var noLabelVariant = -1
        for s in 0..<p.sampleCount {
            let labels = p.labels(s)
            var extra: [Label] = []
            for l in labels where !l.isNumeric {
                let key = p.string(l.key)
                if key == LabelName.spanID || key == LabelName.profileID {
                    sampleSpan[s] = UInt64(p.string(l.str), radix: 16) ?? 0
                } else if key == LabelName.traceID || key.hasPrefix("__") {
                    continue
                } else {
                    extra.append(Label(key, p.string(l.str)))
                }
            }
            if extra.isEmpty {
                if noLabelVariant < 0 {
                    noLabelVariant = labelVariants.count
                    labelVariants.append(baseLabels)
                }
                sampleVariant[s] = Int32(noLabelVariant)
            } else if let v = variantIndex[extra] {
                sampleVariant[s] = Int32(v)
            } else {
                var set = baseLabels
                // Envelope labels win over sample labels of the same name (the target's identity).
                for l in extra where envelope.labels[l.name] == nil { set[l.name] = l.value }
                variantIndex[extra] = labelVariants.count
                sampleVariant[s] = Int32(labelVariants.count)
                labelVariants.append(set)
            }
        }

        // Cumulative types: replace values by deltas.
        var values = p.values
        let variantHashes = labelVariants.map(\.fingerprint)
        var outcome: NormalizationResult.DeltaOutcome = .notCumulative
        if !cumulativeTypes.isEmpty {
            var entries: [(DeltaTracker.StackKey, Int64)] = []
            entries.reserveCapacity(p.sampleCount * cumulativeTypes.count)
            var positions: [Int] = []
            positions.reserveCapacity(entries.capacity)
            for s in 0..<p.sampleCount {
                let stackKey = builder.contentKey(ofSample: s, labelsHash: variantHashes[Int(sampleVariant[s])])
                for t in cumulativeTypes {
                    var key = stackKey
                    key.hash = (key.hash ^ UInt64(t)) &* 0x9E37_79B9_7F4A_7C15
                    entries.append((key, p.values[s * typeCount + t]))
                    positions.append(s * typeCount + t)
                }
            }
            var seriesKey = FNV1a()
            seriesKey.add(envelope.tenant)
            seriesKey.add(envelope.labels.fingerprint)
            switch deltas.apply(seriesKey: seriesKey.value, entries: entries) {
            case .baseline:
                outcome = .baseline
                for position in positions { values[position] = 0 }
            case .reset:
                outcome = .reset
                for position in positions { values[position] = 0 }
            case .deltas(let d):
                outcome = .delta
                for (i, position) in positions.enumerated() { values[position] = d[i] }
            }
        }

        // Series are created lazily, so a type whose samples are all zero adds none.
        var seriesIndex: [Int: UInt32] = [:]
        var batch = SampleBatch(tenant: envelope.tenant, provenance: provenance)
        batch.sampleSeries.reserveCapacity(p.sampleCount)
        batch.sampleStacks.reserveCapacity(p.sampleCount)
        batch.sampleValues.reserveCapacity(p.sampleCount)
        for s in 0..<p.sampleCount {
            let isCumulativeBaseline = outcome == .baseline || outcome == .reset
            if p.stack(s).isEmpty {
                for t in 0..<typeCount where values[s * typeCount + t] != 0 { batch.droppedEmptyStack += 1 }
                continue
            }
            var stackIndex: UInt32?
            for t in 0..<typeCount {
                let value = values[s * typeCount + t]
                if value == 0 {
                    // A cumulative baseline is not a dropped sample: it is held for the next delta.
                    if !(isCumulativeBaseline && cumulativeTypes.contains(t)) { batch.droppedZeroValue += 1 }
                    continue
                }
                let variant = Int(sampleVariant[s])
                let key = variant * typeCount + t
                let series: UInt32
                if let existing = seriesIndex[key] {
                    series = existing
                } else {
                    series = UInt32(batch.series.count)
                    var labels = labelVariants[variant]
                    labels[LabelName.profileType] = types[t].id
                    batch.series.append(BatchSeries(labels: labels, profileType: types[t]))
                    seriesIndex[key] = series
                }
                if stackIndex == nil { stackIndex = builder.stackIndex(ofSample: s) }
                batch.sampleSeries.append(series)
                batch.sampleStacks.append(stackIndex!)
                batch.sampleValues.append(value)
                batch.sampleTimes.append(profileTime)
                batch.sampleSpans.append(sampleSpan[s])
            }
        }
        batch.symbols = builder.symbols
        batch.stacks = builder.stacks
        return NormalizationResult(batch: batch.sampleCount > 0 ? batch : nil, deltaOutcome: outcome, samplesIn: p.sampleCount)
    }
}
