import AsyncHTTPClient
import Foundation
import NIOCore
import PprofCodec
import TestSupport
import Testing

@testable import DevStack

/// Recording rules end to end: `kiln dev --remote-write-url` runs kiln-ruler, which evaluates two rules on
/// the normalized stream — CPU by `service_name`, and the CPU of stacks through the Go demo's
/// `main.cpuWorker` — and writes them to Debian's Prometheus. Real fixture profiles are pushed and the Go
/// demo is scraped; then every sample Prometheus holds must equal, step by step, what kiln-query answers
/// from the blocks for the same data: `SelectSeries` for the first rule, the function's total in each
/// step's flame graph for the second. Then kiln-ruler is SIGKILLed twice while a remote write is in flight
/// (a proxy holds each request 1.5 s and still delivers it), and after its restarts Prometheus must hold
/// the same: every step once, with its whole value, and no re-sent step refused as a conflicting value.
@Suite(.serialized) struct RecordingRuleRemoteWriteTests {
    static let cpu = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
    static let stepMillis: Int64 = 5000
    /// The Go demo is scraped every 5 s: a CPU profile is stamped with its start, 4 s before it arrives; the
    /// pushed fixtures are stamped up to 8 s back. 12 s was too little once in a loaded CI run (a step closed
    /// before the later pushes reached the ruler: dropped as late).
    static let latenessMillis: Int64 = 20_000

