import KilnFoundation

/// Writes a `PprofProfile` as a `perftools.profiles.Profile` protobuf (optionally gzipped), in the field
/// order google/pprof writes; repeated scalars are packed, zero-valued optional fields omitted.
public enum PprofEncoder {
    /// Two passes: the exact size of every message first, then every byte written once through a pointer
    /// into a buffer of that size (no scratch messages copied into their parents).
    public static func encode(_ p: PprofProfile) -> [UInt8] {
        var sizes = MessageSizes()
        let total = sizes.measure(p)
        guard total > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: total) { buffer, count in
            var w = PointerWriter(base: buffer.baseAddress!)
            w.write(p, sizes: sizes)
            precondition(w.offset == total, "pprof encoder wrote \(w.offset) bytes, measured \(total)")
            count = total
        }
    }

    /// `encode` followed by gzip (level 1..12, libdeflate).
    public static func encodeGzip(_ p: PprofProfile, level: Int32 = 6) -> [UInt8] {
        Gzip.compress(encode(p), level: level)
    }
}

/// Size of an optional varint field (omitted when zero, as the encoder omits it), key included; field < 16.
@inline(__always) func fieldSize(_ v: UInt64) -> Int { v == 0 ? 0 : 1 + Varint.length(v) }

/// Size of a length-delimited field with `body` bytes, key included; field < 16.
@inline(__always) func delimitedSize(_ body: Int) -> Int { 1 + Varint.length(UInt64(body)) + body }

/// The body sizes of the messages `PprofEncoder` writes, measured in the order they are written.
struct MessageSizes {
    var samples: [Int] = []
    var locationStacks: [Int] = []
    var valueBodies: [Int] = []
    var lineBodies: [Int] = []
    var locations: [Int] = []

    mutating func measure(_ p: PprofProfile) -> Int {
        var total = 0
        for st in p.sampleTypes {
            total += delimitedSize(fieldSize(UInt64(bitPattern: Int64(st.type))) + fieldSize(UInt64(bitPattern: Int64(st.unit))))
        }
        let n = p.sampleTypes.count
        samples.reserveCapacity(p.sampleCount)
        locationStacks.reserveCapacity(p.sampleCount)
        valueBodies.reserveCapacity(p.sampleCount)
        p.locations.withUnsafeBufferPointer { locations in
            p.values.withUnsafeBufferPointer { values in
                p.sampleLocations.withUnsafeBufferPointer { stacks in
                    for s in 0..<p.sampleCount {
                        var size = 0
                        var ids = 0
                        for i in Int(p.sampleLocationStarts[s])..<Int(p.sampleLocationStarts[s + 1]) {
                            ids += Varint.length(locations[Int(stacks[i])].id)
                        }
                        if ids > 0 { size += delimitedSize(ids) }
                        var body = 0
                        for v in values[s * n..<(s + 1) * n] { body += Varint.length(UInt64(bitPattern: v)) }
                        if body > 0 { size += delimitedSize(body) }
                        for label in p.labels(s) { size += delimitedSize(Self.labelSize(label)) }
                        locationStacks.append(ids)
                        valueBodies.append(body)
                        samples.append(size)
                        total += delimitedSize(size)
                    }
                }
            }
        }
        for m in p.mappings { total += delimitedSize(Self.mappingSize(m)) }
        locations.reserveCapacity(p.locations.count)
        for (i, loc) in p.locations.enumerated() {
            var size = fieldSize(loc.id) + fieldSize(loc.address) + fieldSize(loc.isFolded ? 1 : 0)
            if loc.mappingIndex >= 0 { size += fieldSize(p.mappings[Int(loc.mappingIndex)].id) }
            for line in p.lines(of: i) {
                let body = Self.lineSize(line, function: p.functions[Int(line.functionIndex)].id)
                lineBodies.append(body)
                size += delimitedSize(body)
            }
            locations.append(size)
            total += delimitedSize(size)
        }
        for f in p.functions { total += delimitedSize(Self.functionSize(f)) }
        for i in 0..<p.stringCount { total += delimitedSize(Int(p.stringLengths[i])) }
        total += fieldSize(UInt64(bitPattern: Int64(p.dropFrames))) + fieldSize(UInt64(bitPattern: Int64(p.keepFrames)))
        total += fieldSize(UInt64(bitPattern: p.timeNanos)) + fieldSize(UInt64(bitPattern: p.durationNanos))
        if let pt = p.periodType {
            total += delimitedSize(fieldSize(UInt64(bitPattern: Int64(pt.type))) + fieldSize(UInt64(bitPattern: Int64(pt.unit))))
        }
        total += fieldSize(UInt64(bitPattern: p.period))
        var comments = 0
        for c in p.comments { comments += Varint.length(UInt64(bitPattern: Int64(c))) }
        if comments > 0 { total += delimitedSize(comments) }
        total += fieldSize(UInt64(bitPattern: Int64(p.defaultSampleType)))
        return total
    }

    static func labelSize(_ l: PprofLabel) -> Int {
        fieldSize(UInt64(bitPattern: Int64(l.key))) + fieldSize(UInt64(bitPattern: Int64(l.str))) + fieldSize(UInt64(bitPattern: l.num))
            + fieldSize(UInt64(bitPattern: Int64(l.numUnit)))
    }

    static func mappingSize(_ m: PprofMapping) -> Int {
        fieldSize(m.id) + fieldSize(m.memoryStart) + fieldSize(m.memoryLimit) + fieldSize(m.fileOffset)
            + fieldSize(UInt64(bitPattern: Int64(m.filename))) + fieldSize(UInt64(bitPattern: Int64(m.buildID)))
            + fieldSize(m.hasFunctions ? 1 : 0) + fieldSize(m.hasFilenames ? 1 : 0) + fieldSize(m.hasLineNumbers ? 1 : 0)
            + fieldSize(m.hasInlineFrames ? 1 : 0)
    }

