import Blocks
import Foundation
import KafkaClient
import KilnFoundation
import Normalization
import ObjectStore
import PprofCodec
import ProfileModel
import Records
import Replay
import Synchronization
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

struct ReliabilityFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Summary

/// One scenario's outcome, as the suite's summary table shows it.
struct ReliabilityRow: Sendable {
    var scenario: String
    var faults: Int
    var sent: Int
    var stored: Int
    var lost: Int
    var duplicated: Int
    var totalsExact: Bool
    var seconds: Double
}

/// Collects the rows of every scenario that ran in this process; after each one the whole table is
/// printed and written to `$KILN_RUN_DIR/reliability-summary.txt` (scripts/test.sh prints that file at
/// the end of `make test`).
enum ReliabilitySummary {
    private static let rows = Mutex<[ReliabilityRow]>([])

    static func record(_ row: ReliabilityRow) {
        let table = rows.withLock { r in
            r.append(row)
            return render(r)
        }
        print(table)
        if let dir = ProcessInfo.processInfo.environment["KILN_RUN_DIR"], !dir.isEmpty {
            try? table.write(toFile: dir + "/reliability-summary.txt", atomically: true, encoding: .utf8)
        }
    }

    static func render(_ rows: [ReliabilityRow]) -> String {
        let header = ["scenario", "faults injected", "records sent", "records stored", "lost", "duplicated", "totals exact", "seconds"]
        let body = rows.map { r in
            [
                r.scenario, "\(r.faults)", "\(r.sent)", "\(r.stored)", "\(r.lost)", "\(r.duplicated)", r.totalsExact ? "yes" : "NO",
                String(format: "%.1f", r.seconds),
            ]
        }
        let all = [header] + body
        let widths = header.indices.map { i in all.map { $0[i].count }.max()! }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                i == 0
                    ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[i] - c.count) + c
            }.joined(separator: "  ")
        }
        let rule = String(repeating: "-", count: widths.reduce(0, +) + 2 * (widths.count - 1))
        let total = rows.reduce(into: (0, 0, 0, 0, 0)) { t, r in
            t.0 += r.faults
            t.1 += r.sent
            t.2 += r.stored
            t.3 += r.lost
            t.4 += r.duplicated
        }
        return
            (["Kiln reliability suite", rule, line(header), rule] + body.map(line) + [
                rule,
                line([
                    "all", "\(total.0)", "\(total.1)", "\(total.2)", "\(total.3)", "\(total.4)",
                    rows.allSatisfy(\.totalsExact) ? "yes" : "NO", String(format: "%.1f", rows.reduce(0) { $0 + $1.seconds }),
                ]),
            ])
            .joined(separator: "\n") + "\n"
    }
}

// MARK: - Services

enum Integration {
    /// The shared test broker (scenarios that use it are marked `.requires(.kafka)`).
    static func kafka() throws -> KafkaConfig {
        config(try TestEnvironment.requireKafkaBrokers())
    }

    static func config(_ brokers: String) -> KafkaConfig {
        KafkaConfig(
            bootstrapServers: brokers, clientID: "kiln-reliability", options: TestEnvironment.quickGroupSettings.map(KafkaOption.init))
    }

    /// The built executable, or nil after recording why.
    static func binary(_ name: String) -> URL? {
        let url = TestEnvironment.binDir.appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            Issue.record("\(url.path) not built (swift build --product \(name))")
            return nil
        }
        return url
    }

    static func unique(_ prefix: String) -> String { "\(prefix)-\(UInt32.random(in: 0 ... .max))" }

    static func createTopics(_ names: [String], partitions: Int32, config: KafkaConfig) async throws {
        let admin = try KafkaAdmin(config: config)
        for name in names {
            _ = try await admin.createTopic(
                TopicSpec(
                    name: name, partitions: partitions,
                    configs: ["max.message.bytes": String(16 * 1024 * 1024)]))
        }
    }
}

/// A Kiln executable under test: its output, and its admin endpoint (`/ready`, `/metrics`).
final class KilnProcess: Sendable {
    let child: ChildProcess
    let port: Int

