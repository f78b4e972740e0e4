import Blocks
import Foundation
import Logging
import ObjectStore
import Parquet
import ProfileModel
import TestSupport
import Testing

struct ULIDTests {
    @Test func roundTripsAndSortsByTime() throws {
        let a = ULID.make(timestampMillis: 1_700_000_000_000)
        let b = ULID.make(timestampMillis: 1_700_000_000_001)
        #expect(a.string.count == 26)
        #expect(ULID(string: a.string) == a)
        #expect(ULID(string: a.string.lowercased()) == a)
        #expect(a.timestampMillis == 1_700_000_000_000)
        #expect(a < b && a.string < b.string)
        #expect(ULID(string: "7ZZZZZZZZZZZZZZZZZZZZZZZZZ")?.timestampMillis == (1 << 48) - 1)
        #expect(ULID(string: "8ZZZZZZZZZZZZZZZZZZZZZZZZZ") == nil)
        #expect(ULID(string: "01ARZ3NDEKTSV4RRFFQ69G5FA") == nil)
        // 01ARZ3NDEK read as a base-32 number (Crockford alphabet), computed independently with Python.
        #expect(ULID(string: "01ARZ3NDEKTSV4RRFFQ69G5FAV")?.timestampMillis == 1_469_922_850_259)
        #expect(ULID(string: "01ARZ3NDEKTSV4RRFFQ69G5FAV")?.string == "01ARZ3NDEKTSV4RRFFQ69G5FAV")
        let d1 = ULID.deterministic(timestampMillis: 5, seed: "x")
        let d2 = ULID.deterministic(timestampMillis: 5, seed: "x")
        #expect(d1 == d2 && d1 != ULID.deterministic(timestampMillis: 5, seed: "y"))
    }
}

struct OffsetRangesTests {
    @Test func mergesAndAnswersMembership() throws {
        var r = OffsetRanges()
        for o in [5, 6, 7, 10, 9, 1, 8] as [Int64] { r.insert(o) }
        #expect(r.ranges == [1...1, 5...10])
        #expect(r.contains(7) && !r.contains(4) && !r.contains(11))
        r.insert(2...4)
        #expect(r.ranges == [1...10])
        #expect(r.count == 10)
        let json = try JSONEncoder().encode(OffsetRanges([3...4, 8...9]))
        #expect(String(decoding: json, as: UTF8.self) == "[[3,4],[8,9]]")
        #expect(try JSONDecoder().decode(OffsetRanges.self, from: json) == OffsetRanges([8...9, 3...4]))
        #expect(OffsetRanges([1...3]).intersects(OffsetRanges([3...5])) && !OffsetRanges([1...3]).intersects(OffsetRanges([4...5])))
    }

    @Test func intersectionHoldsTheOffsetsOfBoth() {
        let a = OffsetRanges([1...10, 20...30, 40...40])
        let b = OffsetRanges([5...22, 25...26, 29...45])
        #expect(a.intersection(b).ranges == [5...10, 20...22, 25...26, 29...30, 40...40])
        #expect(b.intersection(a) == a.intersection(b))
        #expect(a.intersection(OffsetRanges()).isEmpty && a.intersection(OffsetRanges([11...19])).isEmpty)
        // Against a brute-force set over random ranges.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let x = OffsetRanges(
                (0..<5).map { _ in
                    let l = Int64.random(in: 0...60, using: &rng)
                    return l...(l + Int64.random(in: 0...8, using: &rng))
                })
            let y = OffsetRanges(
                (0..<5).map { _ in
                    let l = Int64.random(in: 0...60, using: &rng)
                    return l...(l + Int64.random(in: 0...8, using: &rng))
                })
            let expected = Set((0...80).filter { x.contains($0) && y.contains($0) })
            let got = x.intersection(y)
            #expect(Set((0...80).filter { got.contains($0) }) == expected && got.count == Int64(expected.count))
        }
    }

    /// Provenance written before topic incarnations (no `topic_id`) still loads, and matches any incarnation;
    /// with IDs, offsets of one incarnation say nothing about another.
    @Test func topicIncarnationsAreOptionalAndSeparate() throws {
        let old = #"{"raw":[{"topic":"raw","partition":0,"offsets":[[0,9]]}],"normalized":[{"topic":"n","partition":1,"offsets":[[0,4]]}]}"#
        let legacy = try JSONDecoder().decode(KafkaProvenance.self, from: Data(old.utf8))
        #expect(legacy.normalized.first?.topicID == nil)
        #expect(legacy.normalizedByPartition.holds(PartitionKey(topic: "n", partition: 1, topicID: "A"), offset: 3))

        let current = KafkaProvenance(raw: [:], normalized: [PartitionKey(topic: "n", partition: 1, topicID: "A"): OffsetRanges([0...4])])
        let json = String(decoding: try JSONEncoder().encode(current), as: UTF8.self)
        #expect(json.contains(#""topic_id":"A""#))
        let decoded = try JSONDecoder().decode(KafkaProvenance.self, from: Data(json.utf8))
        #expect(decoded == current)
        let index = decoded.normalizedByPartition
        #expect(index.holds(PartitionKey(topic: "n", partition: 1, topicID: "A"), offset: 3))
        #expect(!index.holds(PartitionKey(topic: "n", partition: 1, topicID: "B"), offset: 3))
        #expect(!index.holds(PartitionKey(topic: "n", partition: 1, topicID: "A"), offset: 5))
    }
}

