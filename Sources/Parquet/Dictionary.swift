// Dictionary building for RLE_DICTIONARY: open-addressing hash tables over the column's own buffers,
// so interning a value allocates nothing per value.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Interns 64-bit integers; gives each distinct value its first-seen index.
struct IntegerDictionary {
    private var slots: [Int32]
    private(set) var keys: [Int64] = []
    private var mask: Int

    init(expected: Int) {
        var cap = 64
        while cap < expected * 2 { cap <<= 1 }
        slots = [Int32](repeating: -1, count: cap)
        mask = cap - 1
    }

    @inline(__always) private static func hash(_ v: Int64) -> Int {
        Int(truncatingIfNeeded: (UInt64(bitPattern: v) &* 0x9E37_79B9_7F4A_7C15) >> 20)
    }

    @inline(__always) mutating func intern(_ v: Int64) -> UInt32 {
        var i = Self.hash(v) & mask
        while true {
            let s = slots[i]
            if s < 0 {
                let id = Int32(keys.count)
                slots[i] = id
                keys.append(v)
                if keys.count * 2 > slots.count { grow() }
                return UInt32(id)
            }
            if keys[Int(s)] == v { return UInt32(s) }
            i = (i + 1) & mask
        }
    }

    private mutating func grow() {
        let cap = slots.count * 2
        slots = [Int32](repeating: -1, count: cap)
        mask = cap - 1
        for (id, k) in keys.enumerated() {
            var i = Self.hash(k) & mask
            while slots[i] >= 0 { i = (i + 1) & mask }
            slots[i] = Int32(id)
        }
    }

    /// Builds indices for `values`; nil once the dictionary passes `maxEntries`.
    static func build(_ values: UnsafeBufferPointer<Int64>, maxEntries: Int) -> (keys: [Int64], indices: [UInt32])? {
        var dict = IntegerDictionary(expected: min(values.count, 4096))
        var indices = [UInt32](repeating: 0, count: values.count)
        for i in 0..<values.count {
            indices[i] = dict.intern(values[i])
            if dict.keys.count > maxEntries { return nil }
        }
        return (dict.keys, indices)
    }
}

/// Interns byte strings held in a `ByteArrays`; entries refer back into it.
struct BytesDictionary {
    private var slots: [Int32]
    private var hashes: [UInt64] = []
    /// Source value index of each entry.
    private(set) var entries: [Int] = []
    private(set) var plainSize = 0
    private var mask: Int

    init(expected: Int) {
        var cap = 64
        while cap < expected * 2 { cap <<= 1 }
        slots = [Int32](repeating: -1, count: cap)
        mask = cap - 1
    }

    @inline(__always) static func hash(_ p: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ UInt64(p.count)
        var i = 0
        while i + 8 <= p.count {
            let w = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            h = (h ^ w) &* 0x100_0000_01B3
            h ^= h >> 29
            i += 8
        }
        while i < p.count {
            h = (h ^ UInt64(p[i])) &* 0x100_0000_01B3
            i += 1
        }
        return h ^ (h >> 32)
    }

    static func build(_ values: ByteArrays, fixedLength: Bool, maxPlainBytes: Int)
        -> (entries: [Int], indices: [UInt32])?
    {
        var dict = BytesDictionary(expected: min(values.count, 4096))
        var indices = [UInt32](repeating: 0, count: values.count)
        let ok: Bool = values.bytes.withUnsafeBytes { raw in
            values.offsets.withUnsafeBufferPointer { offs in
                for i in 0..<values.count {
                    let v = UnsafeRawBufferPointer(rebasing: raw[offs[i]..<offs[i + 1]])
                    indices[i] = dict.intern(v, source: i, raw: raw, offsets: offs, lengthPrefix: !fixedLength)
                    if dict.plainSize > maxPlainBytes { return false }
                }
                return true
            }
        }
        return ok ? (dict.entries, indices) : nil
    }

    @inline(__always)
    private mutating func intern(
        _ v: UnsafeRawBufferPointer, source: Int, raw: UnsafeRawBufferPointer,
        offsets: UnsafeBufferPointer<Int>, lengthPrefix: Bool
    ) -> UInt32 {
        let h = Self.hash(v)
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let s = slots[i]
            if s < 0 {
                let id = Int32(entries.count)
                slots[i] = id
                entries.append(source)
                hashes.append(h)
                plainSize += v.count + (lengthPrefix ? 4 : 0)
                if entries.count * 2 > slots.count { grow() }
                return UInt32(id)
            }
            if hashes[Int(s)] == h {
                let e = entries[Int(s)]
                let other = UnsafeRawBufferPointer(rebasing: raw[offsets[e]..<offsets[e + 1]])
                if other.count == v.count && (v.count == 0 || memcmp(other.baseAddress!, v.baseAddress!, v.count) == 0) {
                    return UInt32(s)
                }
            }
            i = (i + 1) & mask
        }
    }

    private mutating func grow() {
        let cap = slots.count * 2
        slots = [Int32](repeating: -1, count: cap)
        mask = cap - 1
        for (id, h) in hashes.enumerated() {
            var i = Int(truncatingIfNeeded: h) & mask
            while slots[i] >= 0 { i = (i + 1) & mask }
            slots[i] = Int32(id)
        }
    }
}
