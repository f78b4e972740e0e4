import KilnFoundation
import ProfileModel

/// The record on `kiln.profiles.normalized`: one `SampleBatch`.
///
/// Encoding (version 4): `"KB"`, version byte, then: tenant; provenance (topic, partition, offset);
/// dropped counts; the latest sample time (zigzag; 0 without samples); strings; the byte length of the
/// next three sections (fixed32, little-endian); functions (name, system name, file name, start line);
/// frames (function, line); stacks; series (label pairs as string indices, profile type as a string
/// index); then the samples column by column — series, stack (zigzag delta from the previous sample's),
/// value (zigzag), time (zigzag delta from the previous sample), span (presence bit then fixed64); then
/// each series' sampling period (zigzag, 0 when unknown). Columns keep like values together, which lz4
/// on the topic then compresses well. The latest time and the symbols' length are for readers that want
/// less than the whole batch: the ruler reads a record's series first and steps over its stacks (most
/// of its bytes) when no rule filters by function, and over its samples when no rule selects a series.
///
/// Each stack is its depth, how many of its root-side frames equal the previous stack's root-side
/// frames, and then only its other (leaf-side) frames. Stacks that come from one tree (a merged
/// profile, a flame graph) share most of their callers with the stack before them, and a sorted merged
/// profile's stack table shrinks to about a seventh. Samples mostly follow their stacks' first-seen
/// order, so a sample's stack is written as the step from the previous sample's (one byte, where the
/// index itself took two or three). Version 1 wrote every frame of every stack (depth, frame indices)
/// and each sample's stack index whole, version 2 no periods, version 3 neither the latest time nor the
/// symbols' length; all are still read, so records already on the topic survive an upgrade.
public enum BatchCodec {
    public static let currentVersion: UInt8 = 4
    /// Upper bounds on decoded counts, so a corrupt record cannot make us allocate without limit.
    static let maxEntries = 50_000_000

