/// Non-cryptographic 64-bit hashes for the open-addressing tables on hot paths (interning strings, stack
/// trie nodes, functions). Not `Hasher`: SipHash costs several times more per key, and every table that
/// uses these compares the keys themselves on a hash match, so a collision costs a probe, never a wrong
/// answer. Tables that hold untrusted keys mix in `processSeed`, so colliding keys can't be prepared offline.
public enum FastHash {
    /// Random per process.
    public static let processSeed = UInt64.random(in: .min ... .max)

    /// A multiply-xorshift step per 8 bytes and a finaliser.
    @inlinable @inline(__always)
    public static func bytes(_ bytes: UnsafeBufferPointer<UInt8>, seed: UInt64 = 0) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ seed ^ UInt64(bytes.count)
        var tail: UInt64 = 0
        // An empty buffer may come with or without a base address; both must hash alike.
        if let base = bytes.baseAddress {
            let raw = UnsafeRawPointer(base)
            var i = 0
            while i &+ 8 <= bytes.count {
                h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
                h ^= h >> 29
                i &+= 8
            }
            var shift: UInt64 = 0
            while i < bytes.count {
                tail |= UInt64(bytes[i]) << shift
                shift &+= 8
                i &+= 1
            }
        }
        return finish(h ^ tail)
    }

    /// Folds `word` into the running hash `h` (start from a seed); `finish` the result.
    @inlinable @inline(__always)
    public static func combine(_ h: UInt64, _ word: UInt64) -> UInt64 {
        let x = (h ^ word) &* 0xBF58_476D_1CE4_E5B9
        return x ^ (x >> 29)
    }

    /// The finaliser: spreads every input bit over the whole word, so the low bits index a table well.
    @inlinable @inline(__always)
    public static func finish(_ h: UInt64) -> UInt64 {
        var x = h &* 0xBF58_476D_1CE4_E5B9
        x ^= x >> 32
        x = x &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }
}
