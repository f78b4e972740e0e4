/// A regular expression matched in time linear in the input (a Thompson NFA simulated breadth first, as RE2
/// and Go's regexp do), so no pattern can make a query backtrack for ever: `(a+)+b` over a long value costs
/// the same as `a+b`. It speaks the RE2 syntax Prometheus and Pyroscope selectors use: literals and escapes,
/// `.`, classes (`[a-z]`, `[^…]`, `\d \w \s` and their negations, `[[:alpha:]]`), groups (`(…)`, `(?:…)`,
/// `(?P<name>…)`), `|`, `* + ? {n} {n,} {n,m}` (lazy forms too), `^ $ \A \z`, and the flags `(?i)` and `(?s)`.
/// Backreferences and look-around do not exist in RE2 and are refused. `.` matches every character.
///
/// Only whole-value matches are asked of it (selectors are anchored, as in Prometheus).
public struct LinearRegex: Sendable {
    /// Largest compiled program; counted repetition (`x{1000}`) is what makes programs big.
    public static let maxInstructions = 4096
    public static let maxRepeat = 1000

    enum Instruction: Sendable {
        case scalar(CharClass)
        case split(Int, Int)
        case jump(Int)
        case atStart
        case atEnd
        case match
    }

    /// The program flattened into plain values (no reference counting in the matching loop): one `Op` per
    /// instruction, character classes as ranges in `lows`/`highs`.
    struct Op: Sendable {
        enum Kind: UInt8, Sendable { case scalar, split, jump, atStart, atEnd, match }
        var kind: Kind
        /// scalar: class index; split: first target; jump: target.
        var x: Int32
        /// split: second target.
        var y: Int32
    }

    let ops: [Op]
    let classStart: [Int32]
    let classEnd: [Int32]
    let classNegated: [Bool]
    let lows: [UInt32]
    let highs: [UInt32]

    public struct SyntaxError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public init(_ pattern: String) throws(SyntaxError) {
        var parser = RegexParser(Array(pattern.unicodeScalars))
        let node = try parser.parse()
        var compiler = RegexCompiler()
        try compiler.emit(node)
        compiler.program.append(.match)
        var ops: [Op] = []
        var classStart: [Int32] = []
        var classEnd: [Int32] = []
        var classNegated: [Bool] = []
        var lows: [UInt32] = []
        var highs: [UInt32] = []
        for instruction in compiler.program {
            switch instruction {
            case .scalar(let set):
                ops.append(Op(kind: .scalar, x: Int32(classStart.count), y: 0))
                classStart.append(Int32(lows.count))
                for r in set.ranges {
                    lows.append(r.lowerBound)
                    highs.append(r.upperBound)
                }
                classEnd.append(Int32(lows.count))
                classNegated.append(set.negated)
            case .split(let a, let b): ops.append(Op(kind: .split, x: Int32(a), y: Int32(b)))
            case .jump(let a): ops.append(Op(kind: .jump, x: Int32(a), y: 0))
            case .atStart: ops.append(Op(kind: .atStart, x: 0, y: 0))
            case .atEnd: ops.append(Op(kind: .atEnd, x: 0, y: 0))
            case .match: ops.append(Op(kind: .match, x: 0, y: 0))
            }
        }
        (self.ops, self.classStart, self.classEnd, self.classNegated, self.lows, self.highs) = (
            ops, classStart, classEnd, classNegated, lows, highs
        )
    }

    /// Whether the whole of `text` matches.
    public func wholeMatch(_ text: String) -> Bool {
        let n = ops.count
        // Two sparse sets of program counters: the threads alive before and after each character.
        var current = SparseSet(capacity: n)
        var next = SparseSet(capacity: n)
        var stack: [Int] = []
        let scalars = text.unicodeScalars
        var position = scalars.startIndex
        addThread(0, to: &current, stack: &stack, atStart: true, atEnd: position == scalars.endIndex)
        while position != scalars.endIndex {
            if current.isEmpty { return false }
            let c = scalars[position].value
            position = scalars.index(after: position)
            let atEnd = position == scalars.endIndex
            next.clear()
            for k in 0..<current.count {
                let pc = current[k]
                let op = ops[pc]
                if op.kind == .scalar, classContains(Int(op.x), c) {
                    addThread(pc + 1, to: &next, stack: &stack, atStart: false, atEnd: atEnd)
                }
            }
            swap(&current, &next)
        }
        for k in 0..<current.count where ops[current[k]].kind == .match { return true }
        return false
    }