    public static func encode(_ batch: SampleBatch) -> [UInt8] {
        // Series labels and profile types go into the same string table as the symbols: each one takes
        // the index of its first equal symbol string, else a new entry. Only symbol strings whose
        // length some series string has are hashed (series strings are few, symbol strings many).
        let symbolStrings = batch.symbols.strings
        var extraStrings: [String] = []
        var index: [String: UInt32] = [:]
        for series in batch.series {
            for label in series.labels.labels {
                index[label.name] = UInt32.max
                index[label.value] = UInt32.max
            }
            index[series.profileType.id] = UInt32.max
        }
        // Looked up by length per symbol string, so an array rather than a hashed set.
        var seriesLengths = [Bool](repeating: false, count: (index.keys.lazy.map(\.utf8.count).max() ?? -1) + 1)
        for text in index.keys { seriesLengths[text.utf8.count] = true }
        if !index.isEmpty {
            for i in symbolStrings.indices {
                let length = symbolStrings.byteRange(i).count
                guard length < seriesLengths.count && seriesLengths[length] else { continue }
                let text = symbolStrings[i]
                if index[text] == UInt32.max { index[text] = UInt32(i) }
            }
        }
        func intern(_ s: String) -> UInt32 {
            if let i = index[s], i != UInt32.max { return i }
            let i = UInt32(symbolStrings.count + extraStrings.count)
            extraStrings.append(s)
            index[s] = i
            return i
        }
        let seriesStrings = batch.series.map { series in
            (series.labels.labels.map { (intern($0.name), intern($0.value)) }, intern(series.profileType.id))
        }

        // A bound on every part, so the record is written through a pointer into one uninitialised
        // allocation: no per-byte append, no regrowth. The bulk parts are bounded by the widest varint
        // their column holds (a tight bound keeps the allocation close to the record's size: room
        // allocated but never written still costs page faults when the allocator hands it out fresh).
        let stacks = batch.stacks
        let width = BoundedWriter.varintLength
        var bound =
            3 + 4 * 10 + BoundedWriter.stringBound(batch.tenant)
            + BoundedWriter.stringBound(batch.provenance.topic)
        bound += 10
        bound += 5 * symbolStrings.count + symbolStrings.utf8.count
        for s in extraStrings { bound += BoundedWriter.stringBound(s) }
        bound += 10 + batch.symbols.functions.count * 25
        bound += 10 + batch.symbols.frames.count * 15
        var maxDepth: UInt32 = 0
        for i in 0..<stacks.count { maxDepth = max(maxDepth, stacks.starts[i + 1] - stacks.starts[i]) }
        // Frames index the frame table, so its size bounds their width without reading them all (a
        // pass over every frame of every stack); the loop below holds each stack to that.
        let frameCount = batch.symbols.frames.count
        let stackBytes = 2 * stacks.count * width(UInt64(maxDepth)) + stacks.frames.count * width(UInt64(max(frameCount, 1) - 1))
        bound += 10 + stackBytes
        bound += 10
        for (labels, _) in seriesStrings { bound += 10 + labels.count * 10 + 5 + 10 }
        let sampleBytes = Self.sampleColumnsBound(batch)
        bound += 10 + sampleBytes + 10 + 4
        let latestTime = batch.sampleTimes.max() ?? 0

        return [UInt8](unsafeUninitializedCapacity: bound) { room, initialized in
            var w = BoundedWriter(room)
            w.raw(0x4B)
            w.raw(0x42)
            w.raw(currentVersion)
            w.string(batch.tenant)
            w.string(batch.provenance.topic)
            w.signed(Int64(batch.provenance.partition))
            w.signed(batch.provenance.offset)
            w.signed(batch.droppedZeroValue)
            w.signed(batch.droppedEmptyStack)
            w.signed(latestTime)

            w.varint(UInt64(symbolStrings.count + extraStrings.count))
            w.strings(symbolStrings)
            for s in extraStrings { w.string(s) }
            let symbolsLengthAt = w.count
            w.fixed32(0)
            w.varint(UInt64(batch.symbols.functions.count))
            for f in batch.symbols.functions {
                w.varint32(f.name)
                w.varint32(f.systemName)
                w.varint32(f.filename)
                w.signed(f.startLine)
            }
            w.varint(UInt64(batch.symbols.frames.count))
            for f in batch.symbols.frames {
                w.varint32(f.function)
                w.signed(f.line)
            }
            w.varint(UInt64(stacks.count))
            stacks.starts.withUnsafeBufferPointer { starts in
                stacks.frames.withUnsafeBufferPointer { frames in
                    w.reserve(stackBytes)
                    // A local copy, so the write position stays in a register: the captured writer was
                    // reloaded through memory at every byte.
                    var out = w
                    defer { w = out }
                    var previousEnd = 0
                    var previousDepth = 0
                    for i in 0..<stacks.count {
                        let start = Int(starts[i])
                        let end = Int(starts[i + 1])
                        let depth = end &- start
                        // Frames are leaf first, so the shared callers are the runs' common tails.
                        let limit = min(depth, previousDepth)
                        var shared = 0
                        let raw = UnsafeRawPointer(frames.baseAddress!)
                        var differs = false
                        while shared &+ 4 <= limit {
                            let mine = raw.loadUnaligned(fromByteOffset: (end &- shared &- 4) &* 4, as: SIMD4<UInt32>.self)
                            let theirs = raw.loadUnaligned(fromByteOffset: (previousEnd &- shared &- 4) &* 4, as: SIMD4<UInt32>.self)
                            if mine != theirs {
                                // The equal lanes nearest the root (lane 3 first) are shared too: a bit per
                                // differing lane, and the leading zeros above the highest one count them.
                                let bits = SIMD4<UInt32>(repeating: 0).replacing(with: SIMD4(1, 2, 4, 8), where: mine .!= theirs)
                                shared &+= (bits.wrappedSum() << 28).leadingZeroBitCount
                                differs = true
                                break
                            }
                            shared &+= 4
                        }
                        if !differs {
                            while shared < limit && frames[end &- 1 &- shared] == frames[previousEnd &- 1 &- shared] { shared &+= 1 }
                        }
                        out.varint32Unchecked(UInt32(truncatingIfNeeded: depth))
                        out.varint32Unchecked(UInt32(truncatingIfNeeded: shared))
                        // Shared frames equal frames of the stack before, checked when it was written.
                        for k in start..<end &- shared {
                            precondition(Int(frames[k]) < frameCount, "stack \(i) names frame \(frames[k]) of \(frameCount)")
                            out.varint32Unchecked(frames[k])
                        }
                        previousEnd = end
                        previousDepth = depth
                    }
                }
            }
            w.patchFixed32(UInt32(w.count - symbolsLengthAt - 4), at: symbolsLengthAt)
            w.varint(UInt64(seriesStrings.count))
            for (labels, type) in seriesStrings {
                w.varint(UInt64(labels.count))
                for (name, value) in labels {
                    w.varint32(name)
                    w.varint32(value)
                }
                w.varint32(type)
            }
            w.varint(UInt64(batch.sampleCount))
            w.reserve(sampleBytes)
            // Each column through a local copy of the writer, as the stacks above.
            batch.sampleSeries.withUnsafeBufferPointer { column in
                var out = w
                defer { w = out }
                for v in column { out.varint32Unchecked(v) }
            }
            batch.sampleStacks.withUnsafeBufferPointer { column in
                var out = w
                defer { w = out }
                var previous: Int64 = 0
                for v in column {
                    out.varintUnchecked(zigzag(Int64(v) &- previous))
                    previous = Int64(v)
                }
            }
            batch.sampleValues.withUnsafeBufferPointer { column in
                var out = w
                defer { w = out }
                for v in column { out.varintUnchecked(zigzag(v)) }
            }
            batch.sampleTimes.withUnsafeBufferPointer { column in
                var out = w
                defer { w = out }
                var previous: Int64 = 0
                for v in column {
                    out.varintUnchecked(zigzag(v &- previous))
                    previous = v
                }
            }
            batch.sampleSpans.withUnsafeBufferPointer { column in
                var out = w
                defer { w = out }
                for span in column {
                    if span == 0 {
                        out.rawUnchecked(0)
                    } else {
                        out.rawUnchecked(1)
                        out.fixed64Unchecked(span)
                    }
                }
            }
            for s in batch.series.indices { w.signed(batch.period(ofSeries: s)) }
            initialized = w.count
        }
    }

