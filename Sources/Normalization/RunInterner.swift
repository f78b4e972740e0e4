import CPrefetch

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
    mutating func intern(
        runs runCount: Int, maxElements: Int,
        _ write: (Int, UnsafeMutablePointer<UInt32>) -> Int
    ) -> [UInt32] {
        if runCount == 0 { return [] }
        reserveSlots(runCount)
        // Moved out for the call, so the three can be held open as pointers at once.
        var slotTable = slots
        var runStarts = starts
        var stored = elements
        (slots, starts, elements) = ([], [], [])
        defer { (slots, starts, elements) = (slotTable, runStarts, stored) }
        let before = runStarts.count - 1
        // Room for every candidate's end, trimmed to the new runs after.
        runStarts.append(contentsOf: repeatElement(0, count: runCount))
        var after = before
        let ids = [UInt32](unsafeUninitializedCapacity: runCount) { idRoom, initializedIDs in
            slotTable.withUnsafeMutableBufferPointer { slotRoom in
                runStarts.withUnsafeMutableBufferPointer { startRoom in
                    var table = OpenTable(
                        slots: slotRoom.baseAddress!, mask: slotRoom.count - 1, starts: startRoom.baseAddress!,
                        runs: before)
                    if stored.isEmpty {
                        // First use (a profile's stacks): uninitialised room for the worst case, so nothing
                        // is zero-filled and untouched room costs no memory pages.
                        stored = [UInt32](unsafeUninitializedCapacity: maxElements + 1) { room, initialized in
                            initialized = Self.internPipelined(
                                runCount, base: room.baseAddress!, from: 0, table: &table,
                                ids: idRoom.baseAddress!, write)
                        }
                    } else {
                        // Room for the worst case up front, so nothing below reallocates.
                        let used = stored.count
                        stored.append(contentsOf: repeatElement(0, count: maxElements + 1))
                        let end = stored.withUnsafeMutableBufferPointer {
                            Self.internPipelined(
                                runCount, base: $0.baseAddress!, from: used, table: &table, ids: idRoom.baseAddress!, write)
                        }
                        stored.removeSubrange(end...)
                    }
                    after = table.runs
                }
            }
            initializedIDs = runCount
        }
        runStarts.removeLast(runCount - (after - before))
        return ids
    }

    /// How many candidates are written, hashed and have their slot prefetched before the oldest is
    /// looked up. The table outgrows the core's cache for large profiles, and a probe that waits for
    /// memory was the largest single cost of normalising; this many candidates' work covers the wait. A
    /// power of two, the size of the pending tuples below.
    private static let lookahead = 8

    /// Interns candidates written from `base + used` on; returns where the stored elements end. Pending
    /// candidates lie back to back after the stored runs, so the oldest always starts where the stored
    /// elements end, as `lookUpOrAdd` needs; a duplicate is cut out by moving the later pending ones down.
    /// Static, on the table's parts, so it can run while the caller holds `elements` open.
    private static func internPipelined(
        _ runCount: Int, base: UnsafeMutablePointer<UInt32>, from used: Int,
        table: inout OpenTable, ids: UnsafeMutablePointer<UInt32>,
        _ write: (Int, UnsafeMutablePointer<UInt32>) -> Int
    ) -> Int {
        let depth = Self.lookahead
        var pendingLengths = (0, 0, 0, 0, 0, 0, 0, 0)
        var pendingHashes: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        var end = used
        var next = used
        let slots = table.slots
        let mask = table.mask
        return withUnsafeMutableBytes(of: &pendingLengths) { lengthBytes in
            withUnsafeMutableBytes(of: &pendingHashes) { hashBytes in
                let lengths = lengthBytes.bindMemory(to: Int.self)
                let hashes = hashBytes.bindMemory(to: UInt64.self)
                func resolve(_ r: Int) {
                    let length = lengths[r & (depth - 1)]
                    let (id, isNew) = table.lookUpOrAdd(
                        UnsafeBufferPointer(start: base + end, count: length),
                        hash: hashes[r & (depth - 1)], in: base)
                    ids[r] = id
                    if isNew {
                        end &+= length
                    } else {
                        let later = next &- end &- length
                        if later > 0 {
                            UnsafeMutableRawPointer(base + end).copyMemory(from: base + end + length, byteCount: later * 4)
                        }
                        next &-= length
                    }
                }
                for r in 0..<runCount {
                    let length = write(r, base + next)
                    let hash = Self.hash(base + next, length)
                    kiln_prefetch(slots + (Int(truncatingIfNeeded: hash) & mask))
                    lengths[r & (depth - 1)] = length
                    hashes[r & (depth - 1)] = hash
                    next &+= length
                    if r >= depth - 1 { resolve(r - (depth - 1)) }
                }
                for r in max(0, runCount - (depth - 1))..<runCount { resolve(r) }
                return end
            }
        }
    }

    /// Makes room in the table for `n` more runs, growing geometrically.
    private mutating func reserveSlots(_ n: Int) {
        let needed = count + n
        if needed * 2 > slots.count {
            var size = max(16, slots.count)
            while size < needed * 2 { size <<= 1 }
            rebuildSlots(size: size)
        }
    }

    /// The table's parts as pointers for one `intern(runs:)` call, which made room for every candidate
    /// first: a lookup or an addition checks neither bounds nor uniqueness.
    private struct OpenTable {
        let slots: UnsafeMutablePointer<UInt64>
        let mask: Int
        let starts: UnsafeMutablePointer<UInt32>
        /// Runs stored so far: `starts[0 ... runs]` are set.
        var runs: Int

        /// The id of the stored run equal to `run`; or, when there is none, `run` (which must end the
        /// stored elements) becomes a new run.
        @inline(__always)
        mutating func lookUpOrAdd(_ run: UnsafeBufferPointer<UInt32>, hash: UInt64, in base: UnsafePointer<UInt32>) -> (
            id: UInt32, isNew: Bool
        ) {
            let tag = hash & 0xFFFF_FFFF_0000_0000
            let length = run.count
            var i = Int(truncatingIfNeeded: hash) & mask
            while true {
                let slot = slots[i]
                if slot == 0 { break }
                if slot & 0xFFFF_FFFF_0000_0000 == tag {
                    let id = Int(truncatingIfNeeded: slot & 0xFFFF_FFFF) &- 1
                    let start = Int(starts[id])
                    if Int(starts[id &+ 1]) &- start == length && RunInterner.equal(base + start, run) { return (UInt32(id), false) }
                }
                i = (i &+ 1) & mask
            }
            let id = runs
            slots[i] = tag | UInt64(id &+ 1)
            starts[id &+ 1] = starts[id] &+ UInt32(truncatingIfNeeded: length)
            runs = id &+ 1
            return (UInt32(truncatingIfNeeded: id), true)
        }
    }

    /// A run's hash: a multiply-xorshift step per 64 bits in two independent lanes (so one run's steps
    /// overlap rather than wait on each other) and a finaliser; good enough for a table that compares
    /// runs anyway.
    @inline(__always)
    static func hash(_ run: UnsafePointer<UInt32>, _ count: Int) -> UInt64 {
        let raw = UnsafeRawPointer(run)
        var a: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(count)
        var b: UInt64 = 0xC2B2_AE3D_27D4_EB4F
        var i = 0
        while i &+ 4 <= count {
            a = (a ^ raw.loadUnaligned(fromByteOffset: i &* 4, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
            a ^= a >> 29
            b = (b ^ raw.loadUnaligned(fromByteOffset: i &* 4 &+ 8, as: UInt64.self)) &* 0x94D0_49BB_1331_11EB
            b ^= b >> 29
            i &+= 4
        }
        while i < count {
            a = (a ^ UInt64(run[i])) &* 0xBF58_476D_1CE4_E5B9
            a ^= a >> 29
            i &+= 1
        }
        var h = a ^ (b &* 0x9E37_79B9_7F4A_7C15)
        h ^= h >> 32
        h = h &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 31)
    }

    @inline(__always)
    fileprivate static func equal(_ stored: UnsafePointer<UInt32>, _ run: UnsafeBufferPointer<UInt32>) -> Bool {
        for k in 0..<run.count where stored[k] != run[k] { return false }
        return true
    }

    /// Re-places every stored run (hashing it again) in a table of `size` slots.
    private mutating func rebuildSlots(size: Int) {
        var table = [UInt64](repeating: 0, count: size)
        let mask = size - 1
        elements.withUnsafeBufferPointer { all in
            for id in 0..<count {
                let hash = Self.hash(all.baseAddress! + Int(starts[id]), Int(starts[id + 1] - starts[id]))
                var i = Int(truncatingIfNeeded: hash) & mask
                while table[i] != 0 { i = (i &+ 1) & mask }
                table[i] = hash & 0xFFFF_FFFF_0000_0000 | UInt64(id + 1)
            }
        }
        slots = table
    }
}
