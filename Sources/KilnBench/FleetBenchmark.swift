import Blocks
import Foundation
import KilnFoundation
import Logging
import Normalization
import ObjectStore
import ProfileModel
import Query
import Records

/// Fleet-wide questions over a fleet data set: `services` services, each profiled for CPU every 15 s for
/// `days` days from the real Go CPU fixtures (each service its own fixture, labels and varied values), stored
/// as compaction leaves it with its default 256 MiB merge budget: level-1 blocks of one hour of every service
/// (each about 5.7 million samples, 238 MiB by the head's estimate, so no two fit one level-2 merge).
/// Every figure stands beside its floor — reading and decompressing what the query must read — and, where
/// the issue sets one, its target.
public enum FleetBenchmark {
    static let fixtures = [
        "go_cpu_labels_pyroscope.pb.gz", "go_cpu_report_sample.pb.gz", "go_cpu_span_id_labels.pb.gz", "go_cpu_stripped_parca.pb.gz",
        "go_cpu_ap-query_2026.pb.gz", "go_cpu_pgo_akvorado.pb.gz",
    ]
    static let interval: Int64 = 15_000_000_000
    static let hour: Int64 = 3_600_000_000_000
    static let blockHours: Int64 = 1
    /// The data set's last instant (Unix ns): fixed, so a data set generated earlier is reused as is.
    static let end: Int64 = 1_764_000_000_000_000_000
    static let tenant = "bench"

    /// What generating the data set wrote, kept beside it so a later run in the same folder reuses it.
    struct DataSet: Codable, Equatable {
        /// Bumped when the blocks' tables change, so a data set of older blocks is generated again.
        var generator = 4
        var services: Int
        var days: Int
        var fixtures: [String]
        var profiles = 0
        var samples = 0
        var rawPprofBytes = 0
        var storedBytes = 0
        var blocks = 0
        var generatedSeconds = 0.0
    }

