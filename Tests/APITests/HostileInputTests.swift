import APICommon
import Foundation
import Hummingbird
import IngestAPI
import KilnProtos
import Logging
import PprofCodec
import Query
import QueryAPI
import SwiftProtobuf
import TestSupport
import Testing

/// Hostile requests at every ingest and query endpoint of real in-process servers (loopback, a fixed seed,
/// a bounded count): random and truncated protobuf, absurd length prefixes, deep nesting, wrong content
/// types, gzip bombs, absurd selectors, regular expressions and times. Every refusal must be a 4xx with a
/// message; never a 5xx or a crash; and a well-formed request of another tenant, interleaved, still works.
@Suite struct HostileInputTests {
    /// SplitMix64: the same sequence on every run.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
        mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
    }

    struct Shot {
        var method: String
        var path: String
        var headers: [(String, String)]
        var body: [UInt8]
        var what: String
    }

    static let queryMethods = [
        "ProfileTypes", "LabelNames", "LabelValues", "Series", "SelectMergeStacktraces",
        "SelectMergeProfile", "SelectSeries", "Diff", "GetProfileStats",
    ]

    static let absurdSelectors = [
        #"{service_name=~"(a+)+b"}"#, #"{service_name=~"(a|aa)*c"}"#, #"{service_name=~"(.*a){20}"}"#,
        #"{service_name=~"a{1000}{1000}"}"#, #"{service_name=~"(((((((((((((((((((("}"#, #"{service_name=~"\1"}"#,
        #"{service_name=~"(?=x)"}"#, "{" + String(repeating: "a=\"b\",", count: 2000) + "}", "{" + String(repeating: "{", count: 5000),
        #"{service_name=~""# + String(repeating: "(", count: 600) + String(repeating: ")", count: 600) + "\"}",
        "{\u{0}=\"\u{0}\"}", #"{__name__!~".*"}"#, "process_cpu", "}{", "{a=\"", String(repeating: "x", count: 9000),
    ]

    /// A valid push request of one profile.
    static func validPush(_ body: [UInt8]) throws -> [UInt8] {
        try PushIngestTests().pushRequest([body], labels: [("service_name", "fuzz")]).serializedBytes()
    }

    static func shots(seed: UInt64, count: Int, pushBody: [UInt8], queryBody: [UInt8]) -> [Shot] {
        var r = Random(state: seed)
        let contentTypes = [
            "application/proto", "application/json", "application/x-protobuf", "text/plain", "", "application/proto; charset=x",
            "multipart/form-data; boundary=", "multipart/form-data; boundary=zz", "application/octet-stream",
        ]
        var out: [Shot] = []
        for i in 0..<count {
            let isQuery = i % 2 == 1
            let path =
                isQuery
                ? QueryRoutes.servicePath + r.pick(queryMethods) : r.pick([IngestRoutes.connectPushPath, "/ingest", "/pyroscope/ingest"])
            let valid = isQuery ? queryBody : pushBody
            var headers = [("Content-Type", r.pick(contentTypes))]
            var body: [UInt8]
            var what: String
            switch r.below(8) {
            case 0:
                body = r.bytes(r.below(4096))
                what = "random bytes"
            case 1:
                body = Array(valid.prefix(r.below(max(valid.count, 1))))
                what = "truncated message"
            case 2:
                // Field 1, length-delimited, with a length prefix far beyond the body.
                body = [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F] + r.bytes(r.below(64))
                what = "huge length prefix"
            case 3:
                // Nested start-group tags deeper than any decoder should recurse.
                body = [UInt8](repeating: 0x0B, count: 10_000 + r.below(10_000))
                what = "deep nesting"
            case 4:
                body = valid
                let flip = r.below(max(valid.count, 1))
                if !body.isEmpty { body[flip] ^= UInt8(truncatingIfNeeded: r.next() | 1) }
                what = "flipped byte"
            case 5:
                body = Array(
                    #"{"series":[{"labels":[{"name":"\#(String(repeating: "x", count: r.below(5000)))","value":1}],"samples":[{"rawProfile":"!!"}]}],"labelSelector":"{a=~\"(a+)+\"}","start":-9223372036854775808,"end":9223372036854775807,"step":1e308}"#
                        .utf8)
                headers = [("Content-Type", "application/json")]
                what = "hostile JSON"
            case 6:
                body = r.bytes(r.below(512))
                headers.append(("Content-Encoding", r.pick(["gzip", "br", "zstd", "deflate, gzip"])))
                what = "bad compression"
            default:
                body = valid
                headers = [
                    ("Content-Type", "application/proto"),
                    ("X-Scope-OrgID", r.pick(["", "..", "a/b", String(repeating: "t", count: 200), "ok"])),
                ]
                what = "bad tenant"
            }
            var target = path
            if path != IngestRoutes.connectPushPath && !isQuery {
                let names = [
                    "", "svc", "svc{", "svc{a=b", "svc.cpu{a=\"b\"}", String(repeating: "{", count: 3000), "%ZZ", "svc{__name__=x}",
                ]
                let formats = ["pprof", "folded", "jfr", "trie", "", "lines", "%00"]
                target +=
                    "?name=\(r.pick(names))&format=\(r.pick(formats))&from=\(r.pick(["-1", "99999999999999999999", "now", "abc"]))&until=\(r.pick(["0", "-9223372036854775808", "1e9"]))&sampleRate=\(r.pick(["0", "-1", "x", "1e400"]))"
                target = target.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? path
            }
            out.append(Shot(method: "POST", path: target, headers: headers, body: body, what: what))
        }
        // Legacy render endpoints: absurd queries and times.
        for _ in 0..<count / 4 {
            let query = "process_cpu:cpu:nanoseconds:cpu:nanoseconds" + r.pick(absurdSelectors)
            let from = r.pick([
                "now-1000000000w", "99999999999999999999", "-5", "now-1h", "2026-13-45T99:00:00Z", "now-9223372036854775807s",
            ])
            let until = r.pick(["now", "0", "now+1h", "18446744073709551616"])
            var q = URLComponents()
            q.queryItems = [
                URLQueryItem(name: "query", value: r.pick([query, "", "x:y", String(repeating: ":", count: 10_000)])),
                URLQueryItem(name: "from", value: from), URLQueryItem(name: "until", value: until),
                URLQueryItem(name: "max-nodes", value: r.pick(["-1", "0", "99999999999999", "x"])),
            ]
            let diff = r.below(2) == 0
            var path = "/pyroscope/render?" + (q.percentEncodedQuery ?? "")
            if diff {
                path =
                    "/pyroscope/render-diff?"
                    + (q.percentEncodedQuery ?? "").replacingOccurrences(of: "query=", with: "leftQuery=")
                    .replacingOccurrences(of: "from=", with: "leftFrom=").replacingOccurrences(of: "until=", with: "leftUntil=")
                    + "&rightQuery=x"
            }
            out.append(Shot(method: "GET", path: path, headers: [("X-Scope-OrgID", "t1")], body: [], what: "absurd render"))
        }
        // Absurd selectors through the Connect API.
        for selector in absurdSelectors {
            var request = QueryAPITests.stacksRequest(selector)
            request.maxNodes = Int64.max
            out.append(
                Shot(
                    method: "POST", path: QueryRoutes.servicePath + "SelectMergeStacktraces",
                    headers: [("Content-Type", "application/proto"), ("X-Scope-OrgID", "t1")],
                    body: (try? request.serializedBytes()) ?? [], what: "absurd selector"))
            var series = Querier_V1_SelectSeriesRequest()
            series.profileTypeID = QueryAPITests.cpu
            series.labelSelector = selector
            series.step = Double.leastNonzeroMagnitude
            out.append(
                Shot(
                    method: "POST", path: QueryRoutes.servicePath + "SelectSeries",
                    headers: [("Content-Type", "application/proto"), ("X-Scope-OrgID", "t1")], body: (try? series.serializedBytes()) ?? [],
                    what: "absurd series"))
        }
        return out
    }

    /// Gzip bombs: small bodies that inflate far past every endpoint's limit.
    static func bombs() -> [Shot] {
        let bomb = Gzip.compress([UInt8](repeating: 0, count: 24 << 20), level: 9)
        let gz = [("Content-Encoding", "gzip")]
        return [
            Shot(
                method: "POST", path: IngestRoutes.connectPushPath, headers: [("Content-Type", "application/proto")] + gz, body: bomb,
                what: "gzip bomb push"),
            Shot(
                method: "POST", path: QueryRoutes.servicePath + "SelectMergeStacktraces",
                headers: [("Content-Type", "application/proto")] + gz,
                body: bomb, what: "gzip bomb query"),
            Shot(
                method: "POST", path: QueryRoutes.servicePath + "LabelNames",
                headers: [("Content-Type", "application/json"), ("Connect-Content-Encoding", "gzip")],
                body: bomb, what: "gzip bomb query (connect header)"),
        ]
    }

    @Test(.requires(.fixtures)) func hostileRequestsGetClearRefusalsAndOthersAreServed() async throws {
        let profile = try fixture("go_heap_pyroscope.pb.gz")
        let pushBody = try Self.validPush(profile)
        let queryBody = try QueryAPITests.stacksRequest().serializedBytes() as [UInt8]
        var ingestOptions = IngestOptions()
        ingestOptions.maxBodyBytes = 8 << 20
        let options = ingestOptions
        let publisher = InMemoryRawPublisher()
        try await SyntheticBlocks.with { blocks in
            let router = Router()
            var logger = Logger(label: "test.hostile")
            logger.logLevel = .critical
            IngestRoutes.register(on: router, ingester: PushIngester(publisher: publisher, options: options, logger: logger))
            QueryRoutes.register(on: router, engine: QueryEngine(store: blocks.store), logger: logger)
            let shots = Self.shots(seed: 0x4B49_4C4E, count: 240, pushBody: pushBody, queryBody: queryBody) + Self.bombs()
            try await withServer(router) { url in
                var refusals = 0
                var accepted = 0
                let started = ContinuousClock.now
                for (i, shot) in shots.enumerated() {
                    let result =
                        shot.method == "GET"
                        ? try await get(url + shot.path, headers: shot.headers)
                        : try await post(url + shot.path, body: shot.body, headers: shot.headers)
                    #expect(
                        result.status < 500, "\(shot.what) at \(shot.path.prefix(120)): HTTP \(result.status) \(result.text.prefix(300))")
                    if result.status != 200 {
                        refusals += 1
                        #expect((400..<500).contains(result.status), "\(shot.what): HTTP \(result.status)")
                        #expect(
                            !result.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                            "\(shot.what): a refusal without a message")
                    } else {
                        accepted += 1
                    }
                    if i % 20 == 0 {
                        // Another tenant's well-formed traffic is still served.
                        let push = try await post(
                            url + IngestRoutes.connectPushPath, body: pushBody,
                            headers: [("Content-Type", "application/proto"), ("X-Scope-OrgID", "good")])
                        #expect(push.status == 200, "\(push.text)")
                        let flame = try await QueryAPITests.call(
                            url, "SelectMergeStacktraces", QueryAPITests.stacksRequest(),
                            as: Querier_V1_SelectMergeStacktracesResponse.self, tenant: "t1")
                        #expect(flame.flamegraph.total > 0)
                    }
                }
                let elapsed = ContinuousClock.now - started
                print(
                    "hostile input: \(shots.count) requests, \(refusals) refused with 4xx, \(accepted) accepted, 0 5xx expected; \(elapsed)"
                )
                // `/ingest` and Connect forward a payload without decoding the pprof (the normaliser does, and
                // sends bad ones to the DLQ), so a mutation that keeps the request's form is accepted.
                #expect(refusals > shots.count / 2)
            }
        }
    }
}
