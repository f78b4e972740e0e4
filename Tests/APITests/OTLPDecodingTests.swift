import APICommon
import Foundation
import IngestAPI
import KilnProtos
import OTLPIngest
import PprofCodec
import ProfileModel
import Records
import SwiftProtobuf
import TestSupport
import Testing

typealias OTLPDictionaryMessage = Opentelemetry_Proto_Profiles_V1development_ProfilesDictionary
typealias OTLPProfileMessage = Opentelemetry_Proto_Profiles_V1development_Profile
typealias OTLPSampleMessage = Opentelemetry_Proto_Profiles_V1development_Sample

/// A small OTLP request built by hand: two functions (main → work, work inlined into a location of its own
/// with a mapping carrying a build ID), one CPU profile whose samples carry a thread attribute, and one
/// sample linked to a span.
struct OTLPRequestBuilder {
    var request = OTLPExportRequest()

    init(sampleCount: Int = 2, timestamps: [[UInt64]]? = nil) {
        var d = OTLPDictionaryMessage()
        d.stringTable = [
            "", "main", "work", "main.go", "cpu", "nanoseconds", "/bin/app", "process.executable.build_id.gnu", "abc123",
            "thread.name", "worker-1", "samples", "count",
        ]
        var build = Opentelemetry_Proto_Profiles_V1development_KeyValueAndUnit()
        build.keyStrindex = 7
        build.value.stringValueStrindex = 8
        var thread = Opentelemetry_Proto_Profiles_V1development_KeyValueAndUnit()
        thread.keyStrindex = 9
        thread.value.stringValue = "worker-1"
        var profileAttribute = Opentelemetry_Proto_Profiles_V1development_KeyValueAndUnit()
        profileAttribute.keyStrindex = 11
        profileAttribute.value.stringValue = "yes"
        d.attributeTable = [.init(), build, thread, profileAttribute]
        var mapping = Opentelemetry_Proto_Profiles_V1development_Mapping()
        mapping.memoryStart = 0x1000
        mapping.memoryLimit = 0x9000
        mapping.filenameStrindex = 6
        mapping.attributeIndices = [1]
        d.mappingTable = [.init(), mapping]
        func function(_ name: Int32) -> Opentelemetry_Proto_Profiles_V1development_Function {
            var f = Opentelemetry_Proto_Profiles_V1development_Function()
            f.nameStrindex = name
            f.systemNameStrindex = name
            f.filenameStrindex = 3
            return f
        }
        d.functionTable = [.init(), function(1), function(2)]
        func location(_ function: Int32, line: Int64, address: UInt64) -> Opentelemetry_Proto_Profiles_V1development_Location {
            var l = Opentelemetry_Proto_Profiles_V1development_Location()
            l.mappingIndex = 1
            l.address = address
            var ln = Opentelemetry_Proto_Profiles_V1development_Line()
            ln.functionIndex = function
            ln.line = line
            ln.column = 3
            l.lines = [ln]
            return l
        }
        d.locationTable = [.init(), location(1, line: 10, address: 0x1100), location(2, line: 20, address: 0x1200)]
        var stack = Opentelemetry_Proto_Profiles_V1development_Stack()
        stack.locationIndices = [2, 1]  // leaf first: work ← main
        var mainOnly = Opentelemetry_Proto_Profiles_V1development_Stack()
        mainOnly.locationIndices = [1]
        d.stackTable = [.init(), stack, mainOnly]
        var link = Opentelemetry_Proto_Profiles_V1development_Link()
        link.traceID = Data((0..<16).map { UInt8($0) })
        link.spanID = Data([0xde, 0xad, 0xbe, 0xef, 0x00, 0x11, 0x22, 0x33])
        d.linkTable = [.init(), link]
        request.dictionary = d

        var profile = OTLPProfileMessage()
        profile.sampleType.typeStrindex = 4
        profile.sampleType.unitStrindex = 5
        profile.periodType.typeStrindex = 4
        profile.periodType.unitStrindex = 5
        profile.period = 10_000_000
        profile.timeUnixNano = 1_700_000_000_000_000_000
        profile.durationNano = 10_000_000_000
        profile.attributeIndices = [3]
        for i in 0..<sampleCount {
            var sample = OTLPSampleMessage()
            sample.stackIndex = i % 2 == 0 ? 1 : 2
            sample.values = [Int64(100 * (i + 1))]
            sample.attributeIndices = [2]
            if i == 0 { sample.linkIndex = 1 }
            if let timestamps { sample.timestampsUnixNano = timestamps[i] }
            if timestamps != nil { sample.values = [] }
            profile.samples.append(sample)
        }
        var resource = Opentelemetry_Proto_Profiles_V1development_ResourceProfiles()
        var name = Opentelemetry_Proto_Common_V1_KeyValue()
        name.key = "service.name"
        name.value.stringValue = "checkout"
        var region = Opentelemetry_Proto_Common_V1_KeyValue()
        region.key = "cloud.region"
        region.value.stringValue = "eu-west-1"
        resource.resource.attributes = [name, region]
        var scope = Opentelemetry_Proto_Profiles_V1development_ScopeProfiles()
        scope.scope.name = "ebpf-profiler"
        var scopeAttribute = Opentelemetry_Proto_Common_V1_KeyValue()
        scopeAttribute.key = "profiler.mode"
        scopeAttribute.value.intValue = 2
        scope.scope.attributes = [scopeAttribute]
        scope.profiles = [profile]
        resource.scopeProfiles = [scope]
        request.resourceProfiles = [resource]
    }

