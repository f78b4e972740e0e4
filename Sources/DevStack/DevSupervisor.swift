import AsyncHTTPClient
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Runs the local stack: Tansu, then kiln-scraper, kiln-normalizer, kiln-compactor and kiln-query, each a
/// separate process restarted when it dies. On graceful shutdown (SIGINT/SIGTERM, after the front server
/// has stopped) it stops them upstream first — scraper, normalizer, compactor, query — so each flushes into
/// a stage that is still running, and Tansu last.
public final class DevSupervisor: Service, Sendable {
    public let plan: DevStackPlan
    let options: DevOptions
    private let broker: ChildKeeper
    private let stages: [ChildKeeper]
    private let probe: ReadinessProbe
    private let stopping = Mutex(false)
    private let logger: Logger
    private let announce: @Sendable (String) -> Void

    /// How long Tansu may take to open its port.
    static let brokerStartTimeout = Duration.seconds(30)

    public init(
        plan: DevStackPlan, options: DevOptions, client: HTTPClient, logger: Logger,
        announce: @escaping @Sendable (String) -> Void
    ) {
        self.plan = plan
        self.options = options
        self.logger = logger
        self.announce = announce
        broker = ChildKeeper(spec: plan.broker, options: options, logger: logger, announce: announce)
        stages = plan.stages.map { ChildKeeper(spec: $0, options: options, logger: logger, announce: announce) }
        probe = ReadinessProbe(client: client)
    }

    public func run() async throws {
        await StaleChildren.stop(pidsDir: options.pidsDir, dataDir: options.dataDir, timeout: options.stopTimeout) { announce($0) }
        try Data(try plan.prometheusTargets()).write(to: options.prometheusTargetsFile, options: .atomic)
        broker.start()
        do {
            try await waitForBroker()
            stages.forEach { $0.start() }
            let announcer = Task { await announceWhenReady() }
            // Returns on graceful shutdown; throws when the group cancels us (then stop all the same).
            try? await gracefulShutdown()
            announcer.cancel()
        } catch {
            await stopAll()
            throw error
        }
        await stopAll()
    }

    private func waitForBroker() async throws {
        let deadline = ContinuousClock.now + Self.brokerStartTimeout
        var reason = "not started"
        while ContinuousClock.now < deadline {
            guard let why = await probe.check(plan.broker.probe) else { return }
            reason = why
            try await Task.sleep(for: .milliseconds(100))
        }
        throw SpawnError(
            description: "tansu did not open \(plan.kafkaBrokers) within \(Self.brokerStartTimeout): \(reason) "
                + "(log: \(options.logsDir.appendingPathComponent("tansu.log").path))")
    }

    /// Stops every child in order, in a task of its own so a cancelled caller still waits for each exit.
    private func stopAll() async {
        stopping.withLock { $0 = true }
        let keepers = stages + [broker]
        let timeout = options.stopTimeout
        await Task {
            for keeper in keepers { await keeper.stop(timeout: timeout) }
        }.value
    }

    private func announceWhenReady() async {
        while !Task.isCancelled {
            if await notReady().isEmpty {
                announce(
                    "ready: \(options.tls == nil ? "http" : "https")://\(options.listenHost):\(options.listenPort)/ (UI, query API, push and OTLP ingest)"
                )
                return
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Children that are not up, with the reason; empty when the whole stack is ready.
    public func notReady() async -> [(name: String, reason: String)] {
        if stopping.withLock({ $0 }) { return [("kiln dev", "stopping")] }
        let keepers = [broker] + stages
        return await withTaskGroup(of: (Int, String?).self) { group in
            for (i, keeper) in keepers.enumerated() {
                group.addTask {
                    guard keeper.isRunning else { return (i, "not running") }
                    return (i, await self.probe.check(keeper.spec.probe))
                }
            }
            var reasons: [(Int, String)] = []
            for await (i, reason) in group { if let reason { reasons.append((i, reason)) } }
            return reasons.sorted { $0.0 < $1.0 }.map { (keepers[$0.0].spec.name, $0.1) }
        }
    }

    /// Pids of the children running now, by name (for tests and `kiln dev`'s own status).
    public var runningPids: [String: Int32] {
        var pids: [String: Int32] = [:]
        for keeper in [broker] + stages { if let pid = keeper.pid { pids[keeper.spec.name] = pid } }
        return pids
    }

    /// The supervisor's own metrics in Prometheus text: which children are up and how often they restarted.
    public func metricsText() -> String {
        let keepers = [broker] + stages
        var lines = [
            "# HELP kiln_dev_child_up Whether the child process is running (1) or not (0).",
            "# TYPE kiln_dev_child_up gauge",
        ]
        lines += keepers.map { "kiln_dev_child_up{child=\"\($0.spec.name)\"} \($0.isRunning ? 1 : 0)" }
        lines += [
            "# HELP kiln_dev_child_restarts_total Restarts after the child exited on its own.",
            "# TYPE kiln_dev_child_restarts_total counter",
        ]
        lines += keepers.map { "kiln_dev_child_restarts_total{child=\"\($0.spec.name)\"} \($0.restarts)" }
        return lines.joined(separator: "\n") + "\n"
    }
}