    public static func run(fixturesDir: URL, dataDir: URL, services: Int = 100, days: Int = 7) async throws -> [BenchMeasurement] {
        let (store, dataSet, reused) = try await dataSet(fixturesDir: fixturesDir, dataDir: dataDir, services: services, days: days)
        let cpu = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
        let week = end - Int64(days) * 24 * hour...end - 1
        let day = end - 24 * hour...end - 1
        let every = LabelSelector()

        // The service list with a sparkline per service, as Grafana's Profiles Drilldown asks for it.
        func serviceList(_ engine: QueryEngine, _ range: ClosedRange<Int64>, step: Int64) async throws -> Int {
            let names = try await engine.labelValues(
                tenant: tenant, name: LabelName.serviceName, selectors: [try LabelSelector(parsing: "{__profile_type__=\"\(cpu)\"}")],
                time: range)
            let series = try await engine.timeSeries(
                Selection(tenant: tenant, profileType: cpu, selector: every, time: range), stepMillis: step,
                groupBy: [LabelName.serviceName], aggregation: .sum, limit: nil)
            guard names.count == services, series.count == services else {
                throw BenchError("the service list has \(names.count) names and \(series.count) sparklines, not \(services)")
            }
            return series.count
        }
        func flameGraph(_ engine: QueryEngine, _ range: ClosedRange<Int64>) async throws -> Int64 {
            let (tree, names) = try await engine.mergeStacks(Selection(tenant: tenant, profileType: cpu, selector: every, time: range))
            return FlameGraphLevels(tree: tree, nameTable: names, maxNodes: FlameGraphLevels.defaultMaxNodes).total
        }
        let metas = try await QueryEngine(store: store).liveBlocks(tenant: tenant)
        func blocks(in range: ClosedRange<Int64>) -> [BlockMeta] {
            metas.filter { $0.minTime <= range.upperBound && $0.maxTime >= range.lowerBound }
        }
        // Floors: what a query must read, by a fresh reader per block, one block at a time.
        func floor(_ blocks: [BlockMeta], _ read: (BlockReader, Set<Int32>) async throws -> Void) async throws {
            for meta in blocks {
                let reader = BlockReader(store: store, meta: meta)
                try await read(reader, Set(try await reader.series().map(\.id)))
            }
        }
        // The series and profile tables a time series needs.
        func profilesFloor(_ blocks: [BlockMeta]) async throws {
            try await floor(blocks) { reader, ids in _ = try await reader.profileTotals(time: Int64.min...Int64.max, series: ids) }
        }

        let generated =
            reused
            ? "reused from an earlier run, generated in \(Int(dataSet.generatedSeconds)) s"
            : "generated in \(Int(dataSet.generatedSeconds)) s"
        let label = "\(services) services × \(days) d of 15 s CPU profiles"
        // Stored bytes per MB of the raw pprof the profiles came from, beside the compaction suite's target.
        var results = [
            BenchMeasurement(
                name: "fleet data set: \(label), \(dataSet.profiles) profiles, \(dataSet.samples) samples, "
                    + "\(dataSet.rawPprofBytes >> 20) MiB of pprof, \(dataSet.blocks) blocks (\(generated)), stored bytes per MB of pprof",
                unit: "B/MB", kiln: Double(dataSet.storedBytes) / Double(dataSet.rawPprofBytes) * 1e6,
                baselineName: "the compaction target (0.10 B/B)", baseline: 100_000, higherIsBetter: false, targetRatio: 1)
        ]

        // The first query after a restart: a fresh engine lists the blocks and opens their series tables.
        let firstStep: Int64 = 3_600_000
        let first = try await QueryBenchmark.latencies(1) { _ = try await serviceList(QueryEngine(store: store), week, step: firstStep) }
        results.append(
            BenchMeasurement.latency(
                "first query after a restart: service list with \(days)-day sparklines (fresh engine, \(metas.count) blocks)",
                ms: first.p50, target: 5000))

        let engine = QueryEngine(store: store)
        var weekProfilesFloor = 0.0
        for (name, range, step, runs) in [("24 h", day, Int64(300_000), 5), ("\(days) days", week, Int64(3_600_000), 3)] {
            _ = try await serviceList(engine, range, step: step)
            let query = try await QueryBenchmark.latencies(runs) { _ = try await serviceList(engine, range, step: step) }
            let floor = try await QueryBenchmark.latencies(runs) { try await profilesFloor(blocks(in: range)) }
            if range == week { weekProfilesFloor = floor.p50 }
            results.append(
                BenchMeasurement.latency(
                    "service list with a sparkline per service, \(name) (step \(step / 1000) s), p50", ms: query.p50, target: 1000))
            results.append(
                BenchMeasurement.latency(
                    "service list with a sparkline per service, \(name), p50", ms: query.p50,
                    floor: "read + decompress the series and profile tables (floor)", floorMs: floor.p50))
        }

        let grouped = try await QueryBenchmark.latencies(3) {
            _ = try await engine.timeSeries(
                Selection(tenant: tenant, profileType: cpu, selector: every, time: week), stepMillis: 600_000,
                groupBy: [LabelName.serviceName], aggregation: .sum, limit: nil)
        }
        results.append(
            BenchMeasurement.latency("SelectSeries grouped by service_name, \(days) days (step 600 s), p50", ms: grouped.p50, target: 1000))
        results.append(
            BenchMeasurement.latency(
                "SelectSeries grouped by service_name, \(days) days, p50", ms: grouped.p50,
                floor: "read + decompress the series and profile tables (floor)", floorMs: weekProfilesFloor))

        // The merged flame graph of every service over the week, nothing cached between queries: over whole
        // blocks (the range starts at a block boundary) and over a range cut 17 minutes into its first and last
        // blocks, whose samples are then read; then on a warm server (whole-block trees cached).
        var uncachedOptions = QueryEngineOptions()
        uncachedOptions.cachedBlockTrees = 0
        let uncached = QueryEngine(store: store, options: uncachedOptions)
        let cut = week.lowerBound + 17 * 60_000_000_000...week.upperBound - 43 * 60_000_000_000
        guard try await flameGraph(uncached, week) == (try await flameGraph(engine, week)) else {
            throw BenchError("cached and uncached flame graph totals differ")
        }
        let whole = try await QueryBenchmark.latencies(3) { _ = try await flameGraph(uncached, week) }
        let partial = try await QueryBenchmark.latencies(3) { _ = try await flameGraph(uncached, cut) }
        let warm = try await QueryBenchmark.latencies(3) { _ = try await flameGraph(engine, week) }
        // The stack totals and symbols a flame graph over whole blocks reads, and every sample column it read before.
        let totalsFloor = try await QueryBenchmark.latencies(3) {
            try await floor(blocks(in: week)) { reader, ids in
                _ = try await reader.stackTotals(series: ids)
                _ = try await reader.symbols()
            }
        }
        let samplesFloor = try await QueryBenchmark.latencies(1) {
            try await floor(blocks(in: week)) { reader, ids in
                _ = try await reader.stackSamples(time: Int64.min...Int64.max, series: ids)
                _ = try await reader.symbols()
            }
        }
        for (name, latency) in [("whole blocks", whole), ("cut 17 min into its first block and 43 min into its last", partial)] {
            results.append(
                BenchMeasurement.latency(
                    "merged flame graph of all services, \(days) days, \(name), nothing cached, p50", ms: latency.p50, target: 2000))
        }
        results.append(
            BenchMeasurement.latency(
                "merged flame graph of all services, \(days) days, whole blocks, nothing cached, p50", ms: whole.p50,
                floor: "read + decompress the stack totals and symbols (floor)", floorMs: totalsFloor.p50))
        results.append(
            BenchMeasurement.latency(
                "merged flame graph of all services, \(days) days, whole blocks, nothing cached, p50", ms: whole.p50,
                floor: "read + decompress every sample column and symbol (what it read before stack_totals.parquet)",
                floorMs: samplesFloor.p50))
        results.append(
            BenchMeasurement.latency(
                "merged flame graph of all services, \(days) days, warm server (whole-block trees cached), p50", ms: warm.p50, target: 2000)
        )
        // (start, end]: whole hours, which every resolution answers alike.
        let aligned = week.lowerBound + 1...week.upperBound + 1
        let alignedTotal = try await flameGraph(engine, aligned)
        try await store.shutdown()
        results += try await downsampled(dataDir: dataDir, dataSet: dataSet, aligned: aligned, fullTotal: alignedTotal)
        return results
    }

