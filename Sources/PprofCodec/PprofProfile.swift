/// A decoded `perftools.profiles.Profile`, stored as struct-of-arrays.
///
/// Strings are never materialised during decoding: `stringOffsets`/`stringLengths` locate each string-table
/// entry inside `data` (the decompressed payload, or for built profiles a plain string arena). Every
/// cross reference is resolved and validated at decode time into an array index (`Int32`, -1 = none),
/// so a consumer never looks anything up by id:
///
/// ```swift
/// let n = profile.sampleTypes.count
/// for s in 0..<profile.sampleCount {
///     let stack = profile.stack(s)              // location indices, leaf first (ArraySlice<Int32>)
///     let value = profile.values[s * n + t]     // value of sample type t
///     for label in profile.labels(s) { ... }    // PprofLabel, string-table indices
/// }
/// for line in profile.lines(of: locationIndex) { profile.functions[Int(line.functionIndex)] ... }
/// ```
public struct PprofProfile: Sendable {
    /// The bytes that `stringOffsets` point into.
    public var data: [UInt8]
    public var stringOffsets: [UInt32]
    public var stringLengths: [UInt32]

    public var sampleTypes: [PprofValueType]
    /// Absent when the file has no period_type message.
    public var periodType: PprofValueType?
    public var period: Int64
    public var timeNanos: Int64
    public var durationNanos: Int64
    /// String-table indices.
    public var dropFrames: Int32
    public var keepFrames: Int32
    public var comments: [Int32]
    public var defaultSampleType: Int32

    /// Samples: `sampleLocationStarts` has `sampleCount + 1` entries delimiting each sample's run in
    /// `sampleLocations` (indices into `locations`, leaf first). `values` holds `sampleTypes.count`
    /// values per sample, sample-major. `sampleLabelStarts` delimits each sample's run in `labels`.
    public var sampleLocationStarts: [Int32]
    public var sampleLocations: [Int32]
    public var values: [Int64]
    public var sampleLabelStarts: [Int32]
    public var labels: [PprofLabel]

    public var mappings: [PprofMapping]
    /// Each location's `Line`s are `lines[lineStart ..< lineStart + lineCount]` (innermost first).
    public var locations: [PprofLocation]
    public var lines: [PprofLine]
    public var functions: [PprofFunction]

    /// Samples whose stack was cut to `PprofLimits.maxStackDepth`.
    public var truncatedStacks: Int
    /// String-table entries cut to `PprofLimits.maxSymbolLength`.
    public var truncatedStrings: Int

    public init(
        data: [UInt8] = [0], stringOffsets: [UInt32] = [0], stringLengths: [UInt32] = [0],
        sampleTypes: [PprofValueType] = [], periodType: PprofValueType? = nil, period: Int64 = 0,
        timeNanos: Int64 = 0, durationNanos: Int64 = 0, dropFrames: Int32 = 0, keepFrames: Int32 = 0,
        comments: [Int32] = [], defaultSampleType: Int32 = 0,
        sampleLocationStarts: [Int32] = [0], sampleLocations: [Int32] = [], values: [Int64] = [],
        sampleLabelStarts: [Int32] = [0], labels: [PprofLabel] = [],
        mappings: [PprofMapping] = [], locations: [PprofLocation] = [], lines: [PprofLine] = [],
        functions: [PprofFunction] = [], truncatedStacks: Int = 0, truncatedStrings: Int = 0
    ) {
        self.data = data
        self.stringOffsets = stringOffsets
        self.stringLengths = stringLengths
        self.sampleTypes = sampleTypes
        self.periodType = periodType
        self.period = period
        self.timeNanos = timeNanos
        self.durationNanos = durationNanos
        self.dropFrames = dropFrames
        self.keepFrames = keepFrames
        self.comments = comments
        self.defaultSampleType = defaultSampleType
        self.sampleLocationStarts = sampleLocationStarts
        self.sampleLocations = sampleLocations
        self.values = values
        self.sampleLabelStarts = sampleLabelStarts
        self.labels = labels
        self.mappings = mappings
        self.locations = locations
        self.lines = lines
        self.functions = functions
        self.truncatedStacks = truncatedStacks
        self.truncatedStrings = truncatedStrings
    }

    public var sampleCount: Int { sampleLocationStarts.count - 1 }
    public var stringCount: Int { stringOffsets.count }

    /// Location indices of sample `s`, leaf first.
    @inlinable public func stack(_ s: Int) -> ArraySlice<Int32> {
        sampleLocations[Int(sampleLocationStarts[s])..<Int(sampleLocationStarts[s + 1])]
    }

    @inlinable public func labels(_ s: Int) -> ArraySlice<PprofLabel> {
        labels[Int(sampleLabelStarts[s])..<Int(sampleLabelStarts[s + 1])]
    }