    /// The most bytes the sample columns take: each column's widest varint times its length.
    static func sampleColumnsBound(_ batch: SampleBatch) -> Int {
        let width = BoundedWriter.varintLength
        var widest: UInt64 = 0
        for v in batch.sampleValues { widest = max(widest, zigzag(v)) }
        var previous: Int64 = 0
        var widestTime: UInt64 = 0
        for t in batch.sampleTimes {
            widestTime = max(widestTime, zigzag(t &- previous))
            previous = t
        }
        var spans = 0
        for span in batch.sampleSpans where span != 0 { spans += 8 }
        let n = batch.sampleCount
        // A step between two stack indices is at most the largest index either way: zigzag doubles it.
        return n
            * (width(UInt64(largest(batch.sampleSeries))) + width(2 * UInt64(largest(batch.sampleStacks))) + width(widest)
                + width(widestTime) + 1) + spans
    }

    /// The largest element (0 for none): the bounds come from the columns themselves, so they hold
    /// whatever the columns contain.
    static func largest(_ column: [UInt32]) -> UInt32 {
        column.withUnsafeBufferPointer { values in
            var m: UInt32 = 0
            for v in values { m = max(m, v) }
            return m
        }
    }

    /// The record's version, and a reader at its tenant.
    static func header(_ bytes: [UInt8]) throws -> (version: UInt8, reader: ByteReader) {
        guard bytes.count >= 3, bytes[0] == 0x4B, bytes[1] == 0x42 else {
            throw RecordDecodingError("not a Kiln sample batch (missing \"KB\" magic)")
        }
        let version = bytes[2]
        guard (1...currentVersion).contains(version) else {
            throw RecordDecodingError(
                "sample batch version \(version) is not supported (this build reads versions 1 to \(currentVersion))")
        }
        return (version, ByteReader(bytes, position: 3))
    }

    /// The tenant of a record, from its first bytes.
    public static func tenant(of bytes: [UInt8]) throws -> String {
        var r = try header(bytes).reader
        return try r.string("tenant")
    }

