import Blocks
import Foundation
import Logging
import Normalization
import ObjectStore
import ProfileModel
import Records

/// Stored bytes per raw pprof byte for an hour of a realistic stream — `services` services, each sending a
/// CPU, a heap, a goroutine and a mutex profile every 15 s, made from real fixtures with their own labels,
/// timestamps and varied values — written as level-0 blocks every 5 minutes and then compacted into one
/// level-1 block; with the compaction's throughput and the peak memory of the compaction alone.
public enum CompactionBenchmarkDefaults {
    public static let maxHeadBytes = CompactionConfig().maxHeadBytes
}

public enum CompactionBenchmark {
    static let cpu = [
        "go_cpu_labels_pyroscope.pb.gz", "go_cpu_report_sample.pb.gz", "go_cpu_span_id_labels.pb.gz", "go_cpu_stripped_parca.pb.gz",
    ]
    static let heap = ["go_heap_delta_pyroscope.pb.gz", "go_heap_raw_ddtrace.pb", "go_allocs_ap-query_2026.pb.gz"]
    static let other = ["go_goroutine_pyroscope.pb.gz", "go_mutex_pyroscope.pb.gz"]

    public static func run(
        fixturesDir: URL, services: Int = 50, minutes: Int = 60,
        maxHeadBytes: Int = CompactionBenchmarkDefaults.maxHeadBytes
    ) async throws -> [BenchMeasurement] {
        let dir = fixturesDir.lastPathComponent == "pprof" ? fixturesDir : fixturesDir.appendingPathComponent("pprof")
        func load(_ name: String) throws -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else {
                throw BenchError("fixture \(name) not found under \(dir.path)")
            }
            return [UInt8](data)
        }
        // Per service: its four profiles normalised once as templates (its own labels), re-timed per scrape.
        var templates: [[(batch: SampleBatch, rawBytes: Int)]] = []
        var normalizer = Normalizer()
        for s in 0..<services {
            var mine: [(SampleBatch, Int)] = []
            for name in [cpu[s % cpu.count], heap[s % heap.count]] + other {
                let payload = try load(name)
                let labels = LabelSet([
                    "service_name": "svc-\(s)", "instance": "10.0.\(s / 200).\(s % 200):6060", "namespace": "team-\(s % 7)",
                ])
                let envelope = RawEnvelope(
                    tenant: "bench", labels: labels, source: .loadgen, format: .pprof,
                    startNanos: 0, endNanos: 0, cumulative: false, payload: payload)
                if let batch = try normalizer.normalize(envelope, provenance: Provenance(topic: "raw", partition: 0, offset: 0)).batch {
                    mine.append((batch, payload.count))
                }
            }
            templates.append(mine)
        }

