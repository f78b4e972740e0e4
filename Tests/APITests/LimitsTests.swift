import APICommon
import Foundation
import Hummingbird
import IngestAPI
import KilnProtos
import Logging
import ProfileModel
import Query
import QueryAPI
import SwiftProtobuf
import TestSupport
import Testing

/// Per-tenant limits: each refusal has its documented status and names the limit; overrides from a limits
/// file change one tenant only.
@Suite struct LimitsTests {
    static let headers = [("Content-Type", "application/proto")]

    func push(_ url: String, tenant: String, labels: [(String, String)], body: [UInt8]) async throws -> HTTPResult {
        let request = try PushIngestTests().pushRequest([body], labels: labels).serializedBytes() as [UInt8]
        return try await post(url + IngestRoutes.connectPushPath, body: request, headers: Self.headers + [("X-Scope-OrgID", tenant)])
    }

    @Test(.requires(.fixtures)) func labelLimitsNameTheLimit() async throws {
        let body = try fixture("go_heap_pyroscope.pb.gz")
        var options = IngestOptions()
        options.maxLabelNames = 4
        options.maxLabelNameLength = 16
        options.maxLabelValueLength = 32
        try await withIngestServer(publisher: InMemoryRawPublisher(), options: options) { url in
            let many = (0..<5).map { ("l\($0)", "v") }
            let tooMany = try await push(url, tenant: "a", labels: many, body: body)
            #expect(tooMany.status == 400 && tooMany.text.contains("max_label_names_per_series = 4"), "\(tooMany.text)")
            let longName = try await push(url, tenant: "a", labels: [(String(repeating: "n", count: 17), "v")], body: body)
            #expect(longName.status == 400 && longName.text.contains("max_label_name_length = 16"), "\(longName.text)")
            let longValue = try await push(url, tenant: "a", labels: [("service_name", String(repeating: "v", count: 5000))], body: body)
            #expect(longValue.status == 400 && longValue.text.contains("max_label_value_length = 32"), "\(longValue.text)")
            #expect(longValue.body.count < 1000, "the refusal does not echo the whole value")
            let legacy = try await post(
                url + "/ingest?name=svc%7B" + (0..<5).map { "k\($0)=v" }.joined(separator: ",") + "%7D&format=pprof", body: body)
            #expect(legacy.status == 400 && legacy.text.contains("max_label_names_per_series"), "\(legacy.text)")
            #expect(try await push(url, tenant: "a", labels: [("service_name", "ok")], body: body).status == 200)
        }
    }

