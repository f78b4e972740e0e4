/// Gives each distinct run of `UInt32`s a dense id (0, 1, 2, … in first-seen order).
///
/// Normalisation interns one run per sample (its frames, its label ids), so interning must not allocate
/// per run: runs are written straight into one flat buffer (`elements`, delimited by `starts`, the layout
/// of `StackTable`) and found through an open-addressing table on a 64-bit hash, with an
/// element-by-element comparison, so a hash collision costs a probe, never a wrong answer. A candidate
/// equal to a stored run is simply not kept.
struct RunInterner {
    /// All runs, back to back; run `i` is `elements[starts[i] ..< starts[i + 1]]`.
    private(set) var elements: [UInt32] = []
    private(set) var starts: [UInt32] = [0]
    /// Open addressing, linear probing. A slot holds the hash's upper 32 bits and run id + 1 (0 = empty),
    /// so most mismatches are rejected without touching the stored run. Power-of-two sized, at most half
    /// full.
    private var slots: [UInt64] = []

    init() {}

    var count: Int { starts.count - 1 }

    /// Interns `runCount` candidate runs. `write(i, out)` writes candidate `i` to `out` (room for
    /// `maxElements` minus what earlier candidates wrote) and returns its length. Returns each
    /// candidate's id; an id equal to the `count` before the call or above is a new run.
    mutating func intern(runs runCount: Int, maxElements: Int,
                         _ write: (Int, UnsafeMutablePointer<UInt32>) -> Int) -> [UInt32] {
        var ids = [UInt32](repeating: 0, count: runCount)
        if runCount == 0 { return ids }
        reserveRuns(runCount)
        func internAll(_ base: UnsafeMutablePointer<UInt32>, from used: Int) -> Int {
            var end = used
            for r in 0 ..< runCount {
                let length = write(r, base + end)
                let (id, isNew) = Self.lookUpOrAdd(UnsafeBufferPointer(start: base + end, count: length), in: base,
                                                   slots: &slots, starts: &starts)
                if isNew { end &+= length }
                ids[r] = id
            }
            return end
        }
        if elements.isEmpty {
            // First use (a profile's stacks): uninitialised room for the worst case, so nothing is
            // zero-filled and untouched room costs no memory pages.
            elements = [UInt32](unsafeUninitializedCapacity: maxElements + 1) { room, initialized in
                initialized = internAll(room.baseAddress!, from: 0)
            }
        } else {
            // Room for the worst case up front, so nothing below reallocates.
            let used = elements.count
            elements.append(contentsOf: repeatElement(0, count: maxElements + 1))
            let end = elements.withUnsafeMutableBufferPointer { internAll($0.baseAddress!, from: used) }
            elements.removeSubrange(end...)
        }
        return ids
    }

    /// Interns one short run (a symbol's fields), without allocating.
    mutating func intern(_ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: UInt32? = nil, _ e: UInt32? = nil) -> UInt32 {
        let start = elements.count
        elements.append(a)
        elements.append(b)
        elements.append(c)
        if let d { elements.append(d) }
        if let e { elements.append(e) }
        reserveRuns(1)
        let (id, isNew) = elements.withUnsafeBufferPointer { all in
            Self.lookUpOrAdd(UnsafeBufferPointer(rebasing: all[start...]), in: all.baseAddress!, slots: &slots, starts: &starts)
        }
        if !isNew { elements.removeSubrange(start...) }
        return id
    }

    /// Makes room for `n` more runs in the table and in `starts`, growing geometrically.
    private mutating func reserveRuns(_ n: Int) {
        let needed = count + n
        if starts.capacity < needed + 1 { starts.reserveCapacity(max(needed + 1, 2 * starts.capacity)) }
        if needed * 2 > slots.count {
            var size = max(16, slots.count)
            while size < needed * 2 { size <<= 1 }
            rebuildSlots(size: size)
        }
    }

    /// The id of the stored run equal to `run`; or, when there is none, `run` (which must end the
    /// stored elements) becomes a new run. Room for it must have been reserved. Static, on the table's
    /// parts, so it can run while the caller holds `elements` open.
    @inline(__always)
    private static func lookUpOrAdd(_ run: UnsafeBufferPointer<UInt32>, in base: UnsafePointer<UInt32>,
                                    slots: inout [UInt64], starts: inout [UInt32]) -> (id: UInt32, isNew: Bool) {
        let hash = Self.hash(run)
        let tag = hash & 0xFFFF_FFFF_0000_0000
        let length = run.count
        let (found, emptySlot): (Int, Int) = slots.withUnsafeBufferPointer { slots in
            starts.withUnsafeBufferPointer { starts in
                let mask = slots.count - 1
                var i = Int(truncatingIfNeeded: hash) & mask
                while true {
                    let slot = slots[i]
                    if slot == 0 { return (-1, i) }
                    if slot & 0xFFFF_FFFF_0000_0000 == tag {
                        let id = Int(truncatingIfNeeded: slot & 0xFFFF_FFFF) &- 1
                        let start = Int(starts[id])
                        if Int(starts[id &+ 1]) &- start == length && Self.equal(base + start, run) { return (id, i) }
                    }
                    i = (i &+ 1) & mask
                }
            }
        }
        if found >= 0 { return (UInt32(found), false) }
        let id = UInt32(starts.count - 1)
        slots[emptySlot] = tag | UInt64(id &+ 1)
        starts.append(starts[starts.count - 1] &+ UInt32(length))
        return (id, true)
    }

    /// A run's hash: a multiply-xorshift step per element and a finaliser; good enough for a table that
    /// compares runs anyway.
    @inline(__always)
    static func hash(_ run: UnsafeBufferPointer<UInt32>) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(run.count)
        for x in run {
            h = (h ^ UInt64(x)) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 29
        }
        h ^= h >> 32
        h = h &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 31)
    }

    @inline(__always)
    private static func equal(_ stored: UnsafePointer<UInt32>, _ run: UnsafeBufferPointer<UInt32>) -> Bool {
        for k in 0 ..< run.count where stored[k] != run[k] { return false }
        return true
    }

    /// Re-places every stored run (hashing it again) in a table of `size` slots.
    private mutating func rebuildSlots(size: Int) {
        var table = [UInt64](repeating: 0, count: size)
        let mask = size - 1
        elements.withUnsafeBufferPointer { all in
            for id in 0 ..< count {
                let hash = Self.hash(UnsafeBufferPointer(rebasing: all[Int(starts[id]) ..< Int(starts[id + 1])]))
                var i = Int(truncatingIfNeeded: hash) & mask
                while table[i] != 0 { i = (i &+ 1) & mask }
                table[i] = hash & 0xFFFF_FFFF_0000_0000 | UInt64(id + 1)
            }
        }
        slots = table
    }
}
