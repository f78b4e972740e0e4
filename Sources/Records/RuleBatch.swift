import KilnFoundation
import ProfileModel

/// What recording rules read of a normalized record: its series and sample columns, and for each function
/// a rule filters by, which stacks pass through it. Symbols and stacks are never built: the ruler reads
/// every record of the stream, and building a batch's symbols cost it five times what it then added up.
public struct RuleBatch: Sendable, Equatable {
    public var tenant: String
    public var series: [BatchSeries]
    public var sampleSeries: [UInt32]
    public var sampleStacks: [UInt32]
    public var sampleValues: [Int64]
    public var sampleTimes: [Int64]
    /// The function names asked for and, per name, per stack: whether one of its frames is that function
    /// (name k's stacks at k × stackCount, flat, so a sample's filters are a stride apart).
    public var functionNames: [String]
    /// 0 (and no sample stacks) when no function names were asked for: nothing then looks at stacks.
    public var stackCount: Int
    public var stacksThrough: [Bool]
    /// The latest sample's time (ns), nil without samples; known even when the samples were not read.
    public var latestSampleTime: Int64?

    /// The samples read (none when no rule selects a series of the record).
    public var sampleCount: Int { sampleValues.count }

    /// Per stack, whether one of its frames is function name `k`.
    public func stacks(through k: Int) -> ArraySlice<Bool> { stacksThrough[(k * stackCount)..<((k + 1) * stackCount)] }

    /// The same from a whole batch (tests and callers that hold one already).
    public init(_ batch: SampleBatch, functionNames: [String]) {
        tenant = batch.tenant
        series = batch.series
        sampleSeries = batch.sampleSeries
        sampleStacks = functionNames.isEmpty ? [] : batch.sampleStacks
        sampleValues = batch.sampleValues
        sampleTimes = batch.sampleTimes
        latestSampleTime = batch.sampleTimes.max()
        self.functionNames = functionNames
        stackCount = functionNames.isEmpty ? 0 : batch.stacks.count
        let symbols = batch.symbols
        stacksThrough = functionNames.flatMap { name in
            let target = Array(name.utf8)
            let frameMatches = symbols.frames.map { frame in
                symbols.strings.withUTF8(Int(symbols.functions[Int(frame.function)].name)) { $0.elementsEqual(target) }
            }
            return (0..<batch.stacks.count).map { s in batch.stacks.stack(s).contains { frameMatches[Int($0)] } }
        }
    }

    init(
        tenant: String, series: [BatchSeries], sampleSeries: [UInt32], sampleStacks: [UInt32], sampleValues: [Int64],
        sampleTimes: [Int64], functionNames: [String], stackCount: Int, stacksThrough: [Bool], latestSampleTime: Int64?
    ) {
        self.latestSampleTime = latestSampleTime
        self.tenant = tenant
        self.series = series
        self.sampleSeries = sampleSeries
        self.sampleStacks = sampleStacks
        self.sampleValues = sampleValues
        self.sampleTimes = sampleTimes
        self.functionNames = functionNames
        self.stackCount = stackCount
        self.stacksThrough = stacksThrough
    }
}

