import Foundation
import KafkaClient
import Synchronization

/// Producer throughput: Kiln's `KafkaProducer` (idempotent, lz4, the pipeline's settings) against
/// `kcat -P` on the same librdkafka, the same broker, the same settings and the same bytes, in one run.
///
/// Payloads are the real pprof files in the fixtures (`*.pb.gz`, `*.pb`), repeated until `totalBytes`.
/// kcat reads them from one file split by a multi-byte delimiter that is checked to occur in no payload;
/// both topics are then read back to the partition's end (EOF) to prove each tool wrote exactly the
/// records and bytes it was given.
public enum ProducerBenchmark {
    /// A delimiter whose first byte (0x1F) occurs nowhere else in it, so it cannot match across a
    /// payload's end; absence inside payloads is verified before use.
    static let delimiter = "\u{1F}KILN-BENCH-DELIMITER-5e2f9a7c\u{1E}"

    /// Runs `rounds` alternating rounds (Kiln, then kcat) and reports the median MB/s of each.
    /// - Parameters:
    ///   - brokers: bootstrap servers (both tools use them).
    ///   - fixturesDir: the shared fixtures folder (its `pprof/` subfolder is used) or the pprof folder itself.
    ///   - kcatPath: the kcat binary; it runs with this process's environment, so LD_LIBRARY_PATH must
    ///     point at librdkafka >= 2.2 (.venv/kiln-lib), as it must for Kiln itself.
    ///   - totalBytes: payload bytes per tool per round.
    ///   - log: progress lines.
    public static func run(
        brokers: String, fixturesDir: URL, kcatPath: String = "/usr/bin/kcat",
        totalBytes: Int = 48 << 20, rounds: Int = 3,
        log: @Sendable (String) -> Void = { print($0) }
    ) async throws -> BenchMeasurement {
        try KafkaRuntime.checkVersion()
        let payloads = try loadPayloads(fixturesDir)
        let delimiter = Array(Self.delimiter.utf8)
        for p in payloads where contains(p, delimiter) {
            throw BenchError("the kcat delimiter occurs inside a fixture payload; choose another")
        }
        var messages: [[UInt8]] = []
        var bytes = 0
        while bytes < totalBytes {
            let p = payloads[messages.count % payloads.count]
            messages.append(p)
            bytes += p.count
        }
        log(
            "producer benchmark: \(messages.count) pprof payloads from \(payloads.count) fixtures, "
                + "\(String(format: "%.1f", Double(bytes) / 1e6)) MB per tool per round, librdkafka \(KafkaRuntime.versionString)")

        let inputFile = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-bench-\(UUID().uuidString).bin")
        var fileData = Data(capacity: bytes + messages.count * delimiter.count)
        for m in messages {
            fileData.append(contentsOf: m)
            fileData.append(contentsOf: delimiter)
        }
        try fileData.write(to: inputFile)
        defer { try? FileManager.default.removeItem(at: inputFile) }

        let admin = try KafkaAdmin(config: KafkaConfig(bootstrapServers: brokers))
        let settings = ProducerConfig(kafka: KafkaConfig(bootstrapServers: brokers, clientID: "kiln-bench"))
        var kilnRates: [Double] = []
        var kcatRates: [Double] = []
        for round in 1...rounds {
            let kilnTopic = try await freshTopic(admin, "kiln")
            let kilnSeconds = try await produceWithKiln(messages, topic: kilnTopic, config: settings)
            try await verify(brokers: brokers, topic: kilnTopic, expectedCount: messages.count, expectedBytes: bytes)

            let kcatTopic = try await freshTopic(admin, "kcat")
            let kcatSeconds = try await produceWithKcat(kcatPath, file: inputFile, topic: kcatTopic, brokers: brokers, config: settings)
            try await verify(brokers: brokers, topic: kcatTopic, expectedCount: messages.count, expectedBytes: bytes)

            kilnRates.append(Double(bytes) / 1e6 / kilnSeconds)
            kcatRates.append(Double(bytes) / 1e6 / kcatSeconds)
            log(
                String(
                    format: "round %d: kiln %.1f MB/s (%.2f s), kcat -P %.1f MB/s (%.2f s)",
                    round, kilnRates.last!, kilnSeconds, kcatRates.last!, kcatSeconds))
        }
        let measurement = BenchMeasurement(
            name: "producer throughput (pprof payloads, idempotent lz4)", unit: "MB/s",
            kiln: median(kilnRates), baselineName: "kcat -P", baseline: median(kcatRates),
            higherIsBetter: true, targetRatio: 0.9)
        log(measurement.line)
        return measurement
    }

