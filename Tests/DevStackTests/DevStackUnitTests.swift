import Foundation
import Testing

@testable import DevStack

@Suite struct FrontRouteTests {
    @Test(arguments: [
        ("/ingest", FrontRoute.scraper),
        ("/ingest?name=app.cpu&format=pprof", .scraper),
        ("/ingest/", .scraper),
        ("/pyroscope/ingest?name=x", .scraper),
        ("/push.v1.PusherService/Push", .scraper),
        ("/targets", .scraper),
        ("/ready", .readiness),
        ("/ready?verbose=1", .readiness),
        ("/metrics", .supervisorMetrics),
        ("/", .query),
        ("", .query),
        ("/ui/app.js", .query),
        ("/querier.v1.QuerierService/SelectMergeStacktraces", .query),
        ("/querier.v1.QuerierService/ProfileTypes", .query),
        ("/pyroscope/render?query=x", .query),
        ("/pyroscope/render-diff?leftQuery=x", .query),
        // Look-alikes are not ingest: only exact paths and the push service's own prefix are.
        ("/ingestion", .query),
        ("/push.v1.PusherServiceX/Push", .query),
        ("/pyroscope/ingest/extra", .query),
        ("/readyz", .query),
    ])
    func routes(path: String, expected: FrontRoute) {
        #expect(FrontRoute.route(path: path) == expected, "\(path)")
    }
}

@Suite struct DevStackPlanTests {
    let executables = DevExecutables(
        binDir: URL(fileURLWithPath: "/opt/kiln/bin"), tansu: URL(fileURLWithPath: "/opt/tansu"),
        kafkaLibDir: URL(fileURLWithPath: "/opt/kiln-lib"))
    let options = DevOptions(
        dataDir: URL(fileURLWithPath: "/data/dev"), scrapeConfig: URL(fileURLWithPath: "/etc/demo.alloy"),
        maxBlockAge: "3s")

    func plan(generation: Int = 1, environment: [String: String] = [:]) -> DevStackPlan {
        DevStackPlan.make(
            options: options, executables: executables, ports: [9001, 9002, 9003, 9004, 9005, 9006],
            generation: generation, environment: environment)
    }

    func value(_ flag: String, in args: [String]) -> String? {
        args.firstIndex(of: flag).map { args[$0 + 1] }
    }

    @Test func eachProcessGetsItsPortStoreAndBroker() throws {
        let p = plan()
        #expect(p.stages.map(\.name) == ["kiln-scraper", "kiln-normalizer", "kiln-compactor", "kiln-query"])
        #expect(p.broker.arguments.contains("tcp://127.0.0.1:9001"))
        #expect(p.broker.probe == .tcp(host: "127.0.0.1", port: 9001))
        let byName = Dictionary(uniqueKeysWithValues: p.stages.map { ($0.name, $0) })
        let scraper = try #require(byName["kiln-scraper"])
        let normalizer = try #require(byName["kiln-normalizer"])
        let compactor = try #require(byName["kiln-compactor"])
        let query = try #require(byName["kiln-query"])
        for stage in [scraper, normalizer, compactor] {
            #expect(value("--kafka-brokers", in: stage.arguments) == "127.0.0.1:9001", "\(stage.name)")
            #expect(value("--raw-topic", in: stage.arguments) == p.topics.raw, "\(stage.name)")
        }
        #expect(value("--kafka-option", in: normalizer.arguments) == "session.timeout.ms=3000")
        #expect(value("--kafka-option", in: compactor.arguments) == "session.timeout.ms=3000")
        #expect(value("--kafka-option", in: scraper.arguments) == nil, "the scraper only produces")
        #expect(value("--listen", in: scraper.arguments) == "127.0.0.1:9002")
        #expect(value("--config", in: scraper.arguments) == "/etc/demo.alloy")
        #expect(value("--admin-listen", in: normalizer.arguments) == "127.0.0.1:9003")
        #expect(value("--store", in: compactor.arguments) == "file:///data/dev/blocks")
        #expect(value("--max-block-age", in: compactor.arguments) == "3s")
        // kiln-query's contract: exactly --store and --listen.
        #expect(query.arguments == ["--store", "file:///data/dev/blocks", "--listen", "127.0.0.1:9005"])
        #expect(query.probe == .http("http://127.0.0.1:9005/ready"))
        #expect(p.scraperAddress == "127.0.0.1:9002" && p.queryAddress == "127.0.0.1:9005")
        #expect(scraper.executable.path == "/opt/kiln/bin/kiln-scraper")
    }

