import AsyncHTTPClient
import Foundation
import NIOCore
import TestSupport
import Testing

/// OTLP profiles from a client no one here wrote the protos of: PyPI's `opentelemetry-proto` (1.10 protos)
/// builds export requests from real pprof fixtures (Tests/python/otlp_send.py) and sends them over HTTP
/// (protobuf and JSON) and gRPC (`grpcio`) to `kiln dev`; what kiln-query answers must be go tool pprof's
/// facts for the source file (EXPECTED.json), and samples given span links must come back by span.
@Suite(.serialized) struct OTLPIngestTests {
    static let client = TestEnvironment.repoRoot.appendingPathComponent("Tests/python/otlp_send.py")

    struct Sent {
        var status: Int32
        var answer: [String: Any]
        var output: String
    }

    /// Runs the client; its answer is the last line of its output (one JSON object).
    static func send(_ file: String, _ arguments: [String]) async throws -> Sent {
        let path = TestEnvironment.fixturesDir.appendingPathComponent("pprof/\(file)").path
        let run = try await runToCompletion(TestEnvironment.venvPython, [client.path, path] + arguments, timeout: .seconds(120))
        let line = run.output.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
        let answer = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
        return Sent(status: run.status, answer: answer, output: String(run.output.suffix(2000)))
    }

