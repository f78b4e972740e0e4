import Foundation

/// Where the integration tests find what `make test` started for them, and the shared fixtures.
public enum TestEnvironment {
    /// Bootstrap servers of the Tansu broker started by scripts/test-env.sh, e.g. `127.0.0.1:19092`.
    public static var kafkaBrokers: String? { value("KILN_TEST_KAFKA_BROKERS") }
    /// Endpoint of the moto S3 server started by scripts/test-env.sh, e.g. `http://127.0.0.1:19000`.
    public static var s3Endpoint: String? { value("KILN_TEST_S3_ENDPOINT") }
    /// Debian's Prometheus with its remote-write receiver on, started by scripts/test-env.sh.
    public static var prometheusURL: String? { value("KILN_TEST_PROMETHEUS_URL") }
    /// Where that Prometheus finds scrape targets (file_sd `*.json`, scraped every second).
    public static var prometheusTargetsDir: String? { value("KILN_TEST_PROMETHEUS_TARGETS_DIR") }
    /// True under `make test`: a missing requirement (broker, S3 server, fixtures, Chromium, ...) is then a
    /// failure, not a skip (see `Requirement`).
    public static var integrationRequired: Bool { value("KILN_REQUIRE_INTEGRATION") == "1" }

    /// The broker's bootstrap servers, or an error naming the variable (for tests marked `.requires(.kafka)`).
    public static func requireKafkaBrokers() throws -> String {
        guard let brokers = kafkaBrokers else {
            throw RequirementMissing("KILN_TEST_KAFKA_BROKERS is not set (scripts/test-env.sh start && . run/test-env.sh)")
        }
        return brokers
    }

    /// librdkafka settings for every consumer group a test makes. Tansu answers a group join after about
    /// half the session timeout, and a SIGKILLed member keeps its partitions until its session expires:
    /// 1.5 s sessions keep both short (the heartbeat must be well inside the session).
    public static let quickGroupSettings = [("session.timeout.ms", "1500"), ("heartbeat.interval.ms", "300")]

    /// `quickGroupSettings` as a Kiln executable's `--kafka-option` arguments.
    public static var quickGroupArguments: [String] { quickGroupSettings.flatMap { ["--kafka-option", "\($0.0)=\($0.1)"] } }

    /// The S3 endpoint, or an error naming the variable (for tests marked `.requires(.s3)`).
    public static func requireS3Endpoint() throws -> String {
        guard let endpoint = s3Endpoint else {
            throw RequirementMissing("KILN_TEST_S3_ENDPOINT is not set (scripts/test-env.sh start && . run/test-env.sh)")
        }
        return endpoint
    }

    /// The repo's Python (scripts/setup.sh creates it); it may not exist, see `Requirement.python`.
    public static var venvPython: URL { repoRoot.appendingPathComponent(".venv/bin/python") }

    /// Headless Chromium: `KILN_CHROMIUM`, else chromium, chromium-browser or google-chrome on PATH.
    public static var chromiumPath: String? {
        if let path = value("KILN_CHROMIUM") { return path }
        return searchPath(["chromium", "chromium-browser", "google-chrome"])
    }

    /// The `go` command: /usr/bin/go, /usr/local/go/bin/go, else on PATH.
    public static var goPath: String? {
        if let found = ["/usr/bin/go", "/usr/local/go/bin/go"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
            return found
        }
        return searchPath(["go"])
    }

    /// The go command, or an error saying it is missing (for tests marked `.requires(.go)`).
    public static func requireGo() throws -> String {
        guard let go = goPath else { throw RequirementMissing("go is not installed (apt-get install golang-go)") }
        return go
    }

    /// `go tool pprof <arguments>`'s standard output (its build cache in the repo's `.build-demo`).
    public static func goToolPprof(_ arguments: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try requireGo())
        p.arguments = ["tool", "pprof"] + arguments
        var env = ProcessInfo.processInfo.environment
        env["GOCACHE"] = repoRoot.appendingPathComponent(".build-demo/gocache").path
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = Pipe()
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    private static func searchPath(_ names: [String]) -> String? {
        let dirs = (value("PATH") ?? "/usr/bin").split(separator: ":")
        for name in names {
            for dir in dirs where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") { return "\(dir)/\(name)" }
        }
        return nil
    }

    /// The repo's root folder (holds Package.swift).
    public static var repoRoot: URL {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }

    /// `../shared/fixtures` beside the repo, or `KILN_FIXTURES_DIR`.
    public static var fixturesDir: URL {
        if let dir = value("KILN_FIXTURES_DIR") { return URL(fileURLWithPath: dir) }
        return repoRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures")
    }

    /// The folder holding the built executables (`kiln`, `kiln-scraper`, ...).
    public static var binDir: URL {
        if let dir = value("KILN_BIN_DIR") { return URL(fileURLWithPath: dir) }
        return repoRoot.appendingPathComponent(".build/debug")
    }

    private static func value(_ name: String) -> String? {
        guard let v = ProcessInfo.processInfo.environment[name], !v.isEmpty else { return nil }
        return v
    }
}
