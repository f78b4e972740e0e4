import ArgumentParser
import Foundation
import KilnBench
import KilnService

/// `kiln bench`: every benchmark runs Kiln beside a baseline in the same run and prints the ratio.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run Kiln's benchmarks, each beside its baseline in the same run (make bench runs them all).",
        discussion: "Suites: producer (Kafka producer vs kcat -P; needs --brokers), pprof (kiln merge vs go tool pprof -proto, "
            + "decode vs gzip -dc), normalizer (MB/s per core vs inflate alone), ingest (push ingest vs a 200-OK handler on the "
            + "same server), parquet (block table writes vs pyarrow), query (SelectMergeStacktraces over 1 h and 24 h vs reading "
            + "and decompressing the same blocks; regression reports of 1 h and 24 h against the period before vs the Diff of "
            + "the same selections), fleet (the service list with sparklines, SelectSeries by service and the merged flame graph "
            + "over 100 services × 7 days, the first query after a restart, vs reading the same tables), compaction (stored bytes per raw pprof byte for an hour of 50 services, "
            + "compaction throughput, peak memory), discovery (discovery.kubernetes of a 10,000-pod cluster through the annotation "
            + "recipe vs discovery.file of the same targets)."
    )

    @Argument(help: "Suites to run: producer, pprof, normalizer, ingest, otlp, rules, parquet, query, fleet, compaction, discovery or all.")
    var suites: [String] = ["all"]

    @Option(help: "Kafka bootstrap servers for the producer suite. [env: KILN_KAFKA_BROKERS]")
    var brokers: String?

    @Option(
        help: "The shared fixtures folder (holds pprof/). [env: KILN_FIXTURES_DIR] (default: ../shared/fixtures from the working directory)"
    )
    var fixtures: String?

    @Option(help: "Python with pyarrow for the parquet suite. [env: KILN_PYTHON] (default: .venv/bin/python from the working directory)")
    var python: String?

    @Option(help: "Also write the measurements as JSON to this file.")
    var json: String?

    @Option(help: "Fleet suite: services in the data set. (default: 100)")
    var fleetServices: Int = 100

    @Option(help: "Fleet suite: days of 15 s CPU profiles. (default: 7)")
    var fleetDays: Int = 7

    @Option(
        help:
            "Fleet suite: where the data set is generated and kept for later runs. [env: KILN_RUN_DIR/fleet] (default: run/bench/fleet)"
    )
    var fleetData: String?

    @Option(help: "Compaction suite: services in the stream. (default: 50)")
    var services: Int = 50

    @Option(help: "Compaction suite: minutes of 15 s scrapes. (default: 60)")
    var minutes: Int = 60

    @Option(help: "Compaction suite: memory budget of one merge, as CompactionConfig.maxHeadBytes. (default: 268435456)")
    var compactionHeadBytes: Int = CompactionBenchmarkDefaults.maxHeadBytes

    func run() async throws {
        let known = [
            "producer", "pprof", "normalizer", "compactor", "ingest", "otlp", "rules", "parquet", "query", "fleet", "compaction",
            "discovery",
        ]
        let selected = suites.contains("all") ? known : suites
        if let unknown = selected.first(where: { !known.contains($0) }) {
            throw ValidationError("unknown suite \"\(unknown)\" (use \(known.joined(separator: ", ")) or all)")
        }
        let fixturesDir = URL(
            fileURLWithPath: EnvironmentFallback.resolve(fixtures, env: "KILN_FIXTURES_DIR", default: "../shared/fixtures"))
        guard
            FileManager.default.fileExists(atPath: fixturesDir.appendingPathComponent("pprof").path)
                || fixturesDir.lastPathComponent == "pprof"
        else {
            throw ValidationError("fixtures not found at \(fixturesDir.path): pass --fixtures or set KILN_FIXTURES_DIR")
        }
        let selfURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var results: [BenchMeasurement] = []
        func report(_ measurements: [BenchMeasurement]) {
            for m in measurements { print(m.line) }
            results += measurements
        }
        for suite in selected {
            print("== \(suite)")
            switch suite {
            case "producer":
                guard let brokers = brokers ?? ProcessInfo.processInfo.environment["KILN_KAFKA_BROKERS"] else {
                    throw ValidationError("the producer suite needs --brokers (or KILN_KAFKA_BROKERS)")
                }
                report([try await ProducerBenchmark.run(brokers: brokers, fixturesDir: fixturesDir)])
            case "pprof":
                report(try PprofBenchmark.run(kiln: selfURL, fixturesDir: fixturesDir))
            case "normalizer":
                // As kiln-normalizer runs (see MemoryTuning); undone so later suites measure memory as before.
                MemoryTuning.keepFreedMemoryForReuse()
                defer { MemoryTuning.restoreDefaults() }
                report(try NormalizerBenchmark.run(fixturesDir: fixturesDir))
            case "compactor":
                MemoryTuning.keepFreedMemoryForReuse()
                defer { MemoryTuning.restoreDefaults() }
                report(try CompactorCPUBenchmark.run(fixturesDir: fixturesDir))
            case "ingest":
                report(try await IngestBenchmark.run(fixturesDir: fixturesDir))
            case "otlp":
                MemoryTuning.keepFreedMemoryForReuse()
                defer { MemoryTuning.restoreDefaults() }
                report(try OTLPBenchmark.run(fixturesDir: fixturesDir))
            case "rules":
                MemoryTuning.keepFreedMemoryForReuse()
                defer { MemoryTuning.restoreDefaults() }
                report(try RuleBenchmark.run(fixturesDir: fixturesDir))
            case "parquet":
                let python = URL(fileURLWithPath: EnvironmentFallback.resolve(self.python, env: "KILN_PYTHON", default: ".venv/bin/python"))
                report(try ParquetBenchmark.run(python: python))
            case "query":
                report(try await QueryBenchmark.run(fixturesDir: fixturesDir))
            case "fleet":
                let runDir = ProcessInfo.processInfo.environment["KILN_RUN_DIR"].map { $0 + "/fleet" }
                let dataDir = URL(fileURLWithPath: fleetData ?? runDir ?? "run/bench/fleet")
                report(
                    try await FleetBenchmark.run(fixturesDir: fixturesDir, dataDir: dataDir, services: fleetServices, days: fleetDays))
            case "compaction":
                report(
                    try await CompactionBenchmark.run(
                        fixturesDir: fixturesDir, services: services, minutes: minutes,
                        maxHeadBytes: compactionHeadBytes))
            case "discovery":
                report(try await DiscoveryBenchmark.run())
            default:
                break
            }
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(results).write(to: URL(fileURLWithPath: json))
        }
        let missed = results.filter { $0.meetsTarget == false }
        print("\(results.count) measurements, \(results.count - missed.count) met or without target, \(missed.count) missed their target")
    }
}
