import Blocks
import Foundation
import LoadGen
import Normalization
import ProfileModel
import Records

/// The compactor's CPU per profile on one core — decode the normalized record, add it to its partition's
/// head, cut the heads and encode them as blocks (the upload and Kafka left out) — beside the normaliser's
/// own work for the same profiles: `make loadtest`'s payloads, 1,400 profiles over 4 partitions, each head
/// cut after 350 profiles as its 1-second cuts are at its rate. `make loadtest` measures whole processes
/// beside the broker; this measures the compactor's own code, repeatably.
public enum CompactorCPUBenchmark {
    static let partitions = 4
    static let profilesPerHead = 350

    public static func run(fixturesDir: URL, seconds: Double = 5) throws -> [BenchMeasurement] {
        // `make loadtest`'s payloads (real fixtures, perturbed) from its fleet's services and instances.
        let pool = try PayloadFactory().makePool(kinds: [.cpu, .heap, .goroutine, .mutex], fixturesDir: fixturesDir)
        guard !pool.variants.isEmpty else { throw BenchError("no load-test payloads from the fixtures under \(fixturesDir.path)") }
        let start = Int64(Date().timeIntervalSince1970) * 1_000_000_000
        let envelopes = (0..<partitions * profilesPerHead).map { i in
            RawEnvelope(
                tenant: "bench", labels: LabelSet(["service_name": "svc\(i % 50)", "instance": "bench:\(i / 50 % 20)"]),
                source: .loadgen, format: .pprof, startNanos: start + Int64(i) * 1_000_000, endNanos: 0, cumulative: false,
                payload: pool.variants[i % pool.variants.count].bytes)
        }
        var normalizer = Normalizer()
        let records = NormalizerBenchmark.normalizedRecords(envelopes, with: &normalizer)
        let writer = BlockWriter()
        var sink = 0
        let measured = NormalizerBenchmark.measureInTurn(
            seconds: seconds,
            [
                { sink &+= NormalizerBenchmark.normalizeAll(envelopes, with: &normalizer) },
                {
                    var heads = (0..<partitions).map { _ in Head(tenant: "bench") }
                    func cut(_ p: Int) {
                        guard heads[p].sampleCount > 0 else { return }
                        let ulid = ULID.make()
                        if let block = try? writer.encode(heads[p], ulid: ulid, compaction: .init(level: 0, sources: [ulid], parents: [])) {
                            sink &+= block.totalBytes
                        }
                        heads[p] = Head(tenant: "bench")
                    }
                    for (i, record) in records.enumerated() {
                        guard let batch = try? BatchCodec.decode(record) else { continue }
                        let p = i % partitions
                        heads[p].append(batch, from: RecordPosition(topic: "bench.normalized", partition: Int32(p), offset: Int64(i)))
                        if heads[p].batches >= profilesPerHead { cut(p) }
                    }
                    for p in 0..<partitions { cut(p) }
                },
            ])
        precondition(sink != 42)
        return [
            BenchMeasurement(
                name:
                    "compactor CPU per 1,000 profiles (decode, append to heads, cut every \(profilesPerHead) per partition, encode; \(records.count) profiles)",
                unit: "ms CPU", kiln: NormalizerBenchmark.millisPerThousand(measured[1], profiles: records.count),
                baselineName: "normalising the same profiles",
                baseline: NormalizerBenchmark.millisPerThousand(measured[0], profiles: envelopes.count), higherIsBetter: false)
        ]
    }
}