    @Test func aRemoteWriteURLAddsTheRulerWithTheRulesFile() throws {
        #expect(!plan().stages.contains { $0.name == "kiln-ruler" }, "no ruler without a remote write URL")
        var withRuler = options
        withRuler.remoteWriteURL = "http://127.0.0.1:9090/api/v1/write"
        withRuler.recordingRulesFile = URL(fileURLWithPath: "/etc/rules.json")
        let p = DevStackPlan.make(
            options: withRuler, executables: executables, ports: [9001, 9002, 9003, 9004, 9005, 9006], generation: 1, environment: [:])
        // Stopped after the compactor, before kiln-query.
        #expect(p.stages.map(\.name) == ["kiln-scraper", "kiln-normalizer", "kiln-compactor", "kiln-ruler", "kiln-query"])
        let ruler = try #require(p.stages.first { $0.name == "kiln-ruler" })
        #expect(value("--remote-write-url", in: ruler.arguments) == "http://127.0.0.1:9090/api/v1/write")
        #expect(value("--normalized-topic", in: ruler.arguments) == p.topics.normalized)
        #expect(value("--store", in: ruler.arguments) == "file:///data/dev/blocks")
        #expect(value("--recording-rules-file", in: ruler.arguments) == "/etc/rules.json")
        #expect(ruler.probe == .http("http://127.0.0.1:9006/ready"))
        let query = try #require(p.stages.first { $0.name == "kiln-query" })
        #expect(value("--recording-rules-file", in: query.arguments) == "/etc/rules.json")
        #expect(query.arguments.contains("--ruler-running"), "Drilldown may offer metrics from profiles")
    }

    @Test func eachRunHasItsOwnTopics() {
        let first = plan(generation: 1)
        let second = plan(generation: 2)
        #expect(first.topics.raw != second.topics.raw)
        #expect(first.topics.normalized != second.topics.normalized)
        #expect(first.topics.raw.hasPrefix("kiln.profiles.raw"))
    }

    @Test func callerVariablesThatWouldOverrideTheWiringAreDropped() {
        let p = plan(environment: [
            "KILN_STORE": "s3://elsewhere", "KILN_LISTEN": "0.0.0.0:1", "KILN_LOG_LEVEL": "debug",
            "LD_LIBRARY_PATH": "/usr/local/lib", "HOME": "/root",
        ])
        for child in [p.broker] + p.stages {
            #expect(child.environment["KILN_STORE"] == nil)
            #expect(child.environment["KILN_LISTEN"] == nil)
            #expect(child.environment["KILN_LOG_LEVEL"] == "debug")
            #expect(child.environment["HOME"] == "/root")
            #expect(child.environment["LD_LIBRARY_PATH"] == "/opt/kiln-lib:/usr/local/lib")
            #expect(child.environment["KILN_DEV_DATA_DIR"] == "/data/dev")
        }
    }
}

@Suite struct SpawnedProcessTests {
    let logDir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-devstack-\(UUID().uuidString)")

    init() throws { try FileManager.default.createDirectory(at: logDir, withIntermediateDirectories: true) }

    @Test func exitCodeOutputAndProcessGroup() async throws {
        let log = logDir.appendingPathComponent("sh.log")
        let p = try SpawnedProcess.spawn(
            executable: "/bin/sh", arguments: ["-c", "echo out; echo err >&2; echo $MARK; read x; exit 3"],
            environment: ["MARK": "marked"], logPath: log.path)
        // stdin is /dev/null, so `read` returns at once.
        let status = await p.waitForExit(timeout: .seconds(10))
        #expect(status == .exited(3))
        let text = try String(contentsOf: log, encoding: .utf8)
        #expect(text == "out\nerr\nmarked\n")
    }

    /// Its own process group, so the terminal's Ctrl-C reaches only kiln dev, which stops children in order.
    @Test func ownProcessGroupAndSignals() async throws {
        let p = try SpawnedProcess.spawn(
            executable: "/bin/sleep", arguments: ["30"], environment: [:],
            logPath: logDir.appendingPathComponent("sleep.log").path)
        #expect(getpgid(p.pid) == p.pid)
        #expect(await p.waitForExit(timeout: .milliseconds(200)) == nil)
        p.signal(SIGTERM)
        #expect(await p.waitForExit(timeout: .seconds(10)) == .signaled(SIGTERM))
    }

    @Test func missingExecutableIsAnError() {
        #expect(throws: SpawnError.self) {
            try SpawnedProcess.spawn(
                executable: "/no/such/program", arguments: [], environment: [:],
                logPath: logDir.appendingPathComponent("none.log").path)
        }
    }
}

