import Foundation
import Parquet

/// Parquet write benchmark on realistic sample rows — series_id (few distinct, skewed), time_nanos (sorted),
/// stack_id (Zipf-like skew), value (small ints) — for each codec: Kiln's writer vs pyarrow's
/// `pq.write_table` on the same data with the same codec, timed in the same run (median of `runs`).
/// Reports write throughput (MB/s of raw 8-byte column values) and file size.
public enum ParquetBenchmark {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public struct Sample: Sendable {
        public var seriesID: [Int64] = []
        public var timeNanos: [Int64] = []
        public var stackID: [Int64] = []
        public var value: [Int64] = []
        public var rawBytes: Int { (seriesID.count + timeNanos.count + stackID.count + value.count) * 8 }
    }

    /// Deterministic sample rows resembling a CPU-profile block.
    public static func sample(rows: Int, seed: UInt64 = 42) -> Sample {
        var state = seed
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
        var s = Sample()
        s.seriesID.reserveCapacity(rows)
        s.timeNanos.reserveCapacity(rows)
        s.stackID.reserveCapacity(rows)
        s.value.reserveCapacity(rows)
        var t: Int64 = 1_700_000_000_000_000_000
        for _ in 0..<rows {
            // 40 series, the first few far busier than the rest.
            s.seriesID.append(Int64(40 * unit() * unit() * unit()))
            // Profiles every 15 s, ~1000 samples each: time advances in bursts.
            if next() % 1000 == 0 { t += 15_000_000_000 } else { t += Int64(next() % 1000) }
            s.timeNanos.append(t)
            // Zipf-like over 200k stacks: a few hot stacks dominate.
            s.stackID.append(Int64(pow(200_000.0, unit() * unit())))
            // Sample counts (10 ms CPU ticks): mostly 1–3.
            s.value.append(Int64(1 + (next() % 16 == 0 ? next() % 50 : next() % 3)) * 10_000_000)
        }
        return s
    }

    static let schema = ParquetSchema([
        ColumnSchema("series_id", .int64),
        ColumnSchema("time_nanos", .timestampNanos),
        ColumnSchema("stack_id", .int64),
        ColumnSchema("value", .int64),
    ])

    /// Writes the sample with Kiln's writer; returns the file.
    public static func writeKiln(_ s: Sample, codec: CompressionCodec) throws -> [UInt8] {
        var options = ParquetWriterOptions()
        options.codec = codec
        let writer = try ParquetWriter(schema: schema, options: options)
        try writer.writeRowGroup([.int64(s.seriesID), .int64(s.timeNanos), .int64(s.stackID), .int64(s.value)])
        return try writer.finish()
    }

    static let pythonScript = """
        import sys, time, json, os
        import numpy as np, pyarrow as pa, pyarrow.parquet as pq
        d = sys.argv[1]; runs = int(sys.argv[2])
        cols = {n: np.fromfile(os.path.join(d, n + ".bin"), dtype="<i8") for n in ["series_id", "time_nanos", "stack_id", "value"]}
        t = pa.table({"series_id": pa.array(cols["series_id"]),
                      "time_nanos": pa.array(cols["time_nanos"]).cast(pa.timestamp("ns", tz="UTC")),
                      "stack_id": pa.array(cols["stack_id"]), "value": pa.array(cols["value"])})
        out = {}
        for codec in sys.argv[3:]:
            times = []
            path = os.path.join(d, "pyarrow-" + codec + ".parquet")
            for _ in range(runs):
                start = time.perf_counter()
                pq.write_table(t, path, compression=codec, row_group_size=1 << 20)
                times.append(time.perf_counter() - start)
            times.sort()
            out[codec] = {"seconds": times[len(times) // 2], "bytes": os.path.getsize(path)}
        print(json.dumps(out))
        """

    public static func run(python: URL, rows: Int = 1_000_000, runs: Int = 3) throws -> [BenchMeasurement] {
        let s = sample(rows: rows)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-parquet-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, values) in [("series_id", s.seriesID), ("time_nanos", s.timeNanos), ("stack_id", s.stackID), ("value", s.value)] {
            try values.withUnsafeBytes { try Data($0).write(to: dir.appendingPathComponent(name + ".bin")) }
        }

        let codecs: [(CompressionCodec, String)] = [(.lz4Raw, "lz4"), (.zstd, "zstd"), (.uncompressed, "none")]
        let p = Process()
        p.executableURL = python
        p.arguments = ["-c", pythonScript, dir.path, String(runs)] + codecs.map(\.1)
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0,
            let baseline = try JSONSerialization.jsonObject(with: output) as? [String: [String: Double]]
        else {
            throw Failure(description: "pyarrow baseline failed (exit \(p.terminationStatus))")
        }

        var results: [BenchMeasurement] = []
        let megabytes = Double(s.rawBytes) / 1_000_000
        for (codec, name) in codecs {
            var times: [Double] = []
            var size = 0
            for _ in 0..<runs {
                let start = DispatchTime.now().uptimeNanoseconds
                let file = try writeKiln(s, codec: codec)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                size = file.count
            }
            times.sort()
            let kilnSeconds = times[times.count / 2]
            guard let b = baseline[name], let bs = b["seconds"], let bb = b["bytes"] else {
                throw Failure(description: "no pyarrow result for \(name)")
            }
            results.append(
                BenchMeasurement(
                    name: "parquet write \(codec) (\(rows) sample rows)", unit: "MB/s",
                    kiln: megabytes / kilnSeconds, baselineName: "pyarrow write_table",
                    baseline: megabytes / bs, higherIsBetter: true))
            results.append(
                BenchMeasurement(
                    name: "parquet size \(codec) (raw \(s.rawBytes) B)", unit: "bytes",
                    kiln: Double(size), baselineName: "pyarrow write_table",
                    baseline: bb, higherIsBetter: false))
        }
        return results
    }
}
