import Foundation
import KilnProtos
import LoadGen
import Normalization
import ProfileModel
import Recording
import Records

/// Recording-rule evaluation against the normaliser, on one core: the ruler's work per profile (read the
/// normalized record as rules need it, add its samples to 10 rules' steps, hand out the steps) beside the
/// normaliser's own work for the same profiles. The target: evaluation under 10 % of normalising.
public enum RuleBenchmark {
    public static func run(fixturesDir: URL, seconds: Double = 5) throws -> [BenchMeasurement] {
        // `make loadtest`'s payloads (real fixtures, perturbed: what agents send), as the compactor's CPU bench.
        let pool = try PayloadFactory().makePool(kinds: [.cpu, .heap, .goroutine, .mutex], fixturesDir: fixturesDir)
        let fleet = pool.variants.prefix(400).map(\.bytes)
        // The fixtures as they are, the merged profiles of 67,000 and 118,000 samples among them.
        let fixtures = try NormalizerBenchmark.gzipPayloads(fixturesDir)
        guard !fixtures.isEmpty, !fleet.isEmpty else { throw BenchError("no gzipped pprof fixtures under \(fixturesDir.path)") }
        return [
            try measure(Array(fleet), seconds: seconds, what: "\(fleet.count) load-test profiles"),
            try measure(fixtures, seconds: seconds, what: "the \(fixtures.count) fixtures as they are"),
        ]
    }

    static func measure(_ payloads: [[UInt8]], seconds: Double, what: String) throws -> BenchMeasurement {
        let envelopes = payloads.enumerated().map { i, payload in
            RawEnvelope(
                tenant: "bench", labels: LabelSet(["service_name": "svc\(i % 5)", "instance": "bench:\(i)", "region": "r\(i % 3)"]),
                source: .loadgen, format: .pprof, startNanos: 0, endNanos: 0, cumulative: false, payload: payload)
        }
        var normalizer = Normalizer()
        let records = NormalizerBenchmark.normalizedRecords(envelopes, with: &normalizer)
        let rules = try Self.rules(from: records)
        var evaluation = RuleEvaluation(stepMillis: 15_000)
        var sink = 0
        let measured = NormalizerBenchmark.measureInTurn(
            seconds: seconds,
            [
                { sink &+= NormalizerBenchmark.normalizeAll(envelopes, with: &normalizer) },
                {
                    for record in records {
                        let batch = try? BatchCodec.decodeForRules(record) { _, series in
                            RuleEvaluation.functionNames(rules, forSeries: series)
                        }
                        guard let batch else { continue }
                        sink &+= evaluation.add(batch, rules: rules).samplesRecorded
                    }
                    sink &+= evaluation.complete(through: .max - 15_000).count
                },
            ])
        let (normalize, evaluate) = (measured[0], measured[1])
        let evaluateMs = NormalizerBenchmark.millisPerThousand(evaluate, profiles: records.count)
        let normalizeMs = NormalizerBenchmark.millisPerThousand(normalize, profiles: envelopes.count)
        precondition(sink != 42)
        return BenchMeasurement(
            name: "recording rules: 10 rules evaluated per 1,000 profiles (read records, add, hand out steps), \(what)",
            unit: "ms CPU", kiln: evaluateMs, baselineName: "normalising the same profiles", baseline: normalizeMs, higherIsBetter: false,
            targetRatio: 10)
    }

    /// Ten rules as a fleet would write them: totals by service and by region, matchers on labels, and
    /// function filters on functions the profiles hold.
    static func rules(from records: [[UInt8]]) throws -> [CompiledRule] {
        var functionCounts: [String: Int] = [:]
        for record in records {
            let batch = try BatchCodec.decode(record)
            for f in batch.symbols.functions { functionCounts[batch.symbols.strings[Int(f.name)], default: 0] += 1 }
        }
        let functions = functionCounts.sorted { $0.value > $1.value }.prefix(4).map(\.key)
        let cpu = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
        let alloc = "memory:alloc_space:bytes:space:bytes"
        var specs: [(type: String, matchers: [String], groupBy: [String], function: String?)] = [
            (cpu, [], ["service_name"], nil), (alloc, [], ["service_name"], nil), (cpu, [], ["region"], nil),
            (cpu, ["{service_name=~\"svc[0-2]\"}"], ["service_name", "region"], nil),
            (alloc, ["{region!=\"r1\"}"], [], nil), (cpu, ["{instance=~\"bench:1.*\"}"], ["instance"], nil),
        ]
        for (i, function) in functions.enumerated() { specs.append((i % 2 == 0 ? cpu : alloc, [], ["service_name"], function)) }
        return try specs.prefix(10).enumerated().map { i, spec in
            var rule = Settings_V1_RecordingRule()
            rule.id = "rule" + String(UnicodeScalar(UInt8(97 + i)))
            rule.metricName = "profiles_recorded_bench_\(i)"
            rule.profileType = spec.type
            rule.matchers = ["{__profile_type__=\"\(spec.type)\"}"] + spec.matchers
            rule.groupBy = spec.groupBy
            if let function = spec.function { rule.stacktraceFilter.functionName.functionName = function }
            return try CompiledRule(rule)
        }
    }
}