    static func loadPayloads(_ dir: URL) throws -> [[UInt8]] {
        let pprofDir = dir.appendingPathComponent("pprof")
        let folder = FileManager.default.fileExists(atPath: pprofDir.path) ? pprofDir : dir
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        let files = names.filter { $0.hasSuffix(".pb.gz") || $0.hasSuffix(".pb") }.sorted()
        let payloads = try files.map { [UInt8](try Data(contentsOf: folder.appendingPathComponent($0))) }.filter { !$0.isEmpty }
        guard !payloads.isEmpty else {
            throw BenchError("no pprof fixtures (*.pb.gz, *.pb) in \(folder.path); set KILN_FIXTURES_DIR")
        }
        return payloads
    }

    static func freshTopic(_ admin: KafkaAdmin, _ tool: String) async throws -> String {
        let name = "kiln-bench-producer-\(tool)-\(UUID().uuidString.prefix(8).lowercased())"
        _ = try await admin.createTopic(TopicSpec(name: name, partitions: 1, configs: ["max.message.bytes": "16777216"]))
        return name
    }

    /// Seconds from creating the producer to the last delivery report (connection setup included, as it
    /// is in kcat's process time).
    static func produceWithKiln(_ messages: [[UInt8]], topic: String, config: ProducerConfig) async throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        let producer = try KafkaProducer(config: config)
        let failures = Atomic<Int>(0)
        for m in messages {
            try await producer.produce(ProducerRecord(topic: topic, value: m)) { result in
                if case .failure = result { failures.add(1, ordering: .relaxed) }
            }
        }
        try await producer.close(flushTimeout: .seconds(120))
        let elapsed = clock.now - start
        if failures.load(ordering: .relaxed) > 0 {
            throw BenchError("kiln: \(failures.load(ordering: .relaxed)) deliveries failed")
        }
        return seconds(elapsed)
    }

    /// Seconds kcat runs to produce the file and exit (it waits for every delivery before exiting).
    static func produceWithKcat(_ kcat: String, file: URL, topic: String, brokers: String, config: ProducerConfig) async throws -> Double {
        var args = ["-P", "-b", brokers, "-t", topic, "-l", "-D", delimiter]
        for option in config.librdkafkaProperties() where option.key != "bootstrap.servers" {
            args += ["-X", "\(option.key)=\(option.value)"]
        }
        args.append(file.path)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: kcat)
        process.arguments = args
        let errPipe = Pipe()
        process.standardError = errPipe
        process.standardOutput = FileHandle.nullDevice
        let clock = ContinuousClock()
        let start = clock.now
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        let elapsed = clock.now - start
        let stderr = String(decoding: errPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard status == 0 else { throw BenchError("kcat exited with \(status): \(stderr.suffix(2000))") }
        return seconds(elapsed)
    }

    /// Reads the topic to its end and checks the record count and byte total.
    static func verify(brokers: String, topic: String, expectedCount: Int, expectedBytes: Int) async throws {
        var config = ConsumerConfig(kafka: KafkaConfig(bootstrapServers: brokers, clientID: "kiln-bench-verify"), groupID: nil)
        config.reportPartitionEOF = true
        let consumer = try KafkaConsumer(config: config)
        try consumer.assign([TopicPartitionOffset(topic, 0, offset: KafkaOffset.beginning)])
        var count = 0
        var bytes = 0
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(120)
        var reachedEnd = false
        while !reachedEnd {
            guard clock.now < deadline else { throw BenchError("\(topic): no partition EOF after \(count) records") }
            for event in try await consumer.poll(max: 1000, timeout: .seconds(1)) {
                switch event {
                case .record(let r):
                    count += 1
                    bytes += r.value.count
                case .partitionEOF(_, let next):
                    reachedEnd = next >= Int64(expectedCount) || count >= expectedCount
                default:
                    break
                }
            }
        }
        try await consumer.close()
        guard count == expectedCount, bytes == expectedBytes else {
            throw BenchError("\(topic): read back \(count) records / \(bytes) bytes, expected \(expectedCount) / \(expectedBytes)")
        }
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count, let first = needle.first else { return false }
        var i = 0
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }

    static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        return s.isEmpty ? 0 : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
