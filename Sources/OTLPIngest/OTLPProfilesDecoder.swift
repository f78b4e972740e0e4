import APICommon
import Foundation
import IngestAPI
import KilnProtos
import PprofCodec
import ProfileModel
import Records
import SwiftProtobuf

public typealias OTLPExportRequest = Opentelemetry_Proto_Collector_Profiles_V1development_ExportProfilesServiceRequest
public typealias OTLPExportResponse = Opentelemetry_Proto_Collector_Profiles_V1development_ExportProfilesServiceResponse
typealias OTLPProfile = Opentelemetry_Proto_Profiles_V1development_Profile
typealias OTLPDictionary = Opentelemetry_Proto_Profiles_V1development_ProfilesDictionary
typealias OTLPAnyValue = Opentelemetry_Proto_Common_V1_AnyValue
typealias OTLPKeyValue = Opentelemetry_Proto_Common_V1_KeyValue

/// Limits of OTLP profile requests beyond those every ingest route shares (`IngestOptions`).
public struct OTLPLimits: Sendable {
    /// Largest request as sent and after decompression: the OTLP specification's recommended 32 MiB.
    public var maxRequestBytes: Int = 32 << 20
    /// Profiles in one request (each sample type of a collection is a profile of its own).
    public var maxProfilesPerRequest: Int = 10_000
    /// Samples in one profile; a larger profile is rejected (partial success), the rest of the request stays.
    public var maxSamplesPerProfile: Int = PprofLimits.default.maxSamples

    public init() {}
}

/// What one export request became: the raw envelopes of its accepted profiles, and the count and first
/// problem of those it rejected (the answer's `partial_success`).
public struct OTLPConversion: Sendable {
    public var envelopes: [RawEnvelope] = []
    public var acceptedProfiles = 0
    public var rejectedProfiles = 0
    /// Where the first rejected profile is (`resource_profiles[r].scope_profiles[s].profiles[p]`) and why.
    public var firstProblem: String?
}

/// OTLP profiles (`opentelemetry.proto.profiles.v1development`, proto 1.10) into pprof raw envelopes, the
/// payload the normaliser already reads, so that OTLP profiles take the same path as pushes.
///
/// Each OTLP profile has one sample type and becomes one pprof profile of that type per second in which
/// its samples were taken (a sample's `timestamps_unix_nano`; samples without them belong to the
/// profile's `time_unix_nano`). Series labels are the resource's, the scope's and the profile's
/// attributes (dots in names become `_`, so `service.name` is `service_name`); sample attributes become
/// pprof sample labels and a sample's link its `span_id` and `trace_id` labels. docs/ingest.md maps
/// every field.
public enum OTLPProfilesDecoder {
    public static func convert(
        _ request: OTLPExportRequest, tenant: String, now: Date, options: IngestOptions, limits: OTLPLimits
    ) throws(APIError) -> OTLPConversion {
        let dictionary = request.dictionary
        for problem in [
            unknownFieldsProblem(request, "ExportProfilesServiceRequest"), unknownFieldsProblem(dictionary, "ProfilesDictionary"),
        ] {
            if let problem { throw APIError(.unsupportedField, problem) }
        }
        if let first = dictionary.stringTable.first, !first.isEmpty {
            throw APIError(.invalidArgument, "dictionary.string_table[0] must be the empty string, not \"\(clip(first))\"")
        }
        var total = 0
        for resource in request.resourceProfiles {
            for scope in resource.scopeProfiles { total += scope.profiles.count }
        }
        guard total <= limits.maxProfilesPerRequest else {
            throw APIError.exceeding(
                .bodyTooLarge, "otlp_max_profiles_per_request", limits.maxProfilesPerRequest,
                "the request holds \(total) profiles; send fewer per request")
        }
        let nowNanos = Int64(now.timeIntervalSince1970 * 1e9)
        var assembler = PprofAssembler(dictionary: dictionary)
        var out = OTLPConversion()
        for (r, resourceProfiles) in request.resourceProfiles.enumerated() {
            for (s, scopeProfiles) in resourceProfiles.scopeProfiles.enumerated() {
                for (p, profile) in scopeProfiles.profiles.enumerated() {
                    do throws(OTLPProblem) {
                        try refuseUnknownFields(resourceProfiles, "ResourceProfiles")
                        try refuseUnknownFields(scopeProfiles, "ScopeProfiles")
                        var attributes: [(String, String)] = []
                        for kv in resourceProfiles.resource.attributes { attributes.append(try assembler.keyValue(kv)) }
                        for kv in scopeProfiles.scope.attributes { attributes.append(try assembler.keyValue(kv)) }
                        for index in profile.attributeIndices { attributes.append(try assembler.attribute(index)) }
                        let labels = try seriesLabels(attributes, options: options)
                        out.envelopes += try envelopes(
                            of: profile, labels: labels, tenant: tenant, nowNanos: nowNanos, options: options, limits: limits,
                            assembler: &assembler)
                        out.acceptedProfiles += 1
                    } catch {
                        out.rejectedProfiles += 1
                        if out.firstProblem == nil {
                            out.firstProblem = "resource_profiles[\(r)].scope_profiles[\(s)].profiles[\(p)]: \(error.message)"
                        }
                    }
                }
            }
        }
        return out
    }

