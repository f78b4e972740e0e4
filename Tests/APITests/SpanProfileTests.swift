import Foundation
import KilnProtos
import ProfileModel
import Query
import QueryAPI
import SwiftProtobuf
import TestSupport
import Testing

/// Span profiles: `SelectMergeSpanProfile` and `span_selector` return exactly the samples the selected
/// spans carried. Expectations come from the synthetic batches the blocks were written from (a quarter of
/// their samples carry a random span ID).
@Suite struct SpanProfileTests {
    typealias Q = QueryAPITests

    static func hex(_ span: UInt64) -> String {
        let digits = String(span, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    @Test("both RPCs answer the chosen spans' samples and nothing else; an unknown span answers an empty graph")
    func spanSelection() async throws {
        try await Q().withQueryServer { blocks, url in
            let all = blocks.samples(type: cpuType)
            let spans = Array(Set(all.map(\.span).filter { $0 != 0 })).sorted().prefix(5)
            try #require(spans.count == 5)
            let chosen = Set(spans)
            let want = SyntheticBlocks.paths(all.filter { chosen.contains($0.span) })

            var spanRequest = Querier_V1_SelectMergeSpanProfileRequest()
            spanRequest.profileTypeID = Q.cpu
            spanRequest.labelSelector = "{}"
            spanRequest.start = Q.startMillis
            spanRequest.end = Q.endMillis
            spanRequest.spanSelector = spans.map(Self.hex)
            let spanProfile = try await Q.call(
                url, "SelectMergeSpanProfile", spanRequest, as: Querier_V1_SelectMergeSpanProfileResponse.self, tenant: "t1")
            #expect(Q.selfPaths(spanProfile.flamegraph) == want)

            var stacks = Q.stacksRequest()
            stacks.spanSelector = spans.map(Self.hex)
            let selected = try await Q.call(
                url, "SelectMergeStacktraces", stacks, as: Querier_V1_SelectMergeStacktracesResponse.self, tenant: "t1")
            #expect(Q.selfPaths(selected.flamegraph) == want)
            let whole = try await Q.call(
                url, "SelectMergeStacktraces", Q.stacksRequest(), as: Querier_V1_SelectMergeStacktracesResponse.self, tenant: "t1")
            #expect(selected.flamegraph.total < whole.flamegraph.total)

            stacks.spanSelector = ["00000000deadbeef"]
            let none = try await Q.call(
                url, "SelectMergeStacktraces", stacks, as: Querier_V1_SelectMergeStacktracesResponse.self, tenant: "t1")
            #expect(none.flamegraph.total == 0)
        }
    }

    @Test("every span's samples plus the samples without a span add up to the whole")
    func spansPartitionTheWhole() async throws {
        try await Q().withQueryServer { blocks, url in
            let all = blocks.samples(type: cpuType)
            let spans = Set(all.map(\.span).filter { $0 != 0 })
            var stacks = Q.stacksRequest()
            stacks.spanSelector = spans.map(Self.hex)
            let spanned = try await Q.call(
                url, "SelectMergeStacktraces", stacks, as: Querier_V1_SelectMergeStacktracesResponse.self, tenant: "t1")
            let whole = try await Q.call(
                url, "SelectMergeStacktraces", Q.stacksRequest(), as: Querier_V1_SelectMergeStacktracesResponse.self, tenant: "t1")
            let unspanned = all.filter { $0.span == 0 }.reduce(0) { $0 + $1.value }
            #expect(spanned.flamegraph.total + unspanned == whole.flamegraph.total)
            #expect(spanned.flamegraph.total == all.filter { $0.span != 0 }.reduce(0) { $0 + $1.value })
        }
    }

    @Test("a span selector that is not a span ID is refused with its reason")
    func badSpanIDs() async throws {
        try await Q().withQueryServer { _, url in
            var stacks = Q.stacksRequest()
            stacks.spanSelector = ["not-a-span"]
            let result = try await post(
                url + "/querier.v1.QuerierService/SelectMergeStacktraces", body: try stacks.serializedBytes(),
                headers: [("Content-Type", "application/proto"), ("X-Scope-OrgID", "t1")])
            #expect(result.status == 400)
            #expect(result.text.contains("not a span ID"))
        }
    }
}
