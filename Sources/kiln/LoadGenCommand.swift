import ArgumentParser
import Foundation
import KafkaClient
import KafkaService
import KilnFoundation
import KilnService
import LoadGen
import Logging

/// `kiln loadgen`: a synthetic fleet built from the real pprof fixtures, sent to a running pipeline at a rate
/// (or flat out) through push or straight into the raw topic, with the pipeline measured while it runs.
struct LoadGenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadgen",
        abstract: "Drive a running Kiln pipeline with a synthetic fleet and measure it (results as JSON).",
        discussion: """
            Builds a pool of perturbed copies of the real pprof fixtures (random sample subsets, scaled values), then \
            sends N services × M instances × kinds of profiles through POST /ingest (--mode http) or straight into the \
            raw topic (--mode kafka) for --duration or --count. While it runs it records, per second, what it sent, and \
            for each --watch process its CPU, RSS and /metrics counters, each --lag group's consumer lag, and with \
            --query the ingest-to-query latency of probe profiles. Loopback only unless --allow-remote.
            """
    )

    @Option(help: "http: POST /ingest to --ingest-url; kafka: RawEnvelopes straight into --raw-topic.")
    var mode: String = "http"

    @Option(help: "Base URL of the push ingest (kiln-scraper or kiln dev).")
    var ingestURL: String = "http://127.0.0.1:4100"

    @OptionGroup var kafka: KafkaOptions

    @Option(help: "Raw topic for --mode kafka. [env: KILN_RAW_TOPIC] (default: kiln.profiles.raw)")
    var rawTopic: String?

    @Option(help: "Tenant (X-Scope-OrgID / envelope tenant).")
    var tenant: String = "anonymous"

    @Option(help: "Services in the fleet.") var services: Int = 50
    @Option(help: "Instances per service.") var instances: Int = 20
    @Option(help: "Profile kinds per instance, comma-separated: cpu, heap, goroutine, mutex, wall.")
    var kinds: String = "cpu,heap,goroutine,mutex"
    @Option(help: "Payload variants built per fixture.") var variants: Int = 8
    @Option(help: "Seed for the payload variants and the send order.") var seed: UInt64 = 1

    @Option(help: "Profiles per second; 0 = flat out.") var rate: Double = 0
    @Option(help: "Stop after this long (e.g. 30s, 2m). Default 60s when --count is not given.") var duration: String?
    @Option(help: "Stop after this many profiles.") var count: Int?
    @Option(help: "Concurrent sends (HTTP connections, or records in flight for --mode kafka). (default: 8 for http, 64 for kafka)")
    var concurrency: Int?

    @Option(help: "The shared fixtures folder (holds pprof/). [env: KILN_FIXTURES_DIR] (default: ../shared/fixtures)")
    var fixtures: String?

    @Option(help: "Folder for the results file <phase>.json.") var out: String = "run/loadgen"
    @Option(help: "Name of this phase in the results.") var phase: String = "loadgen"

    @Option(name: .customLong("watch"), help: "A process to measure: name=PID[@http://admin-host:port] (repeatable).")
    var watch: [String] = []
    @Option(name: .customLong("lag"), help: "Consumer lag to record: group=topic (repeatable).")
    var lag: [String] = []
    @Option(help: "kiln-query base URL: send a probe profile every --probe-interval and time until it is queryable.")
    var query: String?
    @Option(help: "Seconds between latency probes.") var probeInterval: Double = 1
    @Option(help: "After sending, wait at most this long for lag 0, counters and probes to catch up (e.g. 60s; 0 = no wait).")
    var drainTimeout: String = "0"
    @Option(help: "Seconds between samples of processes and lag.") var sampleInterval: Double = 1
    @Option(help: "Pause sending while a --lag group lags by more than this many records (flat out, bounded by the pipeline); 0 = never.")
    var maxLag: Int64 = 0

    @Flag(help: "Allow non-loopback ingest, broker, query and admin addresses (load a real cluster on purpose).")
    var allowRemote = false

    func run() async throws {
        guard mode == "http" || mode == "kafka" else { throw ValidationError("--mode must be http or kafka, not \(mode)") }
        let sendDuration = try duration.map { try Self.parseDuration($0, flag: "--duration") } ?? (count == nil ? .seconds(60) : nil)
        if let count, count <= 0 { throw ValidationError("--count must be positive") }
        let drain = try Self.parseDuration(drainTimeout, flag: "--drain-timeout")
        let watches = try watch.map { try WatchSpec(parsing: $0) }
        let lags = try lag.map { try LagSpec(parsing: $0) }
        let kinds = try ProfileKind.parseList(self.kinds)

        let needsKafka = mode == "kafka" || !lags.isEmpty
        try LoopbackGuard.check(
            urls: (mode == "http" ? [ingestURL] : []) + (query.map { [$0] } ?? []) + watches.compactMap(\.adminURL),
            brokers: needsKafka ? kafka.resolvedBrokers : nil, allowRemote: allowRemote)

        let fixturesDir = URL(fileURLWithPath: fixtures ?? ProcessInfo.processInfo.environment["KILN_FIXTURES_DIR"] ?? "../shared/fixtures")
        let built = ContinuousClock.now
        let pool = try PayloadFactory(variantsPerFixture: variants, seed: seed).makePool(kinds: kinds, fixturesDir: fixturesDir)
        print(
            "loadgen: \(pool.variants.count) payload variants (\(pool.totalBytes / 1024) KiB, mean \(pool.totalBytes / max(1, pool.variants.count)) B) "
                + "from \(PayloadFactory.pprofDirectory(fixturesDir).path) in \(ContinuousClock.now - built)"
                + (pool.missingFixtures.isEmpty ? "" : "; missing fixtures skipped: \(pool.missingFixtures.joined(separator: ", "))"))
        let fleet = Fleet(services: services, instances: instances, kinds: kinds, pool: pool, seed: seed)

        var logger = Logger(label: "kiln.loadgen")
        logger.logLevel = .warning
        let kafkaConfig = needsKafka ? try kafka.kafkaConfig(clientID: "kiln-loadgen") : nil
        let parallel = concurrency ?? (mode == "kafka" ? 64 : 8)
        let sender: any ProfileSender
        let topic = EnvironmentFallback.resolve(rawTopic, env: "KILN_RAW_TOPIC", default: "kiln.profiles.raw")
        if mode == "kafka", let kafkaConfig {
            sender = KafkaRawSender(
                producer: try KafkaProducer(config: ProducerConfig(kafka: kafkaConfig), logger: logger),
                topic: topic, tenant: tenant)
        } else {
            sender = HTTPIngestSender(baseURL: ingestURL, tenant: tenant == "anonymous" ? nil : tenant, connections: parallel)
        }
        let lagMonitor = try await kafkaConfig.flatMap { config in lags.isEmpty ? nil : config }.asyncMap {
            try await LagMonitor(specs: lags, kafka: $0, logger: logger)
        }
        // loadgen's own cost is part of the picture on a shared machine.
        let watcher = ProcessWatcher(specs: watches + [WatchSpec(name: "loadgen", pid: getpid())])

        var config = LoadRunConfig(
            phase: phase, mode: mode, target: mode == "kafka" ? "\(kafka.resolvedBrokers)/\(topic)" : ingestURL,
            tenant: tenant == "anonymous" ? nil : tenant, rate: rate > 0 ? rate : nil, count: count,
            duration: sendDuration, concurrency: parallel)
        config.sampleInterval = .milliseconds(Int64(max(0.1, sampleInterval) * 1000))
        config.probeInterval = query == nil ? nil : .milliseconds(Int64(max(0.05, probeInterval) * 1000))
        config.drainTimeout = drain
        config.maxLagRecords = maxLag > 0 ? maxLag : nil
        config.settings = [
            "services": String(services), "instances": String(instances), "kinds": kinds.map(\.rawValue).joined(separator: ","),
            "variants_per_fixture": String(variants), "concurrency": String(parallel), "rate": rate > 0 ? String(rate) : "flat out",
            "duration": sendDuration.map { "\($0)" } ?? "-", "count": count.map(String.init) ?? "-",
            "targets": String(fleet.targets.count), "watch": watch.joined(separator: " "), "lag": lag.joined(separator: " "),
            "max_lag_records": maxLag > 0 ? String(maxLag) : "-",
        ]
        print(
            "loadgen: phase \(phase): \(fleet.targets.count) profile streams (\(services) services × \(instances) instances × \(kinds.count) kinds), "
                + "\(rate > 0 ? "\(rate) profiles/s" : "flat out"), \(parallel) concurrent, to \(config.target)")

        let run = LoadRun(config: config, fleet: fleet, pool: pool, sender: sender, watcher: watcher, lag: lagMonitor, queryURL: query)
        let results = await run.run()
        await sender.shutdown()
        await watcher.shutdown()
        await lagMonitor?.shutdown()

        let outDir = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        let file = outDir.appendingPathComponent("\(phase).json")
        try encoder.encode(results).write(to: file)
        print(Self.summary(results) + "\nloadgen: results in \(file.path)")
        if results.totals.accepted == 0 { throw ExitCode(1) }
    }

    static func summary(_ r: LoadResults) -> String {
        func f(_ x: Double?, _ digits: Int = 1) -> String { x.map { String(format: "%.\(digits)f", $0) } ?? "-" }
        var lines = [
            "loadgen: \(r.phase): accepted \(r.totals.accepted) of \(r.totals.attempted) in \(f(r.sendSeconds)) s = "
                + "\(f(r.achievedRate)) profiles/s, \(f(r.bytesPerSecond / 1e6, 2)) MB/s; send latency p50 \(f(r.sendLatencyP50Ms)) ms, p99 \(f(r.sendLatencyP99Ms)) ms"
        ]
        if !r.totals.errors.isEmpty {
            lines.append(
                "  errors: " + r.totals.errors.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
                    + (r.totals.lastError.map { " (last: \($0))" } ?? ""))
        }
        if let drained = r.drainedAfterSeconds {
            lines.append("  drained after \(f(drained)) s: end to end \(f(r.endToEndRate)) profiles/s")
        } else {
            lines.append("  not drained (no --drain-timeout, or the pipeline did not catch up in time)")
        }
        if let first = r.samples.first, let last = r.samples.last, last.t > first.t {
            for name in last.processes.keys.sorted() {
                guard let a = first.processes[name]?.usage, let b = last.processes[name]?.usage else { continue }
                lines.append(
                    "  \(name): \(f((b.cpuSeconds - a.cpuSeconds) / (last.t - first.t) * 100, 0)) % CPU, "
                        + "peak RSS \(b.peakRSSBytes / 1_048_576) MiB")
            }
        }
        if let l = r.latency {
            lines.append(
                "  ingest-to-query latency: \(l.visible)/\(l.probesSent) probes visible, p50 \(f(l.p50, 2)) s, p99 \(f(l.p99, 2)) s, max \(f(l.max, 2)) s"
                    + (l.queryErrors > 0 ? " (\(l.queryErrors) query errors, last: \(l.lastQueryError ?? ""))" : "")
                    + (l.queryWarmUpSeconds.map { "; first query (before any probe) \(f($0, 2)) s" } ?? ""))
        }
        return lines.joined(separator: "\n")
    }

    static func parseDuration(_ text: String, flag: String) throws -> Duration {
        guard let d = DurationText.parse(text) else { throw ValidationError(DurationTextError(name: flag, text: text).description) }
        return d
    }
}

extension Optional {
    fileprivate func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
