import AsyncHTTPClient
import Foundation
import KilnService
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle
import Synchronization
import Testing

/// What every service main relies on: the admin server answers `/ready` and `/metrics`, and graceful
/// shutdown stops the HTTP server before or after the other services as its role says.
@Suite("Service bootstrap", .timeLimit(.minutes(1)))
struct ServiceBootstrapTests {
    /// Waits for graceful shutdown, then notes its name and whether the server still answered `/ready`.
    struct Recorder: Service {
        let name: String
        let port: @Sendable () -> Int
        let log: Locked<[String]>

        func run() async throws {
            try? await gracefulShutdown()
            // AsyncHTTPClient retries a refused connection until the request's deadline, so a stopped server
            // costs the whole timeout: a second is plenty for a server in this process that is up.
            let answered = await ServiceBootstrapTests.status(port: port(), path: "ready", timeout: .seconds(1)) != nil
            log.value.withLock { $0.append("\(name) stopped, server \(answered ? "up" : "down")") }
        }
    }

    static func status(port: Int, path: String, timeout: TimeAmount = .seconds(5)) async -> (code: UInt, body: String)? {
        guard port > 0 else { return nil }
        do {
            let response = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(port)/\(path)"), timeout: timeout)
            let body = try await response.body.collect(upTo: 1 << 20)
            return (response.status.code, String(buffer: body))
        } catch {
            return nil
        }
    }

    static func bootstrap(
        role: ServiceBootstrap.ServerRole, pending: [String: String] = [:], registry: PrometheusCollectorRegistry = .init()
    ) -> ServiceBootstrap {
        var logger = Logger(label: "test.bootstrap")
        logger.logLevel = .warning
        return ServiceBootstrap(
            name: "test", logger: logger, registry: registry, pending: pending, role: role,
            listen: ListenAddress(host: "127.0.0.1", port: 0))
    }

    /// Runs the bootstrap's group with two recorders, shuts it down gracefully once the server is up, and
    /// returns what the recorders saw.
    static func shutdownLog(role: ServiceBootstrap.ServerRole) async throws -> [String] {
        let process = bootstrap(role: role)
        let port = Locked<Int>(0)
        let (bound, boundContinuation) = AsyncStream.makeStream(of: Int.self)
        let log = Locked<[String]>([])
        let services: [any Service] = ["A", "B"].map { Recorder(name: $0, port: { port.value.withLock { $0 } }, log: log) }
        let group = try process.serviceGroup(
            services,
            onBound: { p in
                port.value.withLock { $0 = p }
                boundContinuation.yield(p)
            })
        let running = Task { try await group.run() }
        var ports = bound.makeAsyncIterator()
        let p = await ports.next() ?? 0
        #expect(p > 0)
        #expect(await status(port: p, path: "ready")?.code == 200)
        await group.triggerGracefulShutdown()
        try await running.value
        return log.value.withLock { $0 }
    }

    @Test("an admin-only server answers until every other service has stopped")
    func adminOnlyStopsLast() async throws {
        #expect(try await Self.shutdownLog(role: .adminOnly) == ["B stopped, server up", "A stopped, server up"])
    }

    @Test("a server that takes requests stops first, so nothing new arrives while the services drain")
    func requestServerStopsFirst() async throws {
        #expect(try await Self.shutdownLog(role: .servesRequests) == ["B stopped, server down", "A stopped, server down"])
    }

