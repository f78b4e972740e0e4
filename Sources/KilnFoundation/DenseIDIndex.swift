/// Finds dense ids (0, 1, 2, … in insertion order) by a 64-bit hash of a key that the caller stores itself
/// (a head's trie nodes, frames, functions and series; an interner's strings), comparing keys through the
/// caller on a hash match. No key is copied into the index and none is hashed by `Hasher`: with
/// `[NodeKey: UInt32]` and its SipHash, the compactor's stack trie alone was a fifth of its CPU.
public struct DenseIDIndex: Sendable {
    /// Open addressing, linear probing. A slot holds the hash's upper 32 bits and id + 1 (0 = empty), so
    /// most mismatches are rejected without asking the caller. Power-of-two sized, at most half full.
    @usableFromInline var slots: [UInt64]
    /// Each id's hash, to place it again when the table grows.
    @usableFromInline var hashes: [UInt64] = []

    /// Room for `capacity` ids before the table first grows.
    public init(capacity: Int = 32) {
        var size = 16
        while size < 2 * capacity { size <<= 1 }
        slots = [UInt64](repeating: 0, count: size)
        hashes.reserveCapacity(capacity)
    }

    public var count: Int { hashes.count }

    /// The id of the key hashing to `hash` for which `matches` holds, if there is one.
    @inlinable
    public func find(hash: UInt64, matches: (UInt32) -> Bool) -> UInt32? {
        let tag = hash & 0xFFFF_FFFF_0000_0000
        let mask = slots.count &- 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while slots[i] != 0 {
            if slots[i] & 0xFFFF_FFFF_0000_0000 == tag, matches(UInt32(truncatingIfNeeded: slots[i] &- 1)) {
                return UInt32(truncatingIfNeeded: slots[i] &- 1)
            }
            i = (i &+ 1) & mask
        }
        return nil
    }

    /// The id of the key hashing to `hash` for which `matches` holds; else the key is added as id `count`
    /// (the caller appends it to its arrays) and `isNew` is true.
    @inlinable @inline(__always)
    public mutating func lookUpOrAdd(hash: UInt64, matches: (UInt32) -> Bool) -> (id: UInt32, isNew: Bool) {
        let tag = hash & 0xFFFF_FFFF_0000_0000
        let mask = slots.count &- 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let slot = slots[i]
            if slot == 0 { break }
            if slot & 0xFFFF_FFFF_0000_0000 == tag {
                let id = UInt32(truncatingIfNeeded: slot &- 1)
                if matches(id) { return (id, false) }
            }
            i = (i &+ 1) & mask
        }
        let id = UInt32(hashes.count)
        slots[i] = tag | UInt64(id &+ 1)
        hashes.append(hash)
        if hashes.count &* 2 > slots.count { grow() }
        return (id, true)
    }

    /// Calls `body` with the address of the slot where `hash` is looked up first, so a caller that knows
    /// its next keys can have the slot (a cache miss in a large table) fetched early.
    @inlinable
    public mutating func withFirstSlot(of hash: UInt64, _ body: (UnsafeRawPointer) -> Void) {
        let i = Int(truncatingIfNeeded: hash) & (slots.count &- 1)
        slots.withUnsafeBufferPointer { body(UnsafeRawPointer($0.baseAddress! + i)) }
    }

    @usableFromInline mutating func grow() {
        var table = [UInt64](repeating: 0, count: slots.count * 2)
        let mask = table.count - 1
        for (id, hash) in hashes.enumerated() {
            var i = Int(truncatingIfNeeded: hash) & mask
            while table[i] != 0 { i = (i &+ 1) & mask }
            table[i] = hash & 0xFFFF_FFFF_0000_0000 | UInt64(id + 1)
        }
        slots = table
    }
}
