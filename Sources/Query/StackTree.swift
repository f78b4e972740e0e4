import Blocks

/// Interned function names shared by every tree of one query (and by a diff's two sides), so names are
/// compared as integers while merging.
public struct NameTable: Sendable {
    public private(set) var names: [String] = []
    private var index: [String: Int32] = [:]

    public init() {}

    public mutating func intern(_ name: String) -> Int32 {
        if let i = index[name] { return i }
        let i = Int32(names.count)
        names.append(name)
        index[name] = i
        return i
    }

    public subscript(_ id: Int32) -> String { names[Int(id)] }
}

/// One frame of a stack as stored: a function and the line in it. Frames label the nodes of a tree merged
/// for pprof output (`QueryEngine.mergeFrames`), so file names and lines survive.
public struct StackFrame: Hashable, Sendable {
    public var function: FunctionKey
    public var line: Int64

    public init(function: FunctionKey, line: Int64) {
        self.function = function
        self.line = line
    }
}

/// Interned frames shared by every frame-labelled tree of an engine.
public struct FrameTable: Sendable {
    public private(set) var frames: [StackFrame] = []
    private var index: [StackFrame: Int32] = [:]

    public init() {}

    public mutating func intern(_ frame: StackFrame) -> Int32 {
        if let i = index[frame] { return i }
        let i = Int32(frames.count)
        frames.append(frame)
        index[frame] = i
        return i
    }

    public subscript(_ id: Int32) -> StackFrame { frames[Int(id)] }
}

/// Stacks merged by function name into a call tree, root first: what a flame graph draws. Node 0 is the
/// synthetic root ("total"); a node's parent always has a smaller index, so totals are one backward pass.
/// Each node carries `sides` values (1 for a flame graph, 2 for a diff's left and right).
public struct StackTree: Sendable {
    public private(set) var parents: [Int32] = [-1]
    public private(set) var names: [Int32] = [-1]
    /// Self value per node and side: `selfValues[node * sides + side]`.
    public private(set) var selfValues: [Int64]
    public let sides: Int
    private var children: [UInt64: Int32] = [:]

    public init(sides: Int = 1) {
        self.sides = sides
        selfValues = Array(repeating: 0, count: sides)
    }

    public var nodeCount: Int { parents.count }

    /// The child of `parent` named `name`, created if absent.
    public mutating func child(of parent: Int32, name: Int32) -> Int32 {
        let key = UInt64(UInt32(bitPattern: parent)) << 32 | UInt64(UInt32(bitPattern: name))
        if let c = children[key] { return c }
        let c = Int32(parents.count)
        parents.append(parent)
        names.append(name)
        selfValues.append(contentsOf: repeatElement(0, count: sides))
        children[key] = c
        return c
    }

    /// Adds a stack given root first.
    public mutating func add(rootFirst stack: some Sequence<Int32>, value: Int64, side: Int = 0) {
        var node: Int32 = 0
        for name in stack { node = child(of: node, name: name) }
        addSelf(value, to: node, side: side)
    }

    public mutating func addSelf(_ value: Int64, to node: Int32, side: Int = 0) {
        selfValues[Int(node) * sides + side] += value
    }

    /// Merges another tree (with the same name table) into side `side` of this one.
    public mutating func merge(_ other: StackTree, otherSide: Int = 0, into side: Int = 0) {
        var mapped = [Int32](repeating: 0, count: other.nodeCount)
        for n in 1..<max(other.nodeCount, 1) {
            mapped[n] = child(of: mapped[Int(other.parents[n])], name: other.names[n])
            let v = other.selfValues[n * other.sides + otherSide]
            if v != 0 { addSelf(v, to: mapped[n], side: side) }
        }
        let rootValue = other.selfValues[otherSide]
        if rootValue != 0 { addSelf(rootValue, to: 0, side: side) }
    }

