#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Parquet's split-block Bloom filter (the format's "Bloom filter" section): blocks of eight 32-bit words.
/// A value's xxHash64 picks a block with its upper half and sets one bit in each of the block's words
/// from its lower half, so a lookup reads one 32-byte block. The writer adds one to each column chunk of a
/// column that asks for it (`ColumnSchema.bloomFilter`); DuckDB, Spark and Kiln's own reader
/// (`ParquetFileReader.bloomFilter(rowGroup:column:)`) skip row groups with it on equality filters.
public struct SplitBlockBloomFilter: Sendable, Equatable {
    /// The bitset, block after block.
    public private(set) var words: [UInt32]

    static let salt: [UInt32] = [0x47b6_137b, 0x4497_4d91, 0x8824_ad5b, 0xa2b7_289d, 0x7054_95c7, 0x2df1_424b, 0x9efc_4947, 0x5c6b_fb31]
    /// The format's bounds on a filter's size.
    static let minimumBytes = 32
    static let maximumBytes = 128 << 20

    /// A filter sized for `distinctValues` at about `falsePositiveRate` (the format's sizing, rounded up to
    /// a power of two).
    public init(distinctValues: Int, falsePositiveRate: Double = 0.01) {
        let n = Double(max(distinctValues, 1))
        let bits = -8 * n / log1p(-pow(falsePositiveRate, 1.0 / 8))
        var bytes = Self.minimumBytes
        while Double(bytes * 8) < bits && bytes < Self.maximumBytes { bytes *= 2 }
        words = [UInt32](repeating: 0, count: bytes / 4)
    }

    /// A filter read from a file: `bytes` little-endian words, a whole number of blocks.
    init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.minimumBytes, bytes.count <= Self.maximumBytes, bytes.count % 32 == 0 else { return nil }
        words = (0..<bytes.count / 4).map { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) }
    }

    public var byteCount: Int { words.count * 4 }

    /// The first word of the block a hash falls in.
    private func blockStart(_ hash: UInt64) -> Int { Int(((hash >> 32) &* UInt64(words.count / 8)) >> 32) * 8 }

    /// Word `i`'s one-bit mask for a hash.
    private static func mask(_ hash: UInt64, _ i: Int) -> UInt32 { 1 << ((UInt32(truncatingIfNeeded: hash) &* salt[i]) >> 27) }

    public mutating func insert(hash: UInt64) {
        let start = blockStart(hash)
        for i in 0..<8 { words[start + i] |= Self.mask(hash, i) }
    }

    /// False means the value is certainly absent; true, that it may be present.
    public func mightContain(hash: UInt64) -> Bool {
        let start = blockStart(hash)
        for i in 0..<8 where words[start + i] & Self.mask(hash, i) == 0 { return false }
        return true
    }

    /// The hash of an INT64 value: xxHash64 of its plain encoding (8 bytes, little-endian), seed 0.
    public static func hash(_ value: Int64) -> UInt64 {
        withUnsafeBytes(of: value.littleEndian) { XXHash64.hash($0) }
    }

    var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(byteCount)
        for w in words { withUnsafeBytes(of: w.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }
}

/// xxHash64 (XXH64 of the xxHash specification), the hash Parquet's Bloom filters use.
public enum XXHash64 {
    static let p1: UInt64 = 11_400_714_785_074_694_791
    static let p2: UInt64 = 14_029_467_366_897_019_727
    static let p3: UInt64 = 1_609_587_929_392_839_161
    static let p4: UInt64 = 9_650_029_242_287_828_579
    static let p5: UInt64 = 2_870_177_450_012_600_261

    public static func hash(_ input: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
        func round(_ acc: UInt64, _ lane: UInt64) -> UInt64 { rotl(acc &+ lane &* p2, 31) &* p1 }
        func merge(_ acc: UInt64, _ v: UInt64) -> UInt64 { (acc ^ round(0, v)) &* p1 &+ p4 }
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: input.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        func u32(_ at: Int) -> UInt64 { UInt64(UInt32(littleEndian: input.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }

        let length = input.count
        var at = 0
        var h: UInt64
        if length >= 32 {
            var v1 = seed &+ p1 &+ p2
            var v2 = seed &+ p2
            var v3 = seed
            var v4 = seed &- p1
            while at + 32 <= length {
                v1 = round(v1, u64(at))
                v2 = round(v2, u64(at + 8))
                v3 = round(v3, u64(at + 16))
                v4 = round(v4, u64(at + 24))
                at += 32
            }
            h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            h = merge(h, v1)
            h = merge(h, v2)
            h = merge(h, v3)
            h = merge(h, v4)
        } else {
            h = seed &+ p5
        }
        h = h &+ UInt64(length)
        while at + 8 <= length {
            h = rotl(h ^ round(0, u64(at)), 27) &* p1 &+ p4
            at += 8
        }
        if at + 4 <= length {
            h = rotl(h ^ (u32(at) &* p1), 23) &* p2 &+ p3
            at += 4
        }
        while at < length {
            h = rotl(h ^ (UInt64(input[at]) &* p5), 11) &* p1
            at += 1
        }
        h ^= h >> 33
        h = h &* p2
        h ^= h >> 29
        h = h &* p3
        h ^= h >> 32
        return h
    }
}
