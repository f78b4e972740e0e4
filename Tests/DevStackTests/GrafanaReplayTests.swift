import AsyncHTTPClient
import Foundation
import KilnProtos
import NIOCore
import PprofCodec
import SwiftProtobuf
import TestSupport
import Testing

/// The calls Grafana's Pyroscope data source (connect-go, binary protobuf) and the Profiles Drilldown app
/// (JSON through Grafana's proxy) make, in the order a user's session makes them — written from their
/// public source (docs/query.md lists where) — replayed against `kiln dev` holding a real Go CPU profile
/// with span labels. Every call must answer 200 (no 404, no `unimplemented`: either makes the app show an
/// error) and each answer is checked for content against go tool pprof's facts about the file.
@Suite(.serialized) struct GrafanaReplayTests {
    static let file = "go_cpu_span_id_labels.pb.gz"
    static let cpu = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
    static let tenant = "grafana-replay"

    @Test(.requires(.kilnDev, .fixture("pprof/go_cpu_span_id_labels.pb.gz")))
    func dataSourceAndDrilldownSessions() async throws {
        let pprofDir = TestEnvironment.fixturesDir.appendingPathComponent("pprof")
        let bytes = try [UInt8](Data(contentsOf: pprofDir.appendingPathComponent(Self.file)))
        let expected = try #require(
            ((try JSONSerialization.jsonObject(with: Data(contentsOf: pprofDir.appendingPathComponent("EXPECTED.json"))) as? [String: Any])?[
                "files"] as? [String: Any])?[Self.file] as? [String: Any])
        let fileLevel = try #require(expected["file_level"] as? [String: Any])
        let cpuTotal = try #require((fileLevel["totals"] as? [Int64])?[1])
        let timeMillis = try #require(fileLevel["time_nanos"] as? Int64) / 1_000_000
        let (start, end) = (timeMillis - 3_600_000, timeMillis + 3_600_000)
        // The span IDs the file's samples carry, and the CPU they account for.
        let profile = try PprofDecoder().decode(bytes)
        var spanCPU: [String: Int64] = [:]
        for s in 0..<profile.sampleCount {
            for label in profile.labels(s) where profile.string(label.key) == "span_id" {
                spanCPU[profile.string(label.str), default: 0] += Array(profile.values(s))[1]
            }
        }
        let (someSpan, someSpanCPU) = try #require(spanCPU.max { $0.value < $1.value })

        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-grafana-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        try await withHTTPClient { client in
            try await KilnDevHarness.with(dataDir: dataDir, client: client) { dev in
                _ = try await dev.waitUntilReady()
                #expect(try await dev.push(pprof: bytes, name: "checkout.cpu", tenant: Self.tenant).status == 200)
                _ = try await dev.waitForNewBlock(tenant: Self.tenant)
                // Pyroscope's /ingest keeps the whole application name, suffix included, as service_name.
                let service = #"{service_name="checkout.cpu"}"#

                // Grafana's data source: editor, variables, panel queries, Tempo's "Profiles for this span".
                func proto<Resp: SwiftProtobuf.Message>(_ method: String, _ request: some SwiftProtobuf.Message, as: Resp.Type) async throws
                    -> Resp
                {
                    var r = HTTPClientRequest(url: dev.baseURL + "/querier.v1.QuerierService/" + method)
                    r.method = .POST
                    for (name, value) in [
                        ("Content-Type", "application/proto"), ("Connect-Protocol-Version", "1"), ("Accept-Encoding", "gzip"),
                        ("X-Scope-OrgID", Self.tenant), ("Accept", "*/*; allow-utf8-labelnames=true"),
                    ] { r.headers.add(name: name, value: value) }
                    let requestBytes: [UInt8] = try request.serializedBytes()
                    r.body = .bytes(ByteBuffer(bytes: requestBytes))
                    let response = try await client.execute(r, timeout: .seconds(30))
                    var body = try await response.body.collect(upTo: 64 << 20)
                    var data = body.readBytes(length: body.readableBytes) ?? []
                    if response.headers.first(name: "Content-Encoding") == "gzip" {
                        data = try data.withUnsafeBytes { try Gzip.decompress($0, limit: 64 << 20) }
                    }
                    try #require(response.status == .ok, "\(method): \(response.status) \(String(decoding: data, as: UTF8.self))")
                    return try Resp(serializedBytes: data)
                }
                var types = Querier_V1_ProfileTypesRequest()
                (types.start, types.end) = (start, end)
                #expect(
                    try await proto("ProfileTypes", types, as: Querier_V1_ProfileTypesResponse.self).profileTypes.map(\.id).contains(
                        Self.cpu))
                var names = Types_V1_LabelNamesRequest()
                (names.matchers, names.start, names.end) = ([#"{__profile_type__="\#(Self.cpu)"}"#], start, end)
                #expect(try await proto("LabelNames", names, as: Types_V1_LabelNamesResponse.self).names.contains("service_name"))
                var values = Types_V1_LabelValuesRequest()
                (values.name, values.matchers, values.start, values.end) = ("service_name", names.matchers, start, end)
                let serviceNames = try await proto("LabelValues", values, as: Types_V1_LabelValuesResponse.self).names
                #expect(serviceNames == ["checkout.cpu"], "\(serviceNames)")
                var stacks = Querier_V1_SelectMergeStacktracesRequest()
                (stacks.profileTypeID, stacks.labelSelector, stacks.start, stacks.end, stacks.maxNodes) = (
                    Self.cpu, service, start, end, 16384
                )
                #expect(
                    try await proto("SelectMergeStacktraces", stacks, as: Querier_V1_SelectMergeStacktracesResponse.self).flamegraph.total
                        == cpuTotal)
                var series = Querier_V1_SelectSeriesRequest()
                (series.profileTypeID, series.labelSelector, series.start, series.end, series.step) = (Self.cpu, service, start, end, 15)
                series.groupBy = []
                series.exemplarType = .individual
                let points = try await proto("SelectSeries", series, as: Querier_V1_SelectSeriesResponse.self).series.flatMap(\.points)
                #expect(points.reduce(0) { $0 + $1.value } == Double(cpuTotal))
                // The one profile pushed is the exemplar of its point, and its ID opens it.
                let exemplars = points.flatMap(\.exemplars)
                #expect(exemplars.count == 1 && exemplars.first?.value == cpuTotal)
                var byID = stacks
                byID.profileIDSelector = exemplars.map(\.profileID)
                #expect(
                    try await proto("SelectMergeStacktraces", byID, as: Querier_V1_SelectMergeStacktracesResponse.self).flamegraph.total
                        == cpuTotal)
                var spanStacks = stacks
                spanStacks.spanSelector = [someSpan]
                #expect(
                    try await proto("SelectMergeStacktraces", spanStacks, as: Querier_V1_SelectMergeStacktracesResponse.self).flamegraph
                        .total
                        == someSpanCPU)
                var spanProfile = Querier_V1_SelectMergeSpanProfileRequest()
                (spanProfile.profileTypeID, spanProfile.labelSelector, spanProfile.start, spanProfile.end) = (Self.cpu, service, start, end)
                spanProfile.spanSelector = [someSpan]
                #expect(
                    try await proto("SelectMergeSpanProfile", spanProfile, as: Querier_V1_SelectMergeSpanProfileResponse.self).flamegraph
                        .total
                        == someSpanCPU)
                var heatmap = Querier_V1_SelectHeatmapRequest()
                (heatmap.profileTypeID, heatmap.labelSelector, heatmap.start, heatmap.end, heatmap.step) = (
                    Self.cpu, service, start, end, 15
                )
                heatmap.queryType = .individual
                let slots = try await proto("SelectHeatmap", heatmap, as: Querier_V1_SelectHeatmapResponse.self).series.flatMap(\.slots)
                #expect(slots.reduce(0) { $0 + $1.counts.reduce(0, +) } == 1, "one profile pushed")
                // The data source's span heatmap: every span once; the largest is the top cell's exemplar.
                (heatmap.queryType, heatmap.exemplarType) = (.span, .span)
                let spanSlots = try await proto("SelectHeatmap", heatmap, as: Querier_V1_SelectHeatmapResponse.self).series.flatMap(\.slots)
                #expect(spanSlots.reduce(0) { $0 + $1.counts.reduce(0, +) } == Int32(spanCPU.count))
                let top = spanSlots.flatMap(\.exemplars).max { $0.value < $1.value }
                #expect(
                    top?.value == someSpanCPU && UInt64(top?.spanID ?? "", radix: 16) == UInt64(someSpan, radix: 16),
                    "\(String(describing: top))")

                // Drilldown: landing page, service view, flame graph, diff, function details, explain.
                func json(_ path: String, _ body: String) async throws -> [String: Any] {
                    let answer = try await dev.connect(path, json: body, tenant: Self.tenant)
                    try #require(answer.status == 200, "\(path): \(answer.status) \(answer.body)")
                    return answer.body
                }
                let range = #""start":"\#(start)","end":"\#(end)""#
                _ = try await json("capabilities.v1.FeatureFlagsService/GetFeatureFlags", "{}")
                _ = try await json("settings.v1.SettingsService/Get", "{}")
                let landing = try await json(
                    "querier.v1.QuerierService/Series", #"{"labelNames":["service_name","__profile_type__"],"matchers":[],\#(range)}"#)
                #expect("\(landing)".contains("checkout.cpu"))
                #expect((try await json("querier.v1.QuerierService/GetProfileStats", "{}"))["dataIngested"] as? Bool == true)
                let selection = #""profileTypeID":"\#(Self.cpu)","labelSelector":"{service_name=\"checkout.cpu\"}",\#(range)"#
                let sparkline = try await json("querier.v1.QuerierService/SelectSeries", #"{\#(selection),"step":15,"groupBy":[]}"#)
                #expect(!((sparkline["series"] as? [Any]) ?? []).isEmpty)
                _ = try await json(
                    "querier.v1.QuerierService/SelectSeries", #"{\#(selection),"step":15,"groupBy":["span_name"],"limit":"10"}"#)
                let flame = try await json("querier.v1.QuerierService/SelectMergeStacktraces", #"{\#(selection),"maxNodes":"16384"}"#)
                #expect(DecodedFlameGraph(flame).total == cpuTotal)
                let diff = try await json("querier.v1.QuerierService/Diff", #"{"left":{\#(selection)},"right":{\#(selection)}}"#)
                #expect((diff["flamegraph"] as? [String: Any])?["leftTicks"] as? String == String(cpuTotal))
                let analysis = try await json(
                    "querier.v1.QuerierService/AnalyzeQuery", #"{\#(range),"query":"\#(Self.cpu){service_name=\"checkout.cpu\"}"}"#)
                #expect("\(analysis)".contains("blockCount"))
                _ = try await json("settings.v1.SettingsService/Set", #"{"setting":{"name":"pluginSettings","value":"{}"}}"#)
                // Function details: pprof of one function's call sites, which must carry file names and lines.
                var details = Querier_V1_SelectMergeProfileRequest()
                (details.profileTypeID, details.labelSelector, details.start, details.end, details.maxNodes) = (
                    Self.cpu, service, start, end, 500
                )
                let pprof = try await proto("SelectMergeProfile", details, as: Google_V1_Profile.self)
                #expect(pprof.sample.reduce(0) { $0 + $1.value[0] } == cpuTotal)
                #expect(pprof.location.contains { $0.line.first.map { $0.line > 0 } ?? false })
                #expect(pprof.function.contains { pprof.stringTable[Int($0.filename)].hasSuffix(".go") })
                // The legacy render endpoints Drilldown still calls: the diff view and "Explain flame graph".
                let query = "\(Self.cpu)\(service)".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                let dot = try await dev.get("/pyroscope/render?format=dot&max-nodes=100&query=\(query)&from=\(start)&until=\(end)")
                #expect(dot.status == 200 && dot.body.hasPrefix("digraph"), "\(dot.body.prefix(200))")
                let renderDiff = try await dev.get(
                    "/pyroscope/render-diff?leftQuery=\(query)&leftFrom=\(start)&leftUntil=\(end)&rightQuery=\(query)&rightFrom=\(start)&rightUntil=\(end)"
                )
                #expect(renderDiff.status == 200 && renderDiff.body.contains("\"leftTicks\""))
                #expect(try await dev.stop() == 0)
            }
        }
    }
}
