import Foundation
import Synchronization

@testable import Scrape

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func waitUntil(timeout: Duration, _ condition: () -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while clock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return condition()
}

/// A temporary folder removed when the test ends (call `remove()`).
struct TemporaryDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-scrape-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// Records every request and answers from a closure.
final class RecordingFetcher: ProfileFetcher {
    private let requests = Mutex<[ProfileRequest]>([])
    private let inFlight = Mutex<(now: Int, max: Int)>((0, 0))
    let respond: @Sendable (ProfileRequest) async throws -> [UInt8]

    init(respond: @escaping @Sendable (ProfileRequest) async throws -> [UInt8]) { self.respond = respond }

    func fetch(_ request: ProfileRequest) async throws -> [UInt8] {
        requests.withLock { $0.append(request) }
        inFlight.withLock {
            $0.now += 1
            $0.max = max($0.max, $0.now)
        }
        defer { inFlight.withLock { $0.now -= 1 } }
        return try await respond(request)
    }

    var urls: [String] { requests.withLock { $0.map(\.url) } }
    var maxInFlight: Int { inFlight.withLock { $0.max } }
}

func writerPrefix() -> String {
    """
    pyroscope.write "w" {
      endpoint { url = "http://127.0.0.1:4040" }
    }

    """
}
