import Foundation
import Hummingbird
import Logging
import Query
import QueryAPI
import TestSupport
import Testing

/// `GET /kiln/v1/regressions` over blocks Kiln wrote: the report's sides hold what the stored samples give,
/// and a parameter it does not take, or a bad one, is refused by name.
@Suite struct RegressionRouteTests {
    static let query = #"process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="api"}"#

    func withRoutes(_ body: @Sendable @escaping (SyntheticBlocks, String) async throws -> Void) async throws {
        try await SyntheticBlocks.with { blocks in
            var logger = Logger(label: "test.regressions")
            logger.logLevel = .warning
            let engine = QueryEngine(store: blocks.store)
            try await withServer({ router in QueryRoutes.register(on: router, engine: engine, logger: logger) }) { base in
                try await body(blocks, base)
            }
        }
    }

    static func url(_ base: String, _ parameters: [(String, String)]) -> String {
        var c = URLComponents(string: base + "/kiln/v1/regressions")!
        c.queryItems = parameters.map { URLQueryItem(name: $0.0, value: $0.1) }
        return c.url!.absoluteString
    }

    @Test func sidesHoldTheStoredSamples() async throws {
        try await withRoutes { blocks, base in
            let split = SyntheticBlocks.base + 6_000_000_000
            let (from, until) = (SyntheticBlocks.everything.lowerBound, SyntheticBlocks.everything.upperBound)
            let answer = try await get(
                Self.url(
                    base,
                    [
                        ("baselineQuery", Self.query), ("baselineFrom", "\(from / 1_000_000)"),
                        ("baselineUntil", "\((split - 1) / 1_000_000)"),
                        ("comparisonFrom", "\(split / 1_000_000)"), ("comparisonUntil", "\(until / 1_000_000)"), ("limit", "5"),
                    ]), headers: [("X-Scope-OrgID", "t1")])
            #expect(answer.status == 200, "\(String(decoding: answer.body, as: UTF8.self))")
            let report = try JSONDecoder().decode(RegressionReport.self, from: Data(answer.body))
            for (side, range) in [(report.baseline, from...split - 1), (report.comparison, split...until)] {
                let samples = blocks.samples(type: cpuType, services: ["api"], time: range)
                #expect(side.total == samples.reduce(0) { $0 + $1.value })
                #expect(side.profiles == Set(samples.map(\.time)).count)
                #expect(side.query == Self.query)
            }
            #expect(report.unit == "nanoseconds")
            #expect(report.regressions.count + report.improvements.count + report.insignificant.count <= 15)
        }
    }

    @Test func badParametersAreRefusedByName() async throws {
        try await withRoutes { _, base in
            let cases: [([(String, String)], String)] = [
                ([("baselineQuery", Self.query), ("comparisonFrom", "now-1h"), ("leftQuery", "x")], "leftQuery"),
                ([("comparisonFrom", "now-1h")], "baselineQuery is required"),
                (
                    [("baselineQuery", Self.query), ("comparisonQuery", #"memory:alloc_space:bytes:space:bytes{}"#)],
                    "different profile types"
                ),
                ([("baselineQuery", Self.query), ("alpha", "2")], "alpha"),
                ([("baselineQuery", Self.query), ("baselineFrom", "yesterday")], "baselineFrom"),
            ]
            for (parameters, named) in cases {
                let answer = try await get(Self.url(base, parameters), headers: [("X-Scope-OrgID", "t1")])
                let body = String(decoding: answer.body, as: UTF8.self)
                #expect(answer.status == 400 && body.contains(named), "\(parameters): \(answer.status) \(body)")
            }
        }
    }
}
