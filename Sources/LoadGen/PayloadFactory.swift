import Foundation
import PprofCodec

/// The kinds of profile a synthetic fleet sends, each backed by real pprof fixtures of that kind.
public enum ProfileKind: String, CaseIterable, Sendable, Codable {
    case cpu, heap, goroutine, mutex, wall

    /// Fixture files (in the shared `pprof/` folder) a service of this kind draws its stacks from. Real
    /// service-sized profiles only: the multi-megabyte merged server profiles are not what an instance sends.
    public var fixtureNames: [String] {
        switch self {
        case .cpu:
            [
                "go_cpu_labels_pyroscope.pb.gz", "go_cpu_truncated_stacks.pb.gz", "go_cpu_span_id_labels.pb.gz",
                "go_cpu_pgo_akvorado.pb.gz", "go_cpu_report_sample.pb.gz", "go_cpu_stripped_parca.pb.gz",
                "go_cpu_ap-query_2026.pb.gz",
            ]
        case .heap:
            [
                "go_heap_og.pb.gz", "go_heap_delta_pyroscope.pb.gz", "go_allocs_ap-query_2026.pb.gz",
                "go_heap_inuse_space_profilecli.pb.gz", "go_heap_raw_ddtrace.pb",
            ]
        case .goroutine: ["go_goroutine_pyroscope.pb.gz"]
        case .mutex: ["go_mutex_pyroscope.pb.gz", "go_mutex_ap-query_2026.pb.gz"]
        case .wall: ["nodejs_wall.pb.gz"]
        }
    }