    @Test(.requires(.fixtures)) func activeSeriesPerTenant() async throws {
        let body = try fixture("go_heap_pyroscope.pb.gz")
        var options = IngestOptions()
        options.maxSeriesPerTenant = 3
        let publisher = InMemoryRawPublisher()
        try await withIngestServer(publisher: publisher, options: options) { url in
            for i in 0..<3 {
                #expect(try await push(url, tenant: "a", labels: [("service_name", "s\(i)")], body: body).status == 200)
            }
            let refused = try await push(url, tenant: "a", labels: [("service_name", "s3")], body: body)
            #expect(refused.status == 429)
            #expect(refused.connectCode == "resource_exhausted")
            #expect(refused.text.contains("max_series = 3"), "\(refused.text)")
            #expect(
                try await push(url, tenant: "a", labels: [("service_name", "s1")], body: body).status == 200, "a known series still flows")
            #expect(
                try await push(url, tenant: "b", labels: [("service_name", "s3")], body: body).status == 200, "tenants are counted apart")
        }
        #expect(publisher.envelopes.count == 5)
    }

    @Test func activeSeriesExpireAfterTheWindow() {
        let expiring = ActiveSeries(window: .zero)
        let lasting = ActiveSeries(window: .seconds(3600))
        for series in [expiring, lasting] { #expect(series.admit(tenant: "a", series: [1, 2], limit: 2).admitted) }
        #expect(lasting.admit(tenant: "a", series: [1], limit: 2).admitted, "known series are not new")
        #expect(!lasting.admit(tenant: "a", series: [3], limit: 2).admitted)
        #expect(expiring.admit(tenant: "a", series: [3], limit: 2).admitted, "series past the window no longer count")
        #expect(expiring.count(tenant: "a") == 1)
    }

    @Test(.requires(.fixtures)) func overridesChangeOneTenant() async throws {
        let body = try fixture("go_heap_pyroscope.pb.gz")
        let overrides = try LimitOverrides(json: Array(#"{"tenants": {"big": {"max_series": 3, "max_label_names_per_series": 8}}}"#.utf8))
        var options = IngestOptions()
        options.maxSeriesPerTenant = 1
        options.overrides = overrides
        try await withIngestServer(publisher: InMemoryRawPublisher(), options: options) { url in
            for i in 0..<3 {
                #expect(
                    try await push(url, tenant: "big", labels: [("service_name", "s\(i)"), ("a", "1"), ("b", "2")], body: body).status
                        == 200)
            }
            #expect(try await push(url, tenant: "small", labels: [("service_name", "s0")], body: body).status == 200)
            let refused = try await push(url, tenant: "small", labels: [("service_name", "s1")], body: body)
            #expect(refused.status == 429 && refused.text.contains("max_series = 1"))
        }
        for bad in [
            #"{"tenants": {"a": {"max_serie": 1}}}"#, #"{"tenants": {"a": {"max_series": -1}}}"#, #"{"tenants": {"a/b": {}}}"#, "[]",
        ] {
            #expect(throws: AuthFileError.self) { try LimitOverrides(json: Array(bad.utf8)) }
        }
    }

    func withQueryServer(_ options: QueryOptions, _ body: @Sendable @escaping (String) async throws -> Void) async throws {
        try await SyntheticBlocks.with { blocks in
            let router = Router()
            var logger = Logger(label: "test.query")
            logger.logLevel = .warning
            QueryRoutes.register(on: router, engine: QueryEngine(store: blocks.store), logger: logger, options: options)
            try await withServer(router) { url in try await body(url) }
        }
    }

    @Test func queryTimeRangeIsBounded() async throws {
        var options = QueryOptions()
        options.maxQueryLength = .seconds(3600)
        options.overrides = try LimitOverrides(json: Array(#"{"tenants": {"wide": {"max_query_length_hours": 3}}}"#.utf8))
        try await withQueryServer(options) { url in
            let end = QueryAPITests.endMillis
            let twoHours = QueryAPITests.stacksRequest(from: end - 2 * 3_600_000, to: end)
            let refused = try await post(
                url + QueryRoutes.servicePath + "SelectMergeStacktraces", body: try twoHours.serializedBytes(),
                headers: Self.headers + [("X-Scope-OrgID", "t1")])
            #expect(refused.status == 400)
            #expect(refused.connectCode == "invalid_argument")
            #expect(refused.text.contains("max_query_length_hours = 1"), "\(refused.text)")
            _ = try await QueryAPITests.call(
                url, "SelectMergeStacktraces", twoHours, as: Querier_V1_SelectMergeStacktracesResponse.self, tenant: "wide")
            _ = try await QueryAPITests.call(
                url, "SelectMergeStacktraces", QueryAPITests.stacksRequest(),
                as: Querier_V1_SelectMergeStacktracesResponse.self, tenant: "t1")
            // Without a start the default look-back (7 days) shrinks to what the tenant may query.
            _ = try await QueryAPITests.call(
                url, "ProfileTypes", Querier_V1_ProfileTypesRequest(),
                as: Querier_V1_ProfileTypesResponse.self, tenant: "t1")
            let render = try await get(
                url + "/pyroscope/render?query=process_cpu:cpu:nanoseconds:cpu:nanoseconds%7B%7D&from=now-2h&until=now",
                headers: [("X-Scope-OrgID", "t1")])
            #expect(render.status == 400 && render.text.contains("max_query_length_hours"))
            // Times far outside Int64 nanoseconds are refused, not trapped on.
            let absurd = try await get(
                url + "/pyroscope/render?query=process_cpu:cpu:nanoseconds:cpu:nanoseconds%7B%7D&from=0&until=99999999999999",
                headers: [("X-Scope-OrgID", "wide")])
            #expect(absurd.status == 400, "\(absurd.text)")
        }
    }

    @Test func maxNodesIsClampedPerTenant() async throws {
        var options = QueryOptions()
        options.maxFlameGraphNodes = 6
        try await withQueryServer(options) { url in
            let clamped = try await QueryAPITests.call(
                url, "SelectMergeStacktraces", QueryAPITests.stacksRequest(maxNodes: 100_000),
                as: Querier_V1_SelectMergeStacktracesResponse.self, tenant: "t1"
            ).flamegraph
            let six = try await QueryAPITests.call(
                url, "SelectMergeStacktraces", QueryAPITests.stacksRequest(maxNodes: 6),
                as: Querier_V1_SelectMergeStacktracesResponse.self, tenant: "t1"
            ).flamegraph
            #expect(clamped == six)
            #expect(clamped.names.contains("other"))
        }
    }
}