    var profile: OTLPProfileMessage {
        get { request.resourceProfiles[0].scopeProfiles[0].profiles[0] }
        set { request.resourceProfiles[0].scopeProfiles[0].profiles[0] = newValue }
    }

    /// The request with `profile` appended as a second profile of the same scope.
    func adding(_ profile: OTLPProfileMessage) -> OTLPExportRequest {
        var r = request
        r.resourceProfiles[0].scopeProfiles[0].profiles.append(profile)
        return r
    }
}

@Suite struct OTLPDecodingTests {
    static let now = Date(timeIntervalSince1970: 1_700_000_100)

    static func convert(_ request: OTLPExportRequest, limits: OTLPLimits = OTLPLimits()) throws -> OTLPConversion {
        try convert(bytes: request.serializedBytes(), limits: limits)
    }

    static func convert(bytes: [UInt8], limits: OTLPLimits = OTLPLimits()) throws -> OTLPConversion {
        try OTLPProfilesDecoder.convert(bytes, tenant: "t", now: now, options: IngestOptions(), limits: limits)
    }

    static func pprof(_ envelope: RawEnvelope) throws -> PprofProfile {
        try PprofDecoder().decode(envelope.payload)
    }

    @Test func mapsEveryFieldToPprof() throws {
        let result = try Self.convert(OTLPRequestBuilder().request)
        #expect(result.acceptedProfiles == 1 && result.rejectedProfiles == 0 && result.firstProblem == nil)
        try #require(result.envelopes.count == 1)
        let envelope = result.envelopes[0]
        #expect(envelope.labels[LabelName.serviceName] == "checkout")
        #expect(envelope.labels["cloud_region"] == "eu-west-1")
        #expect(envelope.labels["profiler_mode"] == "2")
        #expect(envelope.labels["samples"] == "yes", "a profile attribute is a series label")
        #expect(envelope.startNanos == 1_700_000_000_000_000_000 && envelope.endNanos == 1_700_000_010_000_000_000)
        #expect(envelope.format == .pprof && !envelope.cumulative)

        let p = try Self.pprof(envelope)
        #expect(p.sampleTypes.count == 1 && p.string(p.sampleTypes[0].type) == "cpu" && p.string(p.sampleTypes[0].unit) == "nanoseconds")
        #expect(p.periodType.map { p.string($0.type) } == "cpu" && p.period == 10_000_000)
        #expect(p.timeNanos == 1_700_000_000_000_000_000 && p.durationNanos == 10_000_000_000)
        #expect(p.sampleCount == 2 && Array(p.values) == [100, 200])
        // Stacks, leaf first, with functions, files, lines, columns and the mapping's build ID.
        func frames(_ s: Int) -> [String] {
            p.stack(s).map { loc in
                p.lines(of: Int(loc)).map { line in
                    let f = p.functions[Int(line.functionIndex)]
                    return "\(p.string(f.name))@\(p.string(f.filename)):\(line.line):\(line.column)"
                }.joined(separator: "|")
            }
        }
        #expect(frames(0) == ["work@main.go:20:3", "main@main.go:10:3"])
        #expect(frames(1) == ["main@main.go:10:3"])
        let mapping = try #require(p.mappings.first)
        #expect(p.string(mapping.filename) == "/bin/app" && p.string(mapping.buildID) == "abc123")
        #expect(mapping.memoryStart == 0x1000 && mapping.memoryLimit == 0x9000)
        #expect(p.locations.map(\.address).sorted() == [0x1100, 0x1200])
        // Sample attributes become labels (dots to underscores); the link becomes span_id and trace_id.
        func labels(_ s: Int) -> [String: String] {
            Dictionary(uniqueKeysWithValues: p.labels(s).map { (p.string($0.key), p.string($0.str)) })
        }
        #expect(labels(0) == ["thread_name": "worker-1", "span_id": "deadbeef00112233", "trace_id": "000102030405060708090a0b0c0d0e0f"])
        #expect(labels(1) == ["thread_name": "worker-1"])
    }

