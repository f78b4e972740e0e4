import APICommon
import Foundation
import IngestAPI
import KilnProtos
import Normalization
import OTLPIngest
import PprofCodec
import ProfileModel
import Records

/// OTLP profiles ingest beside Connect Push of the same real profiles, each from request bytes to
/// normalised batches on one core: Push decodes its `PushRequest` and normalises the gzipped pprof inside;
/// OTLP inflates the gzipped request, decodes it, maps it to pprof (`OTLPProfilesDecoder`) and normalises
/// that. Kafka is left out of both (the same producer carries both). Target: OTLP at least 0.8× Push.
public enum OTLPBenchmark {
    public static let targetRatio = 0.8

    public static func run(fixturesDir: URL, seconds: Double = 5) throws -> [BenchMeasurement] {
        let payloads = try NormalizerBenchmark.gzipPayloads(fixturesDir)
        let decoder = PprofDecoder()
        var pushBodies: [[UInt8]] = []
        var otlpBodies: [[UInt8]] = []
        for (i, payload) in payloads.enumerated() {
            let profile = try decoder.decode(payload)
            let service = "bench-\(i)"
            pushBodies.append(try IngestBenchmark.pushRequest(Data(payload), service: service).serializedBytes())
            otlpBodies.append(Gzip.compress(try OTLPRequestEncoder.request(profile, service: service).serializedBytes(), level: 6))
        }
        var options = IngestOptions()
        options.maxSeriesPerTenant = 0
        var pushNormalizer = Normalizer()
        var otlpNormalizer = Normalizer()
        var sink = 0
        var offset: Int64 = 0
        func normalize(_ envelopes: [RawEnvelope], with normalizer: inout Normalizer) {
            for envelope in envelopes {
                offset += 1
                let provenance = Provenance(topic: "bench", partition: 0, offset: offset)
                if let batch = try? normalizer.normalize(envelope, provenance: provenance).batch { sink &+= batch.sampleCount }
            }
        }
        let now = Date()
        let measured = NormalizerBenchmark.measureInTurn(
            seconds: seconds,
            [
                {
                    for body in pushBodies {
                        guard let request = try? Push_V1_PushRequest(serializedBytes: body),
                            let envelopes = try? ConnectPushDecoder.envelopes(request, tenant: "bench", now: now, options: options)
                        else { continue }
                        normalize(envelopes, with: &pushNormalizer)
                    }
                },
                {
                    for body in otlpBodies {
                        guard let raw = try? Connect.decodeContentEncoding(body, encoding: "gzip", limit: 64 << 20),
                            let conversion = try? OTLPProfilesDecoder.convert(
                                raw, tenant: "bench", now: now, options: options, limits: OTLPLimits())
                        else { continue }
                        normalize(conversion.envelopes, with: &otlpNormalizer)
                    }
                },
            ])
        precondition(sink != 0)
        let push = Double(payloads.count) * Double(measured[0].rounds) / measured[0].seconds
        let otlp = Double(payloads.count) * Double(measured[1].rounds) / measured[1].seconds
        return [
            BenchMeasurement(
                name: "OTLP ingest profiles/s per core, request to batches (\(payloads.count) fixtures, target >= \(targetRatio)x Push)",
                unit: "profiles/s", kiln: otlp, baselineName: "Connect Push of the same profiles", baseline: push,
                higherIsBetter: true, targetRatio: targetRatio)
        ]
    }
}

