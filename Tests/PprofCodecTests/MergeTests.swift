import Foundation
import PprofCodec
import TestSupport
import Testing

@Suite(.requires(.fixtures))
struct MergeTests {
    /// Go CPU fixtures sharing sample types samples/count + cpu/nanoseconds.
    static let cpuInputs = [
        "go_cpu_report_sample.pb.gz", "go_cpu_labels_pyroscope.pb.gz",
        "go_cpu_span_id_labels.pb.gz", "go_cpu_ap-query_2026.pb.gz", "go_cpu_report_sample.pb.gz",
    ]

    @Test func totalsAreTheSumAndDuplicatesMerge() throws {
        let inputs = try Self.cpuInputs.map { try PprofDecoder().decode(Fixtures.bytes($0)) }
        var merger = PprofMerger()
        for p in inputs { try merger.add(p) }
        let merged = try PprofDecoder().decode(PprofEncoder.encodeGzip(merger.finish()))
        let facts = ProfileFacts(merged)
        for t in 0..<2 {
            #expect(facts.totals[t].total == inputs.reduce(0) { $0 + ProfileFacts($1).totals[t].total })
        }
        // The same file twice adds no new stacks, locations or functions.
        #expect(merged.sampleCount < inputs.reduce(0) { $0 + $1.sampleCount })
        #expect(merged.functions.count < inputs.reduce(0) { $0 + $1.functions.count })
        #expect(facts.timeNanos == inputs.map(\.timeNanos).filter { $0 != 0 }.min())
    }

    @Test func incompatibleSampleTypesAreRejected() throws {
        var merger = PprofMerger()
        try merger.add(PprofDecoder().decode(Fixtures.bytes("go_cpu_report_sample.pb.gz")))
        #expect {
            try merger.add(PprofDecoder().decode(Fixtures.bytes("go_heap_og.pb.gz")))
        } throws: { e in
            let e = e as? PprofError
            return e?.kind == .incompatible && e?.message.contains("cpu/nanoseconds") == true
        }
    }

    /// go tool pprof reads the merged file, and its own merge of the same inputs has the same shape.
    @Test(.requires(.go)) func goToolPprofAgrees() throws {
        let go = try TestEnvironment.requireGo()
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-merge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let paths = Self.cpuInputs.map { Fixtures.dir.appendingPathComponent($0).path }
        var merger = PprofMerger()
        for path in paths { try merger.add(PprofDecoder().decode([UInt8](Data(contentsOf: URL(fileURLWithPath: path))))) }
        let ours = tmp.appendingPathComponent("ours.pb.gz")
        try Data(PprofEncoder.encodeGzip(merger.finish())).write(to: ours)

        let raw = try Self.run(go, ["tool", "pprof", "-symbolize=none", "-raw", ours.path])
        #expect(raw.status == 0, "go tool pprof -raw rejected the merged file: \(raw.stderr)")
        let theirs = tmp.appendingPathComponent("theirs.pb.gz")
        let proto = try Self.run(go, ["tool", "pprof", "-symbolize=none", "-proto", "-output", theirs.path] + paths)
        try #require(proto.status == 0, "go tool pprof -proto failed: \(proto.stderr)")
        let a = ProfileFacts(try PprofDecoder().decode([UInt8](Data(contentsOf: ours))))
        let b = ProfileFacts(try PprofDecoder().decode([UInt8](Data(contentsOf: theirs))))
        #expect(a.totals == b.totals)
        #expect(a.numSamples == b.numSamples)
        #expect(a.numLocations == b.numLocations)
        #expect(a.numFunctions == b.numFunctions)
        #expect(a.numMappings == b.numMappings)
        #expect(a.top == b.top)
        #expect(a.durationNanos == b.durationNanos && a.period == b.period)
    }

    static func run(_ exe: String, _ args: [String]) throws -> (status: Int32, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["PPROF_BINARY_PATH"] = "/nonexistent"
        env["TZ"] = "UTC"
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
