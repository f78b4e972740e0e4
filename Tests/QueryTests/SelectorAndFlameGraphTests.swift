import ProfileModel
import Query
import TestSupport
import Testing

@Suite struct SelectorTests {
    @Test func everyOperatorMatchesAsPrometheusDoes() throws {
        let labels = LabelSet(["service_name": "api", "env": "prod"])
        func matches(_ text: String) throws -> Bool { try LabelSelector(parsing: text).matches(labels) }
        #expect(try matches(""))
        #expect(try matches("{}"))
        #expect(try matches(#"{service_name="api"}"#))
        #expect(try !matches(#"{service_name="db"}"#))
        #expect(try matches(#"{service_name!="db", env="prod"}"#))
        #expect(try matches(#"{service_name=~"a.*"}"#))
        #expect(try !matches(#"{service_name=~"p"}"#), "regular expressions match the whole value")
        #expect(try matches(#"{service_name!~"db|worker"}"#))
        #expect(try matches(#"{region=""}"#), "a missing label matches the empty string")
        #expect(try !matches(#"{region=~".+"}"#))
        #expect(try matches(#"{ service_name = 'api' , }"#))
        #expect(try LabelSelector(parsing: #"{a="x\"y"}"#).matchers.first?.value == "x\"y")
    }

    @Test("quoted label names, as Pyroscope and Prometheus 3 write names with dots or dashes")
    func quotedLabelNames() throws {
        let labels = LabelSet(["k8s.namespace": "shop", "service-tier": "gold", "service_name": "api"])
        let selector = try LabelSelector(parsing: #"{"k8s.namespace"="shop", 'service-tier'=~"g.*", service_name="api"}"#)
        #expect(selector.matchers.map(\.name) == ["k8s.namespace", "service-tier", "service_name"])
        #expect(selector.matches(labels))
        #expect(try !LabelSelector(parsing: #"{"k8s.namespace"="prod"}"#).matches(labels))
        #expect(throws: QueryError.self) { try LabelSelector(parsing: #"{""="x"}"#) }
    }

    @Test(arguments: [
        (#"{service_name="api""#, "expected \",\" or \"}\""),
        (#"{service_name}"#, "expected one of = != =~ !~"),
        (#"{1abc="x"}"#, "expected a label name"),
        (#"{a="x}"#, "unterminated string"),
        (#"{a=x}"#, "expected a quoted value"),
        (#"{a="x"} junk"#, "unexpected text after"),
        (#"{a=~"("}"#, "invalid regular expression for a"),
        ("service_name", "expected \"{\""),
    ])
    func malformedSelectorsNameTheFault(text: String, fault: String) {
        #expect {
            try LabelSelector(parsing: text)
        } throws: { error in
            (error as? QueryError).map { $0.message.contains(fault) } ?? false
        }
    }

    @Test func hugeSelectorsAreRefused() {
        let many = "{" + (0..<100).map { "l\($0)=\"v\"" }.joined(separator: ",") + "}"
        #expect(throws: QueryError.self) { try LabelSelector(parsing: many) }
        let long = "{a=~\"" + String(repeating: "a", count: 2000) + "\"}"
        #expect(throws: QueryError.self) { try LabelSelector(parsing: long) }
    }

    @Test func renderQueriesSplitTypeAndSelector() throws {
        let q = try ProfileQuery(parsing: #"process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="api"}"#)
        #expect(q.profileType.id == "process_cpu:cpu:nanoseconds:cpu:nanoseconds")
        #expect(q.selector.matchers.map(\.description) == [#"service_name="api""#])
        #expect(throws: QueryError.self) { try ProfileQuery(parsing: #"cpu{service_name="api"}"#) }
    }
}

/// Random stacks over a small name pool, root first, with values.
func randomStacks(count: Int, seed: UInt64) -> [([String], Int64)] {
    var rng = SplitMix(state: seed)
    return (0..<count).map { _ in
        let depth = 1 + rng.below(7)
        return ((0..<depth).map { d in d == 0 ? "main" : "fn\(rng.below(9))" }, Int64(1 + rng.below(1000)))
    }
}

/// Rebuilds root-first paths with their self values from decoded flame-graph nodes: a node's parent is the
/// node on the level above whose [x, x+total) span holds its x.
func paths(of graph: FlameGraphLevels, side: Int = 0) -> [String: (total: Int64, selfValue: Int64)] {
    let nodes = graph.decodedNodes(side: side)
    var byLevel: [[(x: Int64, total: Int64, path: String)]] = []
    var out: [String: (total: Int64, selfValue: Int64)] = [:]
    for n in nodes {
        if byLevel.count == n.level { byLevel.append([]) }
        var path = n.name
        if n.level > 0, let parent = byLevel[n.level - 1].last(where: { $0.total > 0 && $0.x <= n.x && n.x < $0.x + $0.total }) {
            path = parent.path + ";" + n.name
        }
        byLevel[n.level].append((n.x, n.total, path))
        let old = out[path] ?? (0, 0)
        out[path] = (old.total + n.total, old.selfValue + n.selfValue)
    }
    return out
}

@Suite struct FlameGraphTests {
    func tree(_ stacks: [([String], Int64)], names: inout NameTable, sides: Int = 1, side: Int = 0) -> StackTree {
        var tree = StackTree(sides: sides)
        for (stack, value) in stacks { tree.add(rootFirst: stack.map { names.intern($0) }, value: value, side: side) }
        return tree
    }

    @Test func levelsDecodeBackToTheMergedTree() {
        var names = NameTable()
        let stacks = randomStacks(count: 300, seed: 7)
        let graph = FlameGraphLevels(tree: tree(stacks, names: &names), nameTable: names, maxNodes: 100_000)
        // Expected: every prefix's total and every path's self, straight from the stacks.
        var want: [String: (total: Int64, selfValue: Int64)] = [:]
        for (stack, value) in stacks {
            var path = "total"
            want[path, default: (0, 0)].total += value
            for name in stack {
                path += ";" + name
                want[path, default: (0, 0)].total += value
            }
            want[path, default: (0, 0)].selfValue += value
        }
        let got = paths(of: graph)
        #expect(got.count == want.count)
        for (path, w) in want { #expect(got[path]?.total == w.total && got[path]?.selfValue == w.selfValue, "\(path)") }
        #expect(graph.names.first == "total")
        #expect(graph.total == stacks.reduce(0) { $0 + $1.1 })
        #expect(graph.maxSelf == want.values.map(\.selfValue).max())
    }

    @Test func maxNodesFoldsSmallNodesIntoOtherAndKeepsTotals() {
        var names = NameTable()
        let stacks = randomStacks(count: 2000, seed: 11)
        let full = tree(stacks, names: &names)
        for limit in [1, 5, 20, 60] {
            let graph = FlameGraphLevels(tree: full, nameTable: names, maxNodes: limit)
            let nodes = graph.decodedNodes()
            #expect(nodes.filter { $0.name != "other" && $0.level > 0 }.count <= limit + 2, "limit \(limit)")
            #expect(graph.total == full.total())
            // Every level's totals stay within the root; the first level's sum (plus root self) is the root.
            let root = nodes.first!
            #expect(nodes.filter { $0.level == 1 }.reduce(0) { $0 + $1.total } + root.selfValue == root.total)
            // Each node's self plus its children's totals is its total: nothing dropped at any depth.
            let byLevel = Dictionary(grouping: nodes, by: \.level)
            for n in nodes {
                let children = (byLevel[n.level + 1] ?? []).filter { $0.x >= n.x && $0.x < n.x + n.total }
                if !children.isEmpty || n.total != n.selfValue {
                    #expect(children.reduce(0) { $0 + $1.total } + n.selfValue == n.total, "limit \(limit) \(n.name)")
                }
            }
        }
    }

    @Test func diffCarriesBothSides() {
        var names = NameTable()
        let left = randomStacks(count: 200, seed: 1)
        let right = randomStacks(count: 200, seed: 2)
        var both = tree(left, names: &names, sides: 2, side: 0)
        let r = tree(right, names: &names)
        both.merge(r, into: 1)
        let graph = FlameGraphLevels(tree: both, nameTable: names, maxNodes: 100_000)
        let leftTotal = left.reduce(0) { $0 + $1.1 }
        let rightTotal = right.reduce(0) { $0 + $1.1 }
        #expect(graph.isDiff && graph.leftTicks == leftTotal && graph.rightTicks == rightTotal)
        #expect(graph.total == leftTotal + rightTotal)
        #expect(graph.levels.allSatisfy { $0.count % 7 == 0 })
        var leftNames = NameTable()
        let leftOnly = FlameGraphLevels(tree: tree(left, names: &leftNames), nameTable: leftNames, maxNodes: 100_000)
        let fromDiff = paths(of: graph, side: 0).filter { $0.value.total != 0 }
        let fromSingle = paths(of: leftOnly)
        #expect(fromDiff.count == fromSingle.count)
        for (p, v) in fromSingle { #expect(fromDiff[p]?.total == v.total && fromDiff[p]?.selfValue == v.selfValue, "\(p)") }
    }
}
