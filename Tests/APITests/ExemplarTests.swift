import Foundation
import KilnProtos
import ProfileModel
import Query
import TestSupport
import Testing

@testable import QueryAPI

/// Individual profiles: SelectSeries names each point's largest profile as an exemplar, and
/// `profile_id_selector` opens exactly the profiles named (SelectMergeStacktraces, SelectMergeProfile, Diff).
@Suite struct ExemplarTests {
    typealias Q = QueryAPITests

    /// Every stored cpu profile of the synthetic blocks — the samples of one series at one time — with its total.
    static func profiles(_ blocks: SyntheticBlocks) -> [String: [Int64: Int64]] {
        var out: [String: [Int64: Int64]] = [:]
        for s in blocks.samples(type: cpuType) { out[s.labels, default: [:]][s.time, default: 0] += s.value }
        return out
    }

    static func seriesRequest(step: Double, groupBy: [String] = ["service_name"]) -> Querier_V1_SelectSeriesRequest {
        var r = Querier_V1_SelectSeriesRequest()
        (r.profileTypeID, r.labelSelector, r.start, r.end, r.step) = (Q.cpu, "{}", Q.startMillis, Q.endMillis, step)
        r.groupBy = groupBy
        r.exemplarType = .individual
        return r
    }

    static func stacks(_ ids: [String], selector: String = "{}") -> Querier_V1_SelectMergeStacktracesRequest {
        var r = Q.stacksRequest(selector)
        r.profileIDSelector = ids
        return r
    }

    @Test("each point's exemplar is its largest profile, and its ID opens exactly that profile")
    func exemplarsNameTheLargestProfileOfEachPoint() async throws {
        try await Q().withQueryServer { blocks, url in
            let stored = Self.profiles(blocks)
            let step: Double = 2
            let answer = try await Q.call(
                url, "SelectSeries", Self.seriesRequest(step: step), as: Querier_V1_SelectSeriesResponse.self, tenant: "t1")
            try #require(answer.series.count == 3)
            var opened = 0
            for series in answer.series {
                let service = try #require(series.labels.first { $0.name == "service_name" }?.value)
                // The group's profiles by time: every series of that service.
                let candidates = stored.filter { $0.key.contains("service_name=\"\(service)\"") }
                for point in series.points {
                    try #require(point.exemplars.count == 1, "a point without its exemplar at \(point.timestamp)")
                    let e = point.exemplars[0]
                    #expect(!e.labels.contains { $0.name == "service_name" }, "the group's label is on the series already")
                    #expect(e.labels.contains { $0.name == "env" && $0.value == "prod" })
                    // The point at T holds (T − step, T]: the largest profile of those.
                    let window = (point.timestamp - Int64(step * 1000)) * 1_000_000 + 1...point.timestamp * 1_000_000
                    let inWindow = candidates.values.flatMap { $0.filter { window.contains($0.key) }.map(\.value) }
                    #expect(e.value == inWindow.max(), "exemplar \(e.value), largest of the point \(inWindow.max() ?? -1)")
                    #expect(window.contains(e.timestamp * 1_000_000) || window.contains(e.timestamp * 1_000_000 + 999_999))
                    // Its ID opens that profile alone, whatever range and selector hold it.
                    if opened < 6 {
                        let total = try await Q.flameTotal(url, Self.stacks([e.profileID]))
                        #expect(total == e.value, "\(e.profileID): \(total) against \(e.value)")
                        opened += 1
                    }
                }
            }
            #expect(opened == 6)
        }
    }

    @Test("profile_id_selector in SelectMergeProfile and Diff, several IDs at once, IDs outside the range or selector")
    func profileIDsSelectExactlyTheirProfiles() async throws {
        try await Q().withQueryServer { blocks, url in
            let stored = Self.profiles(blocks)
            let answer = try await Q.call(
                url, "SelectSeries", Self.seriesRequest(step: 5, groupBy: []), as: Querier_V1_SelectSeriesResponse.self, tenant: "t1")
            let exemplars = answer.series.flatMap { $0.points.flatMap(\.exemplars) }
            try #require(exemplars.count >= 2)
            let (a, b) = (exemplars[0], exemplars[1])
            #expect(a.profileID != b.profileID)
            // Without group_by an exemplar carries all of its series' labels.
            #expect(a.labels.contains { $0.name == "service_name" })
            #expect(stored.values.contains { $0.values.contains(a.value) } && stored.values.contains { $0.values.contains(b.value) })

            #expect(try await Q.flameTotal(url, Self.stacks([a.profileID, b.profileID])) == a.value + b.value)

            var merge = Querier_V1_SelectMergeProfileRequest()
            (merge.profileTypeID, merge.labelSelector, merge.start, merge.end) = (Q.cpu, "{}", Q.startMillis, Q.endMillis)
            merge.profileIDSelector = [a.profileID]
            let pprof = try await Q.call(url, "SelectMergeProfile", merge, as: Google_V1_Profile.self, tenant: "t1")
            #expect(pprof.sample.reduce(0) { $0 + $1.value[0] } == a.value)

            var diff = Querier_V1_DiffRequest()
            (diff.left, diff.right) = (Self.stacks([a.profileID]), Self.stacks([b.profileID]))
            let d = try await Q.call(url, "Diff", diff, as: Querier_V1_DiffResponse.self, tenant: "t1")
            #expect(d.flamegraph.leftTicks == a.value && d.flamegraph.rightTicks == b.value)

            // A selector that excludes the profile's series, or a range that misses its time: nothing.
            #expect(try await Q.flameTotal(url, Self.stacks([a.profileID], selector: #"{service_name="nowhere"}"#)) == 0)
            var outside = Self.stacks([a.profileID])
            (outside.start, outside.end) = (a.timestamp + 1, a.timestamp + 60_000)
            #expect(try await Q.flameTotal(url, outside) == 0)

            // An ID Kiln never gave out (a random version-4 UUID) or not a UUID at all: refused by name.
            for bad in ["7c9e6679-7425-40de-944b-e07fc1f90ae7", "not-a-uuid"] {
                let refused = try await RequestFieldTests.postProto(url, "SelectMergeStacktraces", try Self.stacks([bad]).serializedBytes())
                #expect(refused.status == 400)
                #expect(RequestFieldTests.connectError(refused)?.code == "invalid_argument", "\(refused.text)")
                #expect(RequestFieldTests.connectError(refused)?.message.contains("profile_id_selector") == true, "\(refused.text)")
            }
        }
    }

