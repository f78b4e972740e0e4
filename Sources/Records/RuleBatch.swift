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
    public var stackCount: Int
    public var stacksThrough: [Bool]

    public var sampleCount: Int { sampleValues.count }

    /// Per stack, whether one of its frames is function name `k`.
    public func stacks(through k: Int) -> ArraySlice<Bool> { stacksThrough[(k * stackCount)..<((k + 1) * stackCount)] }

    /// The same from a whole batch (tests and callers that hold one already).
    public init(_ batch: SampleBatch, functionNames: [String]) {
        tenant = batch.tenant
        series = batch.series
        sampleSeries = batch.sampleSeries
        sampleStacks = batch.sampleStacks
        sampleValues = batch.sampleValues
        sampleTimes = batch.sampleTimes
        self.functionNames = functionNames
        stackCount = batch.stacks.count
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
        sampleTimes: [Int64], functionNames: [String], stackCount: Int, stacksThrough: [Bool]
    ) {
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
    /// Reads a record as recording rules need it: `functionNames` gets the record's tenant and answers
    /// the names its rules filter by. Checks every index as `decode` does, except the span column,
    /// which it does not read.
    public static func decodeForRules(_ bytes: [UInt8], functionNames: (String) -> [String]) throws -> RuleBatch {
        var (version, r) = try header(bytes)
        let tenant = try r.string("tenant")
        let names = functionNames(tenant)
        let targets = names.map { Array($0.utf8) }
        _ = try r.string("provenance topic")
        _ = try r.signed("provenance partition")
        _ = try r.signed("provenance offset")
        _ = try r.signed("dropped zero-value count")
        _ = try r.signed("dropped empty-stack count")

        return try r.withCursor { c in
            // Strings stay where they are in the record: only series labels and the names compared with
            // `targets` are ever looked at.
            let stringCount = try c.count("string count", limit: min(maxEntries, c.remaining))
            var stringRanges: [Range<Int>] = []
            stringRanges.reserveCapacity(stringCount)
            for _ in 0..<stringCount { stringRanges.append(try c.blob("string")) }
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
            // Through pointers: an array written per frame costs a uniqueness check per write.
            try through.withUnsafeMutableBufferPointer { through in
                try rootmostMatch.withUnsafeMutableBufferPointer { rootmostMatch in
                    try rootmostOwn.withUnsafeMutableBufferPointer { rootmostOwn in
                        // A local cursor, so its position stays in a register through the frames.
                        var cursor = c
                        var previousDepth = 0
                        var allFrames = 0
                        for s in 0..<stackCount {
                            let depth = try cursor.count("stack depth", limit: previousDepth + cursor.remaining)
                            let shared = version == 1 ? 0 : try cursor.count("stack shared frames", limit: min(depth, previousDepth))
                            allFrames += depth
                            guard allFrames <= maxEntries else { throw RecordDecodingError("stack frames exceed \(maxEntries) in all") }
                            for j in 0..<(depth - shared) {
                                let frame = try cursor.varint("stack frame")
                                guard frame < UInt64(frameCount) else {
                                    throw RecordDecodingError("stack frame \(frame) is out of the frame table (\(frameCount) entries)")
                                }
                                if frameMatches[Int(frame >> 6)] & (1 << (frame & 63)) != 0 { rootmostOwn[Int(frameName[Int(frame)])] = j }
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

            let seriesCount = try c.count("series count", limit: min(maxEntries, c.remaining))
            let raw = c.raw
            let series = try seriesTable(seriesCount, &c, stringCount: stringCount) {
                String(decoding: UnsafeRawBufferPointer(rebasing: raw[stringRanges[$0]]), as: UTF8.self)
            }
            let sampleCount = try c.count("sample count", limit: min(maxEntries, c.remaining))
            let columns = try sampleColumns(&c, count: sampleCount, version: version, series: seriesCount, stacks: stackCount)
            return RuleBatch(
                tenant: tenant, series: series, sampleSeries: columns.series, sampleStacks: columns.stacks, sampleValues: columns.values,
                sampleTimes: columns.times, functionNames: names, stackCount: stackCount, stacksThrough: through)
        }
    }
}
