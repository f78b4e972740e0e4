import ArgumentParser
import Blocks
import Foundation
import KilnService
import ObjectStore
import ServiceLifecycle
import Stages

@main
struct Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-compactor",
        abstract: "Cuts per-tenant Parquet blocks from normalized batches, uploads them, compacts and applies retention."
    )

    @OptionGroup var service: ServiceOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var topics: TopicOptions

    @Option(help: "Object store URL: file:///path or s3://bucket/prefix?endpoint=...&region=... [env: KILN_STORE] (default: file://./data/blocks)")
    var store: String?

    @Option(help: "Consumer group of the compactors. [env: KILN_COMPACTOR_GROUP] (default: kiln-compactor)")
    var group: String?

    @Option(help: "Cut a head once its first batch is this old (e.g. 90s, 5m). [env: KILN_MAX_BLOCK_AGE] (default: 5m)")
    var maxBlockAge: String?

    @Option(help: "Cut a head once it holds about this many bytes in memory. [env: KILN_MAX_BLOCK_BYTES] (default: 268435456)")
    var maxBlockBytes: Int?

    @Option(help: "Cut a head once it holds this many samples. [env: KILN_MAX_BLOCK_SAMPLES] (default: 8000000)")
    var maxBlockSamples: Int?

    @Option(help: "Blocks created this recently are checked for duplicates on start and rebalance. [env: KILN_DEDUP_HORIZON] (default: 6h)")
    var dedupHorizon: String?

    @Option(help: "Run level compaction, cleanup and retention in the background: on or off. [env: KILN_COMPACTION] (default: on)")
    var compaction: String?

    @Option(help: "Time between maintenance passes. [env: KILN_COMPACTION_INTERVAL] (default: 1m)")
    var compactionInterval: String?

    @Option(help: "Delete blocks whose newest sample is older than this (e.g. 30d); off keeps everything. [env: KILN_RETENTION] (default: off)")
    var retention: String?

    @Option(help: "Keep superseded blocks this long after marking them. [env: KILN_DELETION_DELAY] (default: 2h)")
    var deletionDelay: String?

    @Option(help: "How long a compactor's lease on a tenant's maintenance lasts unless renewed; a crashed replica's tenants move to another after this. [env: KILN_COMPACTION_LEASE] (default: 5m)")
    var compactionLease: String?

    func run() async throws {
        let logger = try KilnLogging.bootstrap(service: "kiln-compactor", options: service)
        let registry = KilnMetrics.bootstrap()
        let readiness = Readiness(components: ["kafka": "connecting to Kafka", "store": "checking the block store"])
        let admin = AdminServer(registry: registry, readiness: readiness)
        let listen = try service.resolvedAdminListen(default: "127.0.0.1:4102")
        let kafkaConfig = try kafka.kafkaConfig(clientID: "kiln-compactor")
        try await topics.ensure([topics.normalized], config: kafkaConfig, logger: logger)

        let objectStore = try makeObjectStore(url: StoreURLOption.resolve(store), logger: logger)

        var cut = CutPolicy()
        cut.maxAge = try Self.duration(EnvironmentFallback.resolve(maxBlockAge, env: "KILN_MAX_BLOCK_AGE", default: "5m"), flag: "--max-block-age")
        cut.maxBytes = try Self.int(EnvironmentFallback.resolve(maxBlockBytes.map(String.init), env: "KILN_MAX_BLOCK_BYTES", default: String(cut.maxBytes)), flag: "--max-block-bytes")
        cut.maxSamples = try Self.int(EnvironmentFallback.resolve(maxBlockSamples.map(String.init), env: "KILN_MAX_BLOCK_SAMPLES", default: String(cut.maxSamples)), flag: "--max-block-samples")
        let horizon = try Self.duration(EnvironmentFallback.resolve(dedupHorizon, env: "KILN_DEDUP_HORIZON", default: "6h"), flag: "--dedup-horizon")

        let stage = try CompactorStage(
            configuration: .init(normalizedTopic: topics.normalized,
                                 groupID: EnvironmentFallback.resolve(group, env: "KILN_COMPACTOR_GROUP", default: "kiln-compactor"),
                                 cut: cut, dedupHorizon: horizon),
            kafka: kafkaConfig, store: objectStore, logger: logger,
            onReady: { readiness.markReady("kafka"); readiness.markReady("store") },
            onStoreProblem: { problem in
                if let problem { readiness.markNotReady("store", reason: problem) } else { readiness.markReady("store") }
            })
        let probe = KafkaHealthProbe(config: kafkaConfig, topics: [topics.normalized], topicOptions: topics, readiness: readiness, logger: logger)
        var services: [any Service] = [admin.application(listen: listen, logger: logger), probe, stage]

        let compactionSwitch = EnvironmentFallback.resolve(compaction, env: "KILN_COMPACTION", default: "on")
        guard ["on", "off"].contains(compactionSwitch) else { throw ServiceConfigurationError("--compaction must be on or off, not \(compactionSwitch)") }
        if compactionSwitch == "on" {
            var config = CompactionConfig()
            // A merge holds at most what an ingest head may hold.
            config.maxHeadBytes = cut.maxBytes
            let retentionText = EnvironmentFallback.resolve(retention, env: "KILN_RETENTION", default: "off")
            config.retention = retentionText == "off" ? nil : try Self.duration(retentionText, flag: "--retention")
            config.deletionDelay = try Self.duration(EnvironmentFallback.resolve(deletionDelay, env: "KILN_DELETION_DELAY", default: "2h"), flag: "--deletion-delay")
            config.leaseDuration = try Self.duration(EnvironmentFallback.resolve(compactionLease, env: "KILN_COMPACTION_LEASE", default: "5m"), flag: "--compaction-lease")
            let interval = try Self.duration(EnvironmentFallback.resolve(compactionInterval, env: "KILN_COMPACTION_INTERVAL", default: "1m"), flag: "--compaction-interval")
            services.append(CompactionService(compactor: Compactor(store: objectStore, config: config, logger: logger), interval: interval))
        }
        logger.info("block store", metadata: ["store": "\(objectStore.location)", "compaction": "\(compactionSwitch)"])
        try await ServiceRunner.run(services, logger: logger)
        try? await objectStore.shutdown()
    }

    /// `file://./x` is relative to the working directory; the store wants an absolute path.
    static func int(_ text: String, flag: String) throws -> Int {
        guard let v = Int(text), v > 0 else { throw ServiceConfigurationError("\(flag): expected a positive integer, got \(text)") }
        return v
    }

    /// `500ms`, `90s`, `5m`, `6h`, `30d`, or plain seconds.
    static func duration(_ text: String, flag: String) throws -> Duration {
        if text.hasSuffix("ms"), let n = Double(text.dropLast(2)), n >= 0 { return .milliseconds(Int64(n)) }
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        if let last = text.last, let mult = units[last], let n = Double(text.dropLast()), n >= 0 {
            return .milliseconds(Int64(n * Double(mult) * 1000))
        }
        if let n = Double(text), n >= 0 { return .milliseconds(Int64(n * 1000)) }
        throw ServiceConfigurationError("\(flag): expected a duration like 500ms, 90s, 5m, 6h or 30d, got \(text)")
    }
}