struct HeadAndBlockTests {
    @Test func headDeduplicatesAcrossBatches() throws {
        var head = Head(tenant: "t1")
        let batches = (0..<10).map { makeBatch(offset: Int64($0)) }
        for b in batches { head.append(b) }
        #expect(head.sampleCount == batches.reduce(0) { $0 + $1.sampleCount })
        #expect(head.seriesCount == 6)
        // 60 functions in the pool, shared by every batch whatever their local numbering.
        let block = try BlockWriter().encode(head, ulid: ULID.make(), compaction: .init(level: 0, sources: [], parents: []))
        #expect(block.meta.stats.functions <= 60)
        #expect(block.meta.stats.frames <= 60)
        // Every batch starts its stacks with the same two root frames: one root node overall.
        let stacksInBatches = batches.reduce(0) { $0 + $1.stacks.frames.count }
        #expect(head.stackNodeCount < stacksInBatches)
        #expect(head.holds(raw: Provenance(topic: "raw", partition: 0, offset: 3)))
        #expect(!head.holds(raw: Provenance(topic: "raw", partition: 0, offset: 10)))
        #expect(head.rawOffsets[PartitionKey(topic: "raw", partition: 0)]?.ranges == [0...9])
        #expect(block.meta.totalsByProfileType == totals(batches))
    }

    @Test(arguments: Backend.allCases)
    func roundTripRebuildsEverySample(backend: Backend) async throws {
        try await withStore(backend, "roundtrip") { store, _ in
            var head = Head(tenant: "t1")
            let batches = (0..<12).map { makeBatch(offset: Int64($0), samples: 300) }
            for (i, b) in batches.enumerated() { head.append(b, from: RecordPosition(topic: "norm", partition: 2, offset: Int64(100 + i))) }
            var writer = BlockWriter()
            writer.options.samplesPerRowGroup = 100  // several row groups, so time pruning has something to prune
            let ulid = ULID.make()
            let block = try writer.encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: []))
            try await BlockWriter.upload(block, to: store)
            // meta.json is there and lists every table.
            let reader = try await BlockReader.open(store: store, tenant: "t1", ulid: ulid)
            #expect(Set(reader.meta.files.map(\.name)) == Set(BlockFile.tables))
            #expect(reader.meta.kafka.normalizedByPartition[PartitionKey(topic: "norm", partition: 2)]?.ranges == [100...111])
            #expect(try await flatten(reader).sorted() == batches.flatMap(flatten).sorted())
            #expect(await reader.verify() == [])
            // Time-range reads: only overlapping row groups are decoded, and the result is exact.
            let all = try await reader.samples()
            let range = all.timeNanos.min()! + 3_000_000_000...all.timeNanos.min()! + 5_000_000_000
            let groupCount = reader.meta.files.first { $0.name == BlockFile.samples }!.rowGroups!
            #expect(try await reader.sampleRowGroups(time: range).count < groupCount)
            let inRange = try await reader.samples(time: range)
            #expect(inRange.count == all.timeNanos.filter { range.contains($0) }.count && inRange.count > 0)
            // Series filters prune by the series_id statistics.
            #expect(try await reader.sampleRowGroups(time: nil, series: [2]).count < groupCount / 2)
            let s2 = try await reader.samples(time: range, series: [2])
            #expect(
                s2.count == (0..<all.count).filter { all.seriesIDs[$0] == 2 && range.contains(all.timeNanos[$0]) }.count && s2.count > 0)
            // Rows are sorted by (profile type, series, time, span, stack); the batches' samples of one
            // (series, time) are scattered, so the writer's sort of runs must gather them. A quarter of the
            // samples carry spans, so a profile's spans form runs.
            func key(_ i: Int) -> (String, Int32, Int64, UInt64, Int32) {
                (all.profileTypes[Int(all.profileTypeIndex[i])], all.seriesIDs[i], all.timeNanos[i], all.spanIDs[i], all.stackIDs[i])
            }
            #expect(all.spanIDs.contains { $0 != 0 })
            for i in 1..<all.count {
                #expect(key(i - 1) <= key(i))
                if key(i - 1) > key(i) { break }
            }
            // A retried upload of the same block succeeds; a different block under the same ULID does not.
            try await BlockWriter.upload(block, to: store)
            var other = Head(tenant: "t1")
            other.append(makeBatch(offset: 99))
            let clash = try writer.encode(other, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: []))
            await #expect(throws: BlockConflict.self) { try await BlockWriter.upload(clash, to: store) }
        }
    }

    @Test func verifyFindsCorruption() async throws {
        try await withStore(.file, "verify") { store, _ in
            var head = Head(tenant: "t1")
            head.append(makeBatch(offset: 1))
            let ulid = ULID.make()
            let block = try BlockWriter().encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: []))
            try await BlockWriter.upload(block, to: store)
            let key = BlockFile.key(tenant: "t1", ulid: ulid, BlockFile.stacks)
            var bytes = try await store.get(key)
            bytes[bytes.count / 2] ^= 0xFF
            try await store.put(key, bytes)
            let problems = await BlockReader(store: store, meta: block.meta).verify()
            #expect(problems.contains { $0.contains("stacks.parquet") && $0.contains("sha256") })
        }
    }
}