    /// The per-type profiles an exporter makes of one multi-type pprof (same labels, time and period) come
    /// back as that one pprof: one column per type, samples merged by stack, attributes and link.
    @Test func profilesOfOneCollectionMergeIntoOnePprof() throws {
        let builder = OTLPRequestBuilder()
        var counts = builder.profile
        counts.sampleType.typeStrindex = 11  // samples/count
        counts.sampleType.unitStrindex = 12
        for i in counts.samples.indices { counts.samples[i].values = [Int64(i + 1)] }
        counts.samples.reverse()  // the same samples in another order still meet their rows
        let result = try Self.convert(builder.adding(counts))
        #expect(result.acceptedProfiles == 2)
        try #require(result.envelopes.count == 1)
        let p = try Self.pprof(result.envelopes[0])
        #expect(p.sampleTypes.map { "\(p.string($0.type))/\(p.string($0.unit))" } == ["cpu/nanoseconds", "samples/count"])
        #expect(p.sampleCount == 2 && Array(p.values) == [100, 1, 200, 2])

        // A different period keeps them apart.
        var other = counts
        other.period = 1
        #expect(try Self.convert(builder.adding(other)).envelopes.count == 2)
    }

    @Test func samplesWithTimestampsSplitBySecond() throws {
        let base: UInt64 = 1_700_000_000_000_000_000
        // Sample 0: three events, two in the first second, one in the next; sample 1: one event in the next.
        let builder = OTLPRequestBuilder(
            sampleCount: 2, timestamps: [[base + 100, base + 900_000_000, base + 1_500_000_000], [base + 1_000_000_000]])
        let result = try Self.convert(builder.request)
        try #require(result.envelopes.count == 2)
        #expect(result.envelopes.map(\.startNanos) == [Int64(base), Int64(base) + 1_000_000_000])
        #expect(result.envelopes.map { $0.endNanos - $0.startNanos } == [1_000_000_000, 1_000_000_000])
        let first = try Self.pprof(result.envelopes[0])
        let second = try Self.pprof(result.envelopes[1])
        #expect(Array(first.values) == [2], "events without values count one each, a sample's events in one second add up")
        #expect(Array(second.values) == [1, 1])
        #expect(first.timeNanos == Int64(base) && second.timeNanos == Int64(base) + 1_000_000_000)
    }

    @Test func valuesPairWithTimestamps() throws {
        let base: UInt64 = 1_700_000_000_000_000_000
        var builder = OTLPRequestBuilder(sampleCount: 1, timestamps: [[base, base + 2_000_000_000]])
        builder.profile.samples[0].values = [7, 9]
        let result = try Self.convert(builder.request)
        #expect(try result.envelopes.map { Array(try Self.pprof($0).values) } == [[7], [9]])

        builder.profile.samples[0].values = [7, 9, 11]
        let mismatched = try Self.convert(builder.request)
        #expect(mismatched.acceptedProfiles == 0 && mismatched.rejectedProfiles == 1)
        #expect(mismatched.firstProblem?.contains("3 values but 2 timestamps") == true, "\(mismatched.firstProblem ?? "")")
    }

