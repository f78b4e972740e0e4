/// Where a batch came from: the raw record it was normalised from. The compactor uses it to recognise
/// a batch delivered twice and to record in each block which raw offsets it holds.
public struct Provenance: Hashable, Sendable, Codable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64

    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// A function as the symbol table stores it; the `String` fields are indices into `SymbolTable.strings`.
public struct FunctionSymbol: Hashable, Sendable {
    public var name: UInt32
    public var systemName: UInt32
    public var filename: UInt32
    public var startLine: Int64

    public init(name: UInt32, systemName: UInt32, filename: UInt32, startLine: Int64) {
        self.name = name
        self.systemName = systemName
        self.filename = filename
        self.startLine = startLine
    }
}

/// One frame of a stack: a function (index into `SymbolTable.functions`) at a line. pprof locations with
/// inline frames expand into several of these.
public struct FrameSymbol: Hashable, Sendable {
    public var function: UInt32
    public var line: Int64

    public init(function: UInt32, line: Int64) {
        self.function = function
        self.line = line
    }
}

/// Deduplicated strings, functions and frames. Index 0 of `strings` is always "".
public struct SymbolTable: Sendable, Equatable {
    public var strings: StringTable = [""]
    public var functions: [FunctionSymbol] = []
    public var frames: [FrameSymbol] = []

    public init() {}

    public init(strings: StringTable, functions: [FunctionSymbol], frames: [FrameSymbol]) {
        self.strings = strings
        self.functions = functions
        self.frames = frames
    }

    public func functionName(ofFrame frame: Int) -> String {
        strings[Int(functions[Int(frames[frame].function)].name)]
    }
}

/// Deduplicated stacks as runs of frame indices, leaf first (pprof's order).
public struct StackTable: Sendable, Equatable {
    /// `starts` has `count + 1` entries delimiting each stack's run in `frames`.
    public var starts: [UInt32] = [0]
    public var frames: [UInt32] = []

    public init() {}

    public init(starts: [UInt32], frames: [UInt32]) {
        self.starts = starts
        self.frames = frames
    }

    public var count: Int { starts.count - 1 }

    public func stack(_ i: Int) -> ArraySlice<UInt32> {
        frames[Int(starts[i])..<Int(starts[i + 1])]
    }

    public mutating func append<C: Collection>(_ stackFrames: C) where C.Element == UInt32 {
        frames.append(contentsOf: stackFrames)
        starts.append(UInt32(frames.count))
    }
}

/// A series of a batch: its labels (including `__name__`, `service_name` and `__profile_type__`) and
/// profile type.
public struct BatchSeries: Hashable, Sendable {
    public var labels: LabelSet
    public var profileType: ProfileTypeID

    public init(labels: LabelSet, profileType: ProfileTypeID) {
        self.labels = labels
        self.profileType = profileType
    }
}

/// The unit that travels on `kiln.profiles.normalized`: the stack samples of one raw profile, with the
/// symbols and stacks they reference, deduplicated. Samples are struct-of-arrays.
public struct SampleBatch: Sendable, Equatable {
    public var tenant: String
    public var provenance: Provenance
    public var series: [BatchSeries]
    public var symbols: SymbolTable
    public var stacks: StackTable
    /// Per sample: index into `series`.
    public var sampleSeries: [UInt32]
    /// Per sample: index into `stacks`.
    public var sampleStacks: [UInt32]
    public var sampleValues: [Int64]
    public var sampleTimes: [Int64]
    /// Per sample: the span id from the `span_id` label (0 = none).
    public var sampleSpans: [UInt64]
    /// Per series: the profile's sampling `period`, in its profile type's period unit (0: unknown).
    /// Beside `series`, not in it, because it is no part of a series' identity. Empty when unknown for
    /// every series (records written before it existed): read it through `period(ofSeries:)`.
    public var seriesPeriods: [Int64]
    /// Samples left out, by reason, so the sums can be reconciled with the profile.
    public var droppedZeroValue: Int64
    public var droppedEmptyStack: Int64

    public init(
        tenant: String, provenance: Provenance, series: [BatchSeries] = [], symbols: SymbolTable = SymbolTable(),
        stacks: StackTable = StackTable(), sampleSeries: [UInt32] = [], sampleStacks: [UInt32] = [],
        sampleValues: [Int64] = [], sampleTimes: [Int64] = [], sampleSpans: [UInt64] = [], seriesPeriods: [Int64] = [],
        droppedZeroValue: Int64 = 0, droppedEmptyStack: Int64 = 0
    ) {
        self.tenant = tenant
        self.provenance = provenance
        self.series = series
        self.symbols = symbols
        self.stacks = stacks
        self.sampleSeries = sampleSeries
        self.sampleStacks = sampleStacks
        self.sampleValues = sampleValues
        self.sampleTimes = sampleTimes
        self.sampleSpans = sampleSpans
        self.seriesPeriods = seriesPeriods
        self.droppedZeroValue = droppedZeroValue
        self.droppedEmptyStack = droppedEmptyStack
    }

    public var sampleCount: Int { sampleValues.count }

    /// Series `s`'s sampling period, 0 when unknown.
    public func period(ofSeries s: Int) -> Int64 { s < seriesPeriods.count ? seriesPeriods[s] : 0 }

    /// Sum of values per profile type, the figure every stage must conserve.
    public var totalsByProfileType: [ProfileTypeID: Int64] {
        var totals: [ProfileTypeID: Int64] = [:]
        for i in 0..<sampleCount {
            totals[series[Int(sampleSeries[i])].profileType, default: 0] &+= sampleValues[i]
        }
        return totals
    }
}