    public static func decode(_ bytes: [UInt8]) throws -> SampleBatch {
        var (version, r) = try header(bytes)
        let tenant = try r.string("tenant")
        let topic = try r.string("provenance topic")
        let partition = try r.signed("provenance partition")
        let offset = try r.signed("provenance offset")
        guard let partition32 = Int32(exactly: partition) else {
            throw RecordDecodingError("provenance partition \(partition) out of range")
        }
        let droppedZero = try r.signed("dropped zero-value count")
        let droppedEmpty = try r.signed("dropped empty-stack count")
        let latestTime = version >= 4 ? try r.signed("latest sample time") : nil

        // Every entry takes at least one byte, so no count can exceed the bytes left.
        let stringCount = try r.count("string count", limit: min(maxEntries, r.remaining))
        var strings = StringTable()
        strings.reserveCapacity(strings: stringCount, bytes: 0)
        for _ in 0..<stringCount { try r.string("string", into: &strings) }
        let symbolsEnd = version >= 4 ? try r.withCursor { try $0.sectionLength("symbols length") + $0.position } : nil
        func stringIndex(_ field: StaticString) throws -> UInt32 {
            let i = try r.varint(field)
            guard i < UInt64(strings.count) else {
                throw RecordDecodingError("\(field) \(i) is out of the string table (\(strings.count) entries)")
            }
            return UInt32(i)
        }
        let functionCount = try r.count("function count", limit: min(maxEntries, r.remaining))
        var functions: [FunctionSymbol] = []
        functions.reserveCapacity(functionCount)
        for _ in 0..<functionCount {
            functions.append(
                FunctionSymbol(
                    name: try stringIndex("function name"), systemName: try stringIndex("function system name"),
                    filename: try stringIndex("function file name"), startLine: try r.signed("function start line")))
        }
        let frameCount = try r.count("frame count", limit: min(maxEntries, r.remaining))
        var frames: [FrameSymbol] = []
        frames.reserveCapacity(frameCount)
        for _ in 0..<frameCount {
            let function = try r.varint("frame function")
            guard function < UInt64(functions.count) else {
                throw RecordDecodingError("frame function \(function) is out of the function table (\(functions.count) entries)")
            }
            frames.append(FrameSymbol(function: UInt32(function), line: try r.signed("frame line")))
        }
        let stackCount = try r.count("stack count", limit: min(maxEntries, r.remaining))
        var stacks = StackTable()
        stacks.starts.reserveCapacity(stackCount + 1)
        // Each stack is put together in `current` from its own frames and the previous stack's last
        // `shared` ones, copied as one run (not frame by frame: most of a deep stack is shared).
        var previousFrames: [UInt32] = []
        var current: [UInt32] = []
        for _ in 0..<stackCount {
            // Shared frames take no bytes, so a depth is bounded by what the previous stack lends plus
            // what is left to read, and all stacks together by `maxEntries`.
            let depth = try r.count("stack depth", limit: previousFrames.count + r.remaining)
            let shared = version == 1 ? 0 : try r.count("stack shared frames", limit: min(depth, previousFrames.count))
            guard stacks.frames.count + depth <= maxEntries else {
                throw RecordDecodingError("stack frames exceed \(maxEntries) in all")
            }
            current.removeAll(keepingCapacity: true)
            for _ in 0..<(depth - shared) {
                let frame = try r.varint("stack frame")
                guard frame < UInt64(frames.count) else {
                    throw RecordDecodingError("stack frame \(frame) is out of the frame table (\(frames.count) entries)")
                }
                current.append(UInt32(frame))
            }
            current.append(contentsOf: previousFrames[(previousFrames.count - shared)...])
            stacks.frames.append(contentsOf: current)
            stacks.starts.append(UInt32(stacks.frames.count))
            swap(&previousFrames, &current)
        }
        if let symbolsEnd, r.position != symbolsEnd {
            throw RecordDecodingError("the symbols end at byte \(r.position), their length says \(symbolsEnd)")
        }
        let seriesCount = try r.count("series count", limit: min(maxEntries, r.remaining))
        // Through a cursor: a closure here capturing `r` would make every read of `r` above pay a runtime
        // exclusivity check (measured: a quarter more CPU in the compactor benchmark).
        let table = strings
        let series = try r.withCursor { c in try seriesTable(seriesCount, &c, stringCount: table.count) { table[$0] } }
        let sampleCount = try r.count("sample count", limit: min(maxEntries, r.remaining))
        let columns = try r.withCursor {
            try sampleColumns(&$0, count: sampleCount, version: version, series: series.count, stacks: stacks.count)
        }
        try checkedLatestTime(columns.times, header: latestTime)
        var spans = [UInt64]()
        spans.reserveCapacity(sampleCount)
        for _ in 0..<sampleCount {
            spans.append(try r.varint("sample span flag") == 0 ? 0 : try r.fixed64("sample span"))
        }
        var periods: [Int64] = []
        if version >= 3 {
            periods.reserveCapacity(series.count)
            for _ in series.indices { periods.append(try r.signed("series period")) }
        }
        guard r.remaining == 0 else { throw RecordDecodingError("\(r.remaining) unexpected bytes after the samples") }
        return SampleBatch(
            tenant: tenant, provenance: Provenance(topic: topic, partition: partition32, offset: offset),
            series: series, symbols: SymbolTable(strings: strings, functions: functions, frames: frames),
            stacks: stacks, sampleSeries: columns.series, sampleStacks: columns.stacks, sampleValues: columns.values,
            sampleTimes: columns.times, sampleSpans: spans, seriesPeriods: periods, droppedZeroValue: droppedZero,
            droppedEmptyStack: droppedEmpty)
    }