@Suite struct DevExecutablesTests {
    /// A fake checkout: Package.swift, .build/debug with the four services and kiln, .venv/bin/tansu.
    func checkout() throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-devexe-\(UUID().uuidString)")
        let bin = root.appendingPathComponent(".build/debug")
        let venv = root.appendingPathComponent(".venv/bin")
        for dir in [bin, venv, root.appendingPathComponent(".venv/kiln-lib"), root.appendingPathComponent("elsewhere")] {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        try Data().write(to: root.appendingPathComponent("Package.swift"))
        try Data().write(to: root.appendingPathComponent(".venv/kiln-lib/librdkafka.so.1"))
        for file in ["kiln"] + DevExecutables.stageNames { try executable(bin.appendingPathComponent(file)) }
        try executable(venv.appendingPathComponent("tansu"))
        try executable(root.appendingPathComponent("elsewhere/tansu"))
        return root
    }

    func executable(_ url: URL) throws {
        try Data("#!/bin/sh\n".utf8).write(to: url)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
    }

    @Test func tansuFromFlagThenEnvThenCheckoutThenPath() throws {
        let root = try checkout()
        defer { try? FileManager.default.removeItem(at: root) }
        let kiln = root.appendingPathComponent(".build/debug/kiln")
        let elsewhere = root.appendingPathComponent("elsewhere/tansu").path
        let fromFlag = try DevExecutables.locate(runningBinary: kiln, tansuFlag: elsewhere, environment: ["KILN_TANSU": "/nope"])
        #expect(fromFlag.tansu.path == elsewhere)
        let fromEnv = try DevExecutables.locate(runningBinary: kiln, tansuFlag: nil, environment: ["KILN_TANSU": elsewhere])
        #expect(fromEnv.tansu.path == elsewhere)
        let fromCheckout = try DevExecutables.locate(
            runningBinary: kiln, tansuFlag: nil, environment: ["PATH": root.appendingPathComponent("elsewhere").path])
        #expect(fromCheckout.tansu.path == root.appendingPathComponent(".venv/bin/tansu").path)
        #expect(fromCheckout.kafkaLibDir?.path == root.appendingPathComponent(".venv/kiln-lib").path)
        #expect(fromCheckout.stage("kiln-query").path == root.appendingPathComponent(".build/debug/kiln-query").path)

        try FileManager.default.removeItem(at: root.appendingPathComponent(".venv/bin/tansu"))
        let fromPath = try DevExecutables.locate(
            runningBinary: kiln, tansuFlag: nil, environment: ["PATH": "/nonexistent:" + root.appendingPathComponent("elsewhere").path])
        #expect(fromPath.tansu.path == elsewhere)
        #expect(throws: SpawnError.self) {
            try DevExecutables.locate(runningBinary: kiln, tansuFlag: nil, environment: ["PATH": "/nonexistent"])
        }
    }

    @Test func aMissingServiceIsNamed() throws {
        let root = try checkout()
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.removeItem(at: root.appendingPathComponent(".build/debug/kiln-compactor"))
        do {
            _ = try DevExecutables.locate(runningBinary: root.appendingPathComponent(".build/debug/kiln"), tansuFlag: nil, environment: [:])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("kiln-compactor") && !"\(error)".contains("kiln-query"), "\(error)")
        }
    }
}

@Suite struct StaleChildrenTests {
    /// Children of a killed kiln dev are stopped by the next run; a process that merely reuses a pid
    /// (no KILN_DEV_DATA_DIR marker for this dir) is left alone.
    @Test func stopsOnlyProcessesMarkedWithThisDataDir() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-stale-\(UUID().uuidString)")
        let pids = dir.appendingPathComponent("pids")
        try FileManager.default.createDirectory(at: pids, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("log").path
        let ours = try SpawnedProcess.spawn(
            executable: "/bin/sleep", arguments: ["30"], environment: ["KILN_DEV_DATA_DIR": dir.path], logPath: log)
        let stranger = try SpawnedProcess.spawn(
            executable: "/bin/sleep", arguments: ["30"], environment: ["KILN_DEV_DATA_DIR": dir.path + "-other"], logPath: log)
        defer { stranger.signal(SIGKILL) }
        try "\(ours.pid)\n".write(to: pids.appendingPathComponent("kiln-scraper.pid"), atomically: true, encoding: .utf8)
        try "\(stranger.pid)\n".write(to: pids.appendingPathComponent("kiln-query.pid"), atomically: true, encoding: .utf8)

        await StaleChildren.stop(pidsDir: pids, dataDir: dir, timeout: .seconds(10)) { _ in }
        #expect(await ours.waitForExit(timeout: .seconds(10)) == .signaled(SIGTERM))
        #expect(stranger.exitStatus == nil)
        #expect((try FileManager.default.contentsOfDirectory(atPath: pids.path)).isEmpty)
    }
}
