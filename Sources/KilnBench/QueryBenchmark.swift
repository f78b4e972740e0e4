import Blocks
import Foundation
import Normalization
import ObjectStore
import Parquet
import ProfileModel
import Query
import Records

/// SelectMergeStacktraces latency over 1 hour and 24 hours of one service profiled every 15 s, stored as
/// Kiln stores it after level-1 compaction (one block per hour) in a file:// store. The floor is the time to
/// just read the same blocks' files and decompress their tables, measured in the same run. Two days are
/// stored so that a regression report can compare the last day with the day before (and the last hour
/// with the hour before), beside a plain diff of the same selections.
public enum QueryBenchmark {
    public static let profileInterval: Int64 = 15_000_000_000

    public static func run(fixturesDir: URL, fixture: String = "go_cpu_truncated_stacks.pb.gz", hours: Int = 48) async throws
        -> [BenchMeasurement]
    {
        let dir = fixturesDir.lastPathComponent == "pprof" ? fixturesDir : fixturesDir.appendingPathComponent("pprof")
        guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(fixture).path) else {
            throw BenchError("fixture \(fixture) not found under \(dir.path)")
        }
        var normalizer = Normalizer()
        let envelope = RawEnvelope(
            tenant: "bench", labels: LabelSet(["service_name": "checkout", "instance": "checkout-0:6060"]),
            source: .loadgen, format: .pprof, startNanos: 0, endNanos: 0, cumulative: false, payload: [UInt8](data))
        guard let template = try normalizer.normalize(envelope, provenance: Provenance(topic: "bench", partition: 0, offset: 0)).batch,
            let cpu = template.series.first(where: { $0.profileType.sampleUnit == "nanoseconds" })?.profileType
        else {
            throw BenchError("\(fixture) gave no CPU samples")
        }

