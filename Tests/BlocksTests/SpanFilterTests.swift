import Blocks
import Foundation
import ObjectStore
import ProfileModel
import TestSupport
import Testing

/// samples.parquet's `span_id` Bloom filters: a span selection decodes only the row groups that may hold
/// its spans, and still returns exactly their samples.
struct SpanFilterTests {
    @Test func spanSelectionsSkipRowGroupsWithoutTheirSpans() async throws {
        let dir = try scratchDir("spans")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try makeObjectStore(url: "file://" + dir.path)
        var head = Head(tenant: "t1")
        // makeBatch gives every fourth sample a span of its own.
        for o in 0..<12 {
            head.append(
                makeBatch(offset: Int64(o), samples: 400, baseTimeNanos: 1_700_000_000_000_000_000 + Int64(o) * 15_000_000_000),
                from: RecordPosition(topic: "norm", partition: 0, offset: Int64(o)))
        }
        var options = BlockWriter.Options()
        options.samplesPerRowGroup = 500
        let ulid = ULID.make()
        let block = try BlockWriter(options: options).encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: []))
        try await BlockWriter.upload(block, to: store)
        let reader = BlockReader(store: store, meta: block.meta)
        let everyGroup = try await reader.sampleRowGroups(time: nil)
        try #require(everyGroup.count >= 8)

        // Rows are in file order, `samplesPerRowGroup` to a group.
        let samples = try await reader.samples()
        var groupsOf: [UInt64: Set<Int>] = [:]
        var totalOf: [UInt64: Int64] = [:]
        for i in 0..<samples.count where samples.spanIDs[i] != 0 {
            groupsOf[samples.spanIDs[i], default: []].insert(i / options.samplesPerRowGroup)
            totalOf[samples.spanIDs[i], default: 0] += samples.values[i]
        }
        let spans = groupsOf.keys.sorted().prefix(40)
        try #require(spans.count == 40)
        let allSeries = Set(try await reader.series().map(\.id))
        var extra = 0
        for span in spans {
            let read = Set(try await reader.sampleRowGroups(time: nil, spans: [span]))
            #expect(read.isSuperset(of: groupsOf[span]!), "span \(span)")
            extra += read.subtracting(groupsOf[span]!).count
            let selected = try await reader.stackSamples(time: Int64.min...Int64.max, series: allSeries, spans: [span])
            #expect(selected.values.reduce(0, +) == totalOf[span]!, "span \(span)")
        }
        // Sized for 1 % false positives per group; allow 5 %.
        #expect(Double(extra) / Double(spans.count * everyGroup.count) < 0.05, "\(extra) row groups read for nothing")
        // Several spans at once: the union of their groups.
        let pair = Set(spans.prefix(2))
        let read = Set(try await reader.sampleRowGroups(time: nil, spans: pair))
        #expect(read.isSuperset(of: pair.reduce(into: Set<Int>()) { $0.formUnion(groupsOf[$1]!) }))
        // Many spans, and some profiles, at once: exactly their samples (a reader asks its sets once per run
        // of rows, so runs of one span or profile must not leak into the next).
        let many = Set(spans.prefix(25))
        let manyTotal = try await reader.stackSamples(time: Int64.min...Int64.max, series: allSeries, spans: many).values.reduce(0, +)
        #expect(manyTotal == many.reduce(0) { $0 + totalOf[$1]! })
        let picked: Set<BlockProfileKey> = [
            BlockProfileKey(series: samples.seriesIDs[0], timeNanos: samples.timeNanos[0]),
            BlockProfileKey(series: samples.seriesIDs[samples.count - 1], timeNanos: samples.timeNanos[samples.count - 1]),
        ]
        let pickedTotal = (0..<samples.count).filter {
            picked.contains(BlockProfileKey(series: samples.seriesIDs[$0], timeNanos: samples.timeNanos[$0]))
        }.reduce(Int64(0)) { $0 + samples.values[$1] }
        let profileSamples = try await reader.stackSamples(time: Int64.min...Int64.max, series: allSeries, profiles: picked)
        #expect(pickedTotal > 0 && profileSamples.values.reduce(0, +) == pickedTotal)
        try await store.shutdown()
    }
}
