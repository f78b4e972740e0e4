import CPrefetch
import KilnFoundation
import ProfileModel

/// A batch's strings, deduplicated by their UTF-8 bytes. A pprof string is hashed and compared where it
/// lies in the payload and copied into the batch's string table only when it is new to the batch, so a
/// profile's large string table costs no `String` per entry and no dictionary of strings.
struct StringInterner {
    /// Index 0 is always "".
    private(set) var strings = StringTable()
    private var hashes: [UInt64] = []
    /// Open addressing, linear probing: the hash's upper 32 bits and string id + 1 (0 = empty);
    /// power-of-two sized, at most half full.
    private var slots: [UInt64]

    /// Room for `capacity` strings of `bytes` bytes in all, so the table grows by copying only past them.
    init(capacity: Int, bytes: Int = 0) {
        var size = 16
        while size < 2 * (capacity + 1) { size <<= 1 }
        slots = [UInt64](repeating: 0, count: size)
        strings.reserveCapacity(strings: capacity + 1, bytes: bytes)
        hashes.reserveCapacity(capacity + 1)
        _ = intern(UnsafeBufferPointer(start: nil, count: 0))
    }

    mutating func intern(_ text: String) -> UInt32 {
        var text = text
        return text.withUTF8 { intern($0) }
    }

    /// The id of `bytes` as a `String` made from them would read: invalid UTF-8 is repaired first, so
    /// the table holds valid UTF-8 and equal repairs share an id.
    /// `hash`, when given, is `prefetchSlot(of: bytes)`'s answer, so the bytes are not hashed twice.
    mutating func intern(_ bytes: UnsafeBufferPointer<UInt8>, hash known: UInt64? = nil) -> UInt32 {
        guard StringTable.isValidUTF8(bytes) else { return intern(String(decoding: bytes, as: UTF8.self)) }
        let hash = known ?? Self.hash(bytes)
        let tag = hash & 0xFFFF_FFFF_0000_0000
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        let found: Int? = strings.utf8.withUnsafeBufferPointer { stored in
            while true {
                let slot = slots[i]
                if slot == 0 { return nil }
                if slot & 0xFFFF_FFFF_0000_0000 == tag {
                    let id = Int(truncatingIfNeeded: slot & 0xFFFF_FFFF) &- 1
                    if Self.equal(UnsafeBufferPointer(rebasing: stored[strings.byteRange(id)]), bytes) { return id }
                }
                i = (i &+ 1) & mask
            }
        }
        if let found { return UInt32(found) }
        let id = strings.count
        strings.appendValidUTF8(bytes)
        hashes.append(hash)
        slots[i] = tag | UInt64(id &+ 1)
        if 2 * strings.count > slots.count { grow() }
        return UInt32(id)
    }

    /// Starts loading the table slot where `bytes` would be looked up: the probe is a cache miss in a
    /// large profile's table, and a caller that knows the next strings can have it arrive early.
    /// `mutating` although it changes nothing: called on an `inout` interner, the non-mutating form
    /// copied the interner (four retains and four releases) at every call.
    /// Returns the bytes' hash for `intern(_:hash:)`.
    @discardableResult
    mutating func prefetchSlot(of bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        let hash = Self.hash(bytes)
        let i = Int(truncatingIfNeeded: hash) & (slots.count - 1)
        slots.withUnsafeMutableBufferPointer { kiln_prefetch($0.baseAddress! + i) }
        return hash
    }

    private mutating func grow() {
        var table = [UInt64](repeating: 0, count: 2 * slots.count)
        let mask = table.count - 1
        for (id, hash) in hashes.enumerated() {
            var i = Int(truncatingIfNeeded: hash) & mask
            while table[i] != 0 { i = (i &+ 1) & mask }
            table[i] = hash & 0xFFFF_FFFF_0000_0000 | UInt64(id + 1)
        }
        slots = table
    }

    /// The table compares bytes on a hash match, so a fast hash will do.
    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 { FastHash.bytes(bytes) }

    private static func equal(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        for k in 0..<a.count where a[k] != b[k] { return false }
        return true
    }
}