/// A pprof profile as the OTLP request an OpenTelemetry exporter would send for it: one OTLP profile per
/// sample type, all sharing one dictionary, `service.name` as the resource attribute, pprof labels as
/// sample attributes.
enum OTLPRequestEncoder {
    static func request(_ p: PprofProfile, service: String) throws -> OTLPExportRequest {
        var d = Opentelemetry_Proto_Profiles_V1development_ProfilesDictionary()
        // pprof's string table is the dictionary's: index 0 is "" in both.
        d.stringTable = (0..<p.stringCount).map { p.string(Int32($0)) }
        d.mappingTable = [.init()]
        d.attributeTable = [.init()]
        d.linkTable = [.init()]
        d.stackTable = [.init()]
        for m in p.mappings {
            var mapping = Opentelemetry_Proto_Profiles_V1development_Mapping()
            mapping.memoryStart = m.memoryStart
            mapping.memoryLimit = m.memoryLimit
            mapping.fileOffset = m.fileOffset
            mapping.filenameStrindex = m.filename
            d.mappingTable.append(mapping)
        }
        d.functionTable = [.init()]
        for f in p.functions {
            var function = Opentelemetry_Proto_Profiles_V1development_Function()
            function.nameStrindex = f.name
            function.systemNameStrindex = f.systemName
            function.filenameStrindex = f.filename
            function.startLine = f.startLine
            d.functionTable.append(function)
        }
        d.locationTable = [.init()]
        for (i, l) in p.locations.enumerated() {
            var location = Opentelemetry_Proto_Profiles_V1development_Location()
            location.mappingIndex = l.mappingIndex + 1
            location.address = l.address
            location.lines = p.lines(of: i).map { line in
                var out = Opentelemetry_Proto_Profiles_V1development_Line()
                out.functionIndex = line.functionIndex + 1
                out.line = line.line
                out.column = line.column
                return out
            }
            d.locationTable.append(location)
        }
        var attributeIndex: [PprofLabel: Int32] = [:]
        var samples: [Opentelemetry_Proto_Profiles_V1development_Sample] = []
        for s in 0..<p.sampleCount {
            var stack = Opentelemetry_Proto_Profiles_V1development_Stack()
            stack.locationIndices = p.stack(s).map { $0 + 1 }
            d.stackTable.append(stack)
            var sample = Opentelemetry_Proto_Profiles_V1development_Sample()
            sample.stackIndex = Int32(d.stackTable.count - 1)
            for label in p.labels(s) where !label.isNumeric {
                if let known = attributeIndex[label] {
                    sample.attributeIndices.append(known)
                    continue
                }
                var attribute = Opentelemetry_Proto_Profiles_V1development_KeyValueAndUnit()
                attribute.keyStrindex = label.key
                attribute.value.stringValueStrindex = label.str
                d.attributeTable.append(attribute)
                attributeIndex[label] = Int32(d.attributeTable.count - 1)
                sample.attributeIndices.append(Int32(d.attributeTable.count - 1))
            }
            samples.append(sample)
        }
        var scope = Opentelemetry_Proto_Profiles_V1development_ScopeProfiles()
        for (t, type) in p.sampleTypes.enumerated() {
            var profile = Opentelemetry_Proto_Profiles_V1development_Profile()
            profile.sampleType.typeStrindex = type.type
            profile.sampleType.unitStrindex = type.unit
            if let period = p.periodType {
                profile.periodType.typeStrindex = period.type
                profile.periodType.unitStrindex = period.unit
            }
            profile.period = p.period
            profile.timeUnixNano = UInt64(max(p.timeNanos, 0))
            profile.durationNano = UInt64(max(p.durationNanos, 0))
            for (s, sample) in samples.enumerated() {
                let value = p.values[s * p.sampleTypes.count + t]
                guard value != 0 else { continue }
                var withValue = sample
                withValue.values = [value]
                profile.samples.append(withValue)
            }
            scope.profiles.append(profile)
        }
        var name = Opentelemetry_Proto_Common_V1_KeyValue()
        name.key = "service.name"
        name.value.stringValue = service
        var resource = Opentelemetry_Proto_Profiles_V1development_ResourceProfiles()
        resource.resource.attributes = [name]
        resource.scopeProfiles = [scope]
        var request = OTLPExportRequest()
        request.resourceProfiles = [resource]
        request.dictionary = d
        return request
    }
}