    @Test func aProfileWithoutServiceNameIsUnknownService() throws {
        var builder = OTLPRequestBuilder()
        builder.request.resourceProfiles[0].resource.attributes.removeFirst()
        let result = try Self.convert(builder.request)
        #expect(result.envelopes.first?.labels[LabelName.serviceName] == "unknown_service")
    }

    /// Damage done to the second profile of a request (and to the dictionary), and what the refusal must say.
    static let hostile: [(name: String, expected: String)] = [
        ("dangling stack", "stack_index 99"), ("negative stack", "stack_index -1"),
        ("dangling location", "location index 42"), ("dangling function", "function index 77"),
        ("dangling mapping", "mapping index 5"), ("dangling string", "string 1000"),
        ("dangling attribute", "attribute index 9"), ("dangling link", "link_index 4"),
        ("short span ID", "span_id has 3 bytes"), ("array attribute", "array or map value"),
        ("no sample type", "no sample_type"), ("bad label name", "not a valid label name"),
    ]

    static func spoil(_ name: String, _ p: inout OTLPProfileMessage, _ d: inout OTLPDictionaryMessage) {
        /// A new stack holding one new location, used by sample 0.
        func newStack(_ location: Opentelemetry_Proto_Profiles_V1development_Location) {
            d.locationTable.append(location)
            d.stackTable.append(.with { $0.locationIndices = [Int32(d.locationTable.count - 1)] })
            p.samples[0].stackIndex = Int32(d.stackTable.count - 1)
        }
        switch name {
        case "dangling stack": p.samples[0].stackIndex = 99
        case "negative stack": p.samples[0].stackIndex = -1
        case "dangling location":
            d.stackTable.append(.with { $0.locationIndices = [1, 42] })
            p.samples[0].stackIndex = Int32(d.stackTable.count - 1)
        case "dangling function": newStack(.with { $0.lines = [.with { $0.functionIndex = 77 }] })
        case "dangling mapping": newStack(.with { $0.mappingIndex = 5 })
        case "dangling string":
            d.functionTable.append(.with { $0.nameStrindex = 1000 })
            let function = Int32(d.functionTable.count - 1)
            newStack(.with { $0.lines = [.with { $0.functionIndex = function }] })
        case "dangling attribute": p.samples[0].attributeIndices = [9]
        case "dangling link": p.samples[0].linkIndex = 4
        case "short span ID": d.linkTable[1].spanID = Data([1, 2, 3])
        case "array attribute": d.attributeTable[2].value.arrayValue = .with { $0.values = [.with { $0.intValue = 1 }] }
        case "no sample type": p.clearSampleType()
        case "bad label name": d.stringTable[9] = "thread name!"
        default: Issue.record("no spoiler named \(name)")
        }
    }

    /// Each hostile profile is rejected with a message naming the problem, while the good profile beside it
    /// in the same request is kept. (OTLP 1.10 stacks are flat lists of locations: nothing in the
    /// dictionary refers back to a stack, so no cycle can be written; dangling and negative indexes can.)
    @Test(arguments: hostile)
    func hostileProfilesAreRejectedAlone(name: String, expected: String) throws {
        let builder = OTLPRequestBuilder()
        // The good profile uses only entries no spoiler touches (stack 2: main, no attributes or links).
        var good = builder.profile
        for i in good.samples.indices {
            good.samples[i].stackIndex = 2
            good.samples[i].attributeIndices = []
            good.samples[i].linkIndex = 0
        }
        var bad = builder.profile
        var request = builder.request
        Self.spoil(name, &bad, &request.dictionary)
        request.resourceProfiles[0].scopeProfiles[0].profiles = [good, bad]
        let result = try Self.convert(request)
        #expect(result.acceptedProfiles == 1 && result.rejectedProfiles == 1, "\(name)")
        #expect(result.firstProblem?.hasPrefix("resource_profiles[0].scope_profiles[0].profiles[1]: ") == true, "\(name)")
        #expect(result.firstProblem?.contains(expected) == true, "\(name): \(result.firstProblem ?? "no problem")")
        #expect(try result.envelopes.map { try Self.pprof($0).sampleCount } == [2])
    }