    private func classContains(_ index: Int, _ c: UInt32) -> Bool {
        var found = false
        var r = Int(classStart[index])
        let end = Int(classEnd[index])
        while r < end {
            if lows[r] <= c && c <= highs[r] {
                found = true
                break
            }
            r += 1
        }
        return found != classNegated[index]
    }

    /// Adds `pc` and everything reachable from it without consuming a character.
    private func addThread(_ pc: Int, to set: inout SparseSet, stack: inout [Int], atStart: Bool, atEnd: Bool) {
        stack.append(pc)
        while let pc = stack.popLast() {
            guard set.insert(pc) else { continue }
            let op = ops[pc]
            switch op.kind {
            case .jump: stack.append(Int(op.x))
            case .split:
                stack.append(Int(op.y))
                stack.append(Int(op.x))
            case .atStart: if atStart { stack.append(pc + 1) }
            case .atEnd: if atEnd { stack.append(pc + 1) }
            case .scalar, .match: break
            }
        }
    }
}

/// Integers below a capacity with O(1) insert, clear and iteration in insertion order.
struct SparseSet {
    private var dense: [Int]
    private var sparse: [Int]
    private(set) var count = 0

    init(capacity: Int) {
        dense = [Int](repeating: 0, count: capacity)
        sparse = [Int](repeating: 0, count: capacity)
    }

    var isEmpty: Bool { count == 0 }
    subscript(_ k: Int) -> Int { dense[k] }

    mutating func insert(_ v: Int) -> Bool {
        let i = sparse[v]
        if i < count && dense[i] == v { return false }
        sparse[v] = count
        dense[count] = v
        count += 1
        return true
    }

    mutating func clear() { count = 0 }
}

/// A set of Unicode scalars as sorted, closed ranges, possibly negated.
struct CharClass: Sendable {
    var ranges: [ClosedRange<UInt32>]
    var negated = false

    static let anything = CharClass(ranges: [0...0x10FFFF])
    static let digit = CharClass(ranges: [48...57])
    static let word = CharClass(ranges: [48...57, 65...90, 95...95, 97...122])
    static let space = CharClass(ranges: [9...10, 12...13, 32...32])

    func contains(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        var found = false
        for r in ranges where r.contains(v) {
            found = true
            break
        }
        return found != negated
    }

    /// The same set with ASCII letters in both cases.
    func caseFolded() -> CharClass {
        var out = ranges
        for r in ranges {
            let lower = max(r.lowerBound, 65)
            let upper = min(r.upperBound, 90)
            if lower <= upper { out.append((lower + 32)...(upper + 32)) }
            let lower2 = max(r.lowerBound, 97)
            let upper2 = min(r.upperBound, 122)
            if lower2 <= upper2 { out.append((lower2 - 32)...(upper2 - 32)) }
        }
        return CharClass(ranges: out, negated: negated)
    }

    /// The complement as plain ranges (to merge a negated class into a bracket expression).
    func complementRanges() -> [ClosedRange<UInt32>] {
        var out: [ClosedRange<UInt32>] = []
        var next: UInt32 = 0
        for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if r.lowerBound > next { out.append(next...(r.lowerBound - 1)) }
            next = max(next, r.upperBound &+ 1)
        }
        if next <= 0x10FFFF { out.append(next...0x10FFFF) }
        return out
    }
}

indirect enum RegexNode {
    case empty
    case set(CharClass)
    case concat([RegexNode])
    case alternate([RegexNode])
    case repeated(RegexNode, min: Int, max: Int?)
    case atStart
    case atEnd
}

struct RegexParser {
    let s: [Unicode.Scalar]
    var i = 0
    var caseInsensitive = false

    init(_ s: [Unicode.Scalar]) { self.s = s }

    func fail(_ what: String) -> LinearRegex.SyntaxError {
        LinearRegex.SyntaxError(description: "\(what) at position \(i + 1)")
    }

    var peek: Unicode.Scalar? { i < s.count ? s[i] : nil }

    mutating func parse() throws(LinearRegex.SyntaxError) -> RegexNode {
        let node = try alternation(depth: 0)
        if i < s.count { throw fail("unmatched \")\"") }
        return node
    }

    mutating func alternation(depth: Int) throws(LinearRegex.SyntaxError) -> RegexNode {
        guard depth < 100 else { throw fail("groups nested too deeply") }
        var branches = [try concatenation(depth: depth)]
        while peek == "|" {
            i += 1
            branches.append(try concatenation(depth: depth))
        }
        return branches.count == 1 ? branches[0] : .alternate(branches)
    }

    mutating func concatenation(depth: Int) throws(LinearRegex.SyntaxError) -> RegexNode {
        var items: [RegexNode] = []
        while let c = peek, c != "|", c != ")" {
            guard var node = try atom(depth: depth) else { continue }
            while let q = peek, q == "*" || q == "+" || q == "?" || q == "{" {
                let start = i
                var bounds: (Int, Int?) = (0, nil)
                switch q {
                case "*":
                    i += 1
                    bounds = (0, nil)
                case "+":
                    i += 1
                    bounds = (1, nil)
                case "?":
                    i += 1
                    bounds = (0, 1)
                default:
                    guard let counted = try countedRepeat() else {
                        i = start
                        break
                    }
                    bounds = counted
                }
                if i == start { break }  // a `{` that is not a repetition is a literal
                if case .atStart = node { throw fail("missing argument to repetition operator") }
                if case .atEnd = node { throw fail("missing argument to repetition operator") }
                if peek == "?" { i += 1 }  // lazy: the same whole-value matches
                if let p = peek, p == "*" || p == "+" || p == "?" { throw fail("invalid nested repetition operator") }
                node = .repeated(node, min: bounds.0, max: bounds.1)
            }
            items.append(node)
        }
        return items.isEmpty ? .empty : (items.count == 1 ? items[0] : .concat(items))
    }

    /// `{n}`, `{n,}`, `{n,m}` after the `{`; nil when the text is not one (then `{` is literal).
    mutating func countedRepeat() throws(LinearRegex.SyntaxError) -> (Int, Int?)? {
        var j = i + 1
        func number(_ j: inout Int) -> Int? {
            var v = 0
            var digits = 0
            while j < s.count, let d = Int(String(s[j])), s[j].isASCII, d >= 0 {
                v = min(v * 10 + d, 100_000)
                digits += 1
                j += 1
            }
            return digits > 0 ? v : nil
        }
        guard let lo = number(&j) else { return nil }
        var hi: Int? = lo
        if j < s.count, s[j] == "," {
            j += 1
            hi = number(&j)
        }
        guard j < s.count, s[j] == "}" else { return nil }
        i = j + 1
        if lo > LinearRegex.maxRepeat || (hi ?? 0) > LinearRegex.maxRepeat {
            throw fail("repeat count larger than \(LinearRegex.maxRepeat)")
        }
        if let hi, hi < lo { throw fail("invalid repeat count {\(lo),\(hi)}") }
        return (lo, hi)
    }