    /// Totals per node and side (self plus descendants).
    public func totals() -> [Int64] {
        var totals = selfValues
        for n in stride(from: nodeCount - 1, to: 0, by: -1) {
            let p = Int(parents[n])
            for s in 0..<sides { totals[p * sides + s] += totals[n * sides + s] }
        }
        return totals
    }

    public func total(side: Int = 0) -> Int64 {
        var sum: Int64 = 0
        for n in 0..<nodeCount { sum += selfValues[n * sides + side] }
        return sum
    }

    /// Children of every node, ordered by name (a stable layout, as Pyroscope draws it).
    public func childLists(nameTable: NameTable) -> [[Int32]] {
        var lists = [[Int32]](repeating: [], count: nodeCount)
        for n in 1..<max(nodeCount, 1) { lists[Int(parents[n])].append(Int32(n)) }
        for i in lists.indices where lists[i].count > 1 {
            lists[i].sort { nameTable[names[Int($0)]] < nameTable[names[Int($1)]] }
        }
        return lists
    }

    /// Stacks with a self value, root first, for pprof output and tests.
    public func stacks(side: Int = 0) -> [(names: [Int32], value: Int64)] {
        var out: [(names: [Int32], value: Int64)] = []
        for n in 1..<max(nodeCount, 1) {
            let v = selfValues[n * sides + side]
            guard v != 0 else { continue }
            var path: [Int32] = []
            var c = Int32(n)
            while c > 0 {
                path.append(names[Int(c)])
                c = parents[Int(c)]
            }
            out.append((path.reversed(), v))
        }
        return out
    }

    /// Only the stacks that start with `prefix` (root first), as Pyroscope's call-site stack-trace selector
    /// keeps them; the prefix's nodes stay so the graph still shows where they sit.
    public func keeping(prefix: [Int32]) -> StackTree {
        keeping(prefixLength: prefix.count) { depth, label in label == prefix[depth] }
    }

    /// Only the stacks whose first `prefixLength` nodes (root first) satisfy `matches(depth, label)`, depth
    /// counted from 0. The matching nodes above the last one stay, without their self values, so the graph
    /// still shows where the kept stacks sit. Several nodes may match at a depth (a frame-labelled tree has
    /// one node per line of a function).
    public func keeping(prefixLength: Int, where matches: (_ depth: Int, _ label: Int32) -> Bool) -> StackTree {
        var out = StackTree(sides: sides)
        guard prefixLength > 0 else {
            out.merge(self)
            return out
        }
        var depth = [Int](repeating: 0, count: nodeCount)
        // onPath: the node and its ancestors match the prefix; under: at or below a node ending the prefix.
        var onPath = [Bool](repeating: false, count: nodeCount)
        var under = [Bool](repeating: false, count: nodeCount)
        onPath[0] = true
        // Nodes are created after their parents, so one forward pass sees every parent first.
        for n in 1..<max(nodeCount, 1) {
            let p = Int(parents[n])
            depth[n] = depth[p] + 1
            under[n] = under[p]
            if !under[n] && onPath[p] && depth[n] <= prefixLength && matches(depth[n] - 1, names[n]) {
                onPath[n] = true
                under[n] = depth[n] == prefixLength
            }
        }
        // A node of the prefix stays only if the whole prefix continues below it.
        var reachesEnd = [Bool](repeating: false, count: nodeCount)
        for n in stride(from: nodeCount - 1, to: 0, by: -1) where onPath[n] && (depth[n] == prefixLength || reachesEnd[n]) {
            reachesEnd[n] = true
            reachesEnd[Int(parents[n])] = true
        }
        var mapped = [Int32](repeating: -1, count: nodeCount)
        mapped[0] = 0
        for n in 1..<max(nodeCount, 1) where under[n] || reachesEnd[n] {
            let p = Int(parents[n])
            guard mapped[p] >= 0 else { continue }
            mapped[n] = out.child(of: mapped[p], name: names[n])
            guard under[n] else { continue }
            for s in 0..<sides where selfValues[n * sides + s] != 0 { out.addSelf(selfValues[n * sides + s], to: mapped[n], side: s) }
        }
        return out
    }
}
