import Foundation
import Normalization
import PprofCodec
import ProfileModel
import Records

/// Normaliser throughput on one core: real gzipped pprof fixtures normalised into batches (inflate,
/// decode, validate, series split, stack and symbol dedup, batch encoding), in MB of compressed input
/// per CPU-second, beside the floor of merely inflating the same bytes in the same process; and, to
/// show where the time goes, the pprof decode alone (inflate, decode, validate) beside the same floor.
public enum NormalizerBenchmark {
    public static func run(fixturesDir: URL, seconds: Double = 5) throws -> [BenchMeasurement] {
        let payloads = try gzipPayloads(fixturesDir)
        guard !payloads.isEmpty else { throw BenchError("no gzipped pprof fixtures under \(fixturesDir.path)") }
        let bytes = payloads.reduce(0) { $0 + $1.count }
        let envelopes = payloads.map {
            RawEnvelope(
                tenant: "bench", labels: LabelSet(["service_name": "bench", "instance": "bench:1"]), source: .loadgen,
                format: .pprof, startNanos: 0, endNanos: 0, cumulative: false, payload: $0)
        }

        var normalizer = Normalizer()
        var batchBytes = 0
        let decoder = PprofDecoder()
        // The three are measured in turn, a round of each at a time, so the machine's drift (this shared
        // VM's speed moves by a third over seconds) falls on all three alike and their ratios hold.
        let measured = measureInTurn(
            seconds: seconds,
            [
                { batchBytes &+= normalizeAll(envelopes, with: &normalizer) },
                // Inflate + decode + validate alone: the part of normalising that belongs to the pprof decoder.
                {
                    for p in payloads { batchBytes &+= (try? decoder.decode(p).sampleCount) ?? 0 }
                },
                {
                    for p in payloads {
                        batchBytes &+= (try? p.withUnsafeBytes { try Gzip.decompress($0, limit: 1 << 30) }.count) ?? 0
                    }
                },
            ])
        let (normalize, decode, inflate) = (measured[0], measured[1], measured[2])
        let normalizeMBps = Double(bytes) * Double(normalize.rounds) / normalize.seconds / 1e6
        let inflateMBps = Double(bytes) * Double(inflate.rounds) / inflate.seconds / 1e6
        let decodeMBps = Double(bytes) * Double(decode.rounds) / decode.seconds / 1e6
        return [
            BenchMeasurement(
                name: "normaliser throughput per core (\(payloads.count) gzipped fixtures, \(bytes / 1024) KiB)",
                unit: "MB/s", kiln: normalizeMBps, baselineName: "inflate only (floor)", baseline: inflateMBps,
                higherIsBetter: true),
            BenchMeasurement(
                name: "of which pprof decode alone per core (inflate, decode, validate)", unit: "MB/s", kiln: decodeMBps,
                baselineName: "inflate only (floor)", baseline: inflateMBps, higherIsBetter: true),
            BenchMeasurement(
                name: "normaliser throughput per core vs target", unit: "MB/s", kiln: normalizeMBps,
                baselineName: "target 40 MB/s (Pyroscope sizes at 8)", baseline: 40, higherIsBetter: true, targetRatio: 1),
        ]
    }

    /// Runs the bodies in turn, one round of each at a time, until the first has had at least `seconds`
    /// of this thread's CPU time (each at least 3 rounds); returns each one's rounds and CPU-seconds.
    /// Per core means per CPU-second: time the thread spends waiting for a core (another process, or on
    /// a shared VM the hypervisor) is not the normaliser's cost, and counting it made the same build vary
    /// by a third between runs.
    /// Normalises every envelope and encodes its batch for the topic, as kiln-normalizer does; returns the
    /// encoded bytes, so the work is not optimised away. The baseline of the suites that compare a stage
    /// with normalising.
    static func normalizeAll(_ envelopes: [RawEnvelope], with normalizer: inout Normalizer) -> Int {
        var bytes = 0
        for (i, envelope) in envelopes.enumerated() {
            if let batch = try? normalizer.normalize(envelope, provenance: Provenance(topic: "bench", partition: 0, offset: Int64(i))).batch
            {
                bytes &+= BatchCodec.encode(batch).count
            }
        }
        return bytes
    }

    /// Each envelope's batch as the normalized topic carries it (envelopes the normaliser refuses are left out).
    static func normalizedRecords(_ envelopes: [RawEnvelope], with normalizer: inout Normalizer) -> [[UInt8]] {
        envelopes.enumerated().compactMap { i, envelope in
            (try? normalizer.normalize(envelope, provenance: Provenance(topic: "bench", partition: 0, offset: Int64(i))).batch)
                .flatMap { $0 }.map(BatchCodec.encode)
        }
    }

    /// Milliseconds of CPU per 1,000 profiles, from a `measureInTurn` result whose rounds each handle `profiles`.
    static func millisPerThousand(_ measured: (rounds: Int, seconds: Double), profiles: Int) -> Double {
        measured.seconds / Double(measured.rounds) / Double(profiles) * 1e6
    }

    static func measureInTurn(seconds: Double, _ bodies: [() -> Void]) -> [(rounds: Int, seconds: Double)] {
        var results = bodies.map { _ in (rounds: 0, seconds: 0.0) }
        repeat {
            for (i, body) in bodies.enumerated() {
                let start = threadCPUSeconds()
                body()
                results[i].seconds += threadCPUSeconds() - start
                results[i].rounds += 1
            }
        } while results[0].seconds < seconds || results[0].rounds < 3
        return results
    }

    /// The calling thread's CPU time (user and system). The benchmark runs synchronously, so the thread
    /// does not change under it.
    static func threadCPUSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    static func gzipPayloads(_ fixturesDir: URL) throws -> [[UInt8]] {
        let dir = fixturesDir.lastPathComponent == "pprof" ? fixturesDir : fixturesDir.appendingPathComponent("pprof")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".pb.gz") }.sorted()
        let decoder = PprofDecoder()
        return names.compactMap { name in
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else { return nil }
            let bytes = [UInt8](data)
            // Only profiles the normaliser accepts: rejected fixtures measure the error path, not throughput.
            return (try? decoder.decode(bytes)).map { _ in bytes }
        }
    }
}