    /// Starts `binary` and waits until its HTTP server listens (the `listening` log line names the port).
    init(_ binary: URL, _ arguments: [String], environment: [String: String] = [:]) async throws {
        child = try ChildProcess(binary, arguments, environment: environment)
        let line = try await child.waitForLine(timeout: .seconds(60)) { $0.contains("msg=listening") }
        // `address=[IPv4]127.0.0.1/127.0.0.1:40123` (possibly quoted), among other fields.
        let address = line.components(separatedBy: "address=").last?.split(separator: " ").first ?? ""
        guard let port = address.split(separator: ":").last.flatMap({ Int($0.filter(\.isNumber)) }) else {
            throw ReliabilityFailure("no port in \(line)")
        }
        self.port = port
    }

    var lines: [String] { child.lines }

    func lines(containing text: String) -> [String] { child.lines.filter { $0.contains(text) } }

    /// `GET /path` on the admin server: status and body.
    func get(_ path: String) async throws -> (status: Int, body: String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.timeoutInterval = 5
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    /// Metric `name` from `/metrics` (summed over its labels), or nil when it is not there.
    func metric(_ name: String) async throws -> Double? { PrometheusText.value(in: try await get("/metrics").body, name: name) }

    func kill() async throws {
        child.signal(SIGKILL)
        _ = try await child.waitForExit()
    }

    /// SIGTERM, and the exit status (the stage flushes and commits first).
    func stop() async throws -> Int32 {
        child.signal(SIGTERM)
        return try await child.waitForExit(timeout: .seconds(60))
    }
}

// MARK: - Profiles

/// Real pprof files from the shared fixtures, re-stamped with fresh times and labels so every record is
/// a distinct profile, as a fleet would send them.
struct FixtureProfiles: Sendable {
    /// Small CPU/wall fixtures from several languages (non-cumulative: each profile's values stand alone,
    /// so a replayed record normalises to the same batch and totals are exact across restarts).
    static let fixtureNames = [
        "go_cpu_ap-query_2026.pb.gz", "go_cpu_labels_pyroscope.pb.gz", "go_cpu_pgo_akvorado.pb.gz",
        "go_cpu_report_sample.pb.gz", "go_cpu_span_id_labels.pb.gz", "java_jfr_cpu.pb.gz", "nodejs_wall.pb.gz",
    ]

    let profiles: [PprofProfile]

    /// Scenarios that use them are marked `.requires(.fixtures)`; a named fixture that is absent or does
    /// not decode is an error.
    static func load() throws -> FixtureProfiles {
        let dir = TestEnvironment.fixturesDir.appendingPathComponent("pprof")
        var profiles: [PprofProfile] = []
        for name in fixtureNames {
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else {
                throw ReliabilityFailure("fixture \(name) is missing in \(dir.path)")
            }
            do {
                profiles.append(try PprofDecoder().decode([UInt8](data)))
            } catch {
                throw ReliabilityFailure("fixture \(name) in \(dir.path) does not decode: \(error)")
            }
        }
        return FixtureProfiles(profiles: profiles)
    }

    /// Profile number `i` of the stream: a fixture with its time set to `timeNanos`, pushed by one of a
    /// few services of `tenant`.
    func envelope(_ i: Int, tenant: String, timeNanos: Int64 = Int64(Date().timeIntervalSince1970 * 1e9)) -> RawEnvelope {
        var p = profiles[i % profiles.count]
        p.timeNanos = timeNanos
        return RawEnvelope(
            tenant: tenant,
            labels: LabelSet(["service_name": "svc-\(i % 4)", "__name__": "process_cpu", "instance": "host-\(i % 7)"]),
            source: .push, format: .pprof, startNanos: timeNanos, endNanos: timeNanos, cumulative: false,
            payload: PprofEncoder.encodeGzip(p))
    }
}

/// What went into the pipeline, per tenant, and what the store must therefore hold: `kiln blocks audit`'s
/// ledger (`RawLedger`) of the one raw topic a scenario writes, filled from the records as they were sent.
struct Ledger: Sendable {
    private(set) var tenants: [String: RawLedger] = [:]
    private var topic: (name: String, id: String?)?

