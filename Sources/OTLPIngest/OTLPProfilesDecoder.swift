import APICommon
import Foundation
import IngestAPI
import KilnFoundation
import KilnProtos
import PprofCodec
import ProfileModel
import Records

public typealias OTLPExportRequest = Opentelemetry_Proto_Collector_Profiles_V1development_ExportProfilesServiceRequest
public typealias OTLPExportResponse = Opentelemetry_Proto_Collector_Profiles_V1development_ExportProfilesServiceResponse

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
/// Each OTLP profile has one sample type; the profiles of one scope with the same series labels, time,
/// duration and period become one pprof profile with a sample type for each (`ProfileUnit`), one per
/// second in which timed samples were taken (a sample's `timestamps_unix_nano`; samples without them
/// belong to the profile's `time_unix_nano`). Series labels are the resource's, the scope's and the profile's
/// attributes (dots in names become `_`, so `service.name` is `service_name`); sample attributes become
/// pprof sample labels and a sample's link its `span_id` and `trace_id` labels. docs/ingest.md maps
/// every field.
public enum OTLPProfilesDecoder {
    /// Converts a request given as protobuf bytes (decoded here, on raw buffers).
    public static func convert(
        _ bytes: [UInt8], tenant: String, now: Date, options: IngestOptions, limits: OTLPLimits
    ) throws(APIError) -> OTLPConversion {
        guard bytes.count < Int(Int32.max) else { throw APIError(.bodyTooLarge, "the request is larger than 2 GiB") }
        let wire: OTLPWireRequest
        do {
            wire = try OTLPWireRequest(bytes)
        } catch {
            throw APIError(.invalidArgument, "cannot decode ExportProfilesServiceRequest (protobuf): \(error.message)")
        }
        return try convert(wire, tenant: tenant, now: now, options: options, limits: limits)
    }

    static func convert(
        _ wire: OTLPWireRequest, tenant: String, now: Date, options: IngestOptions, limits: OTLPLimits
    ) throws(APIError) -> OTLPConversion {
        if let problem = wire.requestProblem { throw APIError(.unsupportedField, problem) }
        if let first = wire.strings.first, first.count != 0 {
            throw APIError(
                .invalidArgument,
                "dictionary.string_table[0] must be the empty string, not \"\(clip(String(decoding: wire.bytes(first), as: UTF8.self)))\"")
        }
        guard wire.profiles.count <= limits.maxProfilesPerRequest else {
            throw APIError.exceeding(
                .bodyTooLarge, "otlp_max_profiles_per_request", limits.maxProfilesPerRequest,
                "the request holds \(wire.profiles.count) profiles; send fewer per request")
        }
        let nowNanos = Int64(now.timeIntervalSince1970 * 1e9)
        var check = DictionaryCheck(wire)
        var out = OTLPConversion()
        var problems: [Int: String] = [:]
        var units: [ProfileUnit] = []
        var paths = [String](repeating: "", count: wire.profiles.count)
        for (r, resource) in wire.resources.enumerated() {
            for (s, scope) in wire.scopes[resource.scopes.range].enumerated() {
                var unitIndex: [ProfileUnit.Key: Int] = [:]
                for (i, p) in scope.profiles.range.enumerated() {
                    let profile = wire.profiles[p]
                    paths[p] = "resource_profiles[\(r)].scope_profiles[\(s)].profiles[\(i)]"
                    do throws(OTLPProblem) {
                        if let problem = profile.problem { throw OTLPProblem(problem) }
                        guard profile.samples.count <= limits.maxSamplesPerProfile else {
                            throw OTLPProblem(
                                "the profile has \(profile.samples.count) samples (limit otlp_max_samples_per_profile = \(limits.maxSamplesPerProfile))"
                            )
                        }
                        var attributes: [(String, String)] = []
                        for kv in resource.attributes { attributes.append(try check.keyValue(kv)) }
                        for kv in scope.attributes { attributes.append(try check.keyValue(kv)) }
                        for index in wire.attributeIndices[profile.attributes.range] { attributes.append(try check.attribute(index)) }
                        let labels = try seriesLabels(attributes, options: options)
                        try check.check(profile: p)
                        let profileTime = profile.timeUnixNano == 0 ? nowNanos : Int64(clamping: profile.timeUnixNano)
                        let groups = try TimeGroups(wire, profile, profileTime: profileTime)
                        let type = profile.sampleType!
                        for group in groups.groups {
                            let duration = group.untimed ? Int64(clamping: profile.durationNano) : TimeGroups.resolution
                            guard !group.start.addingReportingOverflow(duration).overflow else {
                                throw OTLPProblem("time \(group.start) plus duration \(duration) ns is beyond the year 2262")
                            }
                            let key = ProfileUnit.Key(
                                labels: labels, start: group.start, duration: duration, periodType: profile.periodType,
                                period: profile.period)
                            let u: Int
                            if let known = unitIndex[key] {
                                u = known
                            } else {
                                u = units.count
                                unitIndex[key] = u
                                units.append(ProfileUnit(key: key))
                            }
                            // The same sample type twice (two profiles, same labels and time) adds up in one column.
                            let column = units[u].columns.firstIndex(of: type) ?? units[u].columns.count
                            if column == units[u].columns.count { units[u].columns.append(type) }
                            units[u].members.append(ProfileUnit.Member(profile: p, column: column, events: group.events))
                        }
                    } catch {
                        problems[p] = "\(paths[p]): \(error.message)"
                    }
                }
            }
        }
        var assembler = PprofAssembler(check: check)
        for unit in units {
            do throws(OTLPProblem) {
                let payload = try assembler.build(unit)
                do {
                    try checkProfileSize(payload, labels: unit.key.labels, options: options, tooLarge: .invalidArgument)
                } catch {
                    throw OTLPProblem(error.message)
                }
                out.envelopes.append(
                    RawEnvelope(
                        tenant: tenant, labels: unit.key.labels, source: .push, format: .pprof, startNanos: unit.key.start,
                        endNanos: unit.key.start + unit.key.duration, cumulative: false, payload: payload))
            } catch {
                for member in unit.members where problems[member.profile] == nil {
                    problems[member.profile] = "\(paths[member.profile]): \(error.message)"
                }
            }
        }
        out.rejectedProfiles = problems.count
        out.acceptedProfiles = wire.profiles.count - problems.count
        out.firstProblem = problems.min { $0.key < $1.key }?.value
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
}
