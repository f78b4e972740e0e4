import Foundation
import Hummingbird
import LoadGen
import Logging
import Synchronization
import TestSupport
import Testing

/// The sender and pacer against a real loopback HTTP server that counts what arrives.
@Suite struct RateTests {
    final class Arrivals: Sendable {
        let times = Mutex<[(ContinuousClock.Instant, String)]>([])
    }

    func withCountingServer<T: Sendable>(_ body: @Sendable (String, Arrivals) async throws -> T) async throws -> T {
        let arrivals = Arrivals()
        let router = Router()
        router.post("/ingest") { request, _ -> Response in
            _ = try await request.body.collect(upTo: 16 << 20)
            arrivals.times.withLock { $0.append((.now, request.uri.query ?? "")) }
            return Response(status: .ok)
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "test.loadgen.server")
        logger.logLevel = .warning
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            }, logger: logger)
        let server = Task { try await app.run() }
        defer { server.cancel() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else { throw LoadGenError("test server did not start") }
        return try await body("http://127.0.0.1:\(port)", arrivals)
    }

    func run(url: String, rate: Double?, count: Int, concurrency: Int) async throws -> (LoadResults, PayloadPool) {
        let pool = try PayloadFactoryTests.pool(kinds: [.goroutine, .mutex], variants: 2)
        let fleet = Fleet(services: 3, instances: 2, kinds: [.goroutine, .mutex], pool: pool)
        let sender = HTTPIngestSender(baseURL: url, tenant: nil, connections: concurrency)
        let config = LoadRunConfig(
            phase: "test", mode: "http", target: url, tenant: nil, rate: rate, count: count,
            duration: .seconds(20), concurrency: concurrency)
        let results = await LoadRun(
            config: config, fleet: fleet, pool: pool, sender: sender, watcher: nil, lag: nil,
            queryURL: nil, progress: { _ in }
        ).run()
        await sender.shutdown()
        return (results, pool)
    }

    @Test func theRateHoldsAndTheCountBounds() async throws {
        try await withCountingServer { url, arrivals in
            let rate = 100.0
            let count = 60
            let before = ContinuousClock.now
            let (results, pool) = try await run(url: url, rate: rate, count: count, concurrency: 4)
            let times = arrivals.times.withLock { $0 }
            #expect(times.count == count, "the server got exactly --count requests")
            #expect(results.totals.accepted == count && results.totals.errors.isEmpty)
            #expect(results.seconds.reduce(0) { $0 + $1.sent } == count)
            // Never faster than the schedule: send i does not start before i/rate after the run's start, so
            // the k-th request to arrive cannot arrive earlier either (a slow first connection may delay the
            // early ones, which then catch up, but never run ahead).
            let arrivalsInOrder = times.map(\.0).sorted()
            let ahead = arrivalsInOrder.enumerated().filter { k, t in (t - before).seconds < Double(k) / rate - 0.001 }
            #expect(ahead.isEmpty, "requests ahead of the \(rate)/s schedule: \(ahead.map(\.offset))")
            // And not far behind it (generous: CI shares two cores).
            #expect(results.sendSeconds < Double(count) / rate * 10 + 2)
            // Every request names a fleet target and a window.
            #expect(times.allSatisfy { $0.1.contains("name=loadgen-svc-") && $0.1.contains("&from=") && $0.1.contains("format=pprof") })
            // What the run says it sent is the sum of the variants' totals.
            #expect(results.totals.expectedTotals.values.allSatisfy { $0 > 0 })
            #expect(Set(results.totals.expectedTotals.keys).isSubset(of: Set(pool.variants.flatMap { $0.totals.keys })))
        }
    }

    @Test func flatOutStopsAtTheCount() async throws {
        try await withCountingServer { url, arrivals in
            let (results, _) = try await run(url: url, rate: nil, count: 40, concurrency: 3)
            #expect(arrivals.times.withLock { $0.count } == 40)
            #expect(results.totals.attempted == 40 && results.totals.accepted == 40)
        }
    }

    @Test func refusalsAreCountedByStatus() async throws {
        let router = Router()
        router.post("/ingest") { _, _ -> Response in Response(status: .serviceUnavailable) }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: {
                continuation.yield($0.localAddress?.port ?? 0)
                continuation.finish()
            })
        let server = Task { try await app.run() }
        defer { server.cancel() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        let (results, _) = try await run(url: "http://127.0.0.1:\(port)", rate: nil, count: 10, concurrency: 2)
        #expect(results.totals.accepted == 0)
        #expect(results.totals.errors == ["503": 10])
        #expect(results.totals.expectedTotals.isEmpty, "refused profiles are not expected in the store")
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