    @inlinable public func values(_ s: Int) -> ArraySlice<Int64> {
        let n = sampleTypes.count
        return values[s * n..<(s + 1) * n]
    }

    @inlinable public func lines(of location: Int) -> ArraySlice<PprofLine> {
        let l = locations[location]
        return lines[Int(l.lineStart)..<Int(l.lineStart) + Int(l.lineCount)]
    }

    /// The raw bytes of string `i` (no copy).
    @inlinable public func stringBytes(_ i: Int32) -> ArraySlice<UInt8> {
        let o = Int(stringOffsets[Int(i)])
        return data[o..<o + Int(stringLengths[Int(i)])]
    }

    /// String `i` decoded as UTF-8 (invalid sequences become U+FFFD).
    public func string(_ i: Int32) -> String {
        stringBytes(i).withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
    }

    /// Index of the sample type pprof reports by default: `default_sample_type` if it names one, else the last.
    public var defaultSampleIndex: Int {
        if defaultSampleType != 0 {
            let want = stringBytes(defaultSampleType)
            if let i = sampleTypes.firstIndex(where: { stringBytes($0.type).elementsEqual(want) }) { return i }
        }
        return sampleTypes.count - 1
    }
}

/// A `ValueType`: string-table indices of type and unit.
public struct PprofValueType: Sendable, Hashable {
    public var type: Int32
    public var unit: Int32
    public init(type: Int32, unit: Int32) {
        self.type = type
        self.unit = unit
    }
}

/// A sample `Label`. String labels have `str != 0`; numeric labels have `str == 0` (num/unit). Labels
/// with neither str, num nor unit are dropped at decode time, as pprof does.
public struct PprofLabel: Sendable, Hashable {
    public var key: Int32
    public var str: Int32
    public var numUnit: Int32
    public var num: Int64
    public init(key: Int32, str: Int32, num: Int64 = 0, numUnit: Int32 = 0) {
        self.key = key
        self.str = str
        self.num = num
        self.numUnit = numUnit
    }
    public var isNumeric: Bool { str == 0 }
}

public struct PprofMapping: Sendable, Hashable {
    public var id: UInt64
    public var memoryStart: UInt64
    public var memoryLimit: UInt64
    public var fileOffset: UInt64
    public var filename: Int32
    public var buildID: Int32
    public var hasFunctions: Bool
    public var hasFilenames: Bool
    public var hasLineNumbers: Bool
    public var hasInlineFrames: Bool
    public init(
        id: UInt64, memoryStart: UInt64 = 0, memoryLimit: UInt64 = 0, fileOffset: UInt64 = 0,
        filename: Int32 = 0, buildID: Int32 = 0, hasFunctions: Bool = false, hasFilenames: Bool = false,
        hasLineNumbers: Bool = false, hasInlineFrames: Bool = false
    ) {
        self.id = id
        self.memoryStart = memoryStart
        self.memoryLimit = memoryLimit
        self.fileOffset = fileOffset
        self.filename = filename
        self.buildID = buildID
        self.hasFunctions = hasFunctions
        self.hasFilenames = hasFilenames
        self.hasLineNumbers = hasLineNumbers
        self.hasInlineFrames = hasInlineFrames
    }
}

public struct PprofLocation: Sendable, Hashable {
    public var id: UInt64
    /// Index into `mappings`, -1 when the location has no mapping.
    public var mappingIndex: Int32
    public var address: UInt64
    public var lineStart: Int32
    public var lineCount: Int32
    public var isFolded: Bool
    public init(
        id: UInt64, mappingIndex: Int32 = -1, address: UInt64 = 0, lineStart: Int32 = 0,
        lineCount: Int32 = 0, isFolded: Bool = false
    ) {
        self.id = id
        self.mappingIndex = mappingIndex
        self.address = address
        self.lineStart = lineStart
        self.lineCount = lineCount
        self.isFolded = isFolded
    }
}

public struct PprofLine: Sendable, Hashable {
    /// Index into `functions` (always valid: pprof rejects lines without a function).
    public var functionIndex: Int32
    public var line: Int64
    public var column: Int64
    public init(functionIndex: Int32, line: Int64 = 0, column: Int64 = 0) {
        self.functionIndex = functionIndex
        self.line = line
        self.column = column
    }
}

public struct PprofFunction: Sendable, Hashable {
    public var id: UInt64
    public var name: Int32
    public var systemName: Int32
    public var filename: Int32
    public var startLine: Int64
    public init(id: UInt64, name: Int32 = 0, systemName: Int32 = 0, filename: Int32 = 0, startLine: Int64 = 0) {
        self.id = id
        self.name = name
        self.systemName = systemName
        self.filename = filename
        self.startLine = startLine
    }
}