    /// A copy of the data set as `kiln-compactor`'s maintenance leaves it 8 and 31 days later (its defaults:
    /// per minute after 7 days, per hour after 30): stored bytes per raw pprof byte at each resolution, the
    /// rewrite's throughput, and the week's flame graph and sparklines read from the per-hour blocks.
    static func downsampled(dataDir: URL, dataSet: DataSet, aligned: ClosedRange<Int64>, fullTotal: Int64) async throws
        -> [BenchMeasurement]
    {
        let copy = dataDir.appendingPathComponent("downsampled")
        try? FileManager.default.removeItem(at: copy)
        try FileManager.default.copyItem(at: dataDir.appendingPathComponent("store"), to: copy)
        defer { try? FileManager.default.removeItem(at: copy) }
        let store = try makeObjectStore(url: "file://" + copy.path)
        var config = CompactionConfig()
        config.perMinuteAfter = .seconds(7 * 86_400)
        config.perHourAfter = .seconds(30 * 86_400)
        var logger = Logger(label: "bench.downsampling")
        logger.logLevel = .warning
        let compactor = Compactor(store: store, config: config, logger: logger)
        let endSeconds = Double(end / 1_000_000_000)
        var results: [BenchMeasurement] = []
        // Samples each pass reads: the original's, then the per-minute blocks'.
        var rewritten = dataSet.samples
        let largest = try await QueryEngine(store: store).liveBlocks(tenant: tenant).max { $0.stats.samples < $1.stats.samples }
        for (name, daysLater) in [("per minute", 8.0), ("per hour", 31.0)] {
            // The rewrite's own peak: the kernel's high-water mark reset to the current RSS first.
            let rssBefore = PeakMemory.resetHighWaterMark()
            let clock = ContinuousClock()
            let t0 = clock.now
            let pass = try await compactor.pass(tenant: tenant, now: Date(timeIntervalSince1970: endSeconds + daysLater * 86_400))
            let elapsed = clock.now - t0
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let live = try await QueryEngine(store: store).liveBlocks(tenant: tenant)
            let bytes = live.reduce(0) { $0 + $1.files.reduce(0) { $0 + $1.sizeBytes } }
            let samples = live.reduce(0) { $0 + Int($1.stats.samples) }
            results.append(
                BenchMeasurement(
                    name: "fleet data set \(name), stored bytes per MB of pprof (\(pass.downsampled) blocks rewritten in "
                        + "\(String(format: "%.0f", seconds)) s, \(String(format: "%.1f", Double(rewritten) / max(seconds, 1e-9) / 1e6)) M samples/s; "
                        + "\(samples) samples left)",
                    unit: "B/MB", kiln: Double(bytes) / Double(dataSet.rawPprofBytes) * 1e6, baselineName: "at full resolution",
                    baseline: Double(dataSet.storedBytes) / Double(dataSet.rawPprofBytes) * 1e6, higherIsBetter: false))
            rewritten = samples
            if name == "per minute", let largest {
                results.append(
                    BenchMeasurement(
                        name: "downsampling peak memory above the RSS before (largest block \(largest.stats.samples) samples, "
                            + "\(String(format: "%.0f", rssBefore)) MiB before)",
                        unit: "MiB", kiln: max(0, PeakMemory.highWaterMarkMiB() - rssBefore),
                        baselineName: "that block's head estimate", baseline: Double(largest.estimatedHeadBytes >> 20),
                        higherIsBetter: false))
            }
        }
        var uncached = QueryEngineOptions()
        uncached.cachedBlockTrees = 0
        let engine = QueryEngine(store: store, options: uncached)
        let cpu = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
        let flame = try await QueryBenchmark.latencies(3) {
            let (tree, _) = try await engine.mergeStacks(
                Selection(tenant: tenant, profileType: cpu, selector: LabelSelector(), time: aligned))
            guard tree.total() == fullTotal else {
                throw BenchError("the per-hour week totals \(tree.total()), full resolution \(fullTotal)")
            }
        }
        results.append(
            BenchMeasurement.latency(
                "merged flame graph of all services, \(dataSet.days) days of whole hours, from per-hour blocks (total equal to full resolution), nothing cached, p50",
                ms: flame.p50, target: 2000))
        try await store.shutdown()
        return results
    }

