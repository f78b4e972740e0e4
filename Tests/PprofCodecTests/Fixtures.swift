import Foundation
import TestSupport

/// The shared pprof corpus, read in place (never copied into the repo). Suites that read it are marked
/// `.requires(.fixtures)`.
enum Fixtures {
    static var dir: URL { TestEnvironment.fixturesDir.appendingPathComponent("pprof") }

    /// Every profile file in the corpus directory (so a new file is tested without a code change).
    static func names() -> [String] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return all.filter { name in
            var isDir: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path, isDirectory: &isDir)
            return exists && !isDir.boolValue && name != "EXPECTED.json" && name != "SOURCES.tsv" && !name.hasPrefix(".")
        }.sorted()
    }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: dir.appendingPathComponent(name)))
    }

    nonisolated(unsafe) private static var cachedExpected: [String: Any]?
    private static let lock = NSLock()

    /// EXPECTED.json's `files` object.
    static func expected() throws -> [String: Any] {
        lock.lock()
        defer { lock.unlock() }
        if let e = cachedExpected { return e }
        let data = try Data(contentsOf: dir.appendingPathComponent("EXPECTED.json"))
        let root = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let files = root["files"] as! [String: Any]
        cachedExpected = files
        return files
    }

    /// The largest accepted Go CPU profile (for benchmarks and hostile-input tests).
    static func largestGoCPU() -> String? {
        names().filter { $0.hasPrefix("go_cpu") }.max { a, b in
            ((try? bytes(a).count) ?? 0) < ((try? bytes(b).count) ?? 0)
        }
    }
}

extension Any? {
    var int64: Int64? {
        switch self {
        case let n as NSNumber: return n.int64Value
        default: return nil
        }
    }
}
