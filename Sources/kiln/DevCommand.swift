import ArgumentParser
import DevStack
import Foundation
import KilnService

/// `kiln dev`: wiring only; the supervisor and the front proxy live in DevStack.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Runs the whole pipeline on this machine: Tansu, the three stages and kiln-query behind one address.",
        discussion: """
            Starts a local Tansu broker, kiln-scraper, kiln-normalizer, kiln-compactor and kiln-query (and kiln-ruler \
            with --remote-write-url) as separate \
            processes, with a file:// block store under --data-dir, and serves push ingest (POST /ingest, \
            /push.v1.PusherService/Push, OTLP's /v1development/profiles), the query API and the web UI on --listen, \
            like Pyroscope's single binary, and OTLP profiles over gRPC on --otlp-grpc-listen. \
            GET /ready answers 200 once every process is up. Logs go to DATA_DIR/logs/. Ctrl-C or SIGTERM stops \
            everything; a second run on the same directory reuses its blocks (Tansu keeps Kafka data in memory only, \
            so records still in Kafka at shutdown are not kept).
            """
    )

    @Option(help: "Folder for blocks, logs and state; created if missing. [env: KILN_DEV_DATA_DIR] (default: ./data)")
    var dataDir: String?

    @Option(help: "host:port serving ingest, query and the UI. [env: KILN_LISTEN] (default: 127.0.0.1:4040)")
    var listen: String?

    @Option(help: "host:port of the OTLP profiles gRPC listener, or \"off\". [env: KILN_OTLP_GRPC_LISTEN] (default: 127.0.0.1:4317)")
    var otlpGrpcListen: String?

    @Option(help: "Alloy configuration for kiln-scraper (pyroscope.scrape targets). [env: KILN_SCRAPE_CONFIG] (default: push ingest only)")
    var scrapeConfig: String?

    @Option(help: "The tansu broker binary. [env: KILN_TANSU] (default: .venv/bin/tansu of the checkout, else tansu on PATH)")
    var tansu: String?

    @Option(help: "Compactor cut age: how soon a profile shows up in the store (e.g. 10s). [env: KILN_DEV_BLOCK_AGE] (default: 10s)")
    var blockAge: String?

    @Option(help: "Seconds each process may take to stop before SIGKILL. [env: KILN_DEV_STOP_TIMEOUT] (default: 20)")
    var stopTimeout: Double?

    @Option(
        help: "Log level of kiln dev itself: trace, debug, info, notice, warning, error or critical. [env: KILN_LOG_LEVEL] (default: info)")
    var logLevel: String?

    @Option(
        help:
            "Prometheus remote write URL: run kiln-ruler, which writes the recording rules' series there (e.g. http://127.0.0.1:9090/api/v1/write). [env: KILN_REMOTE_WRITE_URL] (default: no ruler)"
    )
    var remoteWriteURL: String?

    @Option(help: "Provisioned recording rules (JSON: tenant → rules) for kiln-query and kiln-ruler. [env: KILN_RECORDING_RULES_FILE]")
    var recordingRulesFile: String?

    @OptionGroup var tls: TLSOptions

    func run() async throws {
        // ServiceOptions is a flag group; parsing is the way to fill it (its --admin-listen means nothing here).
        let service = try ServiceOptions.parse(logLevel.map { ["--log-level", $0] } ?? [])
        let logger = try KilnLogging.bootstrap(service: "kiln-dev", options: service)
        let listenAddress = try ListenAddress(parsing: EnvironmentFallback.resolve(listen, env: "KILN_LISTEN", default: "127.0.0.1:4040"))
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        let dir = URL(fileURLWithPath: EnvironmentFallback.resolve(dataDir, env: "KILN_DEV_DATA_DIR", default: "./data"), relativeTo: cwd)
        let config = EnvironmentFallback.resolve(scrapeConfig, env: "KILN_SCRAPE_CONFIG").map {
            URL(fileURLWithPath: $0, relativeTo: cwd).absoluteURL.standardizedFileURL
        }
        if let config, !FileManager.default.fileExists(atPath: config.path) {
            throw ServiceConfigurationError("--scrape-config: no file at \(config.path)")
        }
        let otlpText = EnvironmentFallback.resolve(otlpGrpcListen, env: "KILN_OTLP_GRPC_LISTEN", default: "127.0.0.1:4317")
        let otlpListen = otlpText == "off" ? nil : try ListenAddress(parsing: otlpText).description
        let stopText = EnvironmentFallback.resolve(stopTimeout.map { String($0) }, env: "KILN_DEV_STOP_TIMEOUT", default: "20")
        guard let stopSeconds = Double(stopText), stopSeconds > 0 else {
            throw ServiceConfigurationError("--stop-timeout must be a positive number of seconds, not \"\(stopText)\"")
        }
        let rulesFile = EnvironmentFallback.resolve(recordingRulesFile, env: "KILN_RECORDING_RULES_FILE").map {
            URL(fileURLWithPath: $0, relativeTo: cwd).absoluteURL.standardizedFileURL
        }
        if let rulesFile, !FileManager.default.fileExists(atPath: rulesFile.path) {
            throw ServiceConfigurationError("--recording-rules-file: no file at \(rulesFile.path)")
        }
        var options = DevOptions(
            dataDir: dir.absoluteURL.standardizedFileURL, listenHost: listenAddress.host, listenPort: listenAddress.port,
            scrapeConfig: config, otlpGRPCListen: otlpListen,
            maxBlockAge: EnvironmentFallback.resolve(blockAge, env: "KILN_DEV_BLOCK_AGE", default: "10s"),
            stopTimeout: .milliseconds(Int64(stopSeconds * 1000)), tls: try tls.resolved())
        options.remoteWriteURL = EnvironmentFallback.resolve(remoteWriteURL, env: "KILN_REMOTE_WRITE_URL")
        options.recordingRulesFile = rulesFile
        try await DevStack.run(options: options, tansu: tansu, logger: logger)
    }
}