    @Test("/ready lists what is pending with its reason until each component is ready; /metrics renders the registry")
    func readyAndMetrics() async throws {
        let registry = PrometheusCollectorRegistry()
        let process = Self.bootstrap(
            role: .adminOnly, pending: ["kafka": "connecting to Kafka", "store": "checking the store"],
            registry: registry)
        registry.makeCounter(descriptor: MetricNameDescriptor(metricName: "kiln_test_events", unitName: "total", helpText: "")).increment(
            by: Int64(3))
        let (bound, continuation) = AsyncStream.makeStream(of: Int.self)
        let group = try process.serviceGroup([], onBound: { continuation.yield($0) })
        let running = Task { try await group.run() }
        var ports = bound.makeAsyncIterator()
        let port = await ports.next() ?? 0

        let before = await Self.status(port: port, path: "ready")
        #expect(before?.code == 503)
        #expect(before?.body == "kafka: connecting to Kafka\nstore: checking the store\n")
        process.readiness.markReady("kafka")
        #expect(await Self.status(port: port, path: "ready")?.body == "store: checking the store\n")
        process.readiness.markReady("store")
        let after = await Self.status(port: port, path: "ready")
        #expect(after?.code == 200)
        #expect(after?.body == "ready\n")
        process.readiness.markNotReady("store", reason: "S3 answers 503")
        #expect(await Self.status(port: port, path: "ready")?.code == 503)

        let metrics = await Self.status(port: port, path: "metrics")
        #expect(metrics?.code == 200)
        #expect(metrics?.body.contains("kiln_test_events_total 3") == true)
        await group.triggerGracefulShutdown()
        try await running.value
    }
}

@Suite("Service flags")
struct ServiceFlagTests {
    @Test("listen addresses: the service's own flag, then --admin-listen, then the default; host:port, [v6]:port")
    func listenAddresses() throws {
        #expect(
            try ServiceBootstrap.listenAddress(flag: "127.0.0.1:4040", adminFlag: "127.0.0.1:1", default: "127.0.0.1:2")
                == ListenAddress(host: "127.0.0.1", port: 4040))
        #expect(try ServiceBootstrap.listenAddress(flag: nil, adminFlag: "127.0.0.1:1", default: "127.0.0.1:2").port == 1)
        #expect(try ListenAddress(parsing: "[::1]:9000") == ListenAddress(host: "::1", port: 9000))
        #expect(try ListenAddress(parsing: ":9000").host == "0.0.0.0")
        #expect(throws: ServiceConfigurationError.self) { try ListenAddress(parsing: "localhost") }
        #expect(throws: ServiceConfigurationError.self) { try ListenAddress(parsing: "127.0.0.1:70000") }
    }

    @Test("typed settings: durations in the one grammar, integers with a minimum, non-negative numbers")
    func typedSettings() throws {
        // The environment variable names are unique to this test, so nothing else sets them.
        #expect(try EnvironmentFallback.duration("90s", env: "KILN_TEST_UNSET_1", default: "5m", setting: "--x") == .seconds(90))
        #expect(try EnvironmentFallback.duration(nil, env: "KILN_TEST_UNSET_1", default: "2w", setting: "--x") == .seconds(14 * 86_400))
        let error = #expect(throws: ServiceConfigurationError.self) {
            try EnvironmentFallback.duration("90", env: "KILN_TEST_UNSET_1", default: "5m", setting: "--max-block-age")
        }
        #expect(error?.description.contains("--max-block-age: \"90\" is not a duration") == true)
        #expect(try EnvironmentFallback.integer(nil, env: "KILN_TEST_UNSET_2", default: 512, setting: "--n") == 512)
        #expect(throws: ServiceConfigurationError.self) {
            try EnvironmentFallback.integer(0, env: "KILN_TEST_UNSET_2", default: 1, setting: "--n")
        }
        #expect(try EnvironmentFallback.nonNegative(nil, env: "KILN_TEST_UNSET_3", setting: "--r") == nil)
        #expect(try EnvironmentFallback.nonNegative(2.5, env: "KILN_TEST_UNSET_3", setting: "--r") == 2.5)
        #expect(throws: ServiceConfigurationError.self) {
            try EnvironmentFallback.nonNegative(-1, env: "KILN_TEST_UNSET_3", setting: "--r")
        }
    }
}

/// A value several tasks share.
final class Locked<Value: Sendable>: Sendable {
    let value: Mutex<Value>
    init(_ initial: Value) { value = Mutex(initial) }
}