@Suite(.requires(.python("pyarrow", "duckdb")))
struct InteropTests {
    @Test func duckDBAndPyarrowReadEveryTable() async throws {
        try await withStore(.file, "duckdb") { store, dir in
            var sent: [SampleBatch] = []
            for blockIndex in 0..<3 {
                var head = Head(tenant: "t1")
                for k in 0..<5 {
                    let b = makeBatch(offset: Int64(blockIndex * 5 + k), samples: 400)
                    head.append(b)
                    sent.append(b)
                }
                let ulid = ULID.make()
                try await BlockWriter.upload(
                    try BlockWriter().encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: [])), to: store)
            }
            let script = """
                import sys, json, glob, duckdb, pyarrow.parquet as pq
                root = sys.argv[1]
                rows = {}
                for f in sorted(glob.glob(root + '/t1/*/*.parquet')):
                    rows[f.split('/')[-1]] = rows.get(f.split('/')[-1], 0) + pq.read_table(f).num_rows
                con = duckdb.connect()
                totals = dict(con.execute(f"SELECT profile_type, sum(value)::BIGINT FROM '{root}/t1/*/samples.parquet' GROUP BY 1").fetchall())
                # Per block: samples of service 'api', and the leaf function of every stack via the recursive tree.
                api = 0
                leaf_ok = True
                profiles_ok = True
                for d in sorted(glob.glob(root + '/t1/*/')):
                    api += con.execute(f\"\"\"SELECT coalesce(sum(s.value),0)::BIGINT FROM '{d}samples.parquet' s
                        WHERE s.series_id IN (SELECT series_id FROM '{d}series.parquet' WHERE name='service_name' AND value='api')\"\"\").fetchone()[0]
                    n = con.execute(f\"\"\"SELECT count(*) FROM '{d}samples.parquet' s
                        JOIN '{d}stacks.parquet' n ON n.node_id = s.stack_id
                        JOIN '{d}frames.parquet' fr ON fr.frame_id = n.frame_id
                        JOIN '{d}functions.parquet' fn ON fn.function_id = fr.function_id\"\"\").fetchone()[0]
                    total = con.execute(f"SELECT count(*) FROM '{d}samples.parquet'").fetchone()[0]
                    leaf_ok = leaf_ok and n == total
                    # profiles.parquet: one row per (series, time) holding the sum of its samples.
                    mismatched = con.execute(f\"\"\"SELECT count(*) FROM (SELECT series_id, time_nanos, sum(value)::BIGINT AS total
                        FROM '{d}samples.parquet' GROUP BY 1, 2) s FULL JOIN '{d}profiles.parquet' p USING (series_id, time_nanos)
                        WHERE s.total IS DISTINCT FROM p.total\"\"\").fetchone()[0]
                    profiles_ok = profiles_ok and mismatched == 0
                    # stack_totals.parquet: one row per (series, stack) holding its sum over the block.
                    mismatched = con.execute(f\"\"\"SELECT count(*) FROM (SELECT series_id, stack_id, sum(value)::BIGINT AS total
                        FROM '{d}samples.parquet' GROUP BY 1, 2) s FULL JOIN '{d}stack_totals.parquet' p USING (series_id, stack_id)
                        WHERE s.total IS DISTINCT FROM p.total\"\"\").fetchone()[0]
                    profiles_ok = profiles_ok and mismatched == 0
                print(json.dumps({"rows": rows, "totals": totals, "api": api, "leaf_ok": leaf_ok, "profiles_ok": profiles_ok}))
                """
            let result = try #require(try Python.json(script, [dir!.path]) as? [String: Any])
            let duckTotals = (result["totals"] as? [String: Any] ?? [:]).mapValues { ($0 as? NSNumber)?.int64Value ?? -1 }
            #expect(duckTotals == totals(sent))
            let rows = result["rows"] as? [String: Int] ?? [:]
            #expect(rows["samples.parquet"] == sent.reduce(0) { $0 + $1.sampleCount })
            #expect(Set(rows.keys) == Set(BlockFile.tables))
            var apiTotal: Int64 = 0
            for b in sent {
                for i in 0..<b.sampleCount where b.series[Int(b.sampleSeries[i])].labels["service_name"] == "api" {
                    apiTotal += b.sampleValues[i]
                }
            }
            #expect((result["api"] as? NSNumber)?.int64Value == apiTotal)
            #expect(result["leaf_ok"] as? Bool == true)
            #expect(result["profiles_ok"] as? Bool == true)
        }
    }
}
