import APICommon
import Foundation
import Hummingbird
import IngestAPI
import KilnProtos
import Logging
import Query
import QueryAPI
import TestSupport
import Testing

/// The UI in headless Chromium against the real query routes and engine over blocks Kiln wrote: the table
/// must show each function's self value as the stored samples give it, in the single and the diff view.
@Suite(.requires(.chromium))
struct UIRealQueryBrowserTests {
    static let from = SyntheticBlocks.everything.lowerBound / 1_000_000
    static let until = SyntheticBlocks.everything.upperBound / 1_000_000

    func render(_ path: String, name: String, tenant: String = "anonymous") async throws -> (SyntheticBlocks, String) {
        try await SyntheticBlocks.with(tenant: tenant) { blocks in
            let router = Router()
            var logger = Logger(label: "test.ui")
            logger.logLevel = .warning
            QueryRoutes.register(on: router, engine: QueryEngine(store: blocks.store), logger: logger)
            UIRoutes.register(on: router, assets: .bundled)
            let dom = try await withServer(router) { base in try await Chromium.render(base + path, name: name) }
            return (blocks, dom)
        }
    }

    static func selfByFunction(_ samples: [FlatSample]) -> [String: Int64] {
        var out: [String: Int64] = [:]
        for s in samples { out[s.stack.first!, default: 0] += s.value }
        return out
    }

    @Test func flameGraphOfStoredBlocks() async throws {
        let query = #"process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="api"}"#.addingPercentEncoding(
            withAllowedCharacters: .alphanumerics)!
        let (blocks, dom) = try await render("/?query=\(query)&from=\(Self.from)&until=\(Self.until)", name: "real-single")
        #expect(bodyState(dom) == "ready")
        let want = Self.selfByFunction(blocks.samples(type: cpuType, services: ["api"]))
        let rows = tableRows(dom)
        #expect(!rows.isEmpty)
        for row in rows where (Int64(row["data-self"] ?? "") ?? 0) > 0 {
            #expect(Int64(row["data-self"] ?? "") == want[row["data-function"] ?? ""], "self of \(row["data-function"] ?? "?")")
        }
        let top = want.max { ($0.value, $1.key) < ($1.value, $0.key) }!.key
        #expect(rows.first?["data-function"] == top)
    }

    @Test func diffOfTwoStoredRanges() async throws {
        let query = #"process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="db"}"#.addingPercentEncoding(
            withAllowedCharacters: .alphanumerics)!
        let split = (SyntheticBlocks.base + 6_000_000_000) / 1_000_000
        let path =
            "/?view=diff&query=\(query)&from=\(Self.from)&until=\(Self.until)&leftFrom=\(Self.from)&leftUntil=\(split - 1)"
            + "&rightFrom=\(split)&rightUntil=\(Self.until)"
        let (blocks, dom) = try await render(path, name: "real-diff")
        #expect(bodyState(dom) == "ready")
        let left = Self.selfByFunction(
            blocks.samples(type: cpuType, services: ["db"], time: SyntheticBlocks.everything.lowerBound...split * 1_000_000 - 1))
        let right = Self.selfByFunction(
            blocks.samples(type: cpuType, services: ["db"], time: split * 1_000_000...SyntheticBlocks.everything.upperBound))
        let rows = tableRows(dom)
        // Every function with self time on either side has a row (callers without self time have rows too).
        let withSelf = rows.filter { Int64($0["data-left-self"] ?? "") ?? 0 > 0 || Int64($0["data-right-self"] ?? "") ?? 0 > 0 }
        #expect(Set(withSelf.compactMap { $0["data-function"] }) == Set(left.keys).union(right.keys))
        for row in rows {
            let name = row["data-function"] ?? ""
            #expect(Int64(row["data-left-self"] ?? "") == left[name] ?? 0, "baseline self of \(name)")
            #expect(Int64(row["data-right-self"] ?? "") == right[name] ?? 0, "comparison self of \(name)")
        }
    }
}