    /// `count` series: each a count of labels, its label names and values and its profile type as indexes
    /// of the record's `stringCount` strings, which `string` turns into text.
    static func seriesTable(
        _ count: Int, _ c: inout ByteCursor, stringCount: Int, string text: (Int) -> String
    ) throws -> [BatchSeries] {
        func string(_ field: StaticString) throws -> String { text(try c.stringIndex(field, stringCount: stringCount)) }
        var series: [BatchSeries] = []
        series.reserveCapacity(count)
        for _ in 0..<count {
            let labels = try (0..<c.count("series label count", limit: c.remaining)).map { _ in
                Label(try string("label name"), try string("label value"))
            }
            let typeText = try string("profile type")
            guard let type = ProfileTypeID(parsing: typeText) else { throw RecordDecodingError("malformed profile type \"\(typeText)\"") }
            series.append(BatchSeries(labels: LabelSet(labels), profileType: type))
        }
        return series
    }

    /// The samples' latest time (nil without samples), checked against the header's (versions 4 on): a
    /// reader that skips the samples trusts the header's, so it must be theirs.
    @discardableResult
    static func checkedLatestTime(_ times: [Int64], header: Int64?) throws -> Int64? {
        let latest = times.max()
        if let header, header != latest ?? 0 {
            throw RecordDecodingError("latest sample time \(header) differs from the samples' (\(latest ?? 0))")
        }
        return latest
    }

    /// The series, stack, value and time columns of `count` samples, each index checked against the
    /// record's tables.
    /// `stacks` nil: the stack column is stepped over (a reader that looks at no stacks), and comes back empty.
    static func sampleColumns(_ r: inout ByteCursor, count: Int, version: UInt8, series: Int, stacks: Int?) throws -> (
        series: [UInt32], stacks: [UInt32], values: [Int64], times: [Int64]
    ) {
        let sampleSeries = try r.column(count, "sample series") { s in
            guard s < UInt64(series) else {
                throw RecordDecodingError("sample series \(s) is out of the series table (\(series) entries)")
            }
            return UInt32(s)
        }
        guard let stacks else {
            try r.skipVarints(count, "sample stack")
            return (sampleSeries, [], try values(&r, count), try times(&r, count))
        }
        var previousStack: Int64 = 0
        let sampleStacks = try r.column(count, "sample stack") { v in
            let s = version == 1 ? Int64(clamping: v) : previousStack &+ Varint.unzigzag(v)
            guard s >= 0 && s < Int64(stacks) else {
                throw RecordDecodingError("sample stack \(s) is out of the stack table (\(stacks) entries)")
            }
            previousStack = s
            return UInt32(s)
        }
        return (sampleSeries, sampleStacks, try values(&r, count), try times(&r, count))
    }

    private static func values(_ r: inout ByteCursor, _ count: Int) throws -> [Int64] {
        try r.column(count, "sample value") { Varint.unzigzag($0) }
    }

    private static func times(_ r: inout ByteCursor, _ count: Int) throws -> [Int64] {
        var previousTime: Int64 = 0
        return try r.column(count, "sample time") { v in
            previousTime = previousTime &+ Varint.unzigzag(v)
            return previousTime
        }
    }
}

private func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }
