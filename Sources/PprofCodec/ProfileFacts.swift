import Foundation

/// What `kiln inspect` reports about one pprof file. Counts and totals describe the file as written
/// (no merging), like `file_level` in the fixtures' EXPECTED.json; `top` follows `go tool pprof -top`
/// at function granularity for the default sample type.
public struct ProfileFacts: Sendable, Equatable {
    public struct ValueType: Sendable, Equatable {
        public var type: String
        public var unit: String
        public init(type: String, unit: String) {
            self.type = type
            self.unit = unit
        }
    }

    public struct Total: Sendable, Equatable {
        public var type: String
        public var unit: String
        public var total: Int64
    }

    public struct TopRow: Sendable, Equatable {
        public var name: String
        public var flat: Int64
        public var cum: Int64
        public init(name: String, flat: Int64, cum: Int64) {
            self.name = name
            self.flat = flat
            self.cum = cum
        }
    }

    public var sampleTypes: [ValueType]
    public var periodType: ValueType?
    public var period: Int64
    public var timeNanos: Int64
    public var durationNanos: Int64
    public var defaultSampleType: String?
    public var defaultSampleIndex: Int
    public var numSamples: Int
    public var numLocations: Int
    public var numFunctions: Int
    public var numMappings: Int
    public var totals: [Total]
    public var top: [TopRow]
    /// Graph nodes with a non-zero flat or cum value (pprof's "out of M nodes").
    public var topNodeCount: Int

    public init(_ p: PprofProfile, topCount: Int = 5) {
        let vt = { (v: PprofValueType) in ValueType(type: p.string(v.type), unit: p.string(v.unit)) }
        sampleTypes = p.sampleTypes.map(vt)
        periodType = p.periodType.map(vt)
        period = p.period
        timeNanos = p.timeNanos
        durationNanos = p.durationNanos
        defaultSampleType = p.defaultSampleType == 0 ? nil : p.string(p.defaultSampleType)
        defaultSampleIndex = p.defaultSampleIndex
        numSamples = p.sampleCount
        numLocations = p.locations.count
        numFunctions = p.functions.count
        numMappings = p.mappings.count
        let n = p.sampleTypes.count
        var sums = [Int64](repeating: 0, count: n)
        p.values.withUnsafeBufferPointer { v in
            var i = 0
            while i < v.count {
                for t in 0..<n { sums[t] &+= v[i + t] }
                i += n
            }
        }
        totals = zip(sampleTypes, sums).map { Total(type: $0.type, unit: $0.unit, total: $1) }
        if defaultSampleIndex >= 0 {
            let graph = FunctionGraph(p, sampleIndex: defaultSampleIndex)
            top = Array(graph.rows.prefix(topCount))
            topNodeCount = graph.rows.count
        } else {
            top = []
            topNodeCount = 0
        }
    }
}

/// pprof's call graph at function granularity (`go tool pprof -top`): a node per function name; functions
/// without a name become one node per (binary, start line) shown as `[binary]`, and address-only
/// locations one node per binary (`[binary]`, or `<unknown>` without a mapping file). Inlined frames are
/// separate nodes. Per sample with a non-zero value: cum counts each node once, flat goes to the
/// innermost frame of the leaf location. Rows are ordered by |flat| desc, name asc, |cum| desc.
struct FunctionGraph {
    var rows: [ProfileFacts.TopRow] = []

    private enum NodeKey: Hashable {
        case named([UInt8])
        case anonymous(objfile: [UInt8], startLine: Int64)
    }

    init(_ p: PprofProfile, sampleIndex: Int) {
        var nodeOf: [NodeKey: Int32] = [:]
        var keys: [NodeKey] = []
        // Node ids of each location's lines, innermost first (an address-only location has one node).
        var locNodeStart = [Int32]()
        var locNodes = [Int32]()
        locNodeStart.reserveCapacity(p.locations.count + 1)
        func node(_ k: NodeKey) -> Int32 {
            if let id = nodeOf[k] { return id }
            let id = Int32(keys.count)
            nodeOf[k] = id
            keys.append(k)
            return id
        }
        for (li, loc) in p.locations.enumerated() {
            locNodeStart.append(Int32(locNodes.count))
            let objfile: [UInt8] = loc.mappingIndex >= 0 ? Array(p.stringBytes(p.mappings[Int(loc.mappingIndex)].filename)) : []
            if loc.lineCount == 0 {
                locNodes.append(node(.anonymous(objfile: objfile, startLine: 0)))
                continue
            }
            for line in p.lines(of: li) {
                let f = p.functions[Int(line.functionIndex)]
                let name = p.stringBytes(f.name)
                locNodes.append(node(name.isEmpty ? .anonymous(objfile: objfile, startLine: f.startLine) : .named(Array(name))))
            }
        }
        locNodeStart.append(Int32(locNodes.count))

        var flat = [Int64](repeating: 0, count: keys.count)
        var cum = [Int64](repeating: 0, count: keys.count)
        var seenIn = [Int](repeating: -1, count: keys.count)
        let n = p.sampleTypes.count
        for s in 0..<p.sampleCount {
            let w = p.values[s * n + sampleIndex]
            if w == 0 { continue }
            let stack = p.stack(s)
            if stack.isEmpty { continue }
            for loc in stack {
                for k in Int(locNodeStart[Int(loc)])..<Int(locNodeStart[Int(loc) + 1]) {
                    let id = Int(locNodes[k])
                    if seenIn[id] != s {
                        seenIn[id] = s
                        cum[id] &+= w
                    }
                }
            }
            let leaf = Int(locNodes[Int(locNodeStart[Int(stack[stack.startIndex])])])
            flat[leaf] &+= w
        }

        struct Row {
            var name: [UInt8]
            var flat: Int64
            var cum: Int64
            var key: Int
        }
        var all: [Row] = []
        for (id, key) in keys.enumerated() where flat[id] != 0 || cum[id] != 0 {
            all.append(Row(name: Self.printableName(key), flat: flat[id], cum: cum[id], key: id))
        }
        all.sort { a, b in
            if a.flat.magnitude != b.flat.magnitude { return a.flat.magnitude > b.flat.magnitude }
            if a.name != b.name { return a.name.lexicographicallyPrecedes(b.name) }
            if a.cum.magnitude != b.cum.magnitude { return a.cum.magnitude > b.cum.magnitude }
            return a.key < b.key
        }
        rows = all.map { ProfileFacts.TopRow(name: String(decoding: $0.name, as: UTF8.self), flat: $0.flat, cum: $0.cum) }
    }

    private static func printableName(_ key: NodeKey) -> [UInt8] {
        switch key {
        case .named(let name): return name
        case .anonymous(let objfile, _):
            if objfile.isEmpty { return Array("<unknown>".utf8) }
            return Array("[".utf8) + goBase(objfile) + Array("]".utf8)
        }
    }

    /// Go's filepath.Base on bytes.
    static func goBase(_ path: [UInt8]) -> [UInt8] {
        var p = path[...]
        while p.count > 1, p.last == UInt8(ascii: "/") { p = p.dropLast() }
        if p == [UInt8(ascii: "/")] { return Array(p) }
        if let slash = p.lastIndex(of: UInt8(ascii: "/")) { p = p[(slash + 1)...] }
        return p.isEmpty ? [UInt8(ascii: ".")] : Array(p)
    }
}

extension ProfileFacts {
    /// JSON with exactly the keys `kiln inspect --json` promises (absent values are `null`).
    public func jsonObject() -> [String: Any] {
        func vt(_ v: ValueType) -> [String: Any] { ["type": v.type, "unit": v.unit] }
        return [
            "sample_types": sampleTypes.map(vt),
            "period_type": periodType.map(vt) ?? NSNull(),
            "period": period,
            "time_nanos": timeNanos,
            "duration_nanos": durationNanos,
            "default_sample_type": defaultSampleType ?? NSNull(),
            "num_samples": numSamples,
            "num_locations": numLocations,
            "num_functions": numFunctions,
            "num_mappings": numMappings,
            "totals": totals.map { ["type": $0.type, "unit": $0.unit, "total": $0.total] as [String: Any] },
            "top": top.map { ["name": $0.name, "flat": $0.flat, "cum": $0.cum] as [String: Any] },
        ]
    }

    public func json() -> String {
        let data = (try? JSONSerialization.data(withJSONObject: jsonObject(), options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Human-readable summary in the shape of `go tool pprof -top`.
    public func text(file: String) -> String {
        var out = "File: \(file)\n"
        if defaultSampleIndex >= 0 {
            out += "Type: \(sampleTypes[defaultSampleIndex].type)\n"
        }
        if timeNanos != 0 {
            let date = Date(timeIntervalSince1970: Double(timeNanos) / 1e9)
            out += "Time: \(ISO8601DateFormatter().string(from: date))\n"
        }
        if durationNanos != 0 { out += "Duration: \(String(format: "%.2fs", Double(durationNanos) / 1e9))\n" }
        if let pt = periodType { out += "Period: \(period) \(pt.type)/\(pt.unit)\n" }
        out += "Sample types: " + sampleTypes.map { "\($0.type)/\($0.unit)" }.joined(separator: " ") + "\n"
        out += "Samples: \(numSamples), locations: \(numLocations), functions: \(numFunctions), mappings: \(numMappings)\n"
        for t in totals { out += "Total \(t.type)/\(t.unit): \(t.total)\n" }
        guard defaultSampleIndex >= 0 else { return out }
        let total = totals[defaultSampleIndex].total
        let unit = sampleTypes[defaultSampleIndex].unit
        func pct(_ v: Int64) -> String { total == 0 ? "-" : String(format: "%.2f%%", Double(v) / Double(total) * 100) }
        out += "Showing top \(top.count) nodes out of \(topNodeCount) (\(unit))\n"
        out += "\(pad("flat", 14)) \(pad("flat%", 7)) \(pad("sum%", 7)) \(pad("cum", 14)) \(pad("cum%", 7))\n"
        var sum: Int64 = 0
        for row in top {
            sum &+= row.flat
            out +=
                "\(pad(String(row.flat), 14)) \(pad(pct(row.flat), 7)) \(pad(pct(sum), 7)) \(pad(String(row.cum), 14)) \(pad(pct(row.cum), 7))  \(row.name)\n"
        }
        return out
    }

    private func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
    }
}
