import Testing

@testable import Normalization

/// The interner against a plain dictionary: same ids in first-seen order, and the stored runs spell the
/// distinct runs. Duplicates are placed both inside and beyond the interner's look-ahead window, since a
/// duplicate there moves the pending candidates written after it.
@Suite struct RunInternerTests {
    /// A deterministic stream of runs with many repeats (xorshift, so a failure reproduces).
    static func runs(count: Int, seed: UInt64) -> [[UInt32]] {
        var state = seed
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        var out: [[UInt32]] = []
        for _ in 0..<count {
            let pick = next() % 10
            if pick < 4, !out.isEmpty {
                // Repeat a recent run (often inside the window) or any earlier one.
                let back = pick < 2 ? Int(next() % UInt64(min(out.count, 9))) : Int(next() % UInt64(out.count))
                out.append(out[out.count - 1 - back])
            } else {
                let length = Int(next() % 40)  // empty runs included
                out.append((0..<length).map { _ in UInt32(truncatingIfNeeded: next() % 50) })
            }
        }
        return out
    }

    static func check(_ interner: RunInterner, ids: [UInt32], runs: [[UInt32]], reference: inout [[UInt32]: UInt32]) {
        for (run, id) in zip(runs, ids) {
            let expected = reference[run] ?? UInt32(reference.count)
            reference[run] = expected
            #expect(id == expected)
            let stored = Array(interner.elements[Int(interner.starts[Int(id)])..<Int(interner.starts[Int(id) + 1])])
            #expect(stored == run)
        }
        #expect(interner.count == reference.count)
    }

    @Test(arguments: [1, 2, 3, 7, 8, 9, 500, 5000])
    func batchInterningMatchesADictionary(runCount: Int) {
        var interner = RunInterner()
        var reference: [[UInt32]: UInt32] = [:]
        // Two calls: the first fills an empty interner, the second appends to one that holds runs.
        for (call, seed) in [UInt64(0x1234_5678), 0x9ABC_DEF0].enumerated() {
            let runs = Self.runs(count: runCount, seed: seed &+ UInt64(runCount))
            let ids = interner.intern(runs: runs.count, maxElements: runs.reduce(0) { $0 + $1.count }) { r, out in
                for (k, x) in runs[r].enumerated() { out[k] = x }
                return runs[r].count
            }
            Self.check(interner, ids: ids, runs: runs, reference: &reference)
            #expect(interner.elements.count == reference.keys.reduce(0) { $0 + $1.count }, "call \(call)")
        }
    }
}
