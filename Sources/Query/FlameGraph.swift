/// Pyroscope's flame-graph level encoding. A single graph has 4 numbers per node —
/// `[x, total, self, name]` — a diff 7 — `[xLeft, totalLeft, selfLeft, xRight, totalRight, selfRight, name]`.
/// Within a level nodes are in ascending x and each x is stored as the gap after the previous node's end.
/// Level 0 is the root, named "total". A node's self area is on its left: its children start at
/// `x + self`. With a node limit, children below the cut-off are folded into one "other" child per parent,
/// so totals are kept.
public struct FlameGraphLevels: Sendable, Equatable {
    public var names: [String]
    public var levels: [[Int64]]
    public var total: Int64
    public var maxSelf: Int64
    /// Diff only: the left and right totals.
    public var leftTicks: Int64 = 0
    public var rightTicks: Int64 = 0
    /// 7 numbers per node (left and right) instead of 4.
    public var isDiff: Bool

    /// Pyroscope's default for `max_nodes` and the most a request may ask for.
    public static let defaultMaxNodes = 8192
    public static let maxMaxNodes = 1_048_576
    public static let otherName = "other"

    public static func resolveMaxNodes(_ requested: Int64?) -> Int {
        guard let requested, requested > 0 else { return defaultMaxNodes }
        return Int(min(requested, Int64(maxMaxNodes)))
    }

    /// Encodes a tree of one side (`sides == 1`) or a diff (`sides == 2`).
    public init(tree: StackTree, nameTable: NameTable, maxNodes: Int) {
        let sides = tree.sides
        isDiff = sides == 2
        let totals = tree.totals()
        func weight(_ n: Int) -> Int64 {
            var w: Int64 = 0
            for s in 0..<sides { w += totals[n * sides + s] }
            return w
        }
        let cutoff = Self.cutoff(weights: (1..<max(tree.nodeCount, 1)).map(weight), maxNodes: maxNodes)
        let children = tree.childLists(nameTable: nameTable)

        var names = ["total"]
        var nameIndex: [Int32: Int64] = [:]
        var otherIndex: Int64?
        func index(of name: Int32) -> Int64 {
            if let i = nameIndex[name] { return i }
            names.append(nameTable[name])
            let i = Int64(names.count - 1)
            nameIndex[name] = i
            return i
        }

        let stride = sides == 1 ? 4 : 7
        var levels: [[Int64]] = []
        var maxSelf: Int64 = 0
        // One entry per node to emit: a real node, or a parent's folded "other" remainder.
        struct Pending {
            var node: Int32
            var level: Int
            var x: (Int64, Int64)
            var other: (Int64, Int64)?
        }
        var work: [Pending] = [Pending(node: 0, level: 0, x: (0, 0), other: nil)]
        while let item = work.popLast() {
            if levels.count == item.level { levels.append([]) }
            let n = Int(item.node)
            var selfs: (Int64, Int64)
            var nodeTotals: (Int64, Int64)
            var name: Int64
            if let other = item.other {
                selfs = other
                nodeTotals = other
                if otherIndex == nil {
                    names.append(Self.otherName)
                    otherIndex = Int64(names.count - 1)
                }
                name = otherIndex!
            } else {
                selfs = (tree.selfValues[n * sides], sides == 2 ? tree.selfValues[n * sides + 1] : 0)
                nodeTotals = (totals[n * sides], sides == 2 ? totals[n * sides + 1] : 0)
                name = n == 0 ? 0 : index(of: tree.names[n])
            }
            maxSelf = max(maxSelf, selfs.0, selfs.1)
            if sides == 1 {
                levels[item.level] += [item.x.0, nodeTotals.0, selfs.0, name]
            } else {
                levels[item.level] += [item.x.0, nodeTotals.0, selfs.0, item.x.1, nodeTotals.1, selfs.1, name]
            }
            guard item.other == nil else { continue }

            var childX = (item.x.0 + selfs.0, item.x.1 + selfs.1)
            var next: [Pending] = []
            var folded: (Int64, Int64) = (0, 0)
            for c in children[n] {
                let ci = Int(c)
                let t = (totals[ci * sides], sides == 2 ? totals[ci * sides + 1] : 0)
                if weight(ci) >= cutoff && weight(ci) > 0 {
                    next.append(Pending(node: c, level: item.level + 1, x: childX, other: nil))
                    childX = (childX.0 + t.0, childX.1 + t.1)
                } else {
                    folded = (folded.0 + t.0, folded.1 + t.1)
                }
            }
            if folded.0 != 0 || folded.1 != 0 {
                next.append(Pending(node: item.node, level: item.level + 1, x: childX, other: folded))
            }
            work.append(contentsOf: next.reversed())
        }
        // Delta-encode x (and xRight) per level.
        for l in levels.indices {
            var prev: (Int64, Int64) = (0, 0)
            var i = 0
            while i < levels[l].count {
                levels[l][i] -= prev.0
                prev.0 += levels[l][i] + levels[l][i + 1]
                if sides == 2 {
                    levels[l][i + 3] -= prev.1
                    prev.1 += levels[l][i + 3] + levels[l][i + 4]
                }
                i += stride
            }
        }
        self.names = names
        self.levels = levels
        self.maxSelf = maxSelf
        if sides == 2 {
            leftTicks = totals[0]
            rightTicks = totals[1]
            total = leftTicks + rightTicks
        } else {
            total = totals.first ?? 0
        }
    }

    /// The smallest weight a node may have and still be drawn, so that at most `maxNodes` nodes are.
    static func cutoff(weights: [Int64], maxNodes: Int) -> Int64 {
        guard weights.count > maxNodes, maxNodes > 0 else { return 0 }
        // The maxNodes-th largest weight; nodes tied with it may push the count slightly over, as in
        // Pyroscope, but never by folding a parent away from a kept child (a child weighs no more).
        var sorted = weights
        sorted.sort(by: >)
        return max(sorted[maxNodes - 1], 1)
    }

    /// Decodes the levels back into (depth, absolute x, total, self, name) per node of side 0 — for tests and
    /// for clients that want a tree back.
    public func decodedNodes(side: Int = 0) -> [(level: Int, x: Int64, total: Int64, selfValue: Int64, name: String)] {
        let stride = isDiff ? 7 : 4
        let o = side == 0 ? 0 : 3
        var out: [(level: Int, x: Int64, total: Int64, selfValue: Int64, name: String)] = []
        for (l, values) in levels.enumerated() {
            var prev: Int64 = 0
            var i = 0
            while i + stride <= values.count {
                let x = values[i + o] + prev
                prev = x + values[i + o + 1]
                out.append((l, x, values[i + o + 1], values[i + o + 2], names[Int(values[i + stride - 1])]))
                i += stride
            }
        }
        return out
    }
}