    mutating func atom(depth: Int) throws(LinearRegex.SyntaxError) -> RegexNode? {
        let c = s[i]
        switch c {
        case "(":
            i += 1
            let saved = caseInsensitive
            if peek == "?" {
                i += 1
                if peek == "<", i + 1 < s.count, s[i + 1] == "=" || s[i + 1] == "!" {
                    throw fail("look-around is not supported (RE2 syntax)")
                }
                if peek == "P" || peek == "<" {
                    if peek == "P" { i += 1 }
                    guard peek == "<" else { throw fail("invalid named group") }
                    while let n = peek, n != ">" { i += 1 }
                    guard peek == ">" else { throw fail("unterminated group name") }
                    i += 1
                } else {
                    // Flags: `(?i)` holds for the rest of the enclosing group, `(?i:…)` for its subgroup.
                    var on = true
                    var flags = caseInsensitive
                    while let f = peek, f != ")" && f != ":" {
                        switch f {
                        case "i": flags = on
                        case "s": break  // `.` already matches every character
                        case "-": on = false
                        case "=", "!", "<": throw fail("look-around is not supported (RE2 syntax)")
                        default: throw fail("flag \"\(f)\" is not supported (use i or s)")
                        }
                        i += 1
                    }
                    guard let end = peek else { throw fail("missing \")\"") }
                    i += 1
                    caseInsensitive = flags
                    if end == ")" { return nil }
                }
            }
            let inner = try alternation(depth: depth + 1)
            guard peek == ")" else { throw fail("missing \")\"") }
            i += 1
            caseInsensitive = saved
            return inner
        case ")":
            throw fail("unexpected \")\"")
        case "*", "+", "?":
            throw fail("missing argument to repetition operator \"\(c)\"")
        case ".":
            i += 1
            return .set(.anything)
        case "^":
            i += 1
            return .atStart
        case "$":
            i += 1
            return .atEnd
        case "[":
            return .set(try bracket())
        case "\\":
            i += 1
            if let anchor = peek, anchor == "A" || anchor == "z" {
                i += 1
                return anchor == "A" ? .atStart : .atEnd
            }
            return .set(folded(try escape(inClass: false)))
        default:
            i += 1
            return .set(folded(CharClass(ranges: [c.value...c.value])))
        }
    }

    func folded(_ set: CharClass) -> CharClass { caseInsensitive ? set.caseFolded() : set }

    mutating func escape(inClass: Bool) throws(LinearRegex.SyntaxError) -> CharClass {
        guard let e = peek else { throw fail("trailing backslash") }
        i += 1
        func single(_ v: UInt32) -> CharClass { CharClass(ranges: [v...v]) }
        switch e {
        case "d": return .digit
        case "D": return CharClass(ranges: CharClass.digit.ranges, negated: true)
        case "w": return .word
        case "W": return CharClass(ranges: CharClass.word.ranges, negated: true)
        case "s": return .space
        case "S": return CharClass(ranges: CharClass.space.ranges, negated: true)
        case "n": return single(10)
        case "t": return single(9)
        case "r": return single(13)
        case "f": return single(12)
        case "v": return single(11)
        case "x":
            var hex = ""
            if peek == "{" {
                i += 1
                while let h = peek, h != "}" {
                    hex.unicodeScalars.append(h)
                    i += 1
                }
                guard peek == "}" else { throw fail("unterminated \\x{...}") }
                i += 1
            } else {
                for _ in 0..<2 {
                    guard let h = peek else { break }
                    hex.unicodeScalars.append(h)
                    i += 1
                }
            }
            guard let v = UInt32(hex, radix: 16), v <= 0x10FFFF else { throw fail("invalid \\x escape") }
            return single(v)
        default:
            if e.isASCII, e.properties.isAlphabetic || e.properties.numericType != nil {
                throw fail("escape \\\(e) is not supported (RE2 syntax; no backreferences)")
            }
            return single(e.value)
        }
    }

