import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The repo's Go demo program (demo/go-target): serves net/http/pprof and keeps doing CPU work,
/// allocations, mutex contention and blocking, so tests profile a real Go process.
public final class GoDemo: Sendable {
    public let address: String
    private let child: ChildProcess

    /// Starts the program (built by scripts/build-demo.sh) on a free port. A test that calls this is
    /// marked `.requires(.go)`; without Go this throws.
    public static func start(arguments: [String] = []) async throws -> GoDemo {
        let root = TestEnvironment.repoRoot
        _ = try TestEnvironment.requireGo()
        let binary = root.appendingPathComponent(".build-demo/go-target")
        // `make test` builds it before the tests; build here only when run by hand.
        if !FileManager.default.isExecutableFile(atPath: binary.path) {
            let build = try await runToCompletion(root.appendingPathComponent("scripts/build-demo.sh"), [], timeout: .seconds(600))
            guard build.status == 0 else { throw ChildProcess.Failure(description: "scripts/build-demo.sh failed:\n\(build.output)") }
        }
        let child = try ChildProcess(binary, ["-addr", "127.0.0.1:0"] + arguments)
        let line = try await child.waitForLine { $0.hasPrefix("listening on ") }
        return GoDemo(address: String(line.dropFirst("listening on ".count)), child: child)
    }

    private init(address: String, child: ChildProcess) {
        self.address = address
        self.child = child
    }

    /// GET http://address/path and return the body.
    public func fetch(_ path: String) async throws -> [UInt8] {
        let url = URL(string: "http://\(address)\(path)")!
        let (data, response) = try await URLSession.shared.data(from: url)
        guard let http = response as? HTTPURLResponse, http.statusCode == 200 else {
            throw ChildProcess.Failure(description: "GET \(url) failed: \(response)")
        }
        return [UInt8](data)
    }

    /// POST http://address/path (the demo's switches) and return the body.
    public func post(_ path: String) async throws -> String {
        var request = URLRequest(url: URL(string: "http://\(address)\(path)")!)
        request.httpMethod = "POST"
        let (data, response) = try await URLSession.shared.data(for: request)
        guard let http = response as? HTTPURLResponse, http.statusCode == 200 else {
            throw ChildProcess.Failure(description: "POST \(path) failed: \(String(decoding: data, as: UTF8.self))")
        }
        return String(decoding: data, as: UTF8.self)
    }

    public func stop() async throws {
        child.signal(SIGTERM)
        try await child.waitForExit()
    }
}
