import Foundation
import Testing

@testable import Scrape

@Suite("Sharding")
struct ShardingTests {
    @Test("3 replicas × 30 targets: every target is scraped by exactly one replica")
    func exactlyOneOwner() throws {
        var text = """
            pyroscope.write "w" {
              endpoint { url = "http://127.0.0.1:4040" }
            }
            pyroscope.scrape "fleet" {
              forward_to = [pyroscope.write.w.receiver]
              targets = [

            """
        for i in 0..<30 { text += "    {\"__address__\" = \"10.0.\(i / 10).\(i % 10):6060\", \"service_name\" = \"svc\(i)\"},\n" }
        text += "  ]\n}\n"
        let config = try ScrapeConfiguration.parse(text, file: "fleet.alloy")
        var owners: [String: [Int]] = [:]
        for i in 0..<3 {
            let manager = ScrapeManager(
                configuration: config, sink: InMemoryProfileSink(), fetcher: NeverFetcher(),
                options: ScrapeManagerOptions(shard: try ShardSelector(index: i, count: 3)))
            let addresses = Set(manager.currentTargets().map(\.address))
            #expect(!addresses.isEmpty, "shard \(i) owns nothing")
            #expect(manager.stats.targetsSkippedByShard == 30 - addresses.count)
            for a in addresses { owners[a, default: []].append(i) }
        }
        #expect(owners.count == 30)
        #expect(owners.values.allSatisfy { $0.count == 1 })
    }

    @Test("shard flag parsing")
    func parsing() throws {
        let s = try ShardSelector(parsing: "2/5")
        #expect(s.index == 2 && s.count == 5 && s.description == "2/5")
        #expect(throws: ShardSelectorError.self) { try ShardSelector(parsing: "5/5") }
        #expect(throws: ShardSelectorError.self) { try ShardSelector(parsing: "1-3") }
        #expect(throws: ShardSelectorError.self) { try ShardSelector(parsing: "0/0") }
        #expect(ShardSelector.all.owns(job: "j", address: "a:1"))
    }

    @Test("start offsets spread targets over the interval and keep a stable phase")
    func startOffsets() {
        let now = Date(timeIntervalSince1970: 1_700_000_000.25)
        let interval = Duration.seconds(15)
        var delays = Set<Int64>()
        for i in 0..<50 {
            let d = ScrapeSchedule.initialDelay(key: "job|http://10.0.0.\(i):6060/x", interval: interval, now: now)
            #expect(d >= .zero && d < interval)
            delays.insert(d.components.seconds)
            // One interval later the same target lands on the same phase.
            let later = ScrapeSchedule.initialDelay(
                key: "job|http://10.0.0.\(i):6060/x", interval: interval,
                now: now.addingTimeInterval(15))
            #expect(later == d)
        }
        #expect(delays.count >= 10, "50 targets fell into only \(delays.count) distinct seconds")
    }
}

/// A fetcher for tests that never get as far as fetching.
struct NeverFetcher: ProfileFetcher {
    func fetch(_ request: ProfileRequest) async throws -> [UInt8] { throw ScrapeError("not expected in this test") }
}