extension BatchCodec {
    /// Reads a record as recording rules need it. `functionNames` gets the record's tenant and series and
    /// answers nil when no rule selects any of the series (the samples are then not read: a version 4
    /// record's header gives their latest time), else the names the selecting rules filter by (the
    /// stacks, most of a record, are only read when there are some). Checks every index it reads as
    /// `decode` does; the span column and the periods it never reads.
    public static func decodeForRules(
        _ bytes: [UInt8], functionNames: (_ tenant: String, _ series: [BatchSeries]) -> [String]?
    ) throws -> RuleBatch {
        var (version, r) = try header(bytes)
        let tenant = try r.string("tenant")
        _ = try r.string("provenance topic")
        _ = try r.signed("provenance partition")
        _ = try r.signed("provenance offset")
        _ = try r.signed("dropped zero-value count")
        _ = try r.signed("dropped empty-stack count")
        let latestTime = version >= 4 ? try r.signed("latest sample time") : nil

        return try r.withCursor { c in
            // Strings stay where they are in the record: only series labels and the names compared with
            // the asked-for names are ever looked at.
            let stringCount = try c.count("string count", limit: min(maxEntries, c.remaining))
            var stringRanges: [Range<Int>] = []
            stringRanges.reserveCapacity(stringCount)
            for _ in 0..<stringCount { stringRanges.append(try c.blob("string")) }
            // The symbols (functions, frames, stacks) are stepped over and read later if a rule needs them.
            let symbols: Range<Int>
            if version >= 4 {
                let length = try c.sectionLength("symbols length")
                symbols = c.position..<(c.position + length)
                c.position += length
            } else {
                let start = c.position
                try skipSymbols(&c, version: version)
                symbols = start..<c.position
            }

            let seriesCount = try c.count("series count", limit: min(maxEntries, c.remaining))
            let raw = c.raw
            let series = try seriesTable(seriesCount, &c, stringCount: stringCount) {
                String(decoding: UnsafeRawBufferPointer(rebasing: raw[stringRanges[$0]]), as: UTF8.self)
            }
            let asked = functionNames(tenant, series)
            let sampleCount = try c.count("sample count", limit: min(maxEntries, c.remaining))
            if asked == nil, let latestTime {
                return RuleBatch(
                    tenant: tenant, series: series, sampleSeries: [], sampleStacks: [], sampleValues: [], sampleTimes: [],
                    functionNames: [], stackCount: 0, stacksThrough: [], latestSampleTime: sampleCount > 0 ? latestTime : nil)
            }
            let names = asked ?? []
            var stackCount = 0
            var through: [Bool] = []
            if !names.isEmpty {
                var s = c
                s.position = symbols.lowerBound
                (stackCount, through) = try stacksThrough(&s, version: version, names: names, stringRanges: stringRanges)
                guard s.position == symbols.upperBound else {
                    throw RecordDecodingError("the symbols end at byte \(s.position), their length says \(symbols.upperBound)")
                }
            }
            let columns = try sampleColumns(
                &c, count: sampleCount, version: version, series: seriesCount, stacks: names.isEmpty ? nil : stackCount)
            let latest = try checkedLatestTime(columns.times, header: latestTime)
            return RuleBatch(
                tenant: tenant, series: series, sampleSeries: columns.series, sampleStacks: columns.stacks, sampleValues: columns.values,
                sampleTimes: columns.times, functionNames: names, stackCount: stackCount, stacksThrough: through,
                latestSampleTime: latest)
        }
    }

    /// Steps over a record's functions, frames and stacks (versions before 4, which do not give their length).
    static func skipSymbols(_ c: inout ByteCursor, version: UInt8) throws {
        let functionCount = try c.count("function count", limit: min(maxEntries, c.remaining))
        try c.skipVarints(4 * functionCount, "function")
        let frameCount = try c.count("frame count", limit: min(maxEntries, c.remaining))
        try c.skipVarints(2 * frameCount, "frame")
        let stackCount = try c.count("stack count", limit: min(maxEntries, c.remaining))
        var previousDepth = 0
        var allFrames = 0
        for _ in 0..<stackCount {
            let (depth, shared) = try c.stackShape(version: version, previousDepth: previousDepth, allFrames: &allFrames)
            try c.skipVarints(depth - shared, "stack frame")
            previousDepth = depth
        }
    }