    @Test(.requires(.kilnDev, .go, .prometheus, .fixtures, .fixture("alloy/seed.alloy")))
    func prometheusHoldsWhatSelectSeriesAnswers() async throws {
        let prometheus = try #require(TestEnvironment.prometheusURL)
        let run = String((0..<8).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement()! })
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-ruler-\(run)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // The run's own label keeps this test's series apart from any other in the shared Prometheus.
        let rules = """
            {"anonymous": [
              {"id": "cpubyservice", "metricName": "profiles_recorded_cpu_nanoseconds",
               "matchers": ["{__profile_type__=\\"\(Self.cpu)\\"}"], "groupBy": ["service_name"],
               "externalLabels": [{"name": "run", "value": "\(run)"}]},
              {"id": "cpuworker", "metricName": "profiles_recorded_cpu_worker_nanoseconds",
               "matchers": ["{__profile_type__=\\"\(Self.cpu)\\"}", "{service_name=\\"go-demo\\"}"], "groupBy": ["service_name"],
               "stacktraceFilter": {"functionName": {"functionName": "main.cpuWorker"}},
               "externalLabels": [{"name": "run", "value": "\(run)"}]}
            ]}
            """
        // Beside them, the rules docker/ provisions, whose series the fleet dashboard reads.
        let dockerRules =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: TestEnvironment.repoRoot.appendingPathComponent("docker/recording-rules.json"))) as? [String: [Any]]
        var allRules = try JSONSerialization.jsonObject(with: Data(rules.utf8)) as! [String: [Any]]
        allRules["anonymous"]! += try #require(dockerRules?["anonymous"])
        let rulesFile = dir.appendingPathComponent("rules.json")
        try JSONSerialization.data(withJSONObject: allRules).write(to: rulesFile)
        let proxy = try await FaultProxy.start(upstream: prometheus, slowSeconds: 1.5)
        defer { Task { await proxy.stop() } }
        let demo = try await GoDemo.start()
        try await withHTTPClient { client in
            let dev = try KilnDevHarness.scrapingGoDemo(
                demo, in: dir, client: client, scrapeInterval: "5s",
                extraArguments: ["--remote-write-url", proxy.endpoint + "/api/v1/write", "--recording-rules-file", rulesFile.path],
                environment: ["KILN_RULER_STEP": "5s", "KILN_RULER_LATENESS": "\(Self.latenessMillis / 1000)s"])
            let process = dev.process
            defer { process.signal(SIGTERM) }
            _ = try await dev.waitUntilReady()
            let started = Int64(Date().timeIntervalSince1970)
            // Two real CPU profiles pushed as two services, each twice 6 s apart (two steps), stamped with
            // the present (a profile's own time_nanos is its time, and these were recorded long ago).
            let pprofDir = TestEnvironment.fixturesDir.appendingPathComponent("pprof")
            for (i, (file, service)) in [("go_cpu_ap-query_2026.pb.gz", "fixture-a"), ("go_cpu_large_proftest.pb.gz", "fixture-b")]
                .enumerated()
            {
                var profile = try PprofDecoder().decode(try [UInt8](Data(contentsOf: pprofDir.appendingPathComponent(file))))
                for at in [started - 8 + Int64(i), started - 2 + Int64(i)] {
                    profile.timeNanos = at * 1_000_000_000
                    var request = HTTPClientRequest(url: dev.baseURL + "/ingest?name=\(service)&format=pprof")
                    request.method = .POST
                    request.body = .bytes(ByteBuffer(bytes: PprofEncoder.encode(profile)))
                    let response = try await client.execute(request, timeout: .seconds(30))
                    #expect(response.status.code == 200, "\(file)")
                }
            }

            func instant(_ query: String) async throws -> [[String: Any]] {
                var request = HTTPClientRequest(url: prometheus + "/api/v1/query")
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
                let encoded = query.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? query
                request.body = .bytes(ByteBuffer(string: "query=\(encoded)"))
                let response = try await client.execute(request, timeout: .seconds(10))
                let body =
                    try JSONSerialization.jsonObject(with: Data(buffer: try await response.body.collect(upTo: 16 << 20))) as? [String: Any]
                #expect(body?["status"] as? String == "success", "\(query): \(body ?? [:])")
                return ((body?["data"] as? [String: Any])?["result"] as? [[String: Any]]) ?? []
            }

            /// The raw samples of this run's series of `metric`, by service, as Prometheus holds them.
            func recorded(_ metric: String) async throws -> [String: [Int64: Double]] {
                var out: [String: [Int64: Double]] = [:]
                for series in try await instant("\(metric){run=\"\(run)\"}[30m]") {
                    let labels = series["metric"] as? [String: String] ?? [:]
                    #expect(labels["profiles_rule_id"] != nil && labels["run"] == run, "\(labels)")
                    for pair in series["values"] as? [[Any]] ?? [] {
                        let ms = Int64(((pair[0] as? Double) ?? 0) * 1000 + 0.5)
                        out[labels["service_name"] ?? "", default: [:]][ms] = Double(pair[1] as? String ?? "")
                    }
                }
                return out
            }

            // Wait for the ruler to write the pushed steps and a scraped Go demo CPU profile.
            var byService: [String: [Int64: Double]] = [:]
            var throughWorker: [String: [Int64: Double]] = [:]
            let deadline = ContinuousClock.now + .seconds(120)
            while ContinuousClock.now < deadline {
                byService = try await recorded("profiles_recorded_cpu_nanoseconds")
                throughWorker = try await recorded("profiles_recorded_cpu_worker_nanoseconds")
                if byService["fixture-a"]?.count == 2, byService["fixture-b"]?.count == 2, throughWorker["go-demo"]?.isEmpty == false {
                    break
                }
                try await Task.sleep(for: .milliseconds(500))
            }
            try #require(byService["fixture-a"]?.count == 2 && byService["fixture-b"]?.count == 2, "\(byService)")
            let tail = process.lines.suffix(20).joined(separator: "\n")
            try #require(throughWorker["go-demo"]?.isEmpty == false, "\(throughWorker)\n\(tail)")
            #expect(Set(throughWorker.keys) == ["go-demo"], "the function filter keeps the fixtures' stacks out")
            let last = byService.values.flatMap(\.keys).max()!
            let start = (started - 120) * 1000 / Self.stepMillis * Self.stepMillis

            // SelectSeries over the same data, step and grouping; blocks may trail the ruler by a cut, so ask
            // until they hold the same steps (a wrong value never converges and fails at the deadline).
            func selectSeries(through last: Int64) async throws -> [String: [Int64: Double]] {
                let json =
                    #"{"profileTypeID":"\#(Self.cpu)","labelSelector":"{}","start":\#(start),"end":\#(last),"step":5,"groupBy":["service_name"]}"#
                let answer = try await dev.connect("querier.v1.QuerierService/SelectSeries", json: json, tenant: "anonymous")
                var out: [String: [Int64: Double]] = [:]
                for series in answer.body["series"] as? [[String: Any]] ?? [] {
                    let labels = series["labels"] as? [[String: String]] ?? []
                    let service = labels.first { $0["name"] == "service_name" }?["value"] ?? ""
                    for point in series["points"] as? [[String: Any]] ?? [] {
                        let ms = Int64(point["timestamp"] as? String ?? "") ?? 0
                        out[service, default: [:]][ms] = point["value"] as? Double ?? 0
                    }
                }
                return out
            }
            func expectPrometheusEqualsKilnQuery(through last: Int64) async throws {
                var expected: [String: [Int64: Double]] = [:]
                var got: [String: [Int64: Double]] = [:]
                let converge = ContinuousClock.now + .seconds(30)
                repeat {
                    expected = try await selectSeries(through: last)
                    got = try await recorded("profiles_recorded_cpu_nanoseconds").mapValues { $0.filter { $0.key <= last } }
                    if expected == got { break }
                    try await Task.sleep(for: .milliseconds(500))
                } while ContinuousClock.now < converge
                #expect(expected == got, "SelectSeries \(expected)\nPrometheus \(got)")
                #expect(Set(got.keys).isSuperset(of: ["fixture-a", "fixture-b", "go-demo"]))

                // The function rule: each step's value is main.cpuWorker's total in that step's flame graph.
                for (step, value) in try await recorded("profiles_recorded_cpu_worker_nanoseconds")["go-demo"] ?? [:] where step <= last {
                    let json =
                        #"{"profileTypeID":"\#(Self.cpu)","labelSelector":"{service_name=\"go-demo\"}","start":\#(step - Self.stepMillis + 1),"end":\#(step),"maxNodes":100000}"#
                    let answer = try await dev.connect("querier.v1.QuerierService/SelectMergeStacktraces", json: json, tenant: "anonymous")
                    let graph = DecodedFlameGraph(answer.body)
                    #expect(Double(graph.totalByName["main.cpuWorker"] ?? -1) == value, "step \(step)")
                    #expect(value > 0 && value < (got["go-demo"]?[step] ?? 0), "step \(step): the filter takes part of the CPU")
                }
            }
            try await expectPrometheusEqualsKilnQuery(through: last)

            // SIGKILL the ruler twice with a remote write in flight; the proxy still delivers that write.
            try proxy.plan("--always slow")
            var killedAt: Int64 = 0
            for _ in 0..<2 {
                let pid = try #require(dev.childPids()["kiln-ruler"])
                let before = proxy.requests().count
                try #require(await eventually(timeout: .seconds(30)) { proxy.requests().count > before }, "no remote write to interrupt")
                kill(pid, SIGKILL)
                killedAt = Int64(Date().timeIntervalSince1970 * 1000)
                try #require(
                    await eventually(timeout: .seconds(30)) { (dev.childPids()["kiln-ruler"] ?? pid) != pid }, "kiln-ruler not restarted")
            }
            try proxy.plan("pass")
            // Wait until the restarted ruler has written two steps past those the interrupted write held (steps
            // end a lateness before the clock).
            let checkpoint = dev.dataDir.appendingPathComponent("blocks/_kiln/ruler/kiln-ruler.json")
            var through: Int64 = 0
            try #require(
                await eventually(timeout: .seconds(60)) {
                    let text = (try? String(contentsOf: checkpoint, encoding: .utf8)) ?? ""
                    through = (try? JSONDecoder().decode([String: Int64].self, from: Data(text.utf8)))?["completedThrough"] ?? 0
                    return through >= killedAt - Self.latenessMillis + 2 * Self.stepMillis
                }, "the ruler did not write past the kills (checkpoint \(through))")
            try await expectPrometheusEqualsKilnQuery(through: through)
            let log = try String(contentsOf: dev.dataDir.appendingPathComponent("logs/kiln-ruler.log"), encoding: .utf8)
            #expect(!log.contains("refused recorded samples"), "a re-sent step conflicted with the one Prometheus holds")
            #expect(proxy.actions().filter { $0 == "slow" }.count >= 2)

            // Every query of the fleet dashboard over recorded series returns data from this Prometheus, and
            // every Pyroscope panel's query is answered by kiln-query with a flame graph.
            let listing = try await runToCompletion(
                TestEnvironment.repoRoot.appendingPathComponent(".venv/bin/python"),
                [TestEnvironment.repoRoot.appendingPathComponent("scripts/dashboard-queries.py").path])
            try #require(listing.status == 0, "\(listing.output)")
            var checked = 0
            for line in listing.output.split(separator: "\n") {
                let fields = line.split(separator: "\t", maxSplits: 2).map(String.init)
                guard fields.count == 3, fields[0].hasPrefix("kiln-fleet-profiles.json") else { continue }
                let (place, kind, query) = (fields[0], fields[1], fields[2])
                if kind == "pyroscope" {
                    let panel = try #require(try JSONSerialization.jsonObject(with: Data(query.utf8)) as? [String: Any])
                    let body = try JSONSerialization.data(withJSONObject: [
                        "profileTypeID": panel["profileTypeId"] as? String ?? "", "labelSelector": panel["labelSelector"] as? String ?? "",
                        "start": start, "end": through,
                    ])
                    let answer = try await dev.connect(
                        "querier.v1.QuerierService/SelectMergeStacktraces", json: String(decoding: body, as: UTF8.self), tenant: "anonymous"
                    )
                    #expect(answer.status == 200 && DecodedFlameGraph(answer.body).total > 0, "\(place): \(answer.body)")
                } else if !query.contains("kiln_") {
                    // Kiln's own metrics need Prometheus to scrape Kiln, which this one does not.
                    var answer: [[String: Any]] = []
                    _ = try await eventually(timeout: .seconds(20)) {
                        answer = try await instant(query)
                        return !answer.isEmpty
                    }
                    #expect(!answer.isEmpty, "\(place) shows nothing: \(query)")
                }
                checked += 1
            }
            #expect(checked >= 10, "\(listing.output)")

            // Kiln's own metrics: the test Prometheus scrapes this stack through the targets file kiln dev
            // writes, and every query of the pipeline dashboard returns data (a panel showing nothing is a
            // defect); every Kiln metric an alert reads is exposed.
            let targets = URL(fileURLWithPath: try #require(TestEnvironment.prometheusTargetsDir)).appendingPathComponent("\(run).json")
            try FileManager.default.copyItem(at: dev.dataDir.appendingPathComponent("prometheus-targets.json"), to: targets)
            defer { try? FileManager.default.removeItem(at: targets) }
            let stages = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: targets)) as? [Any]).count
            #expect(stages == 5, "scraper, normaliser, compactor, ruler and query")
            try #require(
                await eventually(timeout: .seconds(30)) {
                    // Two scrapes of each, so rates over a minute have two points.
                    try await instant(#"count_over_time(up{job=~"kiln-.*"}[1m]) >= 2"#).count == stages
                }, "Prometheus did not scrape the \(stages) stages")
            var silent: [String] = []
            var pipelineQueries = 0
            var alertMetrics = Set<String>()
            for line in listing.output.split(separator: "\n") {
                let fields = line.split(separator: "\t", maxSplits: 2).map(String.init)
                guard fields.count == 3, fields[1] == "promql" else { continue }
                if fields[0].hasPrefix("kiln-pipeline.json") {
                    pipelineQueries += 1
                    let shows = try await eventually(timeout: .seconds(10)) { !(try await instant(fields[2]).isEmpty) }
                    if !shows { silent.append("\(fields[0]): \(fields[2])") }
                } else if fields[0].hasPrefix("alerts.yml") {
                    for name in fields[2].matches(of: /kiln_[a-z_]+/) { alertMetrics.insert(String(name.output)) }
                }
            }
            for name in alertMetrics.sorted() where try await instant("group(\(name))").isEmpty {
                silent.append("alerts.yml reads \(name), which no stage exposes")
            }
            #expect(silent.isEmpty, "\(silent.count) pipeline queries return nothing:\n\(silent.joined(separator: "\n"))")
            #expect(pipelineQueries >= 40 && alertMetrics.count >= 8, "\(listing.output)")
            print(
                "recording rules: Prometheus equals kiln-query before and after two SIGKILLs mid-write (through \(through)); \(checked) fleet dashboard queries answered; \(pipelineQueries) pipeline dashboard queries and \(alertMetrics.count) alert metrics present"
            )
            _ = try await dev.stop()
        }
        try await demo.stop()
    }
}
