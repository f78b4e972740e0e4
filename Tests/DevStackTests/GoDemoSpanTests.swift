import AsyncHTTPClient
import Foundation
import TestSupport
import Testing

@testable import DevStack

/// Span profiles from scraping: the repo's Go demo program labels its "checkout" work with `span_id` and
/// `span_name` through `pprof.Do`, as grafana/otel-profiling-go does; scraped through the article's Alloy
/// config by `kiln dev`, the span profile of its spans is that work and nothing else.
@Suite(.serialized) struct GoDemoSpanTests {
    struct Span: Decodable {
        var spanID: String
        enum CodingKeys: String, CodingKey {
            case spanID = "span_id"
        }
    }

    @Test(.requires(.kilnDev, .go, .fixture("alloy/seed.alloy")))
    func scrapedSpansAreQueryable() async throws {
        let demo = try await GoDemo.start()
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-go-spans-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dataDir) }
        try await withHTTPClient { client in
            let dev = try KilnDevHarness.scrapingGoDemo(demo, in: dataDir, client: client, scrapeInterval: "5s")
            let process = dev.process
            defer { process.signal(SIGTERM) }
            _ = try await dev.waitUntilReady()
            let type = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
            func select(_ method: String, spans: [String]?) async throws -> DecodedFlameGraph {
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                let spanField = spans.map { ",\"spanSelector\":[" + $0.map { "\"\($0)\"" }.joined(separator: ",") + "]" } ?? ""
                let json =
                    #"{"profileTypeID":"\#(type)","labelSelector":"{service_name=\"go-demo\"}","start":\#(now - 600_000),"end":\#(now + 60_000)\#(spanField)}"#
                let answer = try await dev.connect("querier.v1.QuerierService/" + method, json: json, tenant: "anonymous")
                #expect(answer.status == 200, "\(method): \(answer.body)")
                return DecodedFlameGraph(answer.body)
            }
            // The first CPU profile is 4 s long (scrape interval 5 s); wait for it to reach a block with the
            // span work in it.
            var whole = DecodedFlameGraph([:])
            let deadline = ContinuousClock.now + .seconds(90)
            while ContinuousClock.now < deadline {
                whole = try await select("SelectMergeStacktraces", spans: nil)
                if whole.selfByName.keys.contains(where: { $0.contains("checkoutSpanWork") }) { break }
                try await Task.sleep(for: .seconds(1))
            }
            #expect(whole.selfByName.keys.contains { $0.contains("computePrimes") }, "\(whole.selfByName.keys.sorted().prefix(20))")
            let spans = try JSONDecoder().decode([Span].self, from: Data(try await demo.fetch("/debug/spans"))).map(\.spanID)
            try #require(!spans.isEmpty)
            let spanProfile = try await select("SelectMergeSpanProfile", spans: spans)
            #expect(spanProfile.total > 0, "no samples for \(spans.count) spans")
            #expect(spanProfile.selfByName.keys.contains { $0.contains("checkoutSpanWork") }, "\(spanProfile.selfByName)")
            #expect(
                !spanProfile.selfByName.keys.contains { $0.contains("computePrimes") || $0.contains("hashLoop") },
                "\(spanProfile.selfByName)")
            #expect(spanProfile.total < whole.total)
            print("Go demo spans: \(spans.count) spans listed, span profile \(spanProfile.total) of \(whole.total) ns")
            _ = try await dev.stop()
        }
        try await demo.stop()
    }
}