    /// The data set in `dataDir` (a file:// store and `dataset.json`), generated when absent or made with
    /// other parameters.
    static func dataSet(fixturesDir: URL, dataDir: URL, services: Int, days: Int) async throws -> (any ObjectStore, DataSet, Bool) {
        let markerURL = dataDir.appendingPathComponent("dataset.json")
        let storeDir = dataDir.appendingPathComponent("store")
        let wanted = DataSet(services: services, days: days, fixtures: fixtures)
        if let data = FileManager.default.contents(atPath: markerURL.path),
            let found = try? JSONDecoder().decode(DataSet.self, from: data),
            found.generator == wanted.generator, found.services == services, found.days == days, found.fixtures == fixtures
        {
            return (try makeObjectStore(url: "file://" + storeDir.path), found, true)
        }
        try? FileManager.default.removeItem(at: dataDir)
        try FileManager.default.createDirectory(at: storeDir, withIntermediateDirectories: true)
        let store = try makeObjectStore(url: "file://" + storeDir.path)
        let clock = ContinuousClock()
        let t0 = clock.now
        var dataSet = try await generate(into: store, fixturesDir: fixturesDir, services: services, hours: days * 24)
        dataSet.days = days
        let elapsed = clock.now - t0
        dataSet.generatedSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        try JSONEncoder().encode(dataSet).write(to: markerURL)
        return (store, dataSet, false)
    }

