import APICommon
import Blocks
import Foundation
import Hummingbird
import IngestAPI
import KilnProtos
import Logging
import PprofCodec
import ProfileModel
import Query
import QueryAPI
import SwiftProtobuf
import TestSupport
import Testing

/// The query API over real HTTP, spoken as Grafana's Pyroscope data source speaks it: Connect unary,
/// binary protobuf, times in ms. Expected values come from the batches written into the blocks.
@Suite struct QueryAPITests {
    static let cpu = cpuType.id
    static let startMillis = SyntheticBlocks.everything.lowerBound / 1_000_000
    static let endMillis = SyntheticBlocks.everything.upperBound / 1_000_000

    func withQueryServer(_ body: @Sendable @escaping (SyntheticBlocks, String) async throws -> Void) async throws {
        try await SyntheticBlocks.with { blocks in
            let router = Router()
            var logger = Logger(label: "test.query")
            logger.logLevel = .warning
            QueryRoutes.register(on: router, engine: QueryEngine(store: blocks.store), logger: logger)
            try await withServer(router) { url in try await body(blocks, url) }
        }
    }

    /// One Connect unary call in binary protobuf, headers as connect-go sends them.
    static func call<Req: SwiftProtobuf.Message, Resp: SwiftProtobuf.Message>(
        _ url: String, _ method: String, _ request: Req,
        as: Resp.Type, tenant: String? = nil
    ) async throws -> Resp {
        var headers = [("Content-Type", "application/proto"), ("Connect-Protocol-Version", "1"), ("Accept-Encoding", "gzip")]
        if let tenant { headers.append(("X-Scope-OrgID", tenant)) }
        let result = try await post(url + "/querier.v1.QuerierService/" + method, body: try request.serializedBytes(), headers: headers)
        guard result.status == 200 else { throw TestFailure("\(method): HTTP \(result.status) \(result.text)") }
        #expect(result.contentType == "application/proto")
        return try Resp(serializedBytes: result.body)
    }

    /// The total of the flame graph tenant t1's `request` answers.
    static func flameTotal(_ url: String, _ request: Querier_V1_SelectMergeStacktracesRequest) async throws -> Int64 {
        try await call(url, "SelectMergeStacktraces", request, as: Querier_V1_SelectMergeStacktracesResponse.self, tenant: "t1")
            .flamegraph.total
    }

    static func stacksRequest(_ selector: String = "{}", maxNodes: Int64? = nil, from: Int64 = startMillis, to: Int64 = endMillis)
        -> Querier_V1_SelectMergeStacktracesRequest
    {
        var r = Querier_V1_SelectMergeStacktracesRequest()
        r.profileTypeID = cpu
        r.labelSelector = selector
        r.start = from
        r.end = to
        if let maxNodes { r.maxNodes = maxNodes }
        return r
    }

    /// Root-first paths with self values decoded from a FlameGraph's levels.
    static func selfPaths(_ g: Querier_V1_FlameGraph) -> [String: Int64] {
        var levels: [[Int64]] = []
        for l in g.levels { levels.append(l.values) }
        var out: [String: Int64] = [:]
        var above: [(x: Int64, total: Int64, path: String)] = []
        for (depth, values) in levels.enumerated() {
            var here: [(x: Int64, total: Int64, path: String)] = []
            var prev: Int64 = 0
            for i in stride(from: 0, to: values.count, by: 4) {
                let x = prev + values[i]
                let total = values[i + 1]
                let selfValue = values[i + 2]
                let name = g.names[Int(values[i + 3])]
                prev = x + total
                let parent = above.last { $0.x <= x && x < $0.x + $0.total }
                let path = depth == 0 ? "" : (parent.map { $0.path.isEmpty ? name : $0.path + ";" + name } ?? "?" + name)
                here.append((x, total, path))
                if selfValue != 0 { out[path, default: 0] += selfValue }
            }
            above = here
        }
        return out
    }