    /// Raw records sent that carry samples.
    var count: Int { tenants.values.reduce(0) { $0 + $1.records } }

    /// Sends `envelopes` to the raw topic and adds them to the ledger.
    mutating func send(_ envelopes: [RawEnvelope], topic: String, producer: KafkaProducer) async throws {
        let reports = try await producer.sendBatch(envelopes.map { ProducerRecord(topic: topic, key: $0.key, value: $0.encoded()) })
        for (envelope, report) in zip(envelopes, reports) {
            try await add(envelope, topic: topic, partition: report.partition, offset: report.offset, kafka: producer.config.kafka)
        }
    }

    /// Adds one raw record of `topic` (one the normaliser refuses, or without samples, is not for the store).
    /// The topic's ID is learnt at its first record: blocks record offsets with it.
    mutating func add(_ envelope: RawEnvelope, topic: String, partition: Int32, offset: Int64, kafka: KafkaConfig) async throws {
        if self.topic == nil { self.topic = (topic, try await KafkaAdmin(config: kafka).topicIDs([topic])[topic]) }
        guard let known = self.topic, known.name == topic else {
            throw ReliabilityFailure("a ledger follows one raw topic, \(self.topic?.name ?? "-"), not \(topic)")
        }
        var normalizer = Normalizer()
        tenants[envelope.tenant, default: RawLedger(topic: known.name, topicID: known.id)]
            .add(envelope, partition: partition, offset: offset, normalizer: &normalizer)
    }
}

/// The live blocks (what a query reads) against a ledger, tenant by tenant, as `kiln blocks audit` compares.
struct StoreAudit: Sendable {
    var byTenant: [String: DeliveryAudit] = [:]

    static func read(_ store: any ObjectStore, against ledger: Ledger) async throws -> StoreAudit {
        var audit = StoreAudit()
        for (tenant, sent) in ledger.tenants {
            audit.byTenant[tenant] = try await DeliveryAudit.compare(sent, store: store, tenant: tenant)
        }
        return audit
    }

    /// Sent records no live block holds.
    var lost: Int { byTenant.values.reduce(0) { $0 + $1.lost } }
    /// Sent records more than one live block holds, once per extra block.
    var duplicated: Int { byTenant.values.reduce(0) { $0 + $1.duplicated } }
    /// Sent records the live blocks hold.
    var stored: Int { byTenant.values.reduce(0) { $0 + $1.records - $1.lost } }
    /// Every tenant's totals per profile type equal what its sent records normalise to.
    var totalsExact: Bool { !byTenant.isEmpty && byTenant.values.allSatisfy { $0.expected == $0.stored } }
}

/// Polls the store until it holds every sent record with the totals they make, or the deadline passes;
/// returns the last audit.
func waitForStore(_ store: any ObjectStore, _ ledger: Ledger, timeout: Duration) async throws -> StoreAudit {
    var last = StoreAudit()
    _ = try await eventually(timeout: timeout) {
        last = try await StoreAudit.read(store, against: ledger)
        return last.totalsExact && last.lost == 0
    }
    return last
}

/// Every live block passes `kiln blocks verify`'s checks (checksums, references).
func verifyBlocks(_ store: any ObjectStore) async throws -> [String] {
    var problems: [String] = []
    for tenant in try await BlockIndex.tenants(in: store) {
        for meta in try await BlockIndex.liveBlocks(store, tenant: tenant) {
            problems += await BlockReader(store: store, meta: meta).verify().map { "\(tenant)/\(meta.ulid): \($0)" }
        }
    }
    return problems
}

/// A `file://` store in a fresh temporary folder.
func temporaryFileStore(_ name: String) throws -> (url: String, dir: URL, store: any ObjectStore) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-\(name)-\(UInt32.random(in: 0 ... .max))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let url = "file://" + dir.path
    return (url, dir, try makeObjectStore(url: url))
}

/// Arguments both stages share: brokers, quick group joins, an admin port of their own.
func stageArguments(brokers: String) -> [String] {
    ["--kafka-brokers", brokers] + TestEnvironment.quickGroupArguments + ["--admin-listen", "127.0.0.1:0", "--create-topics", "false"]
}
