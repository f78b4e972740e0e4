import Foundation
import PprofCodec

/// pprof hot-path benchmarks, each beside its baseline in the same run:
/// (a) `kiln merge` vs `go tool pprof -proto` on 40 copies of the largest real Go CPU fixture (whole
///     processes, median wall time of `runs`, peak RSS from wait4's rusage); target >= 3x;
/// (b) decode throughput (gzip + protobuf decode + validation, in process) vs `gzip -dc` of the same bytes.
public enum PprofBenchmark {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func run(
        kiln: URL, fixturesDir: URL, copies: Int = 40, runs: Int = 3,
        goPath: String = "/usr/bin/go", gzipPath: String = "/bin/gzip"
    ) throws -> [BenchMeasurement] {
        let input = try prepareInputs(fixturesDir: fixturesDir, copies: copies)
        defer { try? FileManager.default.removeItem(at: input.dir) }
        return try merge(kiln: kiln, input: input, runs: runs, goPath: goPath)
            + decodeThroughput(input: input, runs: runs, gzipPath: gzipPath)
    }

    public struct Inputs: Sendable {
        public var dir: URL
        public var files: [String]
        public var source: String
        public var totalBytes: Int
    }

    /// Copies the largest `go_cpu*` fixture `copies` times into a fresh temporary folder.
    public static func prepareInputs(fixturesDir: URL, copies: Int) throws -> Inputs {
        let pprofDir = fixturesDir.lastPathComponent == "pprof" ? fixturesDir : fixturesDir.appendingPathComponent("pprof")
        let names = try FileManager.default.contentsOfDirectory(atPath: pprofDir.path).filter { $0.hasPrefix("go_cpu") }
        func size(_ n: String) -> Int {
            ((try? FileManager.default.attributesOfItem(atPath: pprofDir.appendingPathComponent(n).path))?[.size] as? Int) ?? 0
        }
        guard let largest = names.max(by: { size($0) < size($1) }) else {
            throw Failure(description: "no go_cpu* fixture in \(pprofDir.path)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-pprof-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let data = try Data(contentsOf: pprofDir.appendingPathComponent(largest))
        var files: [String] = []
        for i in 0..<copies {
            let f = dir.appendingPathComponent("copy\(i).pb.gz").path
            try data.write(to: URL(fileURLWithPath: f))
            files.append(f)
        }
        return Inputs(dir: dir, files: files, source: largest, totalBytes: data.count * copies)
    }

    /// (a) Whole-process merge: kiln vs go tool pprof -proto.
    public static func merge(kiln: URL, input: Inputs, runs: Int, goPath: String) throws -> [BenchMeasurement] {
        let kilnOut = input.dir.appendingPathComponent("kiln-out.pb.gz").path
        let goOut = input.dir.appendingPathComponent("go-out.pb.gz").path
        var kilnRuns: [ProcessRun] = []
        var goRuns: [ProcessRun] = []
        for _ in 0..<runs {
            kilnRuns.append(try spawn(kiln.path, ["merge"] + input.files + ["-o", kilnOut], stdout: "/dev/null"))
            goRuns.append(
                try spawn(
                    goPath, ["tool", "pprof", "-proto"] + input.files, stdout: goOut,
                    environment: ["PPROF_BINARY_PATH=/nonexistent"]))
        }
        for (name, runs) in [("kiln merge", kilnRuns), ("go tool pprof -proto", goRuns)] where runs.contains(where: { $0.status != 0 }) {
            throw Failure(description: "\(name) failed (exit \(runs.map(\.status)))")
        }
        // Both outputs must carry the same totals, or the comparison is meaningless.
        let a = ProfileFacts(try PprofDecoder().decode([UInt8](Data(contentsOf: URL(fileURLWithPath: kilnOut)))))
        let b = ProfileFacts(try PprofDecoder().decode([UInt8](Data(contentsOf: URL(fileURLWithPath: goOut)))))
        guard a.totals == b.totals else {
            throw Failure(description: "merged totals differ: kiln \(a.totals.map(\.total)), go \(b.totals.map(\.total))")
        }
        let label = "\(input.files.count)x \(input.source)"
        return [
            BenchMeasurement(
                name: "pprof merge wall time (\(label))", unit: "s",
                kiln: median(kilnRuns.map(\.seconds)), baselineName: "go tool pprof -proto",
                baseline: median(goRuns.map(\.seconds)), higherIsBetter: false, targetRatio: 3),
            BenchMeasurement(
                name: "pprof merge peak RSS (\(label))", unit: "MiB",
                kiln: median(kilnRuns.map(\.peakRSSMiB)), baselineName: "go tool pprof -proto",
                baseline: median(goRuns.map(\.peakRSSMiB)), higherIsBetter: false),
        ]
    }

    /// (b) Decode throughput in MB/s of compressed input: kiln's decoder (one thread) vs `gzip -dc`.
    public static func decodeThroughput(input: Inputs, runs: Int, gzipPath: String) throws -> [BenchMeasurement] {
        let payloads = try input.files.map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: $0))) }
        let decoder = PprofDecoder()
        var kilnTimes: [Double] = []
        var samples = 0
        for _ in 0..<runs {
            let start = ContinuousClock.now
            for p in payloads { samples &+= try decoder.decode(p).sampleCount }
            kilnTimes.append(seconds(ContinuousClock.now - start))
        }
        guard samples > 0 else { throw Failure(description: "decoded no samples") }
        var gzipTimes: [Double] = []
        for _ in 0..<runs {
            let r = try spawn(gzipPath, ["-dc"] + input.files, stdout: "/dev/null")
            guard r.status == 0 else { throw Failure(description: "gzip -dc failed (exit \(r.status))") }
            gzipTimes.append(r.seconds)
        }
        let mb = Double(input.totalBytes) / 1e6
        return [
            BenchMeasurement(
                name: "pprof decode throughput (\(input.files.count)x \(input.source), compressed MB/s)",
                unit: "MB/s", kiln: mb / median(kilnTimes), baselineName: "gzip -dc (inflate only)",
                baseline: mb / median(gzipTimes), higherIsBetter: true)
        ]
    }

    public struct ProcessRun: Sendable {
        public var status: Int32
        public var seconds: Double
        public var peakRSSMiB: Double
    }

    /// posix_spawn + wait4, so the child's own peak RSS (ru_maxrss) is measured, not ours.
    public static func spawn(_ exe: String, _ args: [String], stdout: String, environment: [String] = []) throws -> ProcessRun {
        var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([exe] + args).map { strdup($0) } + [nil]
        let env = (ProcessInfo.processInfo.environment.map { "\($0)=\($1)" } + environment).map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            env.forEach { free($0) }
        }
        var pid: pid_t = 0
        let start = ContinuousClock.now
        let rc = posix_spawn(&pid, exe, &actions, nil, argv, env)
        guard rc == 0 else { throw Failure(description: "cannot start \(exe): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        let elapsed = seconds(ContinuousClock.now - start)
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return ProcessRun(status: exitCode, seconds: elapsed, peakRSSMiB: Double(usage.ru_maxrss) / 1024)
    }

    static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        return s.isEmpty ? 0 : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