        let storeDir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-query-bench-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: storeDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: storeDir) }
        let store = try makeObjectStore(url: "file://" + storeDir.path)
        let end: Int64 = 1_764_000_000_000_000_000
        let start = end - Int64(hours) * 3_600_000_000_000
        let perHour = Int(3_600_000_000_000 / profileInterval)
        var metas: [BlockMeta] = []
        var samples = 0
        for hour in 0..<hours {
            var head = Head(tenant: "bench")
            for p in 0..<perHour {
                let at = start + Int64(hour * perHour + p) * profileInterval
                var batch = template
                // Each profile at its own time, with values varied so profiles are not identical, and its
                // samples in `spansPerProfile` spans (as a traced service's: every request a root span).
                for i in batch.sampleTimes.indices {
                    batch.sampleTimes[i] = at
                    batch.sampleValues[i] = batch.sampleValues[i] * Int64(1 + (i + p) % 3)
                    batch.sampleSpans[i] = spanID(profile: hour * perHour + p, i % spansPerProfile)
                }
                batch.provenance = Provenance(topic: "bench", partition: 0, offset: Int64(hour * perHour + p))
                samples += batch.sampleCount
                head.append(batch)
            }
            let ulid = ULID.make()
            let block = try BlockWriter().encode(head, ulid: ulid, compaction: .init(level: 1, sources: [ulid], parents: []))
            try await BlockWriter.upload(block, to: store)
            metas.append(block.meta)
        }

        // A server that has answered before: blocks open, symbols resolved, whole-block trees cached.
        let engine = QueryEngine(store: store)
        // The same, but every query reads the blocks' tables again (no whole-block tree cache).
        var uncachedOptions = QueryEngineOptions()
        uncachedOptions.cachedBlockTrees = 0
        let uncached = QueryEngine(store: store, options: uncachedOptions)
        func query(_ engine: QueryEngine, _ range: ClosedRange<Int64>) async throws -> Int64 {
            let selection = Selection(
                tenant: "bench", profileType: cpu.id, selector: try LabelSelector(parsing: #"{service_name="checkout"}"#), time: range)
            let (tree, names) = try await engine.mergeStacks(selection)
            return FlameGraphLevels(tree: tree, nameTable: names, maxNodes: FlameGraphLevels.defaultMaxNodes).total
        }
        func floor(_ blocks: ArraySlice<BlockMeta>) async throws -> Int {
            var rows = 0
            for meta in blocks {
                let reader = BlockReader(store: store, meta: meta)
                rows += try await reader.samples().count
                rows += try await reader.symbols().nodeParents.count
            }
            return rows
        }
        var results: [BenchMeasurement] = []
        for (label, span, runs, target) in [("1 hour", 1, 40, 50.0), ("24 hours", 24, 10, 500.0)] {
            // The last hour or day; the range covers whole blocks, as "last 24 h" does after an hour boundary.
            let range = end - Int64(span) * 3_600_000_000_000...end - 1
            let total = try await query(engine, range)
            guard try await query(uncached, range) == total else { throw BenchError("cached and uncached totals differ") }
            let warm = try await latencies(runs) { _ = try await query(engine, range) }
            let cold = try await latencies(runs) { _ = try await query(uncached, range) }
            let base = try await latencies(runs) { _ = try await floor(metas.suffix(span)) }
            results.append(
                BenchMeasurement(
                    name: "SelectMergeStacktraces p99, \(label) of one service (\(span * perHour) profiles), warm server", unit: "ms",
                    kiln: warm.p99, baselineName: "target \(Int(target)) ms", baseline: target, higherIsBetter: false, targetRatio: 1))
            results.append(
                BenchMeasurement(
                    name: "SelectMergeStacktraces p50, \(label), warm server (whole-block trees cached)", unit: "ms",
                    kiln: warm.p50, baselineName: "read + decompress the blocks (floor)", baseline: base.p50, higherIsBetter: false))
            results.append(
                BenchMeasurement(
                    name: "SelectMergeStacktraces p50 / p99, \(label), nothing cached between queries", unit: "ms",
                    kiln: cold.p50, baselineName: "its p99", baseline: cold.p99, higherIsBetter: false))
            results.append(
                BenchMeasurement(
                    name: "SelectMergeStacktraces p50, \(label), nothing cached between queries", unit: "ms",
                    kiln: cold.p50, baselineName: "read + decompress the blocks (floor)", baseline: base.p50, higherIsBetter: false))
        }
        let day = end - 24 * 3_600_000_000_000...end
        let cold = try await latencies(3) {
            let fresh = QueryEngine(store: store)
            _ = try await fresh.mergeStacks(Selection(tenant: "bench", profileType: cpu.id, selector: LabelSelector(), time: day))
        }
        let base = try await latencies(3) { _ = try await floor(metas.suffix(24)) }
        results.append(
            BenchMeasurement(
                name: "first query of 24 hours (cold engine, \(samples / (hours / 24)) samples stored per day)", unit: "ms",
                kiln: cold.p50, baselineName: "read + decompress the blocks (floor)", baseline: base.p50,
                higherIsBetter: false))
        results += try await selections(
            uncached: uncached, metas: metas, type: cpu.id, labels: template.series.first { $0.profileType == cpu }!.labels, start: start,
            hours: hours, perHour: perHour)
        results += try await regressionReports(engine: engine, uncached: uncached, type: cpu.id, end: end, perHour: perHour)
        try await store.shutdown()
        return results
    }

    static let spansPerProfile = 10

    /// Span `k` of profile number `profile`: distinct, nonzero, scattered over 64 bits (multiplying by an odd
    /// number is a bijection that keeps only 0 at 0, so the index counts from 1).
    static func spanID(profile: Int, _ k: Int) -> UInt64 { UInt64(profile * spansPerProfile + k + 1) &* 0x9E37_79B9_7F4A_7C15 }

    /// Span and profile-ID selections over the last 24 hours against the whole range's query, nothing
    /// cached: the whole range reads stack_totals.parquet; a selection reads the sample row groups that
    /// may hold it (time statistics for a profile ID, `span_id` Bloom filters for spans). Beside them, what
    /// the Bloom filters add to samples.parquet.
    static func selections(
        uncached: QueryEngine, metas: [BlockMeta], type: String, labels: LabelSet, start: Int64, hours: Int, perHour: Int
    ) async throws -> [BenchMeasurement] {
        let day = start + Int64(hours - 24) * 3_600_000_000_000...start + Int64(hours) * 3_600_000_000_000 - 1
        let selector = try LabelSelector(parsing: #"{service_name="checkout"}"#)
        func merged(_ selection: Selection) async throws -> Int64 {
            let (tree, names) = try await uncached.mergeStacks(selection)
            return FlameGraphLevels(tree: tree, nameTable: names, maxNodes: FlameGraphLevels.defaultMaxNodes).total
        }
        let whole = Selection(tenant: "bench", profileType: type, selector: selector, time: day)
        let wholeTotal = try await merged(whole)
        let wholeTime = try await latencies(5) { _ = try await merged(whole) }
        let firstProfile = (hours - 24) * perHour
        let middle = firstProfile + 12 * perHour + 7
        let onePercent = Set(
            stride(from: firstProfile * spansPerProfile, to: hours * perHour * spansPerProfile, by: 101).map {
                spanID(profile: $0 / spansPerProfile, $0 % spansPerProfile)
            })
        let profileTime = start + Int64(middle) * profileInterval
        let cases: [(String, Selection)] = [
            (
                "one span (Tempo's \"profiles for this span\")",
                Selection(tenant: "bench", profileType: type, selector: selector, time: day, spans: [spanID(profile: middle, 3)])
            ),
            (
                "1 % of the spans (\(onePercent.count))",
                Selection(tenant: "bench", profileType: type, selector: selector, time: day, spans: onePercent)
            ),
            (
                "one profile by ID",
                Selection(
                    tenant: "bench", profileType: type, selector: selector, time: day,
                    profiles: try ProfileSelection.parse([ProfileID(timeNanos: profileTime, labels: labels).description]))
            ),
        ]
        var results: [BenchMeasurement] = []
        for (label, selection) in cases {
            let total = try await merged(selection)
            guard total > 0, total < wholeTotal else { throw BenchError("\(label): total \(total) of the whole \(wholeTotal)") }
            let time = try await latencies(5) { _ = try await merged(selection) }
            results.append(
                BenchMeasurement(
                    name: "SelectMergeStacktraces p50 over 24 hours of one service, \(label), nothing cached", unit: "ms", kiln: time.p50,
                    baselineName: "the whole range's query", baseline: wholeTime.p50, higherIsBetter: false, targetRatio: 5))
        }
        // The filters' bytes against the rest of samples.parquet, over the day's blocks.
        var filterBytes = 0
        var sampleBytes = 0
        for meta in metas.suffix(24) {
            let file = try await uncached.store.get(meta.key(of: BlockFile.samples))
            let t = try ParquetFileReader(bytes: file)
            let column = t.leafIndex(named: "span_id")!
            sampleBytes += file.count
            for rg in 0..<t.rowGroupCount { filterBytes += Int(t.columnMetaData(rowGroup: rg, column: column)?.bloomFilterLength ?? 0) }
        }
        results.append(
            BenchMeasurement(
                name: "samples.parquet with span_id Bloom filters (\(spansPerProfile) spans a profile), 24 hours", unit: "bytes",
                kiln: Double(sampleBytes), baselineName: "without the filters", baseline: Double(sampleBytes - filterBytes),
                higherIsBetter: false, targetRatio: 1 / 1.1))
        return results
    }

    /// A regression report of the last hour against the hour before, and of the last day against the day
    /// before, beside reading the sample columns of the same two selections (the report needs every profile's
    /// samples) and beside the Diff of the same selections, with nothing cached and on a warm server.
    static func regressionReports(engine: QueryEngine, uncached: QueryEngine, type: String, end: Int64, perHour: Int) async throws
        -> [BenchMeasurement]
    {
        let hour: Int64 = 3_600_000_000_000
        var results: [BenchMeasurement] = []
        for (label, span, runs) in [("1 h against 1 h", Int64(1), 10), ("24 h against 24 h", Int64(24), 3)] {
            let selector = try LabelSelector(parsing: #"{service_name="checkout"}"#)
            let comparison = Selection(tenant: "bench", profileType: type, selector: selector, time: end - span * hour...end - 1)
            let baseline = Selection(
                tenant: "bench", profileType: type, selector: selector, time: end - 2 * span * hour...end - span * hour - 1)
            func report(_ engine: QueryEngine) async throws {
                let r = try await engine.regressions(baseline: baseline, comparison: comparison, queries: ("", ""), unit: "nanoseconds")
                guard r.baseline.profiles == Int(span) * perHour, r.comparison.profiles == Int(span) * perHour else {
                    throw BenchError("the report saw \(r.baseline.profiles) and \(r.comparison.profiles) profiles")
                }
            }
            // The floor: each block of both selections read by a fresh reader, its sample columns decompressed.
            let blocks = try await uncached.liveBlocks(tenant: "bench")
            let floor = try await latencies(runs) {
                for selection in [baseline, comparison] {
                    for meta in blocks where meta.minTime <= selection.time.upperBound && meta.maxTime >= selection.time.lowerBound {
                        let reader = BlockReader(store: uncached.store, meta: meta)
                        _ = try await reader.stackSamples(time: selection.time, series: Set(try await reader.series().map(\.id)))
                    }
                }
            }
            for (server, e) in [("nothing cached", uncached), ("warm server", engine)] {
                _ = try await e.diff(left: baseline, right: comparison)
                let diff = try await latencies(runs) { _ = try await e.diff(left: baseline, right: comparison) }
                let reported = try await latencies(runs) { try await report(e) }
                let name = "regression report p50, \(label) of one service (\(Int(span) * perHour) profiles a side), \(server)"
                if server == "nothing cached" {
                    results.append(
                        BenchMeasurement(
                            name: name, unit: "ms", kiln: reported.p50, baselineName: "read + decompress both selections' samples (floor)",
                            baseline: floor.p50, higherIsBetter: false, targetRatio: 1.0 / 3))
                }
                results.append(
                    BenchMeasurement(
                        name: name, unit: "ms", kiln: reported.p50, baselineName: "Diff of the same selections", baseline: diff.p50,
                        higherIsBetter: false))
            }
        }
        return results
    }

    /// p50 and p99 in ms of `runs` runs.
    static func latencies(_ runs: Int, _ body: () async throws -> Void) async throws -> (p50: Double, p99: Double) {
        let clock = ContinuousClock()
        var ms: [Double] = []
        for _ in 0..<runs {
            let t0 = clock.now
            try await body()
            let d = clock.now - t0
            ms.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
        }
        ms.sort()
        func q(_ p: Double) -> Double { ms[min(ms.count - 1, Int((Double(ms.count - 1) * p).rounded(.up)))] }
        return (q(0.5), q(0.99))
    }
}
