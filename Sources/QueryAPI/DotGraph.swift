import Foundation
import ProfileModel
import Query

/// A merged tree as a Graphviz call graph, the way `go tool pprof -dot` draws one: a node per function
/// with its flat and cumulative value, an edge per caller → callee with the value that went through it,
/// and a legend with the total. As pprof does, functions under 0.5 % of the total and edges under 0.1 % are
/// left out, then only the `maxNodes` functions with the largest cumulative values and the heaviest edges
/// among them (three per node at most) are drawn, so Graphviz lays the graph out in well under a second;
/// the legend says how much of the total the drawn functions account for.
enum DotGraph {
    struct Node {
        var flat: Int64 = 0
        var cum: Int64 = 0
    }

    struct Edge: Hashable {
        var caller: Int32
        var callee: Int32
    }

    static func encode(_ tree: StackTree, names: NameTable, profileType: ProfileTypeID, maxNodes: Int) -> String {
        var nodes: [Int32: Node] = [:]
        var edges: [Edge: Int64] = [:]
        var total: Int64 = 0
        for (path, value) in tree.stacks() where value != 0 {
            total += value
            if let leaf = path.last { nodes[leaf, default: Node()].flat += value }
            // A recursive function counts once per stack, and so does each edge.
            var seen = Set<Int32>()
            var seenEdges = Set<Edge>()
            for (i, name) in path.enumerated() {
                if seen.insert(name).inserted { nodes[name, default: Node()].cum += value }
                if i > 0 {
                    let edge = Edge(caller: path[i - 1], callee: name)
                    if seenEdges.insert(edge).inserted { edges[edge, default: 0] += value }
                }
            }
        }
        let nodeFloor = total / 200
        let edgeFloor = total / 1000
        let kept = nodes.filter { $0.value.cum > 0 && $0.value.cum >= nodeFloor }
            .sorted { ($0.value.cum, $0.value.flat, $1.key) > ($1.value.cum, $1.value.flat, $0.key) }.prefix(max(1, maxNodes))
        var ids: [Int32: Int] = [:]
        for (i, entry) in kept.enumerated() { ids[entry.key] = i + 1 }
        let shownFlat = kept.reduce(Int64(0)) { $0 + $1.value.flat }
        let maxFlat = max(1, kept.map(\.value.flat).max() ?? 1)
        let unit = profileType.sampleUnit

        var out = "digraph \"\(escape(profileType.name))\" {\n"
        out += "node [style=filled fillcolor=\"#f8f8f8\"]\n"
        let legend = [
            "Type: \(profileType.sampleType)", "Total: \(total) \(unit)",
            "Showing \(kept.count) of \(nodes.count) nodes, accounting for \(shownFlat) \(unit), \(percent(shownFlat, total)) of \(total) total",
        ]
        out += "subgraph cluster_L { \"legend\" [shape=box fontsize=16 label=\"\(legend.map(escape).joined(separator: "\\l"))\\l\"] }\n"
        for (name, node) in kept {
            let label =
                "\(escape(names[name]))\\n\(node.flat) (\(percent(node.flat, total)))\\nof \(node.cum) (\(percent(node.cum, total)))"
            // Larger flat values get larger type, as pprof draws them.
            let fontSize = 8 + Int((32 * Double(node.flat) / Double(maxFlat)).rounded())
            out +=
                "N\(ids[name]!) [label=\"\(label)\" shape=box fontsize=\(fontSize) tooltip=\"\(escape(names[name])) (\(node.cum) \(unit))\"]\n"
        }
        var drawnEdges = 0
        for (edge, value) in edges.sorted(by: { ($0.value, $1.key.caller, $1.key.callee) > ($1.value, $0.key.caller, $0.key.callee) }) {
            guard value >= edgeFloor, drawnEdges < 3 * kept.count, let from = ids[edge.caller], let to = ids[edge.callee] else { continue }
            drawnEdges += 1
            let weight = max(1, Int(100 * Double(value) / Double(max(total, 1))))
            out += "N\(from) -> N\(to) [label=\" \(value)\" weight=\(weight)]\n"
        }
        out += "}\n"
        return out
    }

    static func percent(_ part: Int64, _ total: Int64) -> String {
        total == 0 ? "0%" : String(format: "%.2f%%", 100 * Double(part) / Double(total))
    }

    /// A DOT string: backslashes and quotes escaped, newlines folded.
    static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n", "\r": out += " "
            default: out.append(c)
            }
        }
        return out
    }
}
