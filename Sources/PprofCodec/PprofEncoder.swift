import KilnFoundation

/// Writes a `PprofProfile` as a `perftools.profiles.Profile` protobuf (optionally gzipped), in the field
/// order google/pprof writes; repeated scalars are packed, zero-valued optional fields omitted.
public enum PprofEncoder {
    public static func encode(_ p: PprofProfile) -> [UInt8] {
        var w = WireWriter()
        w.out.reserveCapacity(p.data.count + p.values.count * 3 + p.sampleLocations.count * 2)
        var m = WireWriter()
        for st in p.sampleTypes {
            m.clear()
            m.int64(1, Int64(st.type))
            m.int64(2, Int64(st.unit))
            w.message(1, m)
        }
        let n = p.sampleTypes.count
        for s in 0..<p.sampleCount {
            m.clear()
            m.packed(1, p.stack(s).lazy.map { p.locations[Int($0)].id })
            m.packed(2, p.values[s * n..<(s + 1) * n].lazy.map { UInt64(bitPattern: $0) })
            for label in p.labels(s) {
                var l = WireWriter()
                l.int64(1, Int64(label.key))
                l.int64(2, Int64(label.str))
                l.int64(3, label.num)
                l.int64(4, Int64(label.numUnit))
                m.message(3, l)
            }
            w.message(2, m)
        }
        for mp in p.mappings {
            m.clear()
            m.uint64(1, mp.id)
            m.uint64(2, mp.memoryStart)
            m.uint64(3, mp.memoryLimit)
            m.uint64(4, mp.fileOffset)
            m.int64(5, Int64(mp.filename))
            m.int64(6, Int64(mp.buildID))
            m.uint64(7, mp.hasFunctions ? 1 : 0)
            m.uint64(8, mp.hasFilenames ? 1 : 0)
            m.uint64(9, mp.hasLineNumbers ? 1 : 0)
            m.uint64(10, mp.hasInlineFrames ? 1 : 0)
            w.message(3, m)
        }
        for (i, loc) in p.locations.enumerated() {
            m.clear()
            m.uint64(1, loc.id)
            if loc.mappingIndex >= 0 { m.uint64(2, p.mappings[Int(loc.mappingIndex)].id) }
            m.uint64(3, loc.address)
            for line in p.lines(of: i) {
                var l = WireWriter()
                l.uint64(1, p.functions[Int(line.functionIndex)].id)
                l.int64(2, line.line)
                l.int64(3, line.column)
                m.message(4, l)
            }
            m.uint64(5, loc.isFolded ? 1 : 0)
            w.message(4, m)
        }
        for f in p.functions {
            m.clear()
            m.uint64(1, f.id)
            m.int64(2, Int64(f.name))
            m.int64(3, Int64(f.systemName))
            m.int64(4, Int64(f.filename))
            m.int64(5, f.startLine)
            w.message(5, m)
        }
        p.data.withUnsafeBufferPointer { data in
            for i in 0..<p.stringCount {
                let o = Int(p.stringOffsets[i])
                w.bytes(6, UnsafeBufferPointer(rebasing: data[o..<o + Int(p.stringLengths[i])]))
            }
        }
        w.int64(7, Int64(p.dropFrames))
        w.int64(8, Int64(p.keepFrames))
        w.int64(9, p.timeNanos)
        w.int64(10, p.durationNanos)
        if let pt = p.periodType {
            m.clear()
            m.int64(1, Int64(pt.type))
            m.int64(2, Int64(pt.unit))
            w.message(11, m)
        }
        w.int64(12, p.period)
        w.packed(13, p.comments.lazy.map { UInt64(bitPattern: Int64($0)) })
        w.int64(14, Int64(p.defaultSampleType))
        return w.out
    }

    /// `encode` followed by gzip (level 1..12, libdeflate).
    public static func encodeGzip(_ p: PprofProfile, level: Int32 = 6) -> [UInt8] {
        Gzip.compress(encode(p), level: level)
    }
}

struct WireWriter {
    var out: [UInt8] = []

    mutating func clear() { out.removeAll(keepingCapacity: true) }

    @inline(__always) mutating func varint(_ v: UInt64) { Varint.append(v, to: &out) }

    @inline(__always) mutating func key(_ field: Int, _ wire: UInt64) { varint(UInt64(field) << 3 | wire) }

    /// Optional varint field: omitted when zero (proto3 default).
    mutating func uint64(_ field: Int, _ v: UInt64) {
        guard v != 0 else { return }
        key(field, 0)
        varint(v)
    }

    mutating func int64(_ field: Int, _ v: Int64) { uint64(field, UInt64(bitPattern: v)) }

    mutating func packed(_ field: Int, _ values: some Collection<UInt64>) {
        guard !values.isEmpty else { return }
        var size = 0
        for v in values { size += Self.varintSize(v) }
        key(field, 2)
        varint(UInt64(size))
        for v in values { varint(v) }
    }

    mutating func message(_ field: Int, _ m: WireWriter) {
        key(field, 2)
        varint(UInt64(m.out.count))
        out.append(contentsOf: m.out)
    }

    mutating func bytes(_ field: Int, _ b: UnsafeBufferPointer<UInt8>) {
        key(field, 2)
        varint(UInt64(b.count))
        out.append(contentsOf: b)
    }

    @inline(__always) static func varintSize(_ v: UInt64) -> Int {
        (64 - v.leadingZeroBitCount + 6) / 7 | (v == 0 ? 1 : 0)
    }
}