    @Test(.requires(.kilnDev, .fixtures, .python("opentelemetry.proto.profiles.v1development.profiles_pb2", "grpc")))
    func otlpProfilesOverHTTPAndGRPCMatchGoToolPprof() async throws {
        let root =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: TestEnvironment.fixturesDir.appendingPathComponent("pprof/EXPECTED.json"))) as? [String: Any]
        let expected = try #require(root?["files"] as? [String: Any])
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-otlp-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let run = UUID().uuidString.prefix(6).lowercased()
        // (fixture, transport, profile type of pprof's default sample type, span links)
        let cases: [(file: String, transport: String, type: String, spans: Int)] = [
            ("go_cpu_ap-query_2026.pb.gz", "http-proto", "process_cpu:cpu:nanoseconds:cpu:nanoseconds", 0),
            ("go_heap_delta_pyroscope.pb.gz", "http-json", "memory:alloc_space:bytes:space:bytes", 0),
            ("go_cpu_report_sample.pb.gz", "grpc", "process_cpu:cpu:nanoseconds:cpu:nanoseconds", 3),
        ]
        try await withHTTPClient { http in
            try await KilnDevHarness.with(dataDir: dataDir, client: http) { dev in
                _ = try await dev.waitUntilReady()
                var spanTotals: [String: [String: Any]] = [:]
                for (i, c) in cases.enumerated() {
                    var arguments = [
                        "--transport", c.transport, "--url", dev.baseURL, "--grpc", dev.otlpGRPCAddress,
                        "--tenant", "otlp-\(i)-\(run)", "--service", "otlp-app", "--gzip",
                    ]
                    if c.spans > 0 { arguments += ["--link-spans", String(c.spans)] }
                    let sent = try await Self.send(c.file, arguments)
                    try #require(sent.status == 0, "\(c.file) over \(c.transport): \(sent.output)")
                    #expect(sent.answer["rejected_profiles"] as? Int == 0, "\(c.file): \(sent.answer)")
                    if c.spans > 0 { spanTotals = sent.answer["span_totals"] as? [String: [String: Any]] ?? [:] }
                }
                for (i, c) in cases.enumerated() {
                    let tenant = "otlp-\(i)-\(run)"
                    _ = try await dev.waitForNewBlock(tenant: tenant)
                    let facts = try #require(expected[c.file] as? [String: Any])
                    let fileLevel = try #require(facts["file_level"] as? [String: Any])
                    let totals = try #require(fileLevel["totals"] as? [Int64])
                    let types = try #require(fileLevel["sample_types"] as? [[String: String]])
                    let typeParts = c.type.split(separator: ":")
                    let index = try #require(types.firstIndex { $0["type"] == String(typeParts[1]) })
                    let timeMillis = try #require(fileLevel["time_nanos"] as? Int64) / 1_000_000
                    let range = #""start":"\#(timeMillis - 3_600_000)","end":"\#(timeMillis + 3_600_000)""#
                    let query = #"{"profileTypeID":"\#(c.type)","labelSelector":"{service_name=\"otlp-app\"}",\#(range)}"#
                    // Blocks are cut every second: wait until the whole profile is in (every sample type's
                    // profile of one request may land in different blocks).
                    var graph = DecodedFlameGraph([:])
                    for _ in 0..<30 {
                        let answer = try await dev.connect("querier.v1.QuerierService/SelectMergeStacktraces", json: query, tenant: tenant)
                        #expect(answer.status == 200, "\(answer.body)")
                        graph = DecodedFlameGraph(answer.body)
                        if graph.total == totals[index] { break }
                        try await Task.sleep(for: .milliseconds(500))
                    }
                    #expect(graph.total == totals[index], "\(c.file) over \(c.transport): total of \(c.type)")
                    print("OTLP \(c.transport): \(c.file) \(c.type) total \(graph.total) (go tool pprof: \(totals[index]))")
                    if facts["top_type_line"] as? String == String(typeParts[1]) {
                        let top = try #require((facts["top5_flat"] as? [[String: Any]])?.first)
                        let name = try #require(top["name"] as? String)
                        #expect(graph.selfByName[name] == top["flat"] as? Int64, "\(c.file): self of \(name)")
                        #expect(graph.selfByName.max { $0.value < $1.value }?.key == name, "\(c.file): top function")
                    }
                    guard c.spans > 0 else { continue }
                    // Each span's samples, and only them, through SelectMergeSpanProfile.
                    try #require(spanTotals.count == c.spans, "\(spanTotals)")
                    var sum: Int64 = 0
                    for (span, byType) in spanTotals {
                        let want = try #require(byType["cpu/nanoseconds"] as? Int64)
                        let spanQuery =
                            #"{"profileTypeID":"\#(c.type)","labelSelector":"{}","spanSelector":["\#(span)"],\#(range)}"#
                        let answer = try await dev.connect(
                            "querier.v1.QuerierService/SelectMergeSpanProfile", json: spanQuery, tenant: tenant)
                        #expect(answer.status == 200, "\(answer.body)")
                        #expect(DecodedFlameGraph(answer.body).total == want, "span \(span)")
                        sum += want
                    }
                    #expect(sum == totals[index], "the spans' samples are the whole profile")
                    print("OTLP span links: \(spanTotals.count) spans, \(sum) in all")
                }

                // Refusals name the problem, in the transport's terms.
                let badTenant = try await Self.send(
                    cases[0].file, ["--transport", "grpc", "--grpc", dev.otlpGRPCAddress, "--tenant", "bad tenant!"])
                #expect(badTenant.status == 1 && badTenant.answer["grpc_code"] as? String == "UNAUTHENTICATED", "\(badTenant.output)")
                var garbage = HTTPClientRequest(url: dev.baseURL + "/v1development/profiles")
                garbage.method = .POST
                garbage.headers.add(name: "Content-Type", value: "application/json")
                garbage.body = .bytes(ByteBuffer(string: #"{"resourceProfiles":[],"extraField":1}"#))
                let refused = try await http.execute(garbage, timeout: .seconds(30))
                let refusal = String(buffer: try await refused.body.collect(upTo: 1 << 16))
                #expect(refused.status.code == 400 && refusal.contains("extraField"), "\(refused.status) \(refusal)")
                garbage.headers.replaceOrAdd(name: "Content-Type", value: "text/plain")
                let unsupported = try await http.execute(garbage, timeout: .seconds(30))
                #expect(unsupported.status.code == 415)
                #expect(try await dev.stop() == 0)
            }
        }
    }
}
