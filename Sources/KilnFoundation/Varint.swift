/// LEB128 varints and zigzag: the one codec behind protobuf (pprof), Parquet's Thrift compact protocol
/// and ULEB128 values, and Kiln's own records. `@inlinable` so the hot writers of other modules
/// compile to the same loop they had when each kept its own copy.
public enum Varint {
    /// Why a varint could not be read; each caller names the field in its own error.
    public enum ReadError: Error, Sendable, Equatable {
        /// The bytes ended inside the varint.
        case truncated
        /// More than 10 bytes, or a 10th byte that carries bits past 64.
        case overflow
    }

    /// How many bytes `v` takes (1 to 10).
    @inlinable @inline(__always)
    public static func length(_ v: UInt64) -> Int {
        let bits = 64 &- (v | 1).leadingZeroBitCount
        return (bits &* 9 &+ 64) >> 6
    }

    @inlinable @inline(__always)
    public static func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }

    @inlinable @inline(__always)
    public static func unzigzag(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }

    @inlinable @inline(__always)
    public static func append(_ v: UInt64, to bytes: inout [UInt8]) {
        var x = v
        while x >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: x) | 0x80)
            x >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: x))
    }

    @inlinable @inline(__always)
    public static func appendZigzag(_ v: Int64, to bytes: inout [UInt8]) { append(zigzag(v), to: &bytes) }

    /// Writes `v` at `base` (which must have room for `length(v)` bytes) and returns how many bytes it took.
    @inlinable @inline(__always)
    public static func write(_ v: UInt64, to base: UnsafeMutablePointer<UInt8>) -> Int {
        var x = v
        var n = 0
        while x >= 0x80 {
            base[n] = UInt8(truncatingIfNeeded: x) | 0x80
            x >>= 7
            n &+= 1
        }
        base[n] = UInt8(truncatingIfNeeded: x)
        return n &+ 1
    }

    /// Reads the varint at `position` of `bytes` (an index below `end`), advancing `position` past it.
    @inlinable @inline(__always)
    public static func read(_ bytes: UnsafeRawBufferPointer, at position: inout Int, end: Int) throws(ReadError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw .truncated }
            let b = bytes[position]
            position &+= 1
            if shift == 63 && b > 1 { throw .overflow }
            result |= UInt64(b & 0x7f) << shift
            if b < 0x80 { return result }
            shift &+= 7
            if shift > 63 { throw .overflow }
        }
    }

    /// The same over an array.
    @inlinable
    public static func read(_ bytes: [UInt8], at position: inout Int) throws(ReadError) -> UInt64 {
        let result: Result<UInt64, ReadError> = bytes.withUnsafeBytes { raw in
            Result { () throws(ReadError) in try read(raw, at: &position, end: raw.count) }
        }
        return try result.get()
    }
}
