import CPrefetch
import ProfileModel

/// A symbol whose fields are its identity, hashed to 64 bits for `SymbolIndex`.
protocol IndexedSymbol: Equatable {
    var indexHash: UInt64 { get }
}

extension FunctionSymbol: IndexedSymbol {
    var indexHash: UInt64 {
        SymbolHash.mix(SymbolHash.mix(UInt64(name) | UInt64(systemName) << 32, UInt64(filename)), UInt64(bitPattern: startLine))
    }
}

extension FrameSymbol: IndexedSymbol {
    var indexHash: UInt64 { SymbolHash.mix(UInt64(function), UInt64(bitPattern: line)) }
}

enum SymbolHash {
    /// One multiply-xorshift step folding `b` into `a`, with a finaliser; the table compares symbols
    /// anyway, so it only has to spread fields that are small integers.
    @inline(__always)
    static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var h = (a ^ 0x9E37_79B9_7F4A_7C15) &* 0xBF58_476D_1CE4_E5B9
        h = (h ^ (h >> 29) ^ b) &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 31)
    }
}

/// A batch's functions or frames, each stored once, with dense ids in first-seen order.
///
/// The stored symbols are their own keys: the open-addressing table holds only each hash's upper half
/// and the symbol's id, and a lookup compares the candidate with the stored symbol itself. A symbol is
/// found with one probe of the table and one read of the symbol array, where keeping the fields as runs
/// (`RunInterner`) read a second copy through its run starts, and appended each new key to it.
struct SymbolIndex<Symbol: IndexedSymbol> {
    private(set) var symbols: [Symbol] = []
    /// Linear probing: the hash's upper 32 bits and id + 1 (0 = empty); power-of-two sized, at most
    /// half full.
    private var slots: [UInt64] = []

    init() {}

    /// Makes room for `more` symbols, so that many lookups neither grow the table nor reallocate.
    mutating func reserve(_ more: Int) {
        let needed = symbols.count + more
        symbols.reserveCapacity(needed)
        if 2 * needed > slots.count {
            var size = max(16, slots.count)
            while size < 2 * needed { size <<= 1 }
            rebuild(size: size)
        }
    }

    mutating func intern(_ symbol: Symbol) -> UInt32 {
        if 2 * (symbols.count + 1) > slots.count { reserve(max(1, symbols.count)) }
        let hash = symbol.indexHash
        let tag = hash & 0xFFFF_FFFF_0000_0000
        let (found, emptySlot) = slots.withUnsafeBufferPointer { slots in
            symbols.withUnsafeBufferPointer { stored in
                let mask = slots.count - 1
                var i = Int(truncatingIfNeeded: hash) & mask
                while true {
                    let slot = slots[i]
                    if slot == 0 { return (-1, i) }
                    let id = Int(truncatingIfNeeded: slot & 0xFFFF_FFFF) &- 1
                    if slot & 0xFFFF_FFFF_0000_0000 == tag && stored[id] == symbol { return (id, i) }
                    i = (i &+ 1) & mask
                }
            }
        }
        if found >= 0 { return UInt32(truncatingIfNeeded: found) }
        let id = symbols.count
        symbols.append(symbol)
        slots[emptySlot] = tag | UInt64(id &+ 1)
        return UInt32(truncatingIfNeeded: id)
    }

    /// Starts loading the table slot where `symbol` would be looked up: in a large profile the probe is
    /// a cache miss, and a caller that knows its next symbols can have it arrive early. `mutating`
    /// although it changes nothing: called on an `inout` index, the non-mutating form copied the index
    /// (retaining and releasing its arrays) at every call.
    mutating func prefetchSlot(_ symbol: Symbol) {
        guard !slots.isEmpty else { return }
        slots.withUnsafeMutableBufferPointer {
            kiln_prefetch($0.baseAddress! + (Int(truncatingIfNeeded: symbol.indexHash) & ($0.count - 1)))
        }
    }

    private mutating func rebuild(size: Int) {
        var table = [UInt64](repeating: 0, count: size)
        let mask = size - 1
        for (id, symbol) in symbols.enumerated() {
            let hash = symbol.indexHash
            var i = Int(truncatingIfNeeded: hash) & mask
            while table[i] != 0 { i = (i &+ 1) & mask }
            table[i] = hash & 0xFFFF_FFFF_0000_0000 | UInt64(id + 1)
        }
        slots = table
    }
}