    /// Writes `hours` (a multiple of `blockHours`) of every service's profiles, ending at `end`, into `store`.
    static func generate(into store: any ObjectStore, fixturesDir: URL, services: Int, hours: Int) async throws -> DataSet {
        let dir = fixturesDir.lastPathComponent == "pprof" ? fixturesDir : fixturesDir.appendingPathComponent("pprof")
        // Per service: its fixture normalised once with its own labels, re-timed for every profile.
        var templates: [SampleBatch] = []
        var rawBytes: [Int] = []
        var normalizer = Normalizer()
        for s in 0..<services {
            let name = fixtures[s % fixtures.count]
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else {
                throw BenchError("fixture \(name) not found under \(dir.path)")
            }
            let labels = LabelSet([
                "service_name": String(format: "svc-%03d", s), "namespace": "team-\(s % 12)", "instance": "10.1.\(s / 200).\(s % 200):6060",
            ])
            let envelope = RawEnvelope(
                tenant: tenant, labels: labels, source: .loadgen, format: .pprof, startNanos: 0, endNanos: 0, cumulative: false,
                payload: [UInt8](data))
            guard let batch = try normalizer.normalize(envelope, provenance: Provenance(topic: "raw", partition: 0, offset: 0)).batch else {
                throw BenchError("\(name) gave no samples")
            }
            templates.append(batch)
            rawBytes.append(data.count)
        }
        let start = end - Int64(hours) * hour
        let profilesPerBlock = Int(blockHours * hour / interval)
        let blockCount = hours / Int(blockHours)
        var dataSet = DataSet(services: services, days: hours / 24, fixtures: fixtures)
        let templatesCopy = templates
        // Two blocks at a time (this machine's cores), each built and encoded off the cooperative pool.
        try await withThrowingTaskGroup(of: (BlockMeta, Int, Int).self) { group in
            var next = 0
            func add() {
                guard next < blockCount else { return }
                let index = next
                next += 1
                group.addTask {
                    let block = try await BlockingWork.shared.run {
                        try encodeBlock(index: index, start: start, profiles: profilesPerBlock, templates: templatesCopy)
                    }
                    try await BlockWriter.upload(block.encoded, to: store)
                    return (block.encoded.meta, block.samples, block.profiles)
                }
            }
            for _ in 0..<2 { add() }
            while let (meta, samples, profiles) = try await group.next() {
                dataSet.blocks += 1
                dataSet.samples += samples
                dataSet.profiles += profiles
                dataSet.storedBytes += meta.files.reduce(0) { $0 + $1.sizeBytes }
                add()
            }
        }
        dataSet.rawPprofBytes = (0..<services).reduce(0) { $0 + rawBytes[$1] } * profilesPerBlock * blockCount
        return dataSet
    }

    /// Block `index`: `profiles` consecutive 15 s profiles of every service, values varied per profile.
    static func encodeBlock(index: Int, start: Int64, profiles: Int, templates: [SampleBatch]) throws -> (
        encoded: EncodedBlock, samples: Int, profiles: Int
    ) {
        var head = Head(tenant: tenant)
        var samples = 0
        for p in 0..<profiles {
            let profile = index * profiles + p
            let at = start + Int64(profile) * interval
            for (s, template) in templates.enumerated() {
                var batch = template
                for i in batch.sampleTimes.indices {
                    batch.sampleTimes[i] = at
                    batch.sampleValues[i] = template.sampleValues[i] &* Int64(1 + (i &+ profile &+ s) % 4)
                }
                batch.provenance = Provenance(topic: "raw", partition: 0, offset: Int64(profile * templates.count + s))
                head.append(batch)
                samples += batch.sampleCount
            }
        }
        // The ULID a compactor derives for a merged block: deterministic, time-ordered by the block's start.
        let ulid = ULID.deterministic(
            timestampMillis: UInt64((start + Int64(index) * blockHours * hour) / 1_000_000), seed: "fleet-\(index)")
        let encoded = try BlockWriter().encode(head, ulid: ulid, compaction: .init(level: 1, sources: [ulid], parents: []))
        return (encoded, samples, profiles * templates.count)
    }
}