    /// Attributes as series labels: later ones (scope over resource, profile over scope) win a shared name,
    /// and the push routes' rules apply (names, lengths, counts, `unknown_service` when unnamed).
    static func seriesLabels(_ attributes: [(String, String)], options: IngestOptions) throws(OTLPProblem) -> LabelSet {
        var order: [String] = []
        var values: [String: String] = [:]
        for (key, value) in attributes where !value.isEmpty {
            if values.updateValue(value, forKey: key) == nil { order.append(key) }
        }
        var pairs: [Types_V1_LabelPair] = []
        pairs.reserveCapacity(order.count)
        for key in order {
            var pair = Types_V1_LabelPair()
            pair.name = key
            pair.value = values[key]!
            pairs.append(pair)
        }
        if pairs.isEmpty {
            var pair = Types_V1_LabelPair()
            pair.name = LabelName.serviceName
            pair.value = "unknown_service"
            pairs.append(pair)
        }
        do {
            let (labels, _) = try ConnectPushDecoder.seriesLabels(pairs, options: options)
            return labels
        } catch {
            throw OTLPProblem(error.message)
        }
    }

    /// One profile's envelopes: one per second its samples fall in.
    static func envelopes(
        of profile: OTLPProfile, labels: LabelSet, tenant: String, nowNanos: Int64, options: IngestOptions,
        limits: OTLPLimits, assembler: inout PprofAssembler
    ) throws(OTLPProblem) -> [RawEnvelope] {
        try refuseUnknownFields(profile, "Profile")
        guard profile.samples.count <= limits.maxSamplesPerProfile else {
            throw OTLPProblem(
                "the profile has \(profile.samples.count) samples (limit otlp_max_samples_per_profile = \(limits.maxSamplesPerProfile))")
        }
        guard profile.hasSampleType else { throw OTLPProblem("the profile has no sample_type") }
        let profileTime = profile.timeUnixNano == 0 ? nowNanos : Int64(clamping: profile.timeUnixNano)
        let groups = try TimeGroups(profile, profileTime: profileTime)
        var out: [RawEnvelope] = []
        for group in groups.groups {
            let duration = group.untimed ? Int64(clamping: profile.durationNano) : TimeGroups.resolution
            assembler.begin()
            for (sample, value) in group.events {
                try assembler.addSample(profile.samples[Int(sample)], value: value)
            }
            let payload = try assembler.finish(profile: profile, timeNanos: group.start, durationNanos: duration)
            do {
                try checkProfileSize(payload, labels: labels, options: options, tooLarge: .invalidArgument)
            } catch {
                throw OTLPProblem(error.message)
            }
            let (end, overflow) = group.start.addingReportingOverflow(duration)
            guard !overflow else { throw OTLPProblem("time \(group.start) plus duration \(duration) ns is beyond the year 2262") }
            out.append(
                RawEnvelope(
                    tenant: tenant, labels: labels, source: .push, format: .pprof, startNanos: group.start,
                    endNanos: end, cumulative: false, payload: payload))
        }
        return out
    }

    /// Refuses fields Kiln's copy of the protos does not define: they may change what the profile means.
    static func refuseUnknownFields(_ message: some SwiftProtobuf.Message, _ name: String) throws(OTLPProblem) {
        if let problem = unknownFieldsProblem(message, name) { throw OTLPProblem(problem) }
    }

    static func unknownFieldsProblem(_ message: some SwiftProtobuf.Message, _ name: String) -> String? {
        guard !message.unknownFields.data.isEmpty else { return nil }
        let numbers = Connect.fieldNumbers(Array(message.unknownFields.data)).map(String.init).joined(separator: ", ")
        return "\(name) fields \(numbers) are not known to Kiln (OTLP profiles 1.10), so they cannot be honoured"
    }
}

/// Why one profile of a request was rejected.
struct OTLPProblem: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// A profile's sample events grouped by the second they were taken in.
struct TimeGroups {
    static let resolution: Int64 = 1_000_000_000

    struct Group {
        var start: Int64
        /// (sample index, value), in sample order.
        var events: [(Int32, Int64)]
        /// Holds samples without timestamps: the group spans the profile's duration, not one second.
        var untimed: Bool
    }

    var groups: [Group] = []

    init(_ profile: OTLPProfile, profileTime: Int64) throws(OTLPProblem) {
        var byStart: [Int64: Int] = [:]
        func add(_ start: Int64, _ sample: Int, _ value: Int64, untimed: Bool, into groups: inout [Group]) {
            guard value != 0 else { return }
            if let g = byStart[start] {
                // A sample's events in the same second add up to one pprof sample.
                if let last = groups[g].events.last, last.0 == Int32(sample), case (let sum, false) = last.1.addingReportingOverflow(value)
                {
                    groups[g].events[groups[g].events.count - 1].1 = sum
                } else {
                    groups[g].events.append((Int32(sample), value))
                }
                groups[g].untimed = groups[g].untimed || untimed
            } else {
                byStart[start] = groups.count
                groups.append(Group(start: start, events: [(Int32(sample), value)], untimed: untimed))
            }
        }
        var groups: [Group] = []
        for (s, sample) in profile.samples.enumerated() {
            let values = sample.values
            let stamps = sample.timestampsUnixNano
            if stamps.isEmpty {
                var sum: Int64 = 0
                for v in values {
                    let (next, overflow) = sum.addingReportingOverflow(v)
                    guard !overflow else { throw OTLPProblem("samples[\(s)]: the sum of its values overflows") }
                    sum = next
                }
                add(profileTime, s, sum, untimed: true, into: &groups)
            } else if values.isEmpty || values.count == stamps.count {
                // Timestamps alone are events of one occurrence each.
                for (i, stamp) in stamps.enumerated() {
                    let t = Int64(clamping: stamp)
                    add(t - t % Self.resolution, s, values.isEmpty ? 1 : values[i], untimed: false, into: &groups)
                }
            } else {
                throw OTLPProblem("samples[\(s)] has \(values.count) values but \(stamps.count) timestamps (must be equal, or no values)")
            }
        }
        self.groups = groups.sorted { $0.start < $1.start }
    }
}
