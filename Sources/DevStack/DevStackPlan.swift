import Foundation
import KilnService

/// One process `kiln dev` runs, and how to tell that it is up.
public struct ChildSpec: Sendable, Equatable {
    public enum Probe: Sendable, Equatable {
        /// `GET url` answers 200 (the stage's `/ready`).
        case http(String)
        /// The port accepts connections (Tansu speaks only Kafka).
        case tcp(host: String, port: Int)
    }

    public var name: String
    public var executable: URL
    public var arguments: [String]
    public var environment: [String: String]
    public var probe: Probe
}

/// What `kiln dev` is asked to run.
public struct DevOptions: Sendable {
    /// Absolute folder holding `blocks/` (the file:// store), `logs/` and `pids/`.
    public var dataDir: URL
    public var listenHost: String
    public var listenPort: Int
    public var scrapeConfig: URL?
    /// host:port of kiln-scraper's OTLP gRPC listener; nil: none.
    public var otlpGRPCListen: String?
    /// Compactor cut age: small, so a profile shows up in the UI within seconds.
    public var maxBlockAge: String
    public var stopTimeout: Duration
    /// HTTPS on the front address and TLS on the OTLP gRPC listener (the children's own HTTP listeners
    /// stay plain: they answer on loopback only, to kiln dev).
    public var tls: ServerTLS?
    /// Prometheus remote write URL: when set, kiln-ruler evaluates the recording rules and writes there.
    public var remoteWriteURL: String?
    /// Provisioned recording rules, for kiln-query (listed, read-only) and kiln-ruler.
    public var recordingRulesFile: URL?

    public init(
        dataDir: URL, listenHost: String = "127.0.0.1", listenPort: Int = 4040, scrapeConfig: URL? = nil,
        otlpGRPCListen: String? = nil, maxBlockAge: String = "10s", stopTimeout: Duration = .seconds(20), tls: ServerTLS? = nil
    ) {
        self.tls = tls
        self.otlpGRPCListen = otlpGRPCListen
        self.dataDir = dataDir
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.scrapeConfig = scrapeConfig
        self.maxBlockAge = maxBlockAge
        self.stopTimeout = stopTimeout
    }

    public var blocksDir: URL { dataDir.appendingPathComponent("blocks") }
    /// The stages' `/metrics` addresses for a Prometheus `file_sd_configs` entry (docs/dev.md).
    public var prometheusTargetsFile: URL { dataDir.appendingPathComponent("prometheus-targets.json") }
    public var logsDir: URL { dataDir.appendingPathComponent("logs") }
    public var pidsDir: URL { dataDir.appendingPathComponent("pids") }
    public var storeURL: String { "file://" + blocksDir.path }
}

/// The processes, flags and ports of one `kiln dev` run. Pure: ports and the run's generation come in,
/// so the wiring is testable without starting anything.
public struct DevStackPlan: Sendable {
    public var broker: ChildSpec
    /// In stop order: upstream first, so each stage drains into a downstream that is still running.
    public var stages: [ChildSpec]
    public var scraperAddress: String
    public var queryAddress: String
    public var kafkaBrokers: String
    public var topics: (raw: String, normalized: String, dlq: String)

    /// Each stage's `/metrics`, in Prometheus file service discovery's format: the address its readiness
    /// probe asks (every stage serves `/metrics` beside `/ready`), labelled `job` with the stage's name as
    /// docker/prometheus/prometheus.yml labels them, so the pipeline dashboard and alerts read it unchanged.
    public func prometheusTargets() throws -> [UInt8] {
        var groups: [[String: Any]] = []
        for stage in stages {
            guard case .http(let ready) = stage.probe, let url = URL(string: ready), let host = url.host, let port = url.port else {
                continue
            }
            groups.append(["targets": ["\(host):\(port)"], "labels": ["job": stage.name, "__scheme__": url.scheme ?? "http"]])
        }
        return Array(try JSONSerialization.data(withJSONObject: groups, options: [.prettyPrinted, .sortedKeys]))
    }

    /// Variables of the caller that would override what kiln dev passes or fixes per child. Authentication
    /// is off in kiln dev, so an exported KILN_AUTH_FILE does not reach the children.
    static let strippedVariables: Set<String> = [
        "KILN_LISTEN", "KILN_ADMIN_LISTEN", "KILN_STORE", "KILN_SCRAPE_CONFIG", "KILN_KAFKA_BROKERS",
        "KILN_RAW_TOPIC", "KILN_NORMALIZED_TOPIC", "KILN_DLQ_TOPIC", "KILN_TOPIC_PARTITIONS", "KILN_MAX_BLOCK_AGE",
        "KILN_DEV_DATA_DIR", "KILN_TANSU", "KILN_AUTH_FILE", "KILN_OTLP_GRPC_LISTEN", "KILN_REMOTE_WRITE_URL",
        "KILN_RECORDING_RULES_FILE",
    ]

