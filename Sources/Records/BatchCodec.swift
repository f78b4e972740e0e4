import ProfileModel

/// The record on `kiln.profiles.normalized`: one `SampleBatch`.
///
/// Encoding (version 1): `"KB"`, version byte, then: tenant; provenance (topic, partition, offset);
/// dropped counts; strings; functions (name, system name, file name, start line); frames (function,
/// line); stacks (depth, frame indices); series (label pairs as string indices, profile type as a
/// string index); then the samples column by column — series, stack, value (zigzag), time (zigzag
/// delta from the previous sample), span (presence bit then fixed64). Columns keep like values
/// together, which lz4 on the topic then compresses well.
public enum BatchCodec {
    public static let currentVersion: UInt8 = 1
    /// Upper bounds on decoded counts, so a corrupt record cannot make us allocate without limit.
    static let maxEntries = 50_000_000

    public static func encode(_ batch: SampleBatch) -> [UInt8] {
        var w = ByteWriter(capacity: 64 + batch.sampleCount * 8 + batch.symbols.strings.count * 24)
        w.bytes.append(contentsOf: [0x4B, 0x42, currentVersion])
        w.string(batch.tenant)
        w.string(batch.provenance.topic)
        w.signed(Int64(batch.provenance.partition))
        w.signed(batch.provenance.offset)
        w.signed(batch.droppedZeroValue)
        w.signed(batch.droppedEmptyStack)

        // Series labels and profile types go into the same string table as the symbols: each one takes
        // the index of its first equal symbol string, else a new entry. Only symbol strings whose
        // length some series string has are hashed (series strings are few, symbol strings many).
        var strings = batch.symbols.strings
        var index: [String: UInt32] = [:]
        var seriesLengths = Set<Int>()
        for series in batch.series {
            for label in series.labels.labels {
                index[label.name] = UInt32.max
                index[label.value] = UInt32.max
            }
            index[series.profileType.id] = UInt32.max
        }
        for text in index.keys { seriesLengths.insert(text.utf8.count) }
        if !index.isEmpty {
            for (i, text) in strings.enumerated() where seriesLengths.contains(text.utf8.count) {
                if index[text] == UInt32.max { index[text] = UInt32(i) }
            }
        }
        func intern(_ s: String) -> UInt32 {
            if let i = index[s], i != UInt32.max { return i }
            let i = UInt32(strings.count)
            strings.append(s)
            index[s] = i
            return i
        }
        let seriesStrings = batch.series.map { series in
            (series.labels.labels.map { (intern($0.name), intern($0.value)) }, intern(series.profileType.id))
        }

        w.varint(strings.count)
        for s in strings { w.string(s) }
        w.varint(batch.symbols.functions.count)
        for f in batch.symbols.functions {
            w.varint(UInt64(f.name))
            w.varint(UInt64(f.systemName))
            w.varint(UInt64(f.filename))
            w.signed(f.startLine)
        }
        w.varint(batch.symbols.frames.count)
        for f in batch.symbols.frames {
            w.varint(UInt64(f.function))
            w.signed(f.line)
        }
        w.varint(batch.stacks.count)
        batch.stacks.starts.withUnsafeBufferPointer { starts in
            batch.stacks.frames.withUnsafeBufferPointer { frames in
                w.bulk(count: batch.stacks.count, maxBytes: { 5 * (1 + Int(starts[$0 + 1] - starts[$0])) }) { i, out in
                    let start = Int(starts[i]), end = Int(starts[i + 1])
                    var o = out.varint(UInt64(end - start), at: 0)
                    for k in start ..< end { o = out.varint(UInt64(frames[k]), at: o) }
                    return o
                }
            }
        }
        w.varint(seriesStrings.count)
        for (labels, type) in seriesStrings {
            w.varint(labels.count)
            for (name, value) in labels {
                w.varint(UInt64(name))
                w.varint(UInt64(value))
            }
            w.varint(UInt64(type))
        }
        w.varint(batch.sampleCount)
        batch.sampleSeries.withUnsafeBufferPointer { column in
            w.bulk(count: column.count, maxBytes: { _ in 5 }) { i, out in out.varint(UInt64(column[i]), at: 0) }
        }
        batch.sampleStacks.withUnsafeBufferPointer { column in
            w.bulk(count: column.count, maxBytes: { _ in 5 }) { i, out in out.varint(UInt64(column[i]), at: 0) }
        }
        batch.sampleValues.withUnsafeBufferPointer { column in
            w.bulk(count: column.count, maxBytes: { _ in 10 }) { i, out in out.varint(zigzag(column[i]), at: 0) }
        }
        batch.sampleTimes.withUnsafeBufferPointer { column in
            w.bulk(count: column.count, maxBytes: { _ in 10 }) { i, out in
                out.varint(zigzag(column[i] &- (i == 0 ? 0 : column[i - 1])), at: 0)
            }
        }
        for span in batch.sampleSpans {
            if span == 0 {
                w.varint(0)
            } else {
                w.varint(1)
                w.fixed64(span)
            }
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws -> SampleBatch {
        guard bytes.count >= 3, bytes[0] == 0x4B, bytes[1] == 0x42 else {
            throw RecordDecodingError("not a Kiln sample batch (missing \"KB\" magic)")
        }
        guard bytes[2] == currentVersion else {
            throw RecordDecodingError("sample batch version \(bytes[2]) is not supported (this build reads version \(currentVersion))")
        }
        var r = ByteReader(bytes, position: 3)
        let tenant = try r.string("tenant")
        let topic = try r.string("provenance topic")
        let partition = try r.signed("provenance partition")
        let offset = try r.signed("provenance offset")
        guard let partition32 = Int32(exactly: partition) else { throw RecordDecodingError("provenance partition \(partition) out of range") }
        let droppedZero = try r.signed("dropped zero-value count")
        let droppedEmpty = try r.signed("dropped empty-stack count")

        // Every entry takes at least one byte, so no count can exceed the bytes left.
        let stringCount = try r.count("string count", limit: min(maxEntries, r.remaining))
        var strings: [String] = []
        strings.reserveCapacity(stringCount)
        for _ in 0..<stringCount { strings.append(try r.string("string")) }
        func stringIndex(_ field: StaticString) throws -> UInt32 {
            let i = try r.varint(field)
            guard i < UInt64(strings.count) else { throw RecordDecodingError("\(field) \(i) is out of the string table (\(strings.count) entries)") }
            return UInt32(i)
        }
        let functionCount = try r.count("function count", limit: min(maxEntries, r.remaining))
        var functions: [FunctionSymbol] = []
        functions.reserveCapacity(functionCount)
        for _ in 0..<functionCount {
            functions.append(FunctionSymbol(name: try stringIndex("function name"), systemName: try stringIndex("function system name"),
                                            filename: try stringIndex("function file name"), startLine: try r.signed("function start line")))
        }
        let frameCount = try r.count("frame count", limit: min(maxEntries, r.remaining))
        var frames: [FrameSymbol] = []
        frames.reserveCapacity(frameCount)
        for _ in 0..<frameCount {
            let function = try r.varint("frame function")
            guard function < UInt64(functions.count) else { throw RecordDecodingError("frame function \(function) is out of the function table (\(functions.count) entries)") }
            frames.append(FrameSymbol(function: UInt32(function), line: try r.signed("frame line")))
        }
        let stackCount = try r.count("stack count", limit: min(maxEntries, r.remaining))
        var stacks = StackTable()
        stacks.starts.reserveCapacity(stackCount + 1)
        for _ in 0..<stackCount {
            let depth = try r.count("stack depth", limit: r.remaining)
            for _ in 0..<depth {
                let frame = try r.varint("stack frame")
                guard frame < UInt64(frames.count) else { throw RecordDecodingError("stack frame \(frame) is out of the frame table (\(frames.count) entries)") }
                stacks.frames.append(UInt32(frame))
            }
            stacks.starts.append(UInt32(stacks.frames.count))
        }
        let seriesCount = try r.count("series count", limit: min(maxEntries, r.remaining))
        var series: [BatchSeries] = []
        series.reserveCapacity(seriesCount)
        for _ in 0..<seriesCount {
            let labelCount = try r.count("series label count", limit: r.remaining)
            var labels: [Label] = []
            labels.reserveCapacity(labelCount)
            for _ in 0..<labelCount {
                labels.append(Label(strings[Int(try stringIndex("label name"))], strings[Int(try stringIndex("label value"))]))
            }
            let typeText = strings[Int(try stringIndex("profile type"))]
            guard let type = ProfileTypeID(parsing: typeText) else { throw RecordDecodingError("malformed profile type \"\(typeText)\"") }
            series.append(BatchSeries(labels: LabelSet(labels), profileType: type))
        }
        let sampleCount = try r.count("sample count", limit: min(maxEntries, r.remaining))
        var sampleSeries = [UInt32](), sampleStacks = [UInt32](), values = [Int64](), times = [Int64](), spans = [UInt64]()
        sampleSeries.reserveCapacity(sampleCount)
        for _ in 0..<sampleCount {
            let s = try r.varint("sample series")
            guard s < UInt64(series.count) else { throw RecordDecodingError("sample series \(s) is out of the series table (\(series.count) entries)") }
            sampleSeries.append(UInt32(s))
        }
        sampleStacks.reserveCapacity(sampleCount)
        for _ in 0..<sampleCount {
            let s = try r.varint("sample stack")
            guard s < UInt64(stacks.count) else { throw RecordDecodingError("sample stack \(s) is out of the stack table (\(stacks.count) entries)") }
            sampleStacks.append(UInt32(s))
        }
        values.reserveCapacity(sampleCount)
        for _ in 0..<sampleCount { values.append(try r.signed("sample value")) }
        times.reserveCapacity(sampleCount)
        var previous: Int64 = 0
        for _ in 0..<sampleCount {
            previous = previous &+ (try r.signed("sample time"))
            times.append(previous)
        }
        spans.reserveCapacity(sampleCount)
        for _ in 0..<sampleCount {
            spans.append(try r.varint("sample span flag") == 0 ? 0 : try r.fixed64("sample span"))
        }
        guard r.remaining == 0 else { throw RecordDecodingError("\(r.remaining) unexpected bytes after the samples") }
        return SampleBatch(tenant: tenant, provenance: Provenance(topic: topic, partition: partition32, offset: offset),
                           series: series, symbols: SymbolTable(strings: strings, functions: functions, frames: frames),
                           stacks: stacks, sampleSeries: sampleSeries, sampleStacks: sampleStacks, sampleValues: values,
                           sampleTimes: times, sampleSpans: spans, droppedZeroValue: droppedZero, droppedEmptyStack: droppedEmpty)
    }
}

private func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }

extension UnsafeMutablePointer<UInt8> {
    /// Writes `v` as a LEB128 varint at `self[at]`; returns the position after it.
    @inline(__always)
    fileprivate func varint(_ v: UInt64, at: Int) -> Int {
        var x = v
        var o = at
        while x >= 0x80 {
            self[o] = UInt8(truncatingIfNeeded: x) | 0x80
            x >>= 7
            o &+= 1
        }
        self[o] = UInt8(truncatingIfNeeded: x)
        return o &+ 1
    }
}

extension ByteWriter {
    /// Appends `count` items through a raw pointer, a chunk at a time: `write(i, out)` writes item `i`
    /// (at most `maxBytes(i)` bytes) and returns how many it wrote. The bulk columns and stacks are
    /// most of a batch, and appending them byte by byte costs a bounds and uniqueness check per byte.
    fileprivate mutating func bulk(count: Int, maxBytes: (Int) -> Int, _ write: (Int, UnsafeMutablePointer<UInt8>) -> Int) {
        var i = 0
        while i < count {
            // A chunk of items whose worst case fits in about 64 KiB (at least one item).
            var room = 0
            var last = i
            while last < count && (last == i || room + maxBytes(last) <= 1 << 16) {
                room += maxBytes(last)
                last += 1
            }
            let start = bytes.count
            bytes.append(contentsOf: repeatElement(0, count: room))
            var end = start
            bytes.withUnsafeMutableBufferPointer { buffer in
                let base = buffer.baseAddress!
                for k in i ..< last { end += write(k, base + end) }
            }
            bytes.removeSubrange(end...)
            i = last
        }
    }
}
