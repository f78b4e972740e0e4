import Blocks
import Foundation
import Normalization
import Parquet
import ProfileModel
import Records
import TestSupport
import Testing

/// Measures block size per sample on the real pprof fixtures (normalised as the pipeline would), per codec,
/// and checks each block's totals against what went in. With `KILN_BLOCK_SIZE_TABLE=1` it prints the
/// table docs/block-format.md quotes (10 scrapes of each target, three codecs); `make test` encodes one
/// scrape with the default codec, which checks the normaliser against EXPECTED.json in a third of the time.
struct BlockSizeTests {
    /// What EXPECTED.json (go tool pprof's view of the corpus) says about a fixture.
    struct Expected: Decodable {
        struct Total: Decodable { var total: Int64 }
        var accepted: Bool
        /// go tool pprof's stderr when it rejects the file.
        var error: [String]?
        /// Per sample type, after pprof's merge, without empty-stack samples.
        var totals: [Total]?
    }

    @Test(.requires(.fixtures)) func bytesPerSampleOnRealProfiles() throws {
        let dir = TestEnvironment.fixturesDir.appendingPathComponent("pprof")
        struct Corpus: Decodable { var files: [String: Expected] }
        let expected = try JSONDecoder().decode(Corpus.self, from: Data(contentsOf: dir.appendingPathComponent("EXPECTED.json"))).files
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        var head = Head(tenant: "t1")
        var normalizer = Normalizer()
        var rawBytes = 0
        var offset: Int64 = 0
        let base = Int64(1_700_000_000) * 1_000_000_000
        // Each Go/Java fixture `scrapes` times, as scrapes 15 s apart of one target.
        let table = ProcessInfo.processInfo.environment["KILN_BLOCK_SIZE_TABLE"] == "1"
        let scrapes = table ? 10 : 1
        for name in names.sorted() where (name.hasPrefix("go_") || name.hasPrefix("java_")) && name.contains(".pb") {
            guard let facts = expected[name] else {
                Issue.record("\(name) has no entry in EXPECTED.json")
                continue
            }
            let payload = try Data(contentsOf: dir.appendingPathComponent(name))
            for scrape in 0..<scrapes {
                let start = base + Int64(scrape) * 15_000_000_000
                let env = RawEnvelope(
                    tenant: "t1", labels: LabelSet([Label("service_name", name), Label("job", "bench")]),
                    source: .scrape, format: .pprof, startNanos: start, endNanos: start + 15_000_000_000,
                    cumulative: false, payload: Array(payload))
                let result: NormalizationResult
                do {
                    result = try normalizer.normalize(env, provenance: Provenance(topic: "raw", partition: 0, offset: offset))
                } catch {
                    // Only a file go tool pprof rejects too may be left out, and the output says which and why.
                    if facts.accepted {
                        Issue.record("\(name): go tool pprof accepts it, but the normaliser rejects it: \(error)")
                    } else {
                        print(
                            "BlockSizeTests: \(name) left out: go tool pprof rejects it too (\((facts.error ?? []).joined(separator: "; "))); normaliser: \(error)"
                        )
                    }
                    break
                }
                guard let batch = result.batch else {
                    // Nothing left to store is right only when every value pprof sees is zero.
                    let values = facts.totals?.map(\.total) ?? []
                    #expect(values.allSatisfy { $0 == 0 }, "\(name): no batch, but EXPECTED.json totals are \(values)")
                    break
                }
                offset += 1
                rawBytes += payload.count
                head.append(batch)
            }
        }
        try #require(head.sampleCount > 0, "no fixture in \(dir.path) gave samples")
        var lines = ["codec | block bytes | bytes/sample | samples | stack nodes | functions | gzipped pprof bytes in"]
        var blockTotals: [[String: Int64]] = []
        let codecs = [("zstd(1)", CompressionCodec.zstd), ("lz4_raw", .lz4Raw), ("none", .uncompressed)]
        for (label, codec) in table ? codecs : [codecs[0]] {
            var writer = BlockWriter()
            writer.options.codec = codec
            let clock = ContinuousClock()
            var block: EncodedBlock?
            let elapsed = try clock.measure {
                block = try writer.encode(head, ulid: ULID.make(), compaction: .init(level: 0, sources: [], parents: []))
            }
            let b = block!
            blockTotals.append(b.meta.totalsByProfileType)
            let perFile = b.files.map { "\($0.name)=\($0.bytes.count)" }.joined(separator: " ")
            lines.append(
                "\(label) | \(b.totalBytes) | \(String(format: "%.2f", Double(b.totalBytes) / Double(head.sampleCount))) | \(head.sampleCount) | \(head.stackNodeCount) | \(b.meta.stats.functions) | \(rawBytes) | encode \(elapsed) | \(perFile)"
            )
        }
        print(lines.joined(separator: "\n"))
        #expect(blockTotals.allSatisfy { $0 == head.totalsByProfileType })
    }
}
