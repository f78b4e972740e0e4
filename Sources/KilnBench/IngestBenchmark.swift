import APICommon
import AsyncHTTPClient
import Foundation
import Hummingbird
import IngestAPI
import KilnProtos
import NIOCore

/// Push-ingest throughput through the real routes (Connect `PusherService/Push`, binary protobuf) into an
/// in-memory publisher, beside a trivial handler on the same server that reads the same bodies and answers
/// 200. Both run in this process with a real HTTP client over 127.0.0.1; "per core" divides by the
/// process's CPU seconds (server + client), so it understates the server alone. Target: >= 40 MB/s of
/// profile data per core.
public enum IngestBenchmark {
    public static let targetMBPerCore = 40.0

    public static func run(fixturesDir: URL, seconds: Double = 5, concurrency: Int = 8) async throws -> [BenchMeasurement] {
        let bodies = try pushBodies(fixturesDir: fixturesDir)
        let publisher = InMemoryRawPublisher(keep: false)
        var options = IngestOptions()
        options.rateBytesPerSecond = 0
        let router = Router()
        IngestRoutes.register(on: router, ingester: PushIngester(publisher: publisher, options: options))
        router.post("baseline") { request, _ -> Response in
            _ = try await request.body.collect(upTo: 64 << 20)
            return Response(status: .ok)
        }
        let (port, server) = try await LoopbackServer.start(router, label: "kiln.bench.ingest")
        defer { server.cancel() }
        let base = "http://127.0.0.1:\(port)"

        // Warm up both paths, then measure each for `seconds`.
        _ = try await load(base + "/baseline", bodies: bodies, seconds: 0.5, concurrency: concurrency)
        _ = try await load(base + IngestRoutes.connectPushPath, bodies: bodies, seconds: 0.5, concurrency: concurrency)
        let baseline = try await load(base + "/baseline", bodies: bodies, seconds: seconds, concurrency: concurrency)
        let published = publisher.publishedBytes
        let kiln = try await load(base + IngestRoutes.connectPushPath, bodies: bodies, seconds: seconds, concurrency: concurrency)
        guard publisher.publishedBytes - published == kiln.profileBytes else {
            throw BenchError("published \(publisher.publishedBytes - published) profile bytes, sent \(kiln.profileBytes)")
        }
        return [
            BenchMeasurement(
                name: "push ingest requests/s (Connect, \(bodies.count) fixture profiles)", unit: "req/s",
                kiln: kiln.requestsPerSecond, baselineName: "200-OK handler", baseline: baseline.requestsPerSecond,
                higherIsBetter: true),
            BenchMeasurement(
                name: "push ingest profile MB/s", unit: "MB/s",
                kiln: kiln.megabytesPerSecond, baselineName: "200-OK handler", baseline: baseline.megabytesPerSecond,
                higherIsBetter: true),
            BenchMeasurement(
                name: "push ingest profile MB/s per core (target >= \(Int(targetMBPerCore)))", unit: "MB/s/core",
                kiln: kiln.megabytesPerCPUSecond, baselineName: "200-OK handler", baseline: baseline.megabytesPerCPUSecond,
                higherIsBetter: true),
        ]
    }

    struct Body {
        var bytes: [UInt8]
        var profileBytes: Int
    }

    /// One serialized PushRequest per real gzip'd pprof fixture of at most 2 MB.
    static func pushBodies(fixturesDir: URL) throws -> [Body] {
        let dir = fixturesDir.lastPathComponent == "pprof" ? fixturesDir : fixturesDir.appendingPathComponent("pprof")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".pb.gz") }.sorted()
        var bodies: [Body] = []
        for name in names {
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path),
                data.count <= 2 << 20, data.count >= 1024
            else { continue }
            let request = pushRequest(data, service: "bench-\(name)")
            bodies.append(Body(bytes: try request.serializedBytes(), profileBytes: data.count))
        }
        guard !bodies.isEmpty else { throw BenchError("no .pb.gz fixtures in \(dir.path)") }
        return bodies
    }

    /// A Connect push of one pprof profile for `service`.
    static func pushRequest(_ payload: Data, service: String) -> Push_V1_PushRequest {
        var label = Types_V1_LabelPair()
        label.name = "service_name"
        label.value = service
        var sample = Push_V1_RawSample()
        sample.rawProfile = payload
        var series = Push_V1_RawProfileSeries()
        series.labels = [label]
        series.samples = [sample]
        var request = Push_V1_PushRequest()
        request.series = [series]
        return request
    }

    struct LoadResult {
        var requests: Int
        var profileBytes: Int
        var wallSeconds: Double
        var cpuSeconds: Double
        var requestsPerSecond: Double { Double(requests) / wallSeconds }
        var megabytesPerSecond: Double { Double(profileBytes) / 1e6 / wallSeconds }
        var megabytesPerCPUSecond: Double { Double(profileBytes) / 1e6 / cpuSeconds }
    }

    /// `concurrency` clients cycle through the bodies until `seconds` have passed; every answer must be 200.
    static func load(_ url: String, bodies: [Body], seconds: Double, concurrency: Int) async throws -> LoadResult {
        let client = HTTPClient.shared
        let cpu0 = processCPUSeconds()
        let start = ContinuousClock.now
        let deadline = start + .milliseconds(Int64(seconds * 1000))
        let buffers = bodies.map { ByteBuffer(bytes: $0.bytes) }
        let totals = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var requests = 0
                    var bytes = 0
                    var i = worker
                    while ContinuousClock.now < deadline {
                        var request = HTTPClientRequest(url: url)
                        request.method = .POST
                        request.headers.add(name: "Content-Type", value: "application/proto")
                        request.body = .bytes(buffers[i % buffers.count])
                        let response = try await client.execute(request, timeout: .seconds(30))
                        _ = try await response.body.collect(upTo: 1 << 20)
                        guard response.status.code == 200 else { throw BenchError("\(url) answered \(response.status.code)") }
                        requests += 1
                        bytes += bodies[i % bodies.count].profileBytes
                        i += 1
                    }
                    return (requests, bytes)
                }
            }
            var total = (0, 0)
            for try await (r, b) in group { total = (total.0 + r, total.1 + b) }
            return total
        }
        let elapsed = ContinuousClock.now - start
        let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        return LoadResult(requests: totals.0, profileBytes: totals.1, wallSeconds: wall, cpuSeconds: max(processCPUSeconds() - cpu0, 1e-9))
    }

    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }
}
