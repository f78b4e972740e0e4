import AsyncHTTPClient
import Foundation
import TestSupport
import Testing

@testable import DevStack

/// kiln dev's children die with it, even when it is SIGKILLed and cannot stop them itself.
@Suite(.serialized) struct SupervisionTests {
    /// Alive and not a zombie (an orphan is reaped by whichever process adopted it, maybe late).
    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(after: close)...].split(separator: " ").first
        return state != "Z" && state != "X"
    }

    @Test(.requires(.kilnDev))
    func childrenDieWhenKilnDevIsKilled() async throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-supervision-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dataDir) }
        try await withHTTPClient { client in
            let dev = try KilnDevHarness.start(dataDir: dataDir.appendingPathComponent("dev"), client: client)
            _ = try await dev.waitUntilReady()
            let children = dev.childPids()
            #expect(children.count >= 5, "tansu, moto or the file store, and the four stages: \(children)")
            #expect(children.values.allSatisfy(Self.isRunning))
            dev.process.signal(SIGKILL)
            _ = try await dev.process.waitForExit()
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline, children.values.contains(where: Self.isRunning) {
                try await Task.sleep(for: .milliseconds(100))
            }
            let survivors = children.filter { Self.isRunning($0.value) }
            #expect(survivors.isEmpty, "still running after kiln dev was killed: \(survivors)")
            for pid in survivors.values { kill(pid, SIGKILL) }
        }
    }
}
