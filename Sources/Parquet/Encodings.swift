import KilnFoundation

// Value encodings from Encodings.md: ULEB128 varints, LSB-first bit packing, the RLE/bit-packed
// hybrid (levels and dictionary indices) and DELTA_BINARY_PACKED. Everything works on raw buffers.

extension Array where Element == UInt8 {
    @inline(__always) mutating func appendLE(_ v: UInt32) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
    @inline(__always) mutating func appendLE(_ v: UInt64) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
    @inline(__always) mutating func appendVarint(_ value: UInt64) { Varint.append(value, to: &self) }
    @inline(__always) mutating func appendZigzag(_ v: Int64) { Varint.append(Varint.zigzag(v), to: &self) }
}

/// A read position in a raw byte range, with bounds checks that throw instead of trapping.
struct ByteCursor {
    let base: UnsafeRawBufferPointer
    var position: Int
    let end: Int

    init(_ base: UnsafeRawBufferPointer, from: Int = 0, to: Int? = nil) {
        self.base = base
        self.position = from
        self.end = to ?? base.count
    }

    var remaining: Int { end - position }

    @inline(__always) mutating func byte() throws -> UInt8 {
        guard position < end else { throw ParquetError.truncated("value data") }
        defer { position += 1 }
        return base[position]
    }

    @inline(__always) mutating func uint32LE() throws -> UInt32 {
        guard end - position >= 4 else { throw ParquetError.truncated("4-byte value") }
        defer { position += 4 }
        return UInt32(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt32.self))
    }

    mutating func varint() throws -> UInt64 {
        do {
            return try Varint.read(base, at: &position, end: end)
        } catch Varint.ReadError.truncated {
            throw ParquetError.truncated("value data")
        } catch {
            throw ParquetError.invalid("varint too long")
        }
    }

    mutating func zigzag() throws -> Int64 { Varint.unzigzag(try varint()) }

    mutating func skip(_ n: Int) throws {
        guard n >= 0, end - position >= n else { throw ParquetError.truncated("skipping \(n) bytes") }
        position += n
    }
}

@inline(__always) func bitWidth(of maxValue: UInt64) -> Int {
    maxValue == 0 ? 0 : 64 - maxValue.leadingZeroBitCount
}

@inline(__always) func lowMask(_ width: Int) -> UInt64 {
    width >= 64 ? ~0 : (UInt64(1) &<< UInt64(width)) &- 1
}

/// Packs `count` values of `width` bits LSB-first (Parquet's hybrid order) onto `out`. Writes exactly
/// ceil(count * width / 8) bytes. Values must already fit in `width` bits.
@inline(__always)
func bitPack<T: FixedWidthInteger & UnsignedInteger>(
    _ values: UnsafePointer<T>, count: Int, width: Int,
    into out: inout [UInt8]
) {
    if width == 0 || count == 0 { return }
    var acc: UInt64 = 0
    var nbits = 0
    for i in 0..<count {
        let v = UInt64(values[i])
        acc |= v &<< UInt64(nbits)
        nbits += width
        if nbits >= 64 {
            out.appendLE(acc)
            nbits -= 64
            // The bits of v that did not fit above.
            acc = nbits == 0 ? 0 : v &>> UInt64(width - nbits)
        }
    }
    var remainingBytes = (nbits + 7) / 8
    while remainingBytes > 0 {
        out.append(UInt8(truncatingIfNeeded: acc))
        acc >>= 8
        remainingBytes -= 1
    }
}

/// Unpacks `count` values of `width` bits starting at byte `offset` of `src` (which must hold
/// ceil(count * width / 8) bytes from there; the caller checks).
@inline(__always)
func bitUnpack(
    _ src: UnsafeRawBufferPointer, offset: Int, count: Int, width: Int,
    _ emit: (Int, UInt64) -> Void
) {
    if width == 0 {
        for i in 0..<count { emit(i, 0) }
        return
    }
    let mask = lowMask(width)
    let limit = src.count
    var bit = offset * 8
    for i in 0..<count {
        let byteIndex = bit >> 3
        let shift = bit & 7
        if width <= 56 && byteIndex + 8 <= limit {
            let word = UInt64(littleEndian: src.loadUnaligned(fromByteOffset: byteIndex, as: UInt64.self))
            emit(i, (word &>> UInt64(shift)) & mask)
        } else {
            var v: UInt64 = 0
            var got = 0
            var b = byteIndex
            var s = shift
            while got < width {
                let take = min(8 - s, width - got)
                let part = (UInt64(b < limit ? src[b] : 0) &>> UInt64(s)) & lowMask(take)
                v |= part &<< UInt64(got)
                got += take
                b += 1
                s = 0
            }
            emit(i, v)
        }
        bit += width
    }
}

