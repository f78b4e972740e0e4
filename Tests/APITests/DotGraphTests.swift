import Foundation
import KilnProtos
import ProfileModel
import Query
import TestSupport
import Testing

@testable import QueryAPI

/// The DOT call graph ("Explain flame graph" in Drilldown, `format=dot`): Graphviz renders it, and its
/// numbers are the merged tree's.
@Suite struct DotGraphTests {
    typealias Q = QueryAPITests

    static func flat(_ dot: String) -> [String: Int64] {
        // Node lines: N1 [label="name\nFLAT (x%)\nof CUM (y%)" ...]
        var out: [String: Int64] = [:]
        for line in dot.split(separator: "\n") where line.hasPrefix("N") && line.contains("[label=\"") && !line.contains("->") {
            let label = line.split(separator: "\"")[1]
            let parts = label.components(separatedBy: "\\n")
            guard parts.count == 3, let value = Int64(parts[1].split(separator: " ")[0]) else { continue }
            out[parts[0]] = value
        }
        return out
    }

    @Test("every function's flat value is its leaf total; with every node drawn they add up to the total")
    func numbers() throws {
        var names = NameTable()
        var tree = StackTree()
        let stacks: [([String], Int64)] = [
            (["main", "work", "sort"], 70), (["main", "work", "hash"], 20), (["main", "gc"], 9), (["main"], 1),
            (["main", "rec", "rec", "rec"], 5),
        ]
        for (frames, v) in stacks { tree.add(rootFirst: frames.map { names.intern($0) }, value: v) }
        let type = try #require(ProfileTypeID(parsing: Q.cpu))
        let dot = DotGraph.encode(tree, names: names, profileType: type, maxNodes: 100)
        #expect(Self.flat(dot) == ["sort": 70, "hash": 20, "gc": 9, "main": 1, "rec": 5, "work": 0])
        #expect(dot.contains("Total: 105 nanoseconds"))
        #expect(dot.contains("of 105 (100.00%)"), "main's cumulative value is the total")
        #expect(dot.contains("of 5 (4.76%)"), "a recursive function counts once per stack")
        let cut = DotGraph.encode(tree, names: names, profileType: type, maxNodes: 3)
        #expect(Set(Self.flat(cut).keys) == ["main", "work", "sort"], "the largest cumulative values are kept")
        #expect(cut.contains("Showing 3 of 6 nodes"))
    }

    @Test("/pyroscope/render?format=dot and SelectMergeStacktraces format DOT render with Graphviz", .requires(.graphviz))
    func rendersWithGraphviz() async throws {
        try await Q().withQueryServer { blocks, url in
            let query = "\(Q.cpu){service_name=\"api\"}".addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            let render = try await get(
                url + "/pyroscope/render?query=\(query)&from=\(Q.startMillis)&until=\(Q.endMillis)&format=dot&max-nodes=100",
                headers: [("X-Scope-OrgID", "t1")])
            #expect(render.status == 200, "\(render.text.prefix(300))")
            #expect(render.contentType?.hasPrefix("text/vnd.graphviz") == true)
            let total = blocks.samples(type: cpuType, services: ["api"]).reduce(0) { $0 + $1.value }
            #expect(render.text.contains("Total: \(total) "))
            try Self.renderSVG(render.text)

            var request = Q.stacksRequest()
            request.format = .dot
            request.maxNodes = 10
            let answer = try await Q.call(
                url, "SelectMergeStacktraces", request, as: Querier_V1_SelectMergeStacktracesResponse.self, tenant: "t1")
            #expect(answer.dot.contains("Showing 10 of"))
            try Self.renderSVG(answer.dot)
        }
    }

    static func renderSVG(_ dot: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/dot")
        process.arguments = ["-Tsvg"]
        let input = Pipe()
        let output = Pipe()
        let errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        input.fileHandleForWriting.write(Data(dot.utf8))
        try input.fileHandleForWriting.close()
        let svg = output.fileHandleForReading.readDataToEndOfFile()
        let problems = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "dot -Tsvg: \(problems)")
        #expect(String(decoding: svg, as: UTF8.self).contains("<svg"))
    }
}