    /// Reads functions, frames and stacks, and answers per name and stack whether one of the stack's
    /// frames is that function (name k's stacks at k × stackCount).
    static func stacksThrough(
        _ c: inout ByteCursor, version: UInt8, names: [String], stringRanges: [Range<Int>]
    ) throws -> (stackCount: Int, through: [Bool]) {
        let targets = names.map { Array($0.utf8) }
        let stringCount = stringRanges.count
        // Per function and then per frame: which asked-for name it is (-1: none). Names are distinct,
        // so one at most.
        let functionCount = try c.count("function count", limit: min(maxEntries, c.remaining))
        var functionName = [Int32](repeating: -1, count: functionCount)
        for f in 0..<functionCount {
            let name = stringRanges[try c.stringIndex("function name", stringCount: stringCount)]
            for (k, target) in targets.enumerated()
            where target.count == name.count && target.elementsEqual(UnsafeRawBufferPointer(rebasing: c.raw[name])) {
                functionName[f] = Int32(k)
            }
            _ = try c.stringIndex("function system name", stringCount: stringCount)
            _ = try c.stringIndex("function file name", stringCount: stringCount)
            _ = try c.signed("function start line")
        }
        let frameCount = try c.count("frame count", limit: min(maxEntries, c.remaining))
        var frameName = [Int32](repeating: -1, count: frameCount)
        // One bit per frame, set when it is one of the names: small enough to stay in the first-level
        // cache while the stacks look up every frame they name.
        var frameMatches = [UInt64](repeating: 0, count: (frameCount + 63) / 64)
        for f in 0..<frameCount {
            let function = try c.varint("frame function")
            guard function < UInt64(functionCount) else {
                throw RecordDecodingError("frame function \(function) is out of the function table (\(functionCount) entries)")
            }
            frameName[f] = functionName[Int(function)]
            if frameName[f] >= 0 { frameMatches[f >> 6] |= 1 << UInt64(f & 63) }
            _ = try c.signed("frame line")
        }

        // Stacks arrive leaf first, each sharing its root-side frames with the stack before. Per name,
        // the previous stack's matching frame nearest the root (as its distance from the root) tells
        // whether the shared frames hold the function, so only a stack's own frames are looked at.
        let stackCount = try c.count("stack count", limit: min(maxEntries, c.remaining))
        // Name k's flag of stack s at k * stackCount + s.
        var through = [Bool](repeating: false, count: names.count * stackCount)
        var rootmostMatch = [Int](repeating: .max, count: names.count)
        var rootmostOwn = [Int](repeating: -1, count: names.count)
        // Through pointers: an array written per frame costs a uniqueness check per write, and one read
        // per frame reloaded its storage and bounds each time (a fifth of the loop's time).
        let matches = frameMatches
        let names = frameName
        try through.withUnsafeMutableBufferPointer { through in
            try rootmostMatch.withUnsafeMutableBufferPointer { rootmostMatch in
                try rootmostOwn.withUnsafeMutableBufferPointer { rootmostOwn in
                    try matches.withUnsafeBufferPointer { frameMatches in
                        try names.withUnsafeBufferPointer { frameName in
                            // A local cursor, so its position stays in a register through the frames.
                            var cursor = c
                            var previousDepth = 0
                            var allFrames = 0
                            for s in 0..<stackCount {
                                let (depth, shared) = try cursor.stackShape(
                                    version: version, previousDepth: previousDepth, allFrames: &allFrames)
                                for j in 0..<(depth - shared) {
                                    let frame = try cursor.varint("stack frame")
                                    guard frame < UInt64(frameCount) else {
                                        throw RecordDecodingError("stack frame \(frame) is out of the frame table (\(frameCount) entries)")
                                    }
                                    if frameMatches[Int(frame >> 6)] & (1 << (frame & 63)) != 0 {
                                        rootmostOwn[Int(frameName[Int(frame)])] = j
                                    }
                                }
                                for k in 0..<rootmostOwn.count {
                                    if rootmostMatch[k] >= shared {
                                        // Own frame j (leaf first) is depth - 1 - j from the root: the last match is rootmost.
                                        rootmostMatch[k] = rootmostOwn[k] >= 0 ? depth - 1 - rootmostOwn[k] : .max
                                    }
                                    through[k * stackCount + s] = rootmostMatch[k] != .max
                                    rootmostOwn[k] = -1
                                }
                                previousDepth = depth
                            }
                            c = cursor
                        }
                    }
                }
            }
        }
        return (stackCount, through)
    }
}

extension ByteCursor {
    /// A stack's depth and how many of its frames it shares with the previous stack. Shared frames take
    /// no bytes, so a depth is bounded by what the previous stack lends plus what is left to read, and
    /// all stacks' frames together (`allFrames`) by `maxEntries`.
    @inline(__always)
    mutating func stackShape(version: UInt8, previousDepth: Int, allFrames: inout Int) throws -> (depth: Int, shared: Int) {
        let depth = try count("stack depth", limit: previousDepth + remaining)
        let shared = version == 1 ? 0 : try count("stack shared frames", limit: min(depth, previousDepth))
        allFrames += depth
        guard allFrames <= BatchCodec.maxEntries else { throw RecordDecodingError("stack frames exceed \(BatchCodec.maxEntries) in all") }
        return (depth, shared)
    }
}
