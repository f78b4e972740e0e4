import Hummingbird
import Logging

/// A benchmark's HTTP server on a free loopback port.
enum LoopbackServer {
    /// Runs `router` until the returned task is cancelled; returns once the port is known.
    static func start(_ router: Router<BasicRequestContext>, label: String) async throws -> (port: Int, server: Task<Void, any Error>) {
        var logger = Logger(label: label)
        logger.logLevel = .error
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            }, logger: logger)
        let server = Task { try await app.run() }
        var it = ports.makeAsyncIterator()
        guard let port = await it.next(), port > 0 else {
            server.cancel()
            throw BenchError("\(label): the benchmark's server did not start")
        }
        return (port, server)
    }
}
