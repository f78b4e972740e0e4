import ArgumentParser
import Blocks
import Foundation
import KafkaClient
import KafkaService
import KilnFoundation
import KilnService
import Logging
import ObjectStore
import PprofCodec
import Replay

/// `kiln replay`: re-reads the raw topic (or the DLQ) through the normaliser into a new block prefix or a
/// new normalized topic, resumably.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Reprocess kiln.profiles.raw (or the DLQ) into a new block prefix or a new normalized topic.",
        discussion: """
            The replay's bounds are fixed when it first starts and saved with its progress in a checkpoint \
            (`_replay/<name>/checkpoint.json` in the output store, or in --checkpoint-store). Run the same command \
            again after an interruption and it resumes; the counts printed at the end are exact across resumes. \
            The blocks the pipeline already wrote are never touched: point kiln-query at the new prefix when it is done.
            """
    )

    @OptionGroup var kafka: KafkaOptions

    @Option(help: "Topic to read. [env: KILN_RAW_TOPIC] (default: kiln.profiles.raw, or kiln.profiles.dlq with --dlq)")
    var fromTopic: String?

    @Flag(help: "Read the dead-letter topic (records keep the raw provenance they had before rejection).")
    var dlq = false

    @Option(
        help: "First record time: RFC 3339 (2026-11-26T10:00:00Z), now-<duration> (1h, 30m, 2d), or Unix milliseconds. (default: earliest)")
    var start: String?

    @Option(help: "Records before this time (same forms as --start). (default: the topic's end when the replay starts)")
    var end: String?

    @Option(help: "Start offsets as partition:offset,… (other partitions start at their earliest record).")
    var startOffsets: String?

    @Option(help: "End offsets (exclusive) as partition:offset,… (other partitions end where the topic ends).")
    var endOffsets: String?

    @Option(name: .customLong("tenant"), help: "Only this tenant (repeatable).")
    var tenants: [String] = []

    @Option(name: .customLong("service"), help: "Only this service_name (repeatable).")
    var services: [String] = []

    @Option(help: "Write blocks into this object store URL (a new prefix): file:///path or s3://bucket/prefix?...")
    var toStore: String?

    @Option(help: "Or produce sample batches to this topic (for a kiln-compactor writing a new prefix).")
    var toTopic: String?

    @Option(help: "Name of this replay; its checkpoint is kept under it. (default: replay)")
    var name = "replay"

    @Option(help: "Object store for the checkpoint. (default: the --to-store, or file://./kiln-replay with --to-topic)")
    var checkpointStore: String?

    @Flag(help: "Discard an existing checkpoint of this name and start over (outputs already written stay).")
    var restart = false

    @Option(help: "Seconds between checkpoints. (default: 30)")
    var checkpointInterval: Double = 30

    @Option(help: "Read at most this many records per second, to spare a busy cluster. (default: unlimited)")
    var maxRate: Double?

    @Option(help: "Records fetched and normalised per step; progress and checkpoints happen between steps. (default: 32)")
    var maxPollRecords = 32

    @Option(help: "Largest block in samples before it is cut. (default: 8000000)")
    var maxBlockSamples = 8_000_000

    @Option(help: "Largest decompressed profile in bytes. (default: 67108864)")
    var maxProfileBytes: Int?

    @Option(help: "Most samples in one profile. (default: 1000000)")
    var maxSamples: Int?

    @Option(help: "Deepest stack; deeper ones are truncated. (default: 1000)")
    var maxStackDepth: Int?

    @Option(help: "Progress display: auto (a bar on a terminal, lines otherwise), bar, lines or none.")
    var progress = "auto"

    @Flag(help: "Print the final counts as JSON on standard output.")
    var json = false

    func validate() throws {
        if (toStore == nil) == (toTopic == nil) { throw ValidationError("give exactly one of --to-store and --to-topic") }
        if start != nil && startOffsets != nil { throw ValidationError("give --start or --start-offsets, not both") }
        if end != nil && endOffsets != nil { throw ValidationError("give --end or --end-offsets, not both") }
        if !["auto", "bar", "lines", "none"].contains(progress) { throw ValidationError("--progress must be auto, bar, lines or none") }
        if checkpointInterval <= 0 { throw ValidationError("--checkpoint-interval must be positive") }
        if let maxRate, maxRate <= 0 { throw ValidationError("--max-rate must be positive") }
        if maxPollRecords < 1 { throw ValidationError("--max-poll-records must be at least 1") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let plan = try makePlan()
        let kafkaConfig = try kafka.kafkaConfig(clientID: "kiln-replay")
        var stores: [any ObjectStore] = []
        defer { for s in stores { Task { try? await s.shutdown() } } }

        let sink: any ReplaySink
        let checkpointStoreURL: String
        switch plan.output {
        case .blocks(let url):
            let store = try makeObjectStore(url: url)
            stores.append(store)
            sink = BlockReplaySink(store: store, cut: CutPolicy(maxAge: .seconds(365 * 86400), maxSamples: maxBlockSamples))
            checkpointStoreURL = checkpointStore.map(StoreURLOption.absolute) ?? url
        case .topic(let topic):
            sink = try TopicReplaySink(topic: topic, kafka: kafkaConfig)
            checkpointStoreURL = StoreURLOption.absolute(checkpointStore ?? "file://./kiln-replay")
        }
        let checkpointObjects = try makeObjectStore(url: checkpointStoreURL)
        stores.append(checkpointObjects)
        let checkpoints = try ReplayCheckpointStore(store: checkpointObjects, name: name)
        if restart { try await checkpoints.remove() }

        let reporter: any ReplayProgress
        switch progress {
        case "bar": reporter = TerminalProgressBar()
        case "lines": reporter = ProgressLines()
        case "none": reporter = SilentProgress()
        default: reporter = isatty(STDERR_FILENO) == 1 ? TerminalProgressBar() : ProgressLines()
        }
        let job = ReplayJob(
            plan: plan,
            options: .init(
                kafka: kafkaConfig, checkpointInterval: .milliseconds(Int64(checkpointInterval * 1000)),
                maxPollRecords: maxPollRecords, maxRecordsPerSecond: maxRate),
            sink: sink, checkpoints: checkpoints, progress: reporter)
        // SIGINT/SIGTERM end the replay after a checkpoint, so running the command again resumes it.
        let task = Task { try await job.run() }
        let signals = [SIGINT, SIGTERM].map { sig -> DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig)
            source.setEventHandler { task.cancel() }
            source.resume()
            return source
        }
        let result = try await task.value
        signals.forEach { $0.cancel() }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(
                String(
                    decoding: try encoder.encode(
                        ReplaySummary(
                            name: name, finished: result.finished,
                            recordsToRead: result.recordsToRead, recordsDone: result.recordsDone,
                            counts: result.counts)), as: UTF8.self))
        } else {
            print(Self.summary(result, name: name, checkpoint: "\(checkpointStoreURL)/\(checkpoints.key)"))
        }
        if !result.finished { throw ExitCode(130) }
    }

    func makePlan() throws -> ReplayPlan {
        var limits = PprofLimits.default
        if let maxProfileBytes { limits.maxDecompressedBytes = maxProfileBytes }
        if let maxSamples { limits.maxSamples = maxSamples }
        if let maxStackDepth { limits.maxStackDepth = maxStackDepth }
        let now = Date()
        let startBound: ReplayPlan.Start
        if let start {
            startBound = .time(millis: try Self.parseTime(start, now: now))
        } else if let startOffsets {
            startBound = .offsets(try PartitionOffset.list(parsing: startOffsets))
        } else {
            startBound = .earliest
        }
        let endBound: ReplayPlan.End
        if let end {
            endBound = .time(millis: try Self.parseTime(end, now: now))
        } else if let endOffsets {
            endBound = .offsets(try PartitionOffset.list(parsing: endOffsets))
        } else {
            endBound = .latest
        }
        let source =
            fromTopic
            ?? (dlq
                ? EnvironmentFallback.resolve(nil, env: "KILN_DLQ_TOPIC", default: "kiln.profiles.dlq")
                : EnvironmentFallback.resolve(nil, env: "KILN_RAW_TOPIC", default: "kiln.profiles.raw"))
        let output: ReplayPlan.Output = toStore.map { .blocks(store: StoreURLOption.absolute($0)) } ?? .topic(toTopic!)
        return ReplayPlan(
            sourceTopic: source, start: startBound, end: endBound, tenants: tenants, services: services,
            output: output, limits: .init(limits))
    }

    /// RFC 3339, `now`, `now-<n><unit>` or Unix milliseconds.
    static func parseTime(_ text: String, now: Date) throws -> Int64 {
        let nowMillis = Int64(now.timeIntervalSince1970 * 1000)
        if text == "now" { return nowMillis }
        if text.hasPrefix("now-"), let ago = DurationText.parse(String(text.dropFirst(4))) {
            return nowMillis - ago.components.seconds * 1000 - ago.components.attoseconds / 1_000_000_000_000_000
        }
        if let millis = Int64(text), millis >= 0 { return millis }
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: text) { return Int64(date.timeIntervalSince1970 * 1000) }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return Int64(date.timeIntervalSince1970 * 1000) }
        throw ValidationError(
            "'\(text)' is not a time: use RFC 3339 (2026-11-26T10:00:00Z), now-<duration> (1h, 30m, 2d) or Unix milliseconds")
    }

    static func summary(_ c: ReplayCheckpoint, name: String, checkpoint: String) -> String {
        let n = c.counts
        func row(_ label: String, _ value: Int, _ extra: String = "") -> String {
            "  " + label.padding(toLength: 22, withPad: " ", startingAt: 0) + String(value).leftPadded(12)
                + (extra.isEmpty ? "" : "  " + extra)
        }
        var lines = [
            c.finished
                ? "replay \"\(name)\" finished: \(c.plan.sourceTopic) → \(Self.outputName(c.plan.output))"
                : "replay \"\(name)\" interrupted at \(c.recordsDone)/\(c.recordsToRead) records; run the same command to resume",
            row("records read", n.recordsRead, String(format: "%.1f MB", Double(n.bytesRead) / 1e6)),
            row("skipped (selection)", n.skippedBySelection),
            row("rejected", n.rejected),
            row("without samples", n.profilesWithoutSamples, "cumulative baselines, or all samples zero"),
            row("already in output", n.alreadyInOutput, "written before an interruption"),
            row("batches written", n.batchesWritten),
            row("samples written", n.samplesWritten, "\(n.droppedSamples) zero-value or empty-stack samples dropped"),
            row(
                c.plan.output.isTopic ? "records produced" : "blocks written", n.outputsWritten,
                String(format: "%.1f MB", Double(n.outputBytes) / 1e6)),
            row("resumes", n.resumes),
            row("cumulative baselines", n.baselines, "first profile of a series, or a reset: no delta yet"),
        ]
        for (reason, count) in n.rejectionReasons.sorted(by: { $0.value > $1.value }) { lines.append("  rejected ×\(count): \(reason)") }
        if !n.totalsByProfileType.isEmpty {
            lines.append("  totals by profile type:")
            for (type, total) in n.totalsByProfileType.sorted(by: { $0.key < $1.key }) { lines.append("    \(type)  \(total)") }
        }
        lines.append("  checkpoint: \(checkpoint)")
        return lines.joined(separator: "\n")
    }

    static func outputName(_ output: ReplayPlan.Output) -> String {
        switch output {
        case .blocks(let store): return store
        case .topic(let topic): return "topic \(topic)"
        }
    }
}

/// `kiln replay --json`.
struct ReplaySummary: Encodable {
    var name: String
    var finished: Bool
    var recordsToRead: Int64
    var recordsDone: Int64
    var counts: ReplayCounts
}

extension ReplayPlan.Output {
    var isTopic: Bool {
        if case .topic = self { return true }
        return false
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
