import Blocks
import Foundation
import ObjectStore
import ProfileModel
import Testing
import TestSupport

/// A small deterministic generator (SplitMix64), so failures reproduce.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

let cpuType = ProfileTypeID(parsing: "process_cpu:cpu:nanoseconds:cpu:nanoseconds")!
let allocType = ProfileTypeID(parsing: "memory:alloc_space:bytes:space:bytes")!

/// A batch like the normaliser's: a few series of two profile types, stacks drawn from a shared function
/// pool (so batches overlap in symbols and stack prefixes), each batch numbering its symbols its own way.
func makeBatch(tenant: String = "t1", rawTopic: String = "raw", partition: Int32 = 0, offset: Int64, samples: Int = 200,
               baseTimeNanos: Int64 = 1_700_000_000_000_000_000, seed: UInt64? = nil) -> SampleBatch {
    var rng = SplitMix(state: seed ?? UInt64(bitPattern: offset) &* 31 &+ UInt64(partition))
    var batch = SampleBatch(tenant: tenant, provenance: Provenance(topic: rawTopic, partition: partition, offset: offset))
    let services = ["api", "worker", "db"]
    for s in services {
        for pt in [cpuType, allocType] {
            batch.series.append(BatchSeries(labels: LabelSet([Label("service_name", s), Label("__name__", pt.name),
                                                              Label("__profile_type__", pt.id), Label("env", "prod")]), profileType: pt))
        }
    }
    var strings = [""]
    var stringIndex: [String: UInt32] = ["": 0]
    func intern(_ s: String) -> UInt32 {
        if let i = stringIndex[s] { return i }
        strings.append(s); stringIndex[s] = UInt32(strings.count - 1); return UInt32(strings.count - 1)
    }
    var functions: [FunctionSymbol] = [], frames: [FrameSymbol] = []
    var frameOf: [Int: UInt32] = [:]
    // Visit the pool in a batch-specific order so local ids differ between batches.
    let pool = 60
    let shift = rng.below(pool)
    for k in 0..<pool {
        let f = (k + shift) % pool
        functions.append(FunctionSymbol(name: intern("pkg\(f % 7).fn\(f)"), systemName: intern("pkg\(f % 7).fn\(f)"),
                                        filename: intern("src/pkg\(f % 7).go"), startLine: Int64(f * 10)))
        frames.append(FrameSymbol(function: UInt32(functions.count - 1), line: Int64(f * 10 + 3)))
        frameOf[f] = UInt32(frames.count - 1)
    }
    batch.symbols = SymbolTable(strings: strings, functions: functions, frames: frames)
    let stackCount = 20
    for _ in 0..<stackCount {
        let depth = 2 + rng.below(8)
        // Root-side frames are few (shared prefixes), leaf-side varied.
        var rootFirst: [UInt32] = []
        for d in 0..<depth { rootFirst.append(frameOf[d < 2 ? d : 2 + rng.below(pool - 2)]!) }
        batch.stacks.append(rootFirst.reversed())
    }
    for i in 0..<samples {
        batch.sampleSeries.append(UInt32(rng.below(batch.series.count)))
        batch.sampleStacks.append(UInt32(rng.below(stackCount)))
        batch.sampleValues.append(Int64(1 + rng.below(1_000_000)))
        batch.sampleTimes.append(baseTimeNanos + Int64(offset) * 1_000_000_000 + Int64(i % 5) * 10_000_000)
        batch.sampleSpans.append(i % 4 == 0 ? rng.next() : 0)
    }
    return batch
}

/// One sample as a comparable row: series labels, time, value, span and the full stack as function names.
struct FlatSample: Hashable, Comparable {
    var labels: String
    var profileType: String
    var time: Int64
    var value: Int64
    var span: UInt64
    var stack: [String]

    static func < (a: Self, b: Self) -> Bool {
        (a.labels, a.profileType, a.time, a.value, a.span, a.stack.joined(separator: ";"))
            < (b.labels, b.profileType, b.time, b.value, b.span, b.stack.joined(separator: ";"))
    }
}

func flatten(_ batch: SampleBatch) -> [FlatSample] {
    (0..<batch.sampleCount).map { i in
        let s = batch.series[Int(batch.sampleSeries[i])]
        let stack = batch.stacks.stack(Int(batch.sampleStacks[i])).map { batch.symbols.functionName(ofFrame: Int($0)) }
        return FlatSample(labels: s.labels.description, profileType: s.profileType.id, time: batch.sampleTimes[i],
                          value: batch.sampleValues[i], span: batch.sampleSpans[i], stack: stack)
    }
}

func flatten(_ reader: BlockReader) async throws -> [FlatSample] {
    let series = Dictionary(uniqueKeysWithValues: try await reader.series().map { ($0.id, $0) })
    let samples = try await reader.samples()
    let symbols = try await reader.symbols()
    return try (0..<samples.count).map { i in
        let s = series[samples.seriesIDs[i]]!
        return FlatSample(labels: s.labels.description, profileType: s.profileType.id, time: samples.timeNanos[i],
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

/// Runs `body` with an empty store of `backend`, or returns false (skipped) when S3 is unavailable.
func withStore(_ backend: Backend, _ name: String, _ body: (any ObjectStore, URL?) async throws -> Void) async throws {
    switch backend {
    case .file:
        let dir = try scratchDir(name)
        let store = try makeObjectStore(url: "file://" + dir.path)
        do { try await body(store, dir) } catch { try? await store.shutdown(); throw error }
        try await store.shutdown()
        try? FileManager.default.removeItem(at: dir)
    case .s3:
        guard let endpoint = TestEnvironment.s3Endpoint else {
            if TestEnvironment.integrationRequired { Issue.record("KILN_TEST_S3_ENDPOINT is not set") }
            else { print("skipped (\(name) on s3): no KILN_TEST_S3_ENDPOINT") }
            return
        }
        let bucket = "kiln-blocks-\(name.lowercased())-\(UInt32.random(in: 0 ... .max))"
        let store = try makeObjectStore(url: "s3://\(bucket)/pre?endpoint=\(endpoint)&region=us-east-1",
                                        environment: ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"])
        try await (store as! S3ObjectStore).createBucket()
        do { try await body(store, nil) } catch { try? await store.shutdown(); throw error }
        try await store.shutdown()
    }
}

enum Python {
    static var python: URL { TestEnvironment.repoRoot.appendingPathComponent(".venv/bin/python") }
    static var available: Bool { FileManager.default.isExecutableFile(atPath: python.path) }

    struct Failure: Error, CustomStringConvertible { var description: String }

    /// Runs a script and parses its stdout as JSON.
    static func json(_ script: String, _ args: [String]) throws -> Any {
        let dir = try scratchDir("py")
        defer { try? FileManager.default.removeItem(at: dir) }
        let scriptURL = dir.appendingPathComponent("s.py"), outURL = dir.appendingPathComponent("out"), errURL = dir.appendingPathComponent("err")
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
