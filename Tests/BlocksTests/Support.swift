import Blocks
import Foundation
import ObjectStore
import ProfileModel
import TestSupport
import Testing

func flatten(_ reader: BlockReader) async throws -> [FlatSample] {
    let series = Dictionary(uniqueKeysWithValues: try await reader.series().map { ($0.id, $0) })
    let samples = try await reader.samples()
    let symbols = try await reader.symbols()
    return try (0..<samples.count).map { i in
        let s = series[samples.seriesIDs[i]]!
        return FlatSample(
            labels: s.labels.description, profileType: s.profileType.id, time: samples.timeNanos[i],
            value: samples.values[i], span: samples.spanIDs[i], stack: try symbols.functionNames(ofStack: samples.stackIDs[i]))
    }
}

func totals(_ batches: [SampleBatch]) -> [String: Int64] {
    var t: [String: Int64] = [:]
    for b in batches { for (k, v) in b.totalsByProfileType { t[k.id, default: 0] &+= v } }
    return t
}

/// A fresh empty folder.
func scratchDir(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-blocks-\(name)-\(UInt32.random(in: 0 ... .max))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A store per backend: `file` is always there; `s3` needs moto (KILN_TEST_S3_ENDPOINT).
enum Backend: String, CaseIterable, Sendable, CustomStringConvertible {
    case file, s3
    var description: String { rawValue }
}

/// Runs `body` with an empty store of `backend`. Only the s3 case needs moto: without it that test case
/// alone is skipped (fails under `make test`), by `Requirement.check()`.
func withStore(_ backend: Backend, _ name: String, _ body: (any ObjectStore, URL?) async throws -> Void) async throws {
    switch backend {
    case .file:
        let dir = try scratchDir(name)
        let store = try makeObjectStore(url: "file://" + dir.path)
        do { try await body(store, dir) } catch {
            try? await store.shutdown()
            throw error
        }
        try await store.shutdown()
        try? FileManager.default.removeItem(at: dir)
    case .s3:
        try await Requirement.s3.check()
        let endpoint = try TestEnvironment.requireS3Endpoint()
        let bucket = "kiln-blocks-\(name.lowercased())-\(UInt32.random(in: 0 ... .max))"
        let store = try makeObjectStore(
            url: "s3://\(bucket)/pre?endpoint=\(endpoint)&region=us-east-1",
            environment: ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"])
        try await (store as! S3ObjectStore).createBucket()
        do { try await body(store, nil) } catch {
            try? await store.shutdown()
            throw error
        }
        try await store.shutdown()
    }
}

/// The repo's Python; tests that use it are marked `.requires(.python("pyarrow", "duckdb"))`.
enum Python {
    static var python: URL { TestEnvironment.venvPython }

    struct Failure: Error, CustomStringConvertible { var description: String }

    /// Runs a script and parses its stdout as JSON.
    static func json(_ script: String, _ args: [String]) throws -> Any {
        let dir = try scratchDir("py")
        defer { try? FileManager.default.removeItem(at: dir) }
        let scriptURL = dir.appendingPathComponent("s.py")
        let outURL = dir.appendingPathComponent("out")
        let errURL = dir.appendingPathComponent("err")
        try script.write(to: scriptURL, atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let p = Process()
        p.executableURL = python
        p.arguments = [scriptURL.path] + args
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        try p.run()
        p.waitUntilExit()
        let out = try Data(contentsOf: outURL)
        guard p.terminationStatus == 0 else {
            throw Failure(description: "python failed: \(String(decoding: try Data(contentsOf: errURL), as: UTF8.self))")
        }
        return try JSONSerialization.jsonObject(with: out)
    }
}