    /// - Parameters:
    ///   - ports: free loopback ports for Tansu, kiln-scraper, kiln-normalizer, kiln-compactor, kiln-query, kiln-ruler.
    ///   - generation: how many times kiln dev has started on this data dir. Tansu keeps its log in memory,
    ///     so each run starts with empty topics whose offsets begin at 0 again; blocks in the store remember
    ///     (topic, partition, offset) provenance for exactly-once, so reusing a topic name would make the
    ///     compactor skip the new run's records as duplicates. Each run therefore gets its own topic names.
    public static func make(
        options: DevOptions, executables: DevExecutables, ports: [Int], generation: Int,
        environment: [String: String]
    ) -> DevStackPlan {
        precondition(ports.count == 6, "six ports: tansu, scraper, normalizer, compactor, query, ruler")
        let host = "127.0.0.1"
        let brokers = "\(host):\(ports[0])"
        let suffix = ".run\(generation)"
        let topics = (raw: "kiln.profiles.raw" + suffix, normalized: "kiln.profiles.normalized" + suffix, dlq: "kiln.profiles.dlq" + suffix)

        var env = environment.filter { !strippedVariables.contains($0.key) }
        env["KILN_DEV_DATA_DIR"] = options.dataDir.path  // marks our children (see StaleChildren)
        if let lib = executables.kafkaLibDir {
            env["LD_LIBRARY_PATH"] = [lib.path, environment["LD_LIBRARY_PATH"]].compactMap { $0 }.filter { !$0.isEmpty }.joined(
                separator: ":")
        }

        let kafka = [
            "--kafka-brokers", brokers,
            "--raw-topic", topics.raw, "--normalized-topic", topics.normalized, "--dlq-topic", topics.dlq,
            // One scraper feeds it; one partition keeps blocks few and large.
            "--topic-partitions", "1",
        ]
        // Tansu answers a group join after about half the session timeout, and a restarted stage waits for
        // its killed predecessor's session to expire: keep both quick, with the heartbeat well inside the
        // session. Consumers only (a producer warns about consumer properties).
        let consumer = kafka + ["--kafka-option", "session.timeout.ms=3000", "--kafka-option", "heartbeat.interval.ms=500"]
        let broker = ChildSpec(
            name: "tansu", executable: executables.tansu,
            arguments: [
                "broker", "--listener-url", "tcp://\(brokers)", "--advertised-listener-url", "tcp://\(brokers)",
                "--storage-engine", "memory://tansu/",
            ],
            environment: env, probe: .tcp(host: host, port: ports[0]))
        let scraperAddress = "\(host):\(ports[1])"
        let queryAddress = "\(host):\(ports[4])"
        var scraperArgs = kafka + ["--listen", scraperAddress]
        if let config = options.scrapeConfig { scraperArgs += ["--config", config.path] }
        if let otlp = options.otlpGRPCListen {
            scraperArgs += ["--otlp-grpc-listen", otlp]
            if let tls = options.tls {
                scraperArgs += ["--otlp-grpc-tls-cert-file", tls.certificateFile, "--otlp-grpc-tls-key-file", tls.keyFile]
                if let ca = tls.clientCAFile { scraperArgs += ["--otlp-grpc-tls-client-ca-file", ca] }
            }
        }
        let rules = options.recordingRulesFile.map { ["--recording-rules-file", $0.path] } ?? []
        let ruler = options.remoteWriteURL == nil ? [] : ["--ruler-running"]
        var stages = [
            ChildSpec(
                name: "kiln-scraper", executable: executables.stage("kiln-scraper"), arguments: scraperArgs,
                environment: env, probe: .http("http://\(scraperAddress)/ready")),
            ChildSpec(
                name: "kiln-normalizer", executable: executables.stage("kiln-normalizer"),
                arguments: consumer + ["--admin-listen", "\(host):\(ports[2])"],
                environment: env, probe: .http("http://\(host):\(ports[2])/ready")),
            ChildSpec(
                name: "kiln-compactor", executable: executables.stage("kiln-compactor"),
                arguments: consumer + [
                    "--admin-listen", "\(host):\(ports[3])", "--store", options.storeURL,
                    "--max-block-age", options.maxBlockAge,
                    // A dev stack is where old profiles are replayed and looked at closely: it keeps them whole.
                    "--downsample-after", "off",
                ],
                environment: env, probe: .http("http://\(host):\(ports[3])/ready")),
            ChildSpec(
                name: "kiln-query", executable: executables.stage("kiln-query"),
                arguments: ["--store", options.storeURL, "--listen", queryAddress] + rules + ruler,
                environment: env, probe: .http("http://\(queryAddress)/ready")),
        ]
        if let url = options.remoteWriteURL {
            // Beside the compactor, reading the same batches; stopped before kiln-query like the other consumers.
            stages.insert(
                ChildSpec(
                    name: "kiln-ruler", executable: executables.stage("kiln-ruler"),
                    arguments: consumer + [
                        "--admin-listen", "\(host):\(ports[5])", "--store", options.storeURL, "--remote-write-url", url,
                    ] + rules,
                    environment: env, probe: .http("http://\(host):\(ports[5])/ready")),
                at: 3)
        }
        return DevStackPlan(
            broker: broker, stages: stages, scraperAddress: scraperAddress, queryAddress: queryAddress,
            kafkaBrokers: brokers, topics: topics)
    }
}
