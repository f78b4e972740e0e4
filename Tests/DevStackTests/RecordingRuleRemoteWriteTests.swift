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
/// step's flame graph for the second.
@Suite(.serialized) struct RecordingRuleRemoteWriteTests {
    static let cpu = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
    static let stepMillis: Int64 = 5000

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
        let rulesFile = dir.appendingPathComponent("rules.json")
        try rules.write(to: rulesFile, atomically: true, encoding: .utf8)
        let demo = try await GoDemo.start()
        let seed = try String(contentsOf: TestEnvironment.fixturesDir.appendingPathComponent("alloy/seed.alloy"), encoding: .utf8)
        try await withHTTPClient { client in
            let dev = try KilnDevHarness.start(
                in: dir, client: client,
                extraArguments: ["--remote-write-url", prometheus + "/api/v1/write", "--recording-rules-file", rulesFile.path],
                // A scraped CPU profile is stamped with its start, 14 s before it arrives.
                environment: ["KILN_RULER_STEP": "5s", "KILN_RULER_LATENESS": "20s"]
            ) { port in
                seed.replacingOccurrences(of: "Apps_ip_address:Apps_Port", with: demo.address)
                    .replacingOccurrences(of: "Your_Apps_Name", with: "go-demo")
                    .replacingOccurrences(of: "http://Your_Pyroscope_ip_address:Your_Pyroscope_Port", with: "http://127.0.0.1:\(port)")
            }
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

            func recorded(_ metric: String) async throws -> [String: [Int64: Double]] {
                var request = HTTPClientRequest(url: prometheus + "/api/v1/query")
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
                request.body = .bytes(ByteBuffer(string: "query=\(metric)%7Brun%3D%22\(run)%22%7D%5B30m%5D"))
                let response = try await client.execute(request, timeout: .seconds(10))
                let body =
                    try JSONSerialization.jsonObject(with: Data(buffer: try await response.body.collect(upTo: 16 << 20))) as? [String: Any]
                let result = ((body?["data"] as? [String: Any])?["result"] as? [[String: Any]]) ?? []
                var out: [String: [Int64: Double]] = [:]
                for series in result {
                    let labels = series["metric"] as? [String: String] ?? [:]
                    #expect(labels["profiles_rule_id"] != nil && labels["run"] == run, "\(labels)")
                    for pair in series["values"] as? [[Any]] ?? [] {
                        let ms = Int64(((pair[0] as? Double) ?? 0) * 1000 + 0.5)
                        out[labels["service_name"] ?? "", default: [:]][ms] = Double(pair[1] as? String ?? "")
                    }
                }
                return out
            }

            // Wait for the ruler to write the pushed steps and at least two scraped Go demo CPU profiles.
            var byService: [String: [Int64: Double]] = [:]
            var throughWorker: [String: [Int64: Double]] = [:]
            let deadline = ContinuousClock.now + .seconds(120)
            while ContinuousClock.now < deadline {
                byService = try await recorded("profiles_recorded_cpu_nanoseconds")
                throughWorker = try await recorded("profiles_recorded_cpu_worker_nanoseconds")
                if byService["fixture-a"]?.count == 2, byService["fixture-b"]?.count == 2, (throughWorker["go-demo"]?.count ?? 0) >= 2 {
                    break
                }
                try await Task.sleep(for: .milliseconds(500))
            }
            try #require(byService["fixture-a"]?.count == 2 && byService["fixture-b"]?.count == 2, "\(byService)")
            let tail = process.lines.suffix(20).joined(separator: "\n")
            try #require((throughWorker["go-demo"]?.count ?? 0) >= 2, "\(throughWorker)\n\(tail)")
            #expect(Set(throughWorker.keys) == ["go-demo"], "the function filter keeps the fixtures' stacks out")
            let last = byService.values.flatMap(\.keys).max()!
            let start = (started - 120) * 1000 / Self.stepMillis * Self.stepMillis

            // SelectSeries over the same data, step and grouping; blocks may trail the ruler by a cut, so ask
            // until they hold the same steps (a wrong value never converges and fails at the deadline).
            func selectSeries() async throws -> [String: [Int64: Double]] {
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
            var expected: [String: [Int64: Double]] = [:]
            let converge = ContinuousClock.now + .seconds(30)
            repeat {
                expected = try await selectSeries()
                byService = try await recorded("profiles_recorded_cpu_nanoseconds").mapValues { $0.filter { $0.key <= last } }
                if expected == byService { break }
                try await Task.sleep(for: .milliseconds(500))
            } while ContinuousClock.now < converge
            #expect(expected == byService, "SelectSeries \(expected)\nPrometheus \(byService)")
            #expect(Set(byService.keys).isSuperset(of: ["fixture-a", "fixture-b", "go-demo"]))

            // The function rule: each step's value is main.cpuWorker's total in that step's flame graph.
            for (step, value) in throughWorker["go-demo"]! where step <= last {
                let json =
                    #"{"profileTypeID":"\#(Self.cpu)","labelSelector":"{service_name=\"go-demo\"}","start":\#(step - Self.stepMillis + 1),"end":\#(step),"maxNodes":100000}"#
                let answer = try await dev.connect("querier.v1.QuerierService/SelectMergeStacktraces", json: json, tenant: "anonymous")
                let graph = DecodedFlameGraph(answer.body)
                #expect(Double(graph.totalByName["main.cpuWorker"] ?? -1) == value, "step \(step)")
                #expect(value > 0 && value < (byService["go-demo"]?[step] ?? 0), "step \(step): the filter takes part of the CPU")
            }
            print(
                "recording rules: \(byService.values.map(\.count).reduce(0, +)) samples by service, \(throughWorker["go-demo"]!.count) through main.cpuWorker, equal to kiln-query's"
            )
            _ = try await dev.stop()
        }
        try await demo.stop()
    }
}