    @Test func flameGraphDecodesToTheMergedStacks() async throws {
        try await withQueryServer { blocks, url in
            let response = try await Self.call(
                url, "SelectMergeStacktraces", Self.stacksRequest(#"{service_name="api"}"#),
                as: Querier_V1_SelectMergeStacktracesResponse.self, tenant: "t1")
            let want = blocks.samples(type: cpuType, services: ["api"])
            #expect(response.flamegraph.total == want.reduce(0) { $0 + $1.value })
            #expect(response.flamegraph.names.first == "total")
            #expect(Self.selfPaths(response.flamegraph) == SyntheticBlocks.paths(want))
            // Without the tenant header the request is the default tenant's, which holds nothing.
            let anonymous = try await Self.call(
                url, "SelectMergeStacktraces", Self.stacksRequest(),
                as: Querier_V1_SelectMergeStacktracesResponse.self)
            #expect(anonymous.flamegraph.total == 0)
        }
    }

    @Test func maxNodesTruncatesAndKeepsTotals() async throws {
        try await withQueryServer { blocks, url in
            let full = try await Self.call(
                url, "SelectMergeStacktraces", Self.stacksRequest(),
                as: Querier_V1_SelectMergeStacktracesResponse.self, tenant: "t1"
            ).flamegraph
            let small = try await Self.call(
                url, "SelectMergeStacktraces", Self.stacksRequest(maxNodes: 8),
                as: Querier_V1_SelectMergeStacktracesResponse.self, tenant: "t1"
            ).flamegraph
            let fullNodes = full.levels.reduce(0) { $0 + $1.values.count / 4 }
            let smallNodes = small.levels.reduce(0) { $0 + $1.values.count / 4 }
            #expect(smallNodes < fullNodes && small.names.contains("other"))
            #expect(small.total == full.total && full.total == blocks.samples(type: cpuType).reduce(0) { $0 + $1.value })
            #expect(Self.selfPaths(small).values.reduce(0, +) == full.total, "self values still add up to the total")
        }
    }

    @Test func labelsSeriesTypesAndStats() async throws {
        try await withQueryServer { blocks, url in
            var typesRequest = Querier_V1_ProfileTypesRequest()
            typesRequest.start = Self.startMillis
            typesRequest.end = Self.endMillis
            let types = try await Self.call(url, "ProfileTypes", typesRequest, as: Querier_V1_ProfileTypesResponse.self, tenant: "t1")
            #expect(types.profileTypes.map(\.id) == [allocType.id, cpuType.id].sorted())
            #expect(types.profileTypes.first { $0.id == cpuType.id }?.sampleType == "cpu")

            var names = Types_V1_LabelNamesRequest()
            names.matchers = [#"{service_name="api"}"#]
            names.start = Self.startMillis
            names.end = Self.endMillis
            let labelNames = try await Self.call(url, "LabelNames", names, as: Types_V1_LabelNamesResponse.self, tenant: "t1")
            #expect(labelNames.names == ["__name__", "__profile_type__", "env", "service_name"])

            var values = Types_V1_LabelValuesRequest()
            values.name = "service_name"
            values.start = Self.startMillis
            values.end = Self.endMillis
            let services = try await Self.call(url, "LabelValues", values, as: Types_V1_LabelValuesResponse.self, tenant: "t1")
            #expect(services.names == ["api", "db", "worker"])

            // As the Profiles Drilldown app asks: service and profile type of every series.
            var series = Querier_V1_SeriesRequest()
            series.labelNames = ["service_name", "__profile_type__"]
            series.start = Self.startMillis
            series.end = Self.endMillis
            let seriesResponse = try await Self.call(url, "Series", series, as: Querier_V1_SeriesResponse.self, tenant: "t1")
            #expect(seriesResponse.labelsSet.count == 6)
            #expect(seriesResponse.labelsSet.allSatisfy { $0.labels.map(\.name) == ["__profile_type__", "service_name"] })

            let stats = try await Self.call(
                url, "GetProfileStats", Types_V1_GetProfileStatsRequest(), as: Types_V1_GetProfileStatsResponse.self, tenant: "t1")
            let times = blocks.batches.flatMap(\.sampleTimes)
            #expect(
                stats.dataIngested && stats.oldestProfileTime == times.min()! / 1_000_000
                    && stats.newestProfileTime == times.max()! / 1_000_000)
        }
    }

    @Test func heatmapCountsEachProfileOnce() async throws {
        try await withQueryServer { blocks, url in
            var r = Querier_V1_SelectHeatmapRequest()
            r.profileTypeID = Self.cpu
            r.labelSelector = "{}"
            r.start = Self.startMillis
            r.end = Self.endMillis
            r.step = 5
            r.groupBy = ["service_name"]
            r.exemplarType = .individual
            let answer = try await Self.call(url, "SelectHeatmap", r, as: Querier_V1_SelectHeatmapResponse.self, tenant: "t1")
            // Expected from the stored samples: a profile is a series' samples at one timestamp, counted in its
            // service's heatmap.
            var totals: [String: [String: Int64]] = [:]
            for sample in blocks.samples(type: cpuType) {
                let service = try #require(
                    sample.labels.split(separator: ",").first { $0.contains("service_name=") }?.split(separator: "\"")[1])
                totals[String(service), default: [:]]["\(sample.labels) \(sample.time)", default: 0] += sample.value
            }
            let all = totals.values.flatMap(\.values)
            let (low, high) = (all.min()!, all.max()!)
            #expect(answer.series.map { $0.labels.first { $0.name == "service_name" }!.value } == ["api", "db", "worker"])
            var opened = 0
            for series in answer.series {
                let service = series.labels.first { $0.name == "service_name" }!.value
                let profiles = try #require(totals[service])
                #expect(series.slots.reduce(0) { $0 + $1.counts.reduce(0, +) } == Int32(profiles.count), "\(service): every profile once")
                for slot in series.slots {
                    #expect(slot.yMin.count == 20 && slot.yMin.first == Double(low) && slot.yMin.last! < Double(high))
                    #expect(slot.timestamp % 5000 == Self.startMillis % 5000, "slots are step-aligned from start")
                    // An exemplar per non-empty cell, inside its bucket; its ID opens a profile of exactly its value.
                    #expect(slot.exemplars.count == slot.counts.filter { $0 > 0 }.count)
                    for e in slot.exemplars {
                        let bucket = slot.yMin.lastIndex { $0 <= Double(e.value) }!
                        #expect(slot.counts[bucket] > 0 && profiles.values.contains(e.value))
                        #expect(e.timestamp <= slot.timestamp && e.timestamp > slot.timestamp - 5000)
                        if opened < 3 {
                            var stacks = Self.stacksRequest()
                            stacks.profileIDSelector = [e.profileID]
                            #expect(try await Self.flameTotal(url, stacks) == e.value)
                            opened += 1
                        }
                    }
                }
                // The largest profile of the largest service sits in the top bucket of the slot ending after it.
                if let (key, value) = profiles.max(by: { $0.value < $1.value }), value == high {
                    let time = Int64(key.split(separator: " ").last!)!
                    let slot = try #require(
                        series.slots.first { $0.timestamp >= time / 1_000_000 && $0.timestamp - 5000 < time / 1_000_000 })
                    #expect(slot.counts.last! >= 1)
                }
            }
            #expect(opened == 3)
            // Span exemplars belong to span heatmaps: asked of this one, the request is refused.
            r.exemplarType = .span
            await #expect(throws: (any Error).self) {
                _ = try await Self.call(url, "SelectHeatmap", r, as: Querier_V1_SelectHeatmapResponse.self, tenant: "t1")
            }
        }
    }

    @Test func analyzeQueryCountsWhatTheQueryWouldRead() async throws {
        try await withQueryServer { blocks, url in
            let metas = try await BlockIndex.list(blocks.store, tenant: "t1").metas
            func analyze(_ query: String) async throws -> Querier_V1_AnalyzeQueryResponse {
                var r = Querier_V1_AnalyzeQueryRequest()
                r.query = query
                r.start = Self.startMillis
                r.end = Self.endMillis
                return try await Self.call(url, "AnalyzeQuery", r, as: Querier_V1_AnalyzeQueryResponse.self, tenant: "t1")
            }
            let allBytes = UInt64(metas.flatMap(\.files).reduce(0) { $0 + $1.sizeBytes })
            // Every CPU series: the sample count is exact.
            let cpuAll = try await analyze(Self.cpu + "{}")
            let scope = try #require(cpuAll.queryScopes.first)
            #expect(scope.blockCount == UInt64(metas.count))
            #expect(scope.seriesCount == 3, "api, worker and db")
            #expect(scope.sampleCount == UInt64(blocks.samples(type: cpuType).count))
            // A profile is one series at one time; here each is cut into one block.
            let cpuProfiles = Set(blocks.samples(type: cpuType).map { "\($0.labels) \($0.time)" })
            #expect(scope.profileCount == UInt64(cpuProfiles.count) && scope.profileCount < scope.sampleCount)
            #expect(
                scope.profileBytes == UInt64(metas.flatMap(\.files).filter { $0.name == BlockFile.samples }.reduce(0) { $0 + $1.sizeBytes })
            )
            #expect(cpuAll.queryImpact.totalBytesInTimeRange == allBytes && cpuAll.queryImpact.totalQueriedSeries == 3)
            // One service: fewer series, the same blocks; a bare selector counts every profile type.
            #expect(try await analyze(Self.cpu + #"{service_name="api"}"#).queryScopes.first?.seriesCount == 1)
            let everyType = try await analyze(#"{service_name="api"}"#)
            #expect(
                everyType.queryScopes.first?.seriesCount == 2
                    && everyType.queryScopes.first?.sampleCount == UInt64(metas.reduce(0) { $0 + $1.stats.samples }))
            let everyProfile = metas.flatMap(\.files).filter { $0.name == BlockFile.profiles }.reduce(0) { $0 + ($1.rows ?? 0) }
            #expect(everyType.queryScopes.first?.profileCount == UInt64(everyProfile) && everyProfile > cpuProfiles.count)
            // No match: nothing to read, though the range still holds every block's bytes.
            let none = try await analyze(Self.cpu + #"{service_name="nope"}"#)
            #expect(none.queryScopes.first?.blockCount == 0 && none.queryImpact.totalBytesInTimeRange == allBytes)
        }
    }

    @Test func selectSeriesSumsPerStep() async throws {
        try await withQueryServer { blocks, url in
            var r = Querier_V1_SelectSeriesRequest()
            r.profileTypeID = Self.cpu
            r.labelSelector = "{}"
            r.start = Self.startMillis
            r.end = Self.endMillis
            r.step = 5
            r.groupBy = ["service_name"]
            r.aggregation = .sum
            let response = try await Self.call(url, "SelectSeries", r, as: Querier_V1_SelectSeriesResponse.self, tenant: "t1")
            #expect(response.series.count == 3)
            for s in response.series {
                let service = s.labels.first { $0.name == "service_name" }!.value
                var want: [Int64: Double] = [:]
                for x in blocks.samples(type: cpuType, services: [service]) {
                    // As Pyroscope: the point at T sums (T - step, T].
                    let ms = x.time / 1_000_000
                    let start = Self.startMillis
                    want[start + (ms <= start ? 0 : (ms - start + 4999) / 5000) * 5000, default: 0] += Double(x.value)
                }
                #expect(s.points.map(\.timestamp) == want.keys.sorted())
                #expect(s.points.map(\.value) == want.keys.sorted().map { want[$0]! })
            }
        }
    }

    @Test func diffAndMergedProfile() async throws {
        try await withQueryServer { blocks, url in
            let split = (SyntheticBlocks.base + 6_000_000_000) / 1_000_000
            var diff = Querier_V1_DiffRequest()
            diff.left = Self.stacksRequest(to: split - 1)
            diff.right = Self.stacksRequest(from: split)
            let d = try await Self.call(url, "Diff", diff, as: Querier_V1_DiffResponse.self, tenant: "t1").flamegraph
            let left = blocks.samples(type: cpuType, time: SyntheticBlocks.everything.lowerBound...split * 1_000_000 - 1).reduce(0) {
                $0 + $1.value
            }
            let right = blocks.samples(type: cpuType, time: split * 1_000_000...SyntheticBlocks.everything.upperBound).reduce(0) {
                $0 + $1.value
            }
            #expect(d.leftTicks == left && d.rightTicks == right && d.total == left + right && left > 0 && right > 0)
            #expect(d.levels.allSatisfy { $0.values.count % 7 == 0 })

            // SelectMergeProfile answers a pprof that Kiln's own decoder (pprof's validation rules) accepts, with
            // the same totals and top function.
            var merge = Querier_V1_SelectMergeProfileRequest()
            merge.profileTypeID = Self.cpu
            merge.labelSelector = "{}"
            merge.start = Self.startMillis
            merge.end = Self.endMillis
            let profile = try await Self.call(url, "SelectMergeProfile", merge, as: Google_V1_Profile.self, tenant: "t1")
            let facts = ProfileFacts(try PprofDecoder().decode(try profile.serializedBytes()))
            let all = blocks.samples(type: cpuType)
            #expect(facts.totals.map(\.total) == [all.reduce(0) { $0 + $1.value }])
            var flat: [String: Int64] = [:]
            for s in all { flat[s.stack.first!, default: 0] += s.value }
            let top = flat.max { ($0.value, $1.key) < ($1.value, $0.key) }!
            #expect(facts.top.first?.name == top.key && facts.top.first?.flat == top.value)
        }
    }

    @Test func jsonAndErrorsSpeakConnect() async throws {
        try await withQueryServer { blocks, url in
            let body =
                #"{"profileTypeID":"\#(Self.cpu)","labelSelector":"{service_name=\"db\"}","start":"\#(Self.startMillis)","end":"\#(Self.endMillis)"}"#
            let ok = try await post(
                url + "/querier.v1.QuerierService/SelectMergeStacktraces", body: Array(body.utf8),
                headers: [("Content-Type", "application/json"), ("X-Scope-OrgID", "t1")])
            #expect(ok.status == 200 && ok.contentType == "application/json")
            let json = try JSONSerialization.jsonObject(with: Data(ok.body)) as? [String: Any]
            let total = ((json?["flamegraph"] as? [String: Any])?["total"] as? String).flatMap { Int64($0) }
            #expect(total == blocks.samples(type: cpuType, services: ["db"]).reduce(0) { $0 + $1.value })

            let badSelector = #"{"profileTypeID":"\#(Self.cpu)","labelSelector":"{service_name=}"}"#
            let bad = try await post(
                url + "/querier.v1.QuerierService/SelectMergeStacktraces", body: Array(badSelector.utf8),
                headers: [("Content-Type", "application/json")])
            #expect(bad.status == 400 && bad.connectCode == "invalid_argument" && bad.text.contains("expected a quoted value"))

            let badType = try await post(
                url + "/querier.v1.QuerierService/SelectMergeStacktraces", body: Array(#"{"profileTypeID":"cpu"}"#.utf8),
                headers: [("Content-Type", "application/json")])
            #expect(badType.status == 400 && badType.text.contains("profile_typeID"))

            let garbage = try await post(
                url + "/querier.v1.QuerierService/LabelNames", body: [0xff, 0xff, 0xff],
                headers: [("Content-Type", "application/proto")])
            #expect(garbage.status == 400 && garbage.connectCode == "invalid_argument")

            let wrongType = try await post(
                url + "/querier.v1.QuerierService/LabelNames", body: [], headers: [("Content-Type", "text/plain")])
            #expect(wrongType.status == 415 && wrongType.connectCode == "unimplemented")
        }
    }

    @Test func legacyRenderAndRenderDiff() async throws {
        try await withQueryServer { blocks, url in
            let query = "\(Self.cpu){service_name=\"api\"}".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let render = try await get(
                url + "/pyroscope/render?query=\(query)&from=\(Self.startMillis)&until=\(Self.endMillis)&format=json",
                headers: [("X-Scope-OrgID", "t1")])
            #expect(render.status == 200)
            let object = try JSONSerialization.jsonObject(with: Data(render.body)) as? [String: Any]
            let flamebearer = object?["flamebearer"] as? [String: Any]
            let want = blocks.samples(type: cpuType, services: ["api"]).reduce(0) { $0 + $1.value }
            #expect((flamebearer?["numTicks"] as? NSNumber)?.int64Value == want)
            #expect((object?["metadata"] as? [String: Any])?["format"] as? String == "single")
            let timeline = object?["timeline"] as? [String: Any]
            #expect(((timeline?["samples"] as? [NSNumber]) ?? []).reduce(0) { $0 + $1.int64Value } == want)

            let diff = try await get(
                url + "/pyroscope/render-diff?leftQuery=\(query)&leftFrom=\(Self.startMillis)&leftUntil=\(Self.endMillis)"
                    + "&rightQuery=\(query)&rightFrom=\(Self.startMillis)&rightUntil=\(Self.endMillis)", headers: [("X-Scope-OrgID", "t1")])
            let d = try JSONSerialization.jsonObject(with: Data(diff.body)) as? [String: Any]
            #expect((d?["leftTicks"] as? NSNumber)?.int64Value == want && (d?["rightTicks"] as? NSNumber)?.int64Value == want)
            #expect((d?["metadata"] as? [String: Any])?["format"] as? String == "double")

            let bad = try await get(url + "/pyroscope/render?query=nope&from=now-1h")
            #expect(bad.status == 400 && bad.text.contains("not a profile type ID"))
        }
    }
}