// MARK: - RLE / bit-packed hybrid

enum RLEHybrid {
    /// Encodes `count` values (each < 2^width) without a length prefix.
    static func encode(_ values: UnsafePointer<UInt32>, count: Int, width: Int, into out: inout [UInt8]) {
        let valueBytes = (width + 7) / 8
        var pending = [UInt32]()
        pending.reserveCapacity(512)

        func flushPending(_ out: inout [UInt8], final: Bool) {
            guard !pending.isEmpty else { return }
            let groups = (pending.count + 7) / 8
            // Only the last run may be padded to a multiple of 8 values.
            precondition(final || pending.count % 8 == 0)
            while pending.count < groups * 8 { pending.append(0) }
            out.appendVarint(UInt64(groups) << 1 | 1)
            pending.withUnsafeBufferPointer { bitPack($0.baseAddress!, count: $0.count, width: width, into: &out) }
            pending.removeAll(keepingCapacity: true)
        }

        var i = 0
        while i < count {
            let v = values[i]
            var j = i + 1
            while j < count && values[j] == v { j += 1 }
            var run = j - i
            if run >= 8 {
                let fill = (8 - pending.count % 8) % 8
                if fill > 0 {
                    // Complete the pending bit-packed group with values from this run.
                    for _ in 0..<fill { pending.append(v) }
                    run -= fill
                    i += fill
                    if run < 8 {
                        for _ in 0..<run { pending.append(v) }
                        i += run
                        continue
                    }
                }
                flushPending(&out, final: false)
                out.appendVarint(UInt64(run) << 1)
                var r = UInt64(v)
                for _ in 0..<valueBytes {
                    out.append(UInt8(truncatingIfNeeded: r))
                    r >>= 8
                }
                i += run
            } else {
                for _ in 0..<run { pending.append(v) }
                i = j
                // Keep bit-packed runs bounded so the header stays small and the buffer stays hot.
                if pending.count >= 504 && pending.count % 8 == 0 { flushPending(&out, final: false) }
            }
        }
        flushPending(&out, final: true)
    }

    /// Decodes `count` values into `dest` via the cursor; stops after `count` values.
    static func decode(
        _ cursor: inout ByteCursor, width: Int, count: Int,
        into dest: UnsafeMutablePointer<UInt32>
    ) throws {
        guard width <= 32 else { throw ParquetError.invalid("RLE bit width \(width)") }
        let valueBytes = (width + 7) / 8
        var produced = 0
        while produced < count {
            let header = try cursor.varint()
            if header & 1 == 1 {
                let groups = Int(truncatingIfNeeded: header >> 1)
                guard groups >= 0, groups <= (width == 0 ? 1 << 28 : cursor.remaining) else {
                    throw ParquetError.invalid("bit-packed run of \(groups) groups")
                }
                let n = groups * 8
                let bytes = (n * width + 7) / 8
                guard cursor.remaining >= bytes else { throw ParquetError.truncated("bit-packed run") }
                let take = min(n, count - produced)
                let base = produced
                bitUnpack(cursor.base, offset: cursor.position, count: take, width: width) { k, v in
                    dest[base + k] = UInt32(truncatingIfNeeded: v)
                }
                produced += take
                cursor.position += bytes
            } else {
                let n = Int(truncatingIfNeeded: header >> 1)
                guard n >= 0 else { throw ParquetError.invalid("RLE run length") }
                var v: UInt32 = 0
                for k in 0..<valueBytes { v |= UInt32(try cursor.byte()) << (8 * k) }
                let take = min(n, count - produced)
                if n == 0 { throw ParquetError.invalid("empty RLE run") }
                (dest + produced).update(repeating: v, count: take)
                produced += take
            }
        }
    }
}

// MARK: - DELTA_BINARY_PACKED

enum DeltaBinaryPacked {
    static let blockSize = 128
    static let miniblocks = 4
    static let miniblockSize = 32

