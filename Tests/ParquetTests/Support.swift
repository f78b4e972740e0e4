import Foundation
import Parquet
import TestSupport

/// Deterministic pseudo-random numbers (SplitMix64) so failures reproduce.
struct SeededRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ range: Range<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
    mutating func chance(_ p: Double) -> Bool { Double(next() % 1_000_000) / 1_000_000 < p }
}

/// The project's Python (with pyarrow and duckdb) from scripts/setup.sh; tests that use it are marked
/// `.requires(.python("pyarrow", "duckdb"))`.
enum PythonTools {
    static var python: URL { TestEnvironment.venvPython }
    static var available: Bool { FileManager.default.isExecutableFile(atPath: python.path) }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs `script` with `args`; returns stdout, throws with stderr on a non-zero exit.
    static func run(_ script: String, _ args: [String]) throws -> String {
        guard available else { throw Failure(description: "python not found at \(python.path)") }
        let p = Process()
        p.executableURL = python
        p.arguments = ["-c", script] + args
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read both pipes before waiting so a chatty child cannot block on a full pipe.
        let errData = DispatchQueue(label: "stderr")
        nonisolated(unsafe) var stderrBytes = Data()
        let group = DispatchGroup()
        group.enter()
        errData.async {
            stderrBytes = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let stdoutBytes = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw Failure(description: "python exited \(p.terminationStatus): \(String(decoding: stderrBytes, as: UTF8.self))")
        }
        return String(decoding: stdoutBytes, as: UTF8.self)
    }

    static func json(_ script: String, _ args: [String]) throws -> Any {
        let text = try run(script, args)
        return try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    }
}

func temporaryFile(_ name: String) -> URL {
    FileManager.default.temporaryDirectory
        .appendingPathComponent("kiln-parquet-\(UUID().uuidString)-\(name)")
}

func hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    bytes.map { String(format: "%02x", $0) }.joined()
}

/// One canonical string per row (nil for null), matching `canonicalPython` below.
func canonical(_ data: ColumnData, kind: ColumnSchema.Kind) -> [String?] {
    switch kind {
    case .int64, .timestampNanos: return data.int64Values!.map { $0.map { String($0) } }
    case .int32: return data.int32Values!.map { $0.map { String($0) } }
    case .boolean: return data.booleanValues!.map { $0.map { $0 ? "true" : "false" } }
    case .string: return data.stringValues!.map { $0.map { "s:" + $0 } }
    case .bytes, .fixedBytes: return data.bytesValues!.map { $0.map { hex($0) } }
    case .int64List: return data.int64ListValues!.map { $0.map { "[" + $0.map(String.init).joined(separator: ",") + "]" } }
    case .int32List: return data.int32ListValues!.map { $0.map { "[" + $0.map(String.init).joined(separator: ",") + "]" } }
    }
}

/// Python: `canon(column)` turns a pyarrow column into the same strings as `canonical` above.
let canonicalPython = """
    import pyarrow as pa
    def canon_value(v):
        if v is None: return None
        if isinstance(v, bool): return "true" if v else "false"
        if isinstance(v, int): return str(v)
        if isinstance(v, str): return "s:" + v
        if isinstance(v, (bytes, bytearray)): return v.hex()
        if isinstance(v, list): return "[" + ",".join(str(x) for x in v) + "]"
        raise Exception("unexpected value %r" % (v,))
    def canon(col):
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        return [canon_value(v) for v in col.to_pylist()]
    """