    mutating func bracket() throws(LinearRegex.SyntaxError) -> CharClass {
        i += 1
        var negated = false
        if peek == "^" {
            negated = true
            i += 1
        }
        var ranges: [ClosedRange<UInt32>] = []
        var first = true
        while true {
            guard let c = peek else { throw fail("missing \"]\"") }
            if c == "]" && !first {
                i += 1
                break
            }
            first = false
            if c == "[", i + 1 < s.count, s[i + 1] == ":" {
                ranges += try posixClass()
                continue
            }
            let low: UInt32
            if c == "\\" {
                i += 1
                let set = try escape(inClass: true)
                if set.negated || set.ranges.count != 1 || set.ranges[0].count != 1 {
                    ranges += set.negated ? set.complementRanges() : set.ranges
                    continue
                }
                low = set.ranges[0].lowerBound
            } else {
                low = c.value
                i += 1
            }
            if peek == "-", i + 1 < s.count, s[i + 1] != "]" {
                i += 1
                guard let h = peek else { throw fail("missing \"]\"") }
                var high = h.value
                if h == "\\" {
                    i += 1
                    let set = try escape(inClass: true)
                    guard !set.negated, set.ranges.count == 1, set.ranges[0].count == 1 else { throw fail("invalid character class range") }
                    high = set.ranges[0].lowerBound
                } else {
                    i += 1
                }
                guard low <= high else { throw fail("invalid character class range") }
                ranges.append(low...high)
            } else {
                ranges.append(low...low)
            }
        }
        return folded(CharClass(ranges: ranges, negated: negated))
    }

    mutating func posixClass() throws(LinearRegex.SyntaxError) -> [ClosedRange<UInt32>] {
        let start = i
        i += 2
        var name = ""
        while let c = peek, c != ":" {
            name.unicodeScalars.append(c)
            i += 1
        }
        guard i + 1 < s.count, s[i] == ":", s[i + 1] == "]" else {
            i = start
            throw fail("invalid character class")
        }
        i += 2
        switch name {
        case "alpha": return [65...90, 97...122]
        case "digit": return [48...57]
        case "alnum": return [48...57, 65...90, 97...122]
        case "upper": return [65...90]
        case "lower": return [97...122]
        case "space": return [9...13, 32...32]
        case "xdigit": return [48...57, 65...70, 97...102]
        case "word": return CharClass.word.ranges
        case "punct": return [33...47, 58...64, 91...96, 123...126]
        default: throw fail("unknown character class [:\(name):]")
        }
    }
}

struct RegexCompiler {
    var program: [LinearRegex.Instruction] = []

    mutating func append(_ instruction: LinearRegex.Instruction) throws(LinearRegex.SyntaxError) {
        guard program.count < LinearRegex.maxInstructions else {
            throw LinearRegex.SyntaxError(
                description: "expression too large (more than \(LinearRegex.maxInstructions) steps once repetitions are expanded)")
        }
        program.append(instruction)
    }

    mutating func emit(_ node: RegexNode) throws(LinearRegex.SyntaxError) {
        switch node {
        case .empty: break
        case .set(let set): try append(.scalar(set))
        case .atStart: try append(.atStart)
        case .atEnd: try append(.atEnd)
        case .concat(let items): for item in items { try emit(item) }
        case .alternate(let branches):
            var jumpsToEnd: [Int] = []
            for (k, branch) in branches.enumerated() {
                if k < branches.count - 1 {
                    let split = program.count
                    try append(.split(split + 1, -1))
                    try emit(branch)
                    jumpsToEnd.append(program.count)
                    try append(.jump(-1))
                    program[split] = .split(split + 1, program.count)
                } else {
                    try emit(branch)
                }
            }
            for j in jumpsToEnd { program[j] = .jump(program.count) }
        case .repeated(let inner, let min, let max):
            for _ in 0..<min { try emit(inner) }
            if let max {
                // Each optional copy may be skipped to the end.
                var splits: [Int] = []
                for _ in min..<max {
                    splits.append(program.count)
                    try append(.split(program.count + 1, -1))
                    try emit(inner)
                }
                for s in splits { program[s] = .split(s + 1, program.count) }
            } else {
                let loop = program.count
                try append(.split(loop + 1, -1))
                try emit(inner)
                try append(.jump(loop))
                program[loop] = .split(loop + 1, program.count)
            }
        }
    }
}