        let storeDir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "kiln-compaction-bench-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: storeDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: storeDir) }
        let store = try makeObjectStore(url: "file://" + storeDir.path)
        let start: Int64 = 1_764_000_000_000_000_000 - Int64(minutes) * 60_000_000_000
        let scrapes = minutes * 4
        var rawBytes = 0
        var offset: Int64 = 0
        var l0: [BlockMeta] = []
        var samples = 0
        var head = Head(tenant: "bench")
        for scrape in 0..<scrapes {
            let at = start + Int64(scrape) * 15_000_000_000
            for (s, profiles) in templates.enumerated() {
                for (batch, raw) in profiles {
                    var b = batch
                    for i in b.sampleTimes.indices {
                        b.sampleTimes[i] = at
                        b.sampleValues[i] = b.sampleValues[i] &* Int64(1 + (i &+ scrape &+ s) % 4)
                    }
                    b.provenance = Provenance(topic: "raw", partition: 0, offset: offset)
                    head.append(b, from: RecordPosition(topic: "normalized", partition: 0, offset: offset))
                    offset += 1
                    rawBytes += raw
                    samples += b.sampleCount
                }
            }
            if (scrape + 1) % 20 == 0 || scrape == scrapes - 1 {  // a level-0 block every 5 minutes
                let ulid = ULID.make()
                let block = try BlockWriter().encode(head, ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: []))
                try await BlockWriter.upload(block, to: store)
                l0.append(block.meta)
                head = Head(tenant: "bench")
            }
        }
        let l0Bytes = l0.reduce(0) { $0 + $1.files.reduce(0) { $0 + $1.sizeBytes } }

        var logger = Logger(label: "bench.compaction")
        logger.logLevel = .warning
        // The planner's level-1 jobs (1-hour windows), as the compactor's background pass would run them.
        var config = CompactionConfig()
        config.maxHeadBytes = maxHeadBytes
        let compactor = Compactor(store: store, config: config, logger: logger)
        let later = Date(timeIntervalSince1970: Double(start / 1_000_000_000) + Double(minutes * 60) + 86_400)
        let jobs = CompactionPlanner.plan(tenant: "bench", live: l0, config: config, now: later).filter { $0.level == 1 }
        // The peak of the compaction alone: reset the kernel's high-water mark to the current RSS first.
        let rssBefore = PeakMemory.resetHighWaterMark()
        let clock = ContinuousClock()
        let t0 = clock.now
        var l1Bytes = 0
        for job in jobs { l1Bytes += try await compactor.run(job, now: later).files.reduce(0) { $0 + $1.sizeBytes } }
        let elapsed = clock.now - t0
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let compactionPeakMiB = PeakMemory.highWaterMarkMiB()
        // A budget smaller than a block leaves that block as it is: it is still stored, so it counts.
        let merged = Set(jobs.flatMap { $0.sources.map(\.ulid) })
        let unmerged = l0.filter { !merged.contains($0.ulid) }
        let storedBytes = l1Bytes + unmerged.reduce(0) { $0 + $1.files.reduce(0) { $0 + $1.sizeBytes } }
        let estimate = l0.reduce(0) { $0 + $1.estimatedHeadBytes }
        try await store.shutdown()

        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let peakMiB = Double(usage.ru_maxrss) / 1024
        let label =
            "\(services) services, \(minutes) min of 15 s scrapes, \(offset) profiles, \(samples) samples, \(rawBytes / 1_048_576) MiB of pprof"
        var measurements = [
            BenchMeasurement(
                name: "stored bytes per raw pprof byte after compaction (\(label)"
                    + (unmerged.isEmpty ? ")" : "; \(unmerged.count) level-0 blocks larger than the budget left as they are)"),
                unit: "B/B", kiln: Double(storedBytes) / Double(rawBytes), baselineName: "target", baseline: 0.10,
                higherIsBetter: false, targetRatio: 1),
            BenchMeasurement(
                name: "stored bytes per raw pprof byte, level 0 (5-minute blocks)", unit: "B/B",
                kiln: Double(l0Bytes) / Double(rawBytes), baselineName: "after compaction",
                baseline: Double(storedBytes) / Double(rawBytes),
                higherIsBetter: false),
            BenchMeasurement(
                name: "bench process peak RSS (heads + compaction)", unit: "MiB", kiln: peakMiB,
                baselineName: "raw pprof of the stream", baseline: Double(rawBytes) / 1_048_576, higherIsBetter: false),
        ]
        // What the merges added to the process at their peak, against the budget they were planned within.
        let grownMiB = max(0, compactionPeakMiB - rssBefore)
        let window =
            "the window's level-0 blocks estimate \(estimate >> 20) MiB as one head; peak \(String(format: "%.0f", compactionPeakMiB)) MiB, "
            + "\(String(format: "%.0f", rssBefore)) MiB before"
        if maxHeadBytes < estimate {
            measurements.append(
                BenchMeasurement(
                    name: "compaction peak memory above the RSS before (\(window))", unit: "MiB",
                    kiln: grownMiB, baselineName: "configured merge budget", baseline: Double(maxHeadBytes >> 20),
                    higherIsBetter: false, targetRatio: 1))
        } else {
            measurements.append(
                BenchMeasurement(
                    name: "compaction peak memory above the RSS before (\(window); a budget larger than the window)",
                    unit: "MiB", kiln: grownMiB, baselineName: "the window's estimate", baseline: Double(estimate >> 20),
                    higherIsBetter: false))
        }
        if !jobs.isEmpty {
            let rate = String(format: "%.1f", Double(rawBytes) / seconds / 1e6)
            measurements.append(
                BenchMeasurement(
                    name:
                        "compaction throughput (\(merged.count) of \(l0.count) level-0 blocks into \(jobs.count), \(rate) MB/s of raw pprof)",
                    unit: "samples/s", kiln: Double(samples) / seconds, baselineName: "the stream's own rate (samples per hour / 3600 s)",
                    baseline: Double(samples) / Double(minutes * 60), higherIsBetter: true))
        }
        return measurements
    }
}

/// The process's resident-set high-water mark (Linux `VmHWM`), which can be reset to the current RSS so a
/// phase's own peak can be read.
enum PeakMemory {
    /// Resets VmHWM to the current RSS (`echo 5 > /proc/self/clear_refs`) and returns the current RSS in MiB.
    @discardableResult
    static func resetHighWaterMark() -> Double {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
        return field("VmRSS")
    }

    static func highWaterMarkMiB() -> Double { field("VmHWM") }

    private static func field(_ name: String) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) } ?? 0
            return kb / 1024
        }
        return 0
    }
}