    public static func parseList(_ text: String) throws -> [ProfileKind] {
        let kinds = try text.split(separator: ",").map { part -> ProfileKind in
            let name = part.trimmingCharacters(in: .whitespaces).lowercased()
            guard let kind = ProfileKind(rawValue: name) else {
                throw LoadGenError("unknown profile kind \"\(name)\" (use \(allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return kind
        }
        guard !kinds.isEmpty else { throw LoadGenError("no profile kinds given") }
        return kinds
    }
}

public struct LoadGenError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One ready-to-send pprof payload: a perturbed copy of a real fixture profile, gzipped.
public struct PayloadVariant: Sendable {
    public var kind: ProfileKind
    public var fixture: String
    /// gzip-compressed pprof, as an SDK sends it.
    public var bytes: [UInt8]
    public var sampleCount: Int
    /// Sum of each sample type's values, keyed `type/unit` (e.g. `cpu/nanoseconds`). Every sample has a
    /// non-empty stack, so this is exactly what the normaliser stores for this profile when it is not cumulative.
    public var totals: [String: Int64]
}

/// Builds the pool of payload variants once, so sending costs no encoding.
///
/// Each variant keeps a random subset of the fixture's samples (50–100 %, samples with an empty stack left
/// out), scales every kept sample's values by a per-variant factor (0.5–2) with ±20 % per-sample jitter, and
/// clears `time_nanos` so the time comes from the send (the `/ingest` `from` or the envelope's start).
public struct PayloadFactory: Sendable {
    public var variantsPerFixture: Int
    public var seed: UInt64

    public init(variantsPerFixture: Int = 8, seed: UInt64 = 1) {
        self.variantsPerFixture = max(1, variantsPerFixture)
        self.seed = seed
    }

    /// The `pprof/` folder under `dir` if there is one, else `dir` itself.
    public static func pprofDirectory(_ dir: URL) -> URL {
        let nested = dir.appendingPathComponent("pprof")
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: nested.path, isDirectory: &isDir), isDir.boolValue { return nested }
        return dir
    }

    /// Variants for every kind; throws naming the folder when a kind has no readable fixture at all.
    public func makePool(kinds: [ProfileKind], fixturesDir: URL) throws -> PayloadPool {
        let dir = Self.pprofDirectory(fixturesDir)
        guard FileManager.default.fileExists(atPath: dir.path) else {
            throw LoadGenError(
                "pprof fixtures folder \(dir.path) does not exist: pass --fixtures DIR or set KILN_FIXTURES_DIR "
                    + "(the shared fixtures folder holding pprof/)")
        }
        var rng = SplitMix64(seed: seed)
        var variants: [PayloadVariant] = []
        var byFixture: [ProfileKind: [[Int]]] = [:]
        var missing: [String] = []
        for kind in kinds where byFixture[kind] == nil {
            var fixtures: [[Int]] = []
            for name in kind.fixtureNames {
                guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else {
                    missing.append(name)
                    continue
                }
                let profile = try PprofDecoder().decode([UInt8](data))
                var indices: [Int] = []
                for _ in 0..<variantsPerFixture {
                    indices.append(variants.count)
                    variants.append(Self.variant(of: profile, kind: kind, fixture: name, rng: &rng))
                }
                fixtures.append(indices)
            }
            guard !fixtures.isEmpty else {
                throw LoadGenError(
                    "no fixture for profile kind \(kind.rawValue) in \(dir.path) (looked for \(kind.fixtureNames.joined(separator: ", ")))")
            }
            byFixture[kind] = fixtures
        }
        return PayloadPool(variants: variants, byKindAndFixture: byFixture, missingFixtures: missing)
    }

    /// A perturbed copy of `p`: sample subset, scaled values, no time.
    static func variant(of p: PprofProfile, kind: ProfileKind, fixture: String, rng: inout SplitMix64) -> PayloadVariant {
        let n = p.sampleTypes.count
        let keep = 0.5 + 0.5 * rng.nextUnit()
        let scale = 0.5 + 1.5 * rng.nextUnit()
        var out = p
        out.timeNanos = 0
        out.sampleLocationStarts = [0]
        out.sampleLocations = []
        out.values = []
        out.sampleLabelStarts = [0]
        out.labels = []
        var totals = [Int64](repeating: 0, count: n)
        let nonEmpty = (0..<p.sampleCount).filter { !p.stack($0).isEmpty }
        for s in nonEmpty where rng.nextUnit() < keep || (s == nonEmpty.last && out.sampleCount == 0) {
            out.sampleLocations.append(contentsOf: p.stack(s))
            out.sampleLocationStarts.append(Int32(out.sampleLocations.count))
            out.labels.append(contentsOf: p.labels(s))
            out.sampleLabelStarts.append(Int32(out.labels.count))
            let factor = scale * (0.8 + 0.4 * rng.nextUnit())
            for (t, v) in p.values(s).enumerated() {
                var scaled = Int64((Double(v) * factor).rounded())
                if v != 0 && scaled == 0 { scaled = v > 0 ? 1 : -1 }  // a kept sample stays non-zero
                out.values.append(scaled)
                totals[t] += scaled
            }
        }
        var keyed: [String: Int64] = [:]
        for (t, st) in p.sampleTypes.enumerated() {
            keyed["\(p.string(st.type))/\(p.string(st.unit))", default: 0] += totals[t]
        }
        return PayloadVariant(
            kind: kind, fixture: fixture, bytes: PprofEncoder.encodeGzip(out, level: 6),
            sampleCount: out.sampleCount, totals: keyed)
    }
}

/// The variants, grouped so a service keeps drawing from the same fixture (its own stack mix).
public struct PayloadPool: Sendable {
    public var variants: [PayloadVariant]
    /// kind → fixture → variant indices.
    public var byKindAndFixture: [ProfileKind: [[Int]]]
    public var missingFixtures: [String]

    /// The smallest variant, used for latency probes.
    public var smallestIndex: Int {
        variants.indices.min { variants[$0].bytes.count < variants[$1].bytes.count } ?? 0
    }

    public var totalBytes: Int { variants.reduce(0) { $0 + $1.bytes.count } }
}

/// A small, fast, seedable generator (Steele et al.'s SplitMix64): the same seed builds the same pool.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A well-mixed hash of one number, for choices that must not depend on shared state.
    public static func mix(_ x: UInt64) -> UInt64 {
        var g = SplitMix64(seed: x)
        return g.next()
    }
}
