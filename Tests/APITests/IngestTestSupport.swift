import APICommon
import AsyncHTTPClient
import Foundation
import Hummingbird
import IngestAPI
import KilnProtos
import Logging
import NIOCore
import QueryAPI
import Records
import Synchronization
import TestSupport

/// A real Hummingbird server on 127.0.0.1 (port chosen by the OS) with the ingest routes, for the duration
/// of `body`.
func withIngestServer<T: Sendable>(
    publisher: any RawProfilePublisher, options: IngestOptions = IngestOptions(),
    _ body: @Sendable (String) async throws -> T
) async throws -> T {
    let router = Router()
    IngestRoutes.register(on: router, ingester: PushIngester(publisher: publisher, options: options))
    return try await withServer(router, body)
}

/// Runs `router` on a real server on 127.0.0.1 (port chosen by the OS) for the duration of `body`, which gets
/// the base URL.
func withServer<T: Sendable>(_ router: Router<BasicRequestContext>, _ body: @Sendable (String) async throws -> T) async throws -> T {
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    var logger = Logger(label: "test.server")
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
    guard let port = await iterator.next(), port > 0 else { throw TestFailure("server did not start") }
    return try await body("http://127.0.0.1:\(port)")
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct HTTPResult: Sendable {
    var status: Int
    var contentType: String?
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }

    /// The Connect error body's `code`, if it is one.
    var connectCode: String? {
        (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])?["code"] as? String
    }
}

func post(_ url: String, body: [UInt8], headers: [(String, String)] = []) async throws -> HTTPResult {
    var request = HTTPClientRequest(url: url)
    request.method = .POST
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    request.body = .bytes(ByteBuffer(bytes: body))
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
    let bytes = try await response.body.collect(upTo: 16 << 20)
    return HTTPResult(
        status: Int(response.status.code), contentType: response.headers.first(name: "content-type"),
        body: Array(bytes.readableBytesView))
}

/// A real profile from the shared fixtures (never copied into the repo).
func fixture(_ name: String) throws -> [UInt8] {
    let url = TestEnvironment.fixturesDir.appendingPathComponent("pprof/\(name)")
    guard let data = FileManager.default.contents(atPath: url.path) else {
        throw TestFailure("fixture \(url.path) is missing (set KILN_FIXTURES_DIR to the shared fixtures folder)")
    }
    return [UInt8](data)
}

/// Fails every publish, like a producer whose broker is gone.
struct FailingPublisher: RawProfilePublisher {
    struct Down: Error, CustomStringConvertible { var description: String { "broker unreachable" } }
    func publish(_ envelope: RawEnvelope) async throws { throw Down() }
}

/// Holds every publish until `open()`; reports each arrival, so tests wait on real events.
final class GatedPublisher: RawProfilePublisher {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>], received: [RawEnvelope])>((false, [], []))
    let arrivals: AsyncStream<RawEnvelope>
    private let arrivalsContinuation: AsyncStream<RawEnvelope>.Continuation

    init() { (arrivals, arrivalsContinuation) = AsyncStream.makeStream(of: RawEnvelope.self) }

    func publish(_ envelope: RawEnvelope) async throws {
        arrivalsContinuation.yield(envelope)
        await withCheckedContinuation { c in
            let proceed = state.withLock { s in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if proceed { c.resume() }
        }
        state.withLock { $0.received.append(envelope) }
    }

    func open() {
        let waiters = state.withLock { s in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    var published: [RawEnvelope] { state.withLock { $0.received } }
}

func get(_ url: String, headers: [(String, String)] = []) async throws -> HTTPResult {
    var request = HTTPClientRequest(url: url)
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
    let bytes = try await response.body.collect(upTo: 16 << 20)
    return HTTPResult(
        status: Int(response.status.code), contentType: response.headers.first(name: "content-type"),
        body: Array(bytes.readableBytesView))
}