    /// Encodes values as 64-bit (INT64) or 32-bit (INT32, `width32`) two's-complement integers,
    /// with wrapping arithmetic in the type's width as the spec requires.
    static func encode(_ values: UnsafeBufferPointer<Int64>, width32: Bool, into out: inout [UInt8]) {
        out.appendVarint(UInt64(blockSize))
        out.appendVarint(UInt64(miniblocks))
        out.appendVarint(UInt64(values.count))
        out.appendZigzag(values.isEmpty ? 0 : values[0])
        guard values.count > 1 else { return }

        var deltas = [Int64](repeating: 0, count: blockSize)
        var packed = [UInt64](repeating: 0, count: miniblockSize)
        var i = 1
        var previous = values[0]
        while i < values.count {
            let n = min(blockSize, values.count - i)
            var minDelta = Int64.max
            for k in 0..<n {
                let v = values[i + k]
                let d: Int64 =
                    width32
                    ? Int64(Int32(truncatingIfNeeded: v) &- Int32(truncatingIfNeeded: previous))
                    : v &- previous
                deltas[k] = d
                if d < minDelta { minDelta = d }
                previous = v
            }
            out.appendZigzag(minDelta)
            let mask: UInt64 = width32 ? 0xFFFF_FFFF : ~0
            let widthsAt = out.count
            for _ in 0..<miniblocks { out.append(0) }
            let usedMiniblocks = (n + miniblockSize - 1) / miniblockSize
            for m in 0..<usedMiniblocks {
                var maxRel: UInt64 = 0
                for k in 0..<miniblockSize {
                    let idx = m * miniblockSize + k
                    let rel: UInt64 = idx < n ? (UInt64(bitPattern: deltas[idx] &- minDelta) & mask) : 0
                    packed[k] = rel
                    maxRel |= rel
                }
                let w = bitWidth(of: maxRel)
                out[widthsAt + m] = UInt8(w)
                packed.withUnsafeBufferPointer { bitPack($0.baseAddress!, count: miniblockSize, width: w, into: &out) }
            }
            i += n
        }
    }

    /// Decodes the encoded stream at the cursor into `dest` (as Int64; INT32 callers truncate).
    static func decode(
        _ cursor: inout ByteCursor, width32: Bool, expected: Int? = nil,
        into dest: inout [Int64]
    ) throws {
        let blockSize = Int(truncatingIfNeeded: try cursor.varint())
        let miniblockCount = Int(truncatingIfNeeded: try cursor.varint())
        let total = Int(truncatingIfNeeded: try cursor.varint())
        var current = try cursor.zigzag()
        guard blockSize > 0, blockSize <= 1 << 16, blockSize % 128 == 0, miniblockCount > 0, blockSize % miniblockCount == 0,
            (blockSize / miniblockCount) % 32 == 0
        else {
            throw ParquetError.invalid("delta header block \(blockSize) miniblocks \(miniblockCount)")
        }
        if let e = expected, total != e { throw ParquetError.invalid("delta stream holds \(total) values, page has \(e)") }
        guard total >= 0, total <= 1 << 31, total <= cursor.remaining * 64 + 1 else { throw ParquetError.invalid("delta count \(total)") }
        let perMini = blockSize / miniblockCount
        if total == 0 { return }
        // Written through a pointer into room made up front: an `append` per value checked the array's
        // uniqueness and capacity each time. On an error the caller drops the column, zeros and all.
        let start = dest.count
        dest.reserve(appending: total)
        dest.append(contentsOf: repeatElement(0, count: total))
        try dest.withUnsafeMutableBufferPointer { out in
            out[start] = current
            var produced = 1
            var widths = [Int](repeating: 0, count: miniblockCount)
            while produced < total {
                let minDelta = try cursor.zigzag()
                for m in 0..<miniblockCount { widths[m] = Int(try cursor.byte()) }
                var m = 0
                while m < miniblockCount && produced < total {
                    let w = widths[m]
                    if w > (width32 ? 32 : 64) { throw ParquetError.invalid("delta bit width \(w)") }
                    let bytes = perMini * w / 8
                    guard cursor.remaining >= bytes else { throw ParquetError.truncated("delta miniblock") }
                    let take = min(perMini, total - produced)
                    let at = start + produced
                    if width32 {
                        var c32 = Int32(truncatingIfNeeded: current)
                        let md = Int32(truncatingIfNeeded: minDelta)
                        bitUnpack(cursor.base, offset: cursor.position, count: take, width: w) { i, v in
                            c32 = c32 &+ md &+ Int32(truncatingIfNeeded: v)
                            out[at &+ i] = Int64(c32)
                        }
                        current = Int64(c32)
                    } else {
                        bitUnpack(cursor.base, offset: cursor.position, count: take, width: w) { i, v in
                            current = current &+ minDelta &+ Int64(bitPattern: v)
                            out[at &+ i] = current
                        }
                    }
                    produced += take
                    cursor.position += bytes
                    m += 1
                }
            }
        }
    }
}

extension Array {
    /// Room for `extra` more elements, growing at least twofold: `reserveCapacity` allocates exactly what it is
    /// asked for, so asking for a little more once per page would copy the whole column once per page.
    mutating func reserve(appending extra: Int) {
        let needed = count + extra
        if capacity < needed { reserveCapacity(Swift.max(needed, capacity * 2)) }
    }
}
