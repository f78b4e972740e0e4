import AsyncHTTPClient
import Foundation
import NIOCore
import TestSupport
import Testing

/// Span profiles from a client no one here wrote: PyPI's `pyroscope-io` with the official `pyroscope-otel`
/// span processor and `opentelemetry-sdk`, pushing to `kiln dev` through the whole pipeline. The program
/// runs two kinds of root spans doing different work and prints each span's ID; the span profile of one
/// kind's IDs must show its work and not the other's.
@Suite(.serialized) struct SpanProfileSDKTests {
    static let program = #"""
        import sys, time
        import pyroscope
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from pyroscope.otel import PyroscopeSpanProcessor

        server, app, tenant = sys.argv[1], sys.argv[2], sys.argv[3]
        pyroscope.configure(application_name=app, server_address=server, tenant_id=tenant, sample_rate=100)
        provider = TracerProvider()
        provider.add_span_processor(PyroscopeSpanProcessor())
        trace.set_tracer_provider(provider)
        tracer = trace.get_tracer("kiln.span.test")

        def checkout_hash_work():
            x = 0
            for i in range(300000): x = (x * 31 + i) % 1000003
            return x

        def search_sort_work():
            return sorted(range(200000), key=lambda v: (v * 7919) % 104729)[0]

        def unspanned_idle_work():
            x = 0
            for i in range(200000): x += i
            return x

        deadline = time.time() + 8
        while time.time() < deadline:
            with tracer.start_as_current_span("checkout") as span:
                print("checkout", format(span.get_span_context().span_id, "016x"), flush=True)
                end = time.time() + 0.3
                while time.time() < end: checkout_hash_work()
            with tracer.start_as_current_span("search") as span:
                print("search", format(span.get_span_context().span_id, "016x"), flush=True)
                end = time.time() + 0.3
                while time.time() < end: search_sort_work()
            end = time.time() + 0.1
            while time.time() < end: unspanned_idle_work()
        pyroscope.shutdown()
        """#

    static let python = TestEnvironment.venvPython

    @Test(.requires(.kilnDev, .python("pyroscope", "pyroscope.otel", "opentelemetry.sdk")))
    func spanProfilesOfARealSDK() async throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-span-sdk-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let tenant = "spans-\(UUID().uuidString.prefix(8).lowercased())"
        let app = "span-app"
        try await withHTTPClient { client in
            try await KilnDevHarness.with(dataDir: dataDir, client: client) { dev in
                _ = try await dev.waitUntilReady()
                let run = try await runToCompletion(Self.python, ["-c", Self.program, dev.baseURL, app, tenant], timeout: .seconds(90))
                try #require(run.status == 0, "\(run.output.suffix(2000))")
                var spans: [String: Set<String>] = [:]
                for line in run.output.split(separator: "\n") {
                    let parts = line.split(separator: " ")
                    if parts.count == 2, ["checkout", "search"].contains(parts[0]), parts[1].count == 16 {
                        spans[String(parts[0]), default: []].insert(String(parts[1]))
                    }
                }
                try #require(spans["checkout"]?.isEmpty == false && spans["search"]?.isEmpty == false, "\(run.output.suffix(500))")
                _ = try await dev.waitForNewBlock(tenant: tenant, timeout: .seconds(60))

                let type = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
                let selector = #"{service_name=\"\#(app)\"}"#
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                func select(_ method: String, spans ids: Set<String>?) async throws -> DecodedFlameGraph {
                    let spanField = ids.map { ",\"spanSelector\":[" + $0.sorted().map { "\"\($0)\"" }.joined(separator: ",") + "]" } ?? ""
                    let json =
                        #"{"profileTypeID":"\#(type)","labelSelector":"\#(selector)","start":\#(now - 600_000),"end":\#(now + 60_000)\#(spanField)}"#
                    let answer = try await dev.connect("querier.v1.QuerierService/" + method, json: json, tenant: tenant)
                    #expect(answer.status == 200, "\(method): \(answer.body)")
                    return DecodedFlameGraph(answer.body)
                }
                // Every block the run wrote must be in before the totals are compared: wait until the whole
                // graph stops growing (blocks are cut every second).
                var whole = try await select("SelectMergeStacktraces", spans: nil)
                for _ in 0..<20 {
                    try await Task.sleep(for: .seconds(1))
                    let again = try await select("SelectMergeStacktraces", spans: nil)
                    if again.total == whole.total && whole.total > 0 { break }
                    whole = again
                }
                let checkout = try await select("SelectMergeSpanProfile", spans: spans["checkout"])
                let search = try await select("SelectMergeStacktraces", spans: spans["search"])
                func has(_ graph: DecodedFlameGraph, _ function: String) -> Bool {
                    graph.selfByName.contains { $0.key.contains(function) && $0.value > 0 }
                }
                #expect(checkout.total > 0 && search.total > 0)
                #expect(has(checkout, "checkout_hash_work") && !has(checkout, "search_sort_work"), "\(checkout.selfByName)")
                #expect(has(search, "search_sort_work") && !has(search, "checkout_hash_work"), "\(search.selfByName)")
                // pyroscope-io samples from a thread of its own and labels a sample with the span current when it
                // handles it: a stack caught in the last period before a span starts can carry that span's ID
                // (seen once in CI: unspanned work in a checkout span). At most one such sample per span; the
                // unspanned work itself is ~110 samples, so a span filter that let it through would still fail.
                func unspannedSelf(_ graph: DecodedFlameGraph) -> Int64 {
                    graph.selfByName.filter { $0.key.contains("unspanned_idle_work") }.values.reduce(0, +)
                }
                let period: Int64 = 1_000_000_000 / 100  // sample_rate=100
                for (name, graph) in [("checkout", checkout), ("search", search)] {
                    #expect(
                        unspannedSelf(graph) <= Int64(spans[name]!.count) * period,
                        "\(name): \(unspannedSelf(graph)) ns of unspanned work over \(spans[name]!.count) spans")
                }
                // Spans' samples plus the samples outside any span are the whole.
                let unspanned = unspannedSelf(whole)
                let everySpan = try await select("SelectMergeStacktraces", spans: spans["checkout"]!.union(spans["search"]!))
                #expect(everySpan.total == checkout.total + search.total)
                #expect(unspanned > 0)
                #expect(
                    everySpan.total <= whole.total - unspanned,
                    "spanned \(everySpan.total), whole \(whole.total), unspanned work \(unspanned)")
                print(
                    "span profiles: checkout \(checkout.total), search \(search.total), whole \(whole.total) (\(spans["checkout"]!.count) + \(spans["search"]!.count) spans)"
                )
                _ = try await dev.stop()
            }
        }
    }
}