    @Test func tooManySamplesRejectTheProfile() throws {
        var limits = OTLPLimits()
        limits.maxSamplesPerProfile = 1
        let result = try Self.convert(OTLPRequestBuilder(sampleCount: 2).request, limits: limits)
        #expect(result.rejectedProfiles == 1 && result.firstProblem?.contains("otlp_max_samples_per_profile = 1") == true)
    }

    @Test func requestWideProblemsRefuseTheRequest() throws {
        var limits = OTLPLimits()
        limits.maxProfilesPerRequest = 1
        let builder = OTLPRequestBuilder()
        #expect(throws: APIError.self) { try Self.convert(builder.adding(builder.profile), limits: limits) }
        do {
            _ = try Self.convert(builder.adding(builder.profile), limits: limits)
        } catch let error as APIError {
            #expect(error.kind == .bodyTooLarge && error.message.contains("otlp_max_profiles_per_request"))
        }

        var badStrings = builder.request
        badStrings.dictionary.stringTable[0] = "not empty"
        #expect {
            try Self.convert(badStrings)
        } throws: { ($0 as? APIError)?.message.contains("string_table[0]") == true }

        // A field from a later version of the protos is refused by number, not silently skipped.
        var unknown = builder.request
        let profileBytes: [UInt8] = try builder.profile.serializedBytes() + [0x78, 0x01]  // field 15, varint 1
        unknown.resourceProfiles[0].scopeProfiles[0].profiles[0] = try OTLPProfileMessage(serializedBytes: profileBytes)
        let result = try Self.convert(unknown)
        #expect(result.rejectedProfiles == 1 && result.firstProblem?.contains("Profile field 15 is not known") == true)
    }

    /// Random damage to a valid request's bytes never crashes the decoder: each damaged request is either
    /// refused or converted into profiles that decode as pprof.
    @Test func damagedRequestsNeverCrash() throws {
        let valid: [UInt8] = try OTLPRequestBuilder(sampleCount: 6).request.serializedBytes()
        var rng = SplitMix(state: 0x6B69_6C6E)
        var converted = 0
        var refused = 0
        for round in 0..<3000 {
            var bytes = valid
            switch round % 3 {
            case 0:
                for _ in 0..<(1 + Int(rng.next() % 4)) {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            case 1: bytes.removeLast(Int(rng.next() % UInt64(bytes.count)))
            default:
                let at = Int(rng.next() % UInt64(bytes.count))
                bytes.insert(contentsOf: (0..<8).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
            }
            do {
                let result = try Self.convert(bytes: bytes)
                for envelope in result.envelopes { _ = try PprofDecoder().decode(envelope.payload) }
                converted += 1
            } catch is APIError {
                refused += 1
            }
        }
        #expect(converted > 100 && refused > 100, "converted \(converted), refused \(refused)")
    }

    @Test func jsonTakesHexIDs() throws {
        let builder = OTLPRequestBuilder()
        var json = try builder.request.jsonString()
        // protobuf's JSON mapping wrote base64; OTLP/JSON writes hex.
        json = json.replacingOccurrences(
            of: Data((0..<16).map { UInt8($0) }).base64EncodedString(), with: "000102030405060708090a0b0c0d0e0f")
        json = json.replacingOccurrences(
            of: Data([0xde, 0xad, 0xbe, 0xef, 0x00, 0x11, 0x22, 0x33]).base64EncodedString(), with: "deadbeef00112233")
        #expect(json.contains("deadbeef00112233"))
        let decoded = try OTLPExportRequest(serializedBytes: try OTLPIngester.protobufBytes(Array(json.utf8), encoding: .json))
        #expect(decoded == builder.request)
    }
}
