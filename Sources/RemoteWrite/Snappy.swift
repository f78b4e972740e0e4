import KilnFoundation

/// Snappy's block format (the framing-free one remote write uses): the uncompressed length as a varint, then
/// literals and back-references. A greedy matcher over 4-byte hashes, as the reference encoder's fast path;
/// remote-write bodies are label names and values repeated across series, which it shrinks several times.
public enum Snappy {
    public static func compress(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32 + input.count + input.count / 6)
        Varint.append(UInt64(input.count), to: &out)
        guard input.count >= 8 else {
            if !input.isEmpty { appendLiteral(input[...], to: &out) }
            return out
        }
        input.withUnsafeBufferPointer { src in
            let hashBits = 14
            var table = [Int32](repeating: -1, count: 1 << hashBits)
            func load32(_ i: Int) -> UInt32 {
                UInt32(src[i]) | UInt32(src[i + 1]) << 8 | UInt32(src[i + 2]) << 16 | UInt32(src[i + 3]) << 24
            }
            func hash(_ v: UInt32) -> Int { Int((v &* 0x1E35_A7BD) >> UInt32(32 - hashBits)) }
            var literalStart = 0
            var i = 0
            let last = src.count - 4
            while i <= last {
                let v = load32(i)
                let h = hash(v)
                let candidate = Int(table[h])
                table[h] = Int32(i)
                guard candidate >= 0, i - candidate <= 0xFFFF, load32(candidate) == v else {
                    i += 1
                    continue
                }
                if literalStart < i { appendLiteral(input[literalStart..<i], to: &out) }
                var length = 4
                while i + length < src.count, src[candidate + length] == src[i + length] { length += 1 }
                appendCopy(offset: i - candidate, length: length, to: &out)
                i += length
                literalStart = i
            }
            if literalStart < src.count { appendLiteral(input[literalStart...], to: &out) }
        }
        return out
    }

    static func appendLiteral(_ bytes: ArraySlice<UInt8>, to out: inout [UInt8]) {
        let n = bytes.count - 1
        if n < 60 {
            out.append(UInt8(n << 2))
        } else {
            let width = n < 1 << 8 ? 1 : n < 1 << 16 ? 2 : n < 1 << 24 ? 3 : 4
            out.append(UInt8((59 + width) << 2))
            for k in 0..<width { out.append(UInt8(truncatingIfNeeded: n >> (8 * k))) }
        }
        out.append(contentsOf: bytes)
    }

    /// A back-reference split into copies of at most 64 bytes (two-byte offsets), the last one at least 4
    /// long so it can use the one-byte-offset form when that reaches.
    static func appendCopy(offset: Int, length: Int, to out: inout [UInt8]) {
        var remaining = length
        while remaining >= 68 {
            appendCopy2(offset: offset, length: 64, to: &out)
            remaining -= 64
        }
        if remaining > 64 {
            appendCopy2(offset: offset, length: 60, to: &out)
            remaining -= 60
        }
        if remaining < 12, offset < 2048 {
            out.append(UInt8(0b01 | (remaining - 4) << 2 | (offset >> 8) << 5))
            out.append(UInt8(truncatingIfNeeded: offset))
        } else {
            appendCopy2(offset: offset, length: remaining, to: &out)
        }
    }

    static func appendCopy2(offset: Int, length: Int, to out: inout [UInt8]) {
        out.append(UInt8(0b10 | (length - 1) << 2))
        out.append(UInt8(truncatingIfNeeded: offset))
        out.append(UInt8(truncatingIfNeeded: offset >> 8))
    }
}