    @Test("a span heatmap counts each span once, at its first profile, and its exemplars open the span")
    func spanHeatmap() async throws {
        try await Q().withQueryServer { blocks, url in
            // Expected: each span's total per service and the time of its first sample.
            var spans: [String: [UInt64: (total: Int64, time: Int64)]] = [:]
            for s in blocks.samples(type: cpuType) where s.span != 0 {
                let service = s.labels.components(separatedBy: "service_name=\"")[1].components(separatedBy: "\"")[0]
                let old = spans[service, default: [:]][s.span] ?? (0, s.time)
                spans[service, default: [:]][s.span] = (old.total + s.value, min(old.time, s.time))
            }
            var r = Querier_V1_SelectHeatmapRequest()
            (r.profileTypeID, r.labelSelector, r.start, r.end, r.step) = (Q.cpu, "{}", Q.startMillis, Q.endMillis, 5)
            r.groupBy = ["service_name"]
            (r.queryType, r.exemplarType) = (.span, .span)
            let answer = try await Q.call(url, "SelectHeatmap", r, as: Querier_V1_SelectHeatmapResponse.self, tenant: "t1")
            try #require(answer.series.count == 3)
            var opened = 0
            for series in answer.series {
                let service = series.labels.first { $0.name == "service_name" }!.value
                let expected = try #require(spans[service])
                #expect(series.slots.reduce(0) { $0 + $1.counts.reduce(0, +) } == Int32(expected.count), "\(service): every span once")
                for slot in series.slots {
                    #expect(slot.exemplars.count == slot.counts.filter { $0 > 0 }.count)
                    for e in slot.exemplars {
                        let span = try #require(UInt64(e.spanID, radix: 16), "span id \(e.spanID)")
                        #expect(e.spanID.count == 16)
                        let want = try #require(expected[span])
                        #expect(e.value == want.total && e.timestamp == want.time / 1_000_000)
                        // Its profile ID names the profile the span begins in.
                        #expect(try ProfileID(parsing: e.profileID, field: "f").timeNanos == want.time)
                        if opened < 4 {
                            var stacks = Q.stacksRequest()
                            stacks.spanSelector = [e.spanID]
                            #expect(try await Q.flameTotal(url, stacks) == e.value)
                            opened += 1
                        }
                    }
                }
            }
            #expect(opened == 4)
            // Individual exemplars name profiles, not spans: asked of a span heatmap, refused.
            r.exemplarType = .individual
            let refused = try await RequestFieldTests.postProto(url, "SelectHeatmap", try r.serializedBytes())
            #expect(RequestFieldTests.connectError(refused)?.code == "invalid_argument", "\(refused.text)")
        }
    }

    @Test("SPAN exemplars are refused by name, as Pyroscope refuses them")
    func spanExemplarsRefused() async throws {
        try await Q().withQueryServer { _, url in
            var r = Self.seriesRequest(step: 15)
            r.exemplarType = .span
            let refused = try await RequestFieldTests.postProto(url, "SelectSeries", try r.serializedBytes())
            #expect(RequestFieldTests.connectError(refused)?.code == "unimplemented", "\(refused.text)")
            #expect(RequestFieldTests.connectError(refused)?.message.contains("exemplar_type") == true, "\(refused.text)")
        }
    }

    @Test("an ID holds its profile's exact time and series; the text is a version-7 UUID")
    func profileIDLayout() throws {
        let labels = LabelSet([Label("service_name", "api"), Label("__name__", "process_cpu"), Label("env", "prod")])
        for time: Int64 in [0, 1_700_000_000_123_456_789, 1_700_000_000_000_000_000, 4_102_444_800_999_999_999] {
            let id = ProfileID(timeNanos: time, labels: labels)
            let text = id.description
            #expect(text.count == 36)
            #expect(Array(text)[14] == "7" && "89ab".contains(Array(text)[19]), "\(text)")
            let parsed = try ProfileID(parsing: text.uppercased(), field: "f")
            #expect(parsed == id && parsed.timeNanos == time)
        }
        // The profile type is not part of it: the sample types of one pprof share the ID.
        var typed = labels
        typed[LabelName.profileType] = cpuType.id
        #expect(ProfileID(timeNanos: 5, labels: typed) == ProfileID(timeNanos: 5, labels: labels))
        var other = labels
        other["env"] = "dev"
        #expect(ProfileID(timeNanos: 5, labels: other) != ProfileID(timeNanos: 5, labels: labels))
        #expect(throws: QueryError.self) { try ProfileID(parsing: "0190a5f3-8e2b-7c4d-1e5f-000000000000", field: "f") }
    }
}
