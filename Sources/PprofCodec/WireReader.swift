/// Protobuf wire-format reader over a raw buffer. Every read is bounds-checked against `end`; faults are
/// reported with their byte offset in the (decompressed) payload. Public for the other raw-buffer decoder
/// (OTLP profiles).
public struct WireReader {
    @usableFromInline let base: UnsafePointer<UInt8>
    public var pos: Int
    public let end: Int

    @inlinable public init(base: UnsafePointer<UInt8>, pos: Int, end: Int) {
        self.base = base
        self.pos = pos
        self.end = end
    }

    @inlinable public var atEnd: Bool { pos >= end }

    @inlinable @inline(__always) public mutating func varint() throws(PprofError) -> UInt64 {
        if pos < end {
            let b = base[pos]
            if b < 0x80 {
                pos &+= 1
                return UInt64(b)
            }
            // Two bytes (values below 16384: most ids and indices) without leaving the caller.
            if pos &+ 1 < end {
                let b1 = base[pos &+ 1]
                if b1 < 0x80 {
                    pos &+= 2
                    return UInt64(b & 0x7f) | UInt64(b1) << 7
                }
            }
        }
        return try varintSlow()
    }

    @usableFromInline mutating func varintSlow() throws(PprofError) -> UInt64 {
        // With 10 bytes in reach no per-byte bounds check is needed.
        if end - pos >= 10 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            var p = pos
            while shift < 70 {
                let b = base[p]
                p &+= 1
                result |= UInt64(b & 0x7f) << shift
                if b < 0x80 {
                    pos = p
                    return result
                }
                shift &+= 7
            }
            throw PprofError(.malformed, "malformed protobuf: varint longer than 10 bytes at offset \(pos)")
        }
        let start = pos
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard pos < end else {
                throw PprofError(.malformed, "malformed protobuf: truncated varint at offset \(start)")
            }
            let b = base[pos]
            pos += 1
            result |= UInt64(b & 0x7f) << shift
            if b < 0x80 { return result }
            shift += 7
            if shift >= 70 {
                throw PprofError(.malformed, "malformed protobuf: varint longer than 10 bytes at offset \(start)")
            }
        }
    }

    /// Reads a field key; returns (field number, wire type).
    @inlinable @inline(__always) public mutating func key() throws(PprofError) -> (field: UInt64, wire: UInt8) {
        let k = try varint()
        return (k >> 3, UInt8(truncatingIfNeeded: k & 7))
    }

    /// Reads the length of a length-delimited field and returns its byte range, advancing past it.
    @inlinable @inline(__always) public mutating func lengthDelimited() throws(PprofError) -> Range<Int> {
        let at = pos
        let n = try varint()
        guard n <= UInt64(end - pos) else {
            throw PprofError(
                .malformed,
                "malformed protobuf: length \(n) at offset \(at) exceeds the remaining \(end - pos) bytes")
        }
        let start = pos
        pos += Int(n)
        return start..<pos
    }

    /// Skips a field of an unknown number.
    @inlinable public mutating func skip(wire: UInt8) throws(PprofError) {
        switch wire {
        case 0: _ = try varint()
        case 1: try advance(8)
        case 2: _ = try lengthDelimited()
        case 5: try advance(4)
        default:
            throw PprofError(.malformed, "malformed protobuf: unknown wire type \(wire) at offset \(pos)")
        }
    }

    @inlinable public mutating func advance(_ n: Int) throws(PprofError) {
        guard end - pos >= n else {
            throw PprofError(.malformed, "malformed protobuf: fixed-width field at offset \(pos) is truncated")
        }
        pos += n
    }

    /// A little-endian 8-byte field (`fixed64`, `double`).
    @inlinable public mutating func fixed64() throws(PprofError) -> UInt64 {
        guard end - pos >= 8 else {
            throw PprofError(.malformed, "malformed protobuf: fixed-width field at offset \(pos) is truncated")
        }
        let v = UnsafeRawPointer(base + pos).loadUnaligned(as: UInt64.self)
        pos += 8
        return UInt64(littleEndian: v)
    }

    /// A sub-reader over `range`.
    @inlinable public func sub(_ range: Range<Int>) -> WireReader {
        WireReader(base: base, pos: range.lowerBound, end: range.upperBound)
    }
}

public func wireMismatch(_ field: String, _ number: UInt64, got: UInt8, want: UInt8) -> PprofError {
    PprofError(.malformed, "malformed protobuf: \(field) (field \(number)) has wire type \(got), expected \(want)")
}
