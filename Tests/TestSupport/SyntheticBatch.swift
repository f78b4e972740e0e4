import ProfileModel

/// A small deterministic generator (SplitMix64), so failures reproduce.
public struct SplitMix {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

public let cpuType = ProfileTypeID(parsing: "process_cpu:cpu:nanoseconds:cpu:nanoseconds")!
public let allocType = ProfileTypeID(parsing: "memory:alloc_space:bytes:space:bytes")!

/// A batch like the normaliser's: a few series of two profile types, stacks drawn from a shared function
/// pool (so batches overlap in symbols and stack prefixes), each batch numbering its symbols its own way.
public func makeBatch(
    tenant: String = "t1", rawTopic: String = "raw", partition: Int32 = 0, offset: Int64, samples: Int = 200,
    baseTimeNanos: Int64 = 1_700_000_000_000_000_000, seed: UInt64? = nil
) -> SampleBatch {
    var rng = SplitMix(state: seed ?? UInt64(bitPattern: offset) &* 31 &+ UInt64(partition))
    var batch = SampleBatch(tenant: tenant, provenance: Provenance(topic: rawTopic, partition: partition, offset: offset))
    let services = ["api", "worker", "db"]
    for s in services {
        for pt in [cpuType, allocType] {
            batch.series.append(
                BatchSeries(
                    labels: LabelSet([
                        Label("service_name", s), Label("__name__", pt.name),
                        Label("__profile_type__", pt.id), Label("env", "prod"),
                    ]), profileType: pt))
        }
    }
    var strings: StringTable = [""]
    var stringIndex: [String: UInt32] = ["": 0]
    func intern(_ s: String) -> UInt32 {
        if let i = stringIndex[s] { return i }
        strings.append(s)
        stringIndex[s] = UInt32(strings.count - 1)
        return UInt32(strings.count - 1)
    }
    var functions: [FunctionSymbol] = []
    var frames: [FrameSymbol] = []
    var frameOf: [Int: UInt32] = [:]
    // Visit the pool in a batch-specific order so local ids differ between batches.
    let pool = 60
    let shift = rng.below(pool)
    for k in 0..<pool {
        let f = (k + shift) % pool
        functions.append(
            FunctionSymbol(
                name: intern("pkg\(f % 7).fn\(f)"), systemName: intern("pkg\(f % 7).fn\(f)"),
                filename: intern("src/pkg\(f % 7).go"), startLine: Int64(f * 10)))
        frames.append(FrameSymbol(function: UInt32(functions.count - 1), line: Int64(f * 10 + 3)))
        frameOf[f] = UInt32(frames.count - 1)
    }
    batch.symbols = SymbolTable(strings: strings, functions: functions, frames: frames)
    let stackCount = 20
    for _ in 0..<stackCount {
        let depth = 2 + rng.below(8)
        // Root-side frames are few (shared prefixes), leaf-side varied.
        var rootFirst: [UInt32] = []
        for d in 0..<depth { rootFirst.append(frameOf[d < 2 ? d : 2 + rng.below(pool - 2)]!) }
        batch.stacks.append(rootFirst.reversed())
    }
    for i in 0..<samples {
        batch.sampleSeries.append(UInt32(rng.below(batch.series.count)))
        batch.sampleStacks.append(UInt32(rng.below(stackCount)))
        batch.sampleValues.append(Int64(1 + rng.below(1_000_000)))
        batch.sampleTimes.append(baseTimeNanos + Int64(offset) * 1_000_000_000 + Int64(i % 5) * 10_000_000)
        batch.sampleSpans.append(i % 4 == 0 ? rng.next() : 0)
    }
    return batch
}

/// One sample as a comparable row: series labels, time, value, span and the full stack as function names,
/// leaf first.
public struct FlatSample: Hashable, Comparable, Sendable {
    public var labels: String
    public var profileType: String
    public var time: Int64
    public var value: Int64
    public var span: UInt64
    public var stack: [String]

    public init(labels: String, profileType: String, time: Int64, value: Int64, span: UInt64, stack: [String]) {
        self.labels = labels
        self.profileType = profileType
        self.time = time
        self.value = value
        self.span = span
        self.stack = stack
    }

    public static func < (a: Self, b: Self) -> Bool {
        (a.labels, a.profileType, a.time, a.value, a.span, a.stack.joined(separator: ";"))
            < (b.labels, b.profileType, b.time, b.value, b.span, b.stack.joined(separator: ";"))
    }
}

public func flatten(_ batch: SampleBatch) -> [FlatSample] {
    (0..<batch.sampleCount).map { i in
        let s = batch.series[Int(batch.sampleSeries[i])]
        let stack = batch.stacks.stack(Int(batch.sampleStacks[i])).map { batch.symbols.functionName(ofFrame: Int($0)) }
        return FlatSample(
            labels: s.labels.description, profileType: s.profileType.id, time: batch.sampleTimes[i],
            value: batch.sampleValues[i], span: batch.sampleSpans[i], stack: stack)
    }
}