    static func lineSize(_ line: PprofLine, function: UInt64) -> Int {
        fieldSize(function) + fieldSize(UInt64(bitPattern: line.line)) + fieldSize(UInt64(bitPattern: line.column))
    }

    static func functionSize(_ f: PprofFunction) -> Int {
        fieldSize(f.id) + fieldSize(UInt64(bitPattern: Int64(f.name))) + fieldSize(UInt64(bitPattern: Int64(f.systemName)))
            + fieldSize(UInt64(bitPattern: Int64(f.filename))) + fieldSize(UInt64(bitPattern: f.startLine))
    }
}

/// Writes through a pointer into a buffer `MessageSizes` measured (so never past its end).
struct PointerWriter {
    let base: UnsafeMutablePointer<UInt8>
    var offset = 0

    @inline(__always) mutating func varint(_ v: UInt64) { offset &+= Varint.write(v, to: base + offset) }

    @inline(__always) mutating func key(_ field: Int, _ wire: UInt64) { varint(UInt64(field) << 3 | wire) }

    @inline(__always) mutating func uint64(_ field: Int, _ v: UInt64) {
        guard v != 0 else { return }
        key(field, 0)
        varint(v)
    }

    @inline(__always) mutating func int64(_ field: Int, _ v: Int64) { uint64(field, UInt64(bitPattern: v)) }

    @inline(__always) mutating func header(_ field: Int, _ length: Int) {
        key(field, 2)
        varint(UInt64(length))
    }

    mutating func write(_ p: PprofProfile, sizes: MessageSizes) {
        for st in p.sampleTypes {
            header(1, fieldSize(UInt64(bitPattern: Int64(st.type))) + fieldSize(UInt64(bitPattern: Int64(st.unit))))
            int64(1, Int64(st.type))
            int64(2, Int64(st.unit))
        }
        let n = p.sampleTypes.count
        p.locations.withUnsafeBufferPointer { locations in
            p.sampleLocations.withUnsafeBufferPointer { stacks in
                for s in 0..<p.sampleCount {
                    header(2, sizes.samples[s])
                    if sizes.locationStacks[s] > 0 {
                        header(1, sizes.locationStacks[s])
                        for i in Int(p.sampleLocationStarts[s])..<Int(p.sampleLocationStarts[s + 1]) {
                            varint(locations[Int(stacks[i])].id)
                        }
                    }
                    if sizes.valueBodies[s] > 0 {
                        header(2, sizes.valueBodies[s])
                        for v in p.values[s * n..<(s + 1) * n] { varint(UInt64(bitPattern: v)) }
                    }
                    for label in p.labels(s) {
                        header(3, MessageSizes.labelSize(label))
                        int64(1, Int64(label.key))
                        int64(2, Int64(label.str))
                        int64(3, label.num)
                        int64(4, Int64(label.numUnit))
                    }
                }
            }
        }
        for m in p.mappings {
            header(3, MessageSizes.mappingSize(m))
            uint64(1, m.id)
            uint64(2, m.memoryStart)
            uint64(3, m.memoryLimit)
            uint64(4, m.fileOffset)
            int64(5, Int64(m.filename))
            int64(6, Int64(m.buildID))
            uint64(7, m.hasFunctions ? 1 : 0)
            uint64(8, m.hasFilenames ? 1 : 0)
            uint64(9, m.hasLineNumbers ? 1 : 0)
            uint64(10, m.hasInlineFrames ? 1 : 0)
        }
        var lineIndex = 0
        for (i, loc) in p.locations.enumerated() {
            header(4, sizes.locations[i])
            uint64(1, loc.id)
            if loc.mappingIndex >= 0 { uint64(2, p.mappings[Int(loc.mappingIndex)].id) }
            uint64(3, loc.address)
            for line in p.lines(of: i) {
                header(4, sizes.lineBodies[lineIndex])
                lineIndex += 1
                uint64(1, p.functions[Int(line.functionIndex)].id)
                int64(2, line.line)
                int64(3, line.column)
            }
            uint64(5, loc.isFolded ? 1 : 0)
        }
        for f in p.functions {
            header(5, MessageSizes.functionSize(f))
            uint64(1, f.id)
            int64(2, Int64(f.name))
            int64(3, Int64(f.systemName))
            int64(4, Int64(f.filename))
            int64(5, f.startLine)
        }
        p.data.withUnsafeBufferPointer { data in
            for i in 0..<p.stringCount {
                let length = Int(p.stringLengths[i])
                header(6, length)
                if length > 0 {
                    (base + offset).update(from: data.baseAddress! + Int(p.stringOffsets[i]), count: length)
                    offset += length
                }
            }
        }
        int64(7, Int64(p.dropFrames))
        int64(8, Int64(p.keepFrames))
        int64(9, p.timeNanos)
        int64(10, p.durationNanos)
        if let pt = p.periodType {
            header(11, fieldSize(UInt64(bitPattern: Int64(pt.type))) + fieldSize(UInt64(bitPattern: Int64(pt.unit))))
            int64(1, Int64(pt.type))
            int64(2, Int64(pt.unit))
        }
        int64(12, p.period)
        var comments = 0
        for c in p.comments { comments += Varint.length(UInt64(bitPattern: Int64(c))) }
        if comments > 0 {
            header(13, comments)
            for c in p.comments { varint(UInt64(bitPattern: Int64(c))) }
        }
        int64(14, Int64(p.defaultSampleType))
    }
}
