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

    /// The cumulative values remembered for deltas, as bytes (see `DeltaTracker.snapshot()`).
    public var deltaState: [UInt8] { deltas.snapshot() }

    /// Continues from a `deltaState` saved earlier: the next profile of each series is a delta, not a baseline.
    public mutating func restoreDeltaState(_ bytes: [UInt8]) throws(NormalizationError) {
        do { deltas = try DeltaTracker(snapshot: bytes, maxSeries: options.maxDeltaSeries) } catch {
            throw NormalizationError(error.description)
        }
    }

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

    mutating func normalize(_ p: PprofProfile, envelope: RawEnvelope, provenance: Provenance) throws(NormalizationError)
        -> NormalizationResult
    {
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
            ProfileTypeID(
                name: name, sampleType: sampleTypeNames[t], sampleUnit: p.string(p.sampleTypes[t].unit),
                periodType: periodType, periodUnit: periodUnit)
        }
        let cumulativeTypes = (0..<typeCount).filter {
            envelope.cumulative && ProfileNaming.cumulativeSampleTypes.contains(sampleTypeNames[$0])
        }
        let profileTime = p.timeNanos != 0 ? p.timeNanos : envelope.startNanos

        // Per sample: its series-label variant (index into `labelVariants`) and span id. Samples of one
        // profile repeat few label combinations, so the variant is cached per run of pprof (key, value)
        // string ids; only a new run builds strings, and runs that spell the same labels share a variant.
        var labelVariants: [LabelSet] = []
        var variantIndex: [[Label]: Int] = [:]
        var variantOfRun: [Int32] = []
        var labelRuns = RunInterner()
        var sampleVariant = [Int32](repeating: 0, count: p.sampleCount)
        var sampleSpan = [UInt64](repeating: 0, count: p.sampleCount)
        var noLabelVariant = -1
        var keyRoles = [LabelKeyRole?](repeating: nil, count: p.stringCount)
        // Key roles and span ids first, so the label runs can be written in one tight pass.
        var seriesLabelCount = 0
        for s in 0..<p.sampleCount {
            for l in p.labels(s) where !l.isNumeric {
                let role: LabelKeyRole
                if let known = keyRoles[Int(l.key)] {
                    role = known
                } else {
                    role = LabelKeyRole(p.string(l.key))
                    keyRoles[Int(l.key)] = role
                }
                switch role {
                case .span: sampleSpan[s] = Self.parseSpanID(p, l.str)
                case .dropped: continue
                case .series: seriesLabelCount += 1
                }
            }
        }
        if seriesLabelCount == 0 {
            if p.sampleCount > 0 { labelVariants.append(baseLabels) }
        } else {
            let runIDs = p.sampleLabelStarts.withUnsafeBufferPointer { starts in
                p.labels.withUnsafeBufferPointer { labels in
                    keyRoles.withUnsafeBufferPointer { roles in
                        labelRuns.intern(runs: p.sampleCount, maxElements: 2 * seriesLabelCount) { s, out in
                            var o = 0
                            for k in Int(starts[s])..<Int(starts[s + 1]) {
                                let l = labels[k]
                                if !l.isNumeric && roles[Int(l.key)] == .series {
                                    out[o] = UInt32(bitPattern: l.key)
                                    out[o &+ 1] = UInt32(bitPattern: l.str)
                                    o &+= 2
                                }
                            }
                            return o
                        }
                    }
                }
            }
            for s in 0..<p.sampleCount {
                let id = Int(runIDs[s])
                if id < variantOfRun.count {
                    sampleVariant[s] = variantOfRun[id]
                    continue
                }
                let runStart = Int(labelRuns.starts[id])
                let runEnd = Int(labelRuns.starts[id + 1])
                if runStart == runEnd {
                    if noLabelVariant < 0 {
                        noLabelVariant = labelVariants.count
                        labelVariants.append(baseLabels)
                    }
                    variantOfRun.append(Int32(noLabelVariant))
                    sampleVariant[s] = Int32(noLabelVariant)
                    continue
                }
                var extra: [Label] = []
                for k in stride(from: runStart, to: runEnd, by: 2) {
                    extra.append(
                        Label(p.string(Int32(bitPattern: labelRuns.elements[k])), p.string(Int32(bitPattern: labelRuns.elements[k + 1]))))
                }
                let variant: Int
                if let v = variantIndex[extra] {
                    variant = v
                } else {
                    var set = baseLabels
                    // Envelope labels win over sample labels of the same name (the target's identity).
                    for l in extra where envelope.labels[l.name] == nil { set[l.name] = l.value }
                    variant = labelVariants.count
                    variantIndex[extra] = variant
                    labelVariants.append(set)
                }
                variantOfRun.append(Int32(variant))
                sampleVariant[s] = Int32(variant)
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
        // seriesOf[variant * typeCount + t] is the batch series, or UInt32.max before it exists.
        var seriesOf = [UInt32](repeating: .max, count: labelVariants.count * typeCount)
        var isCumulative = [Bool](repeating: false, count: typeCount)
        for t in cumulativeTypes { isCumulative[t] = true }
        let isCumulativeBaseline = outcome == .baseline || outcome == .reset
        var batch = SampleBatch(tenant: envelope.tenant, provenance: provenance)
        // Stacks are built only for samples that keep a value, all in one pass (in sample order).
        var needsStack = [Bool](repeating: false, count: p.sampleCount)
        for s in 0..<p.sampleCount where p.sampleLocationStarts[s] != p.sampleLocationStarts[s + 1] {
            for t in 0..<typeCount where values[s * typeCount + t] != 0 {
                needsStack[s] = true
                break
            }
        }
        let sampleStack = builder.stackIndices(needed: needsStack)
        // The sample columns are written through pointers into room for every (sample, type), then
        // copied out at their final length: five appends per kept value each checked the array.
        let expected = p.sampleCount * typeCount
        let seriesColumn = UnsafeMutablePointer<UInt32>.allocate(capacity: max(1, expected))
        let stackColumn = UnsafeMutablePointer<UInt32>.allocate(capacity: max(1, expected))
        let valueColumn = UnsafeMutablePointer<Int64>.allocate(capacity: max(1, expected))
        let spanColumn = UnsafeMutablePointer<UInt64>.allocate(capacity: max(1, expected))
        defer {
            seriesColumn.deallocate()
            stackColumn.deallocate()
            valueColumn.deallocate()
            spanColumn.deallocate()
        }
        var kept = 0
        for s in 0..<p.sampleCount {
            if p.sampleLocationStarts[s] == p.sampleLocationStarts[s + 1] {
                for t in 0..<typeCount where values[s * typeCount + t] != 0 { batch.droppedEmptyStack += 1 }
                continue
            }
            let stack = sampleStack[s]
            let variant = Int(sampleVariant[s])
            for t in 0..<typeCount {
                let value = values[s * typeCount + t]
                if value == 0 {
                    // A cumulative baseline is not a dropped sample: it is held for the next delta.
                    if !(isCumulativeBaseline && isCumulative[t]) { batch.droppedZeroValue += 1 }
                    continue
                }
                let key = variant * typeCount + t
                var series = seriesOf[key]
                if series == .max {
                    series = UInt32(batch.series.count)
                    var labels = labelVariants[variant]
                    labels[LabelName.profileType] = types[t].id
                    batch.series.append(BatchSeries(labels: labels, profileType: types[t]))
                    batch.seriesPeriods.append(p.period)
                    seriesOf[key] = series
                }
                seriesColumn[kept] = series
                stackColumn[kept] = stack
                valueColumn[kept] = value
                spanColumn[kept] = sampleSpan[s]
                kept += 1
            }
        }
        batch.sampleSeries = Array(UnsafeBufferPointer(start: seriesColumn, count: kept))
        batch.sampleStacks = Array(UnsafeBufferPointer(start: stackColumn, count: kept))
        batch.sampleValues = Array(UnsafeBufferPointer(start: valueColumn, count: kept))
        batch.sampleTimes = Array(repeating: profileTime, count: kept)
        batch.sampleSpans = Array(UnsafeBufferPointer(start: spanColumn, count: kept))
        batch.symbols = builder.symbols
        batch.stacks = builder.stacks
        return NormalizationResult(batch: batch.sampleCount > 0 ? batch : nil, deltaOutcome: outcome, samplesIn: p.sampleCount)
    }

    /// A span id label's value as a number (hex, as the SDKs write it; 0 when it is not one). Span ids
    /// differ per sample, so the common form (1 to 16 hex digits) is read from the bytes without making
    /// a String; anything else takes the general parse.
    static func parseSpanID(_ p: PprofProfile, _ str: Int32) -> UInt64 {
        let bytes = p.stringBytes(str)
        if !bytes.isEmpty && bytes.count <= 16 {
            var value: UInt64 = 0
            var allHex = true
            for b in bytes {
                let digit: UInt8
                switch b {
                case 0x30...0x39: digit = b - 0x30
                case 0x61...0x66: digit = b - 0x61 + 10
                case 0x41...0x46: digit = b - 0x41 + 10
                default:
                    allHex = false
                    digit = 0
                }
                if !allHex { break }
                value = value << 4 | UInt64(digit)
            }
            if allHex { return value }
        }
        return UInt64(p.string(str), radix: 16) ?? 0
    }
}

/// What a string label's key means for series labels.
enum LabelKeyRole {
    /// `span_id` (or the legacy `profile_id`): kept per sample, not a series label.
    case span
    /// `trace_id` and `__`-prefixed keys: dropped.
    case dropped
    /// Everything else becomes a series label.
    case series

    init(_ key: String) {
        if key == LabelName.spanID || key == LabelName.profileID {
            self = .span
        } else if key == LabelName.traceID || key.hasPrefix("__") {
            self = .dropped
        } else {
            self = .series
        }
    }
}
