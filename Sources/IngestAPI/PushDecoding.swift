import APICommon
import Foundation
import KilnFoundation
import KilnProtos
import ProfileModel
import Records
import SwiftProtobuf

/// Connect `push.v1.PusherService/Push` requests into raw envelopes.
///
/// Each `RawSample` becomes one envelope (format pprof, source push) with its series' labels. Labels are
/// validated like Pyroscope's `ValidateLabels` (count, lengths, names; dots in names become `_`); a
/// missing `service_name` becomes `unknown_service`. `__delta__="true"` marks the profile cumulative
/// (the normaliser then subtracts the previous one); absent or `"false"` means it is already a delta or
/// a sample, as Pyroscope v2 treats every push. Other `__` labels are dropped except `__name__` and
/// `__session_id__`; annotations are dropped, as Pyroscope drops client-sent ones.
public enum ConnectPushDecoder {
    public static func envelopes(
        _ request: Push_V1_PushRequest, tenant: String, now: Date,
        options: IngestOptions
    ) throws(APIError) -> [RawEnvelope] {
        let nanos = PyroscopeTime.nanos(now)
        var out: [RawEnvelope] = []
        for series in request.series {
            guard !series.samples.isEmpty else { continue }
            let (labels, cumulative) = try seriesLabels(series.labels, options: options)
            for sample in series.samples {
                let payload = [UInt8](sample.rawProfile)
                try checkProfileSize(payload, labels: labels, options: options, tooLarge: .invalidArgument)
                var attributes: [String: String] = [:]
                if !sample.id.isEmpty { attributes["profile_id"] = sample.id }
                out.append(
                    RawEnvelope(
                        tenant: tenant, labels: labels, source: .push, format: .pprof,
                        startNanos: nanos, endNanos: nanos, cumulative: cumulative,
                        attributes: attributes, payload: payload))
            }
        }
        guard !out.isEmpty else { throw APIError(.invalidArgument, "no profiles received") }
        return out
    }

    /// Series labels of a push (Pyroscope's `ValidateLabels`) and whether `__delta__="true"` marked it cumulative.
    public static func seriesLabels(_ pairs: [Types_V1_LabelPair], options: IngestOptions) throws(APIError) -> (LabelSet, Bool) {
        guard !pairs.isEmpty else { throw APIError(.invalidArgument, "error at least one label pair is required per profile") }
        guard pairs.count <= options.maxLabelNames else {
            throw APIError.exceeding(
                .invalidArgument, "max_label_names_per_series", options.maxLabelNames,
                "profile series '\(clip(render(pairs)))' has \(pairs.count) label names")
        }
        var labels: [Label] = []
        var seen = Set<String>()
        var cumulative = false
        for pair in pairs {
            guard pair.name.utf8.count <= options.maxLabelNameLength else {
                throw APIError.exceeding(
                    .invalidArgument, "max_label_name_length", options.maxLabelNameLength,
                    "profile with labels '\(clip(render(pairs)))' has label name too long: '\(clip(pair.name))' (\(pair.name.utf8.count) bytes)"
                )
            }
            guard pair.value.utf8.count <= options.maxLabelValueLength else {
                throw APIError.exceeding(
                    .invalidArgument, "max_label_value_length", options.maxLabelValueLength,
                    "profile with labels '\(clip(render(pairs)))' has label value too long: '\(clip(pair.value))' (\(pair.value.utf8.count) bytes)"
                )
            }
            if pair.name == LabelName.delta {
                cumulative = pair.value == "true"
                continue
            }
            guard let name = LabelRules.sanitizedName(pair.name) else {
                throw APIError(
                    .invalidArgument, "invalid labels '\(clip(render(pairs)))' with error: invalid label name '\(clip(pair.name))'")
            }
            guard seen.insert(name).inserted else {
                throw APIError(.invalidArgument, "profile with labels '\(clip(render(pairs)))' has duplicate label name: '\(name)'")
            }
            if name == LabelName.metricName, !LabelRules.isValidMetricName(pair.value) {
                throw APIError(.invalidArgument, "invalid labels '\(clip(render(pairs)))' with error: invalid metric name")
            }
            guard LabelRules.allowedForIngestion(name) else { continue }
            labels.append(Label(name, pair.value))
        }
        var set = LabelSet(labels)
        if (set[LabelName.serviceName] ?? "").isEmpty { set[LabelName.serviceName] = "unknown_service" }
        return (set, cumulative)
    }

    static func render(_ pairs: [Types_V1_LabelPair]) -> String {
        "{" + pairs.map { "\($0.name)=\"\($0.value)\"" }.joined(separator: ", ") + "}"
    }
}

/// Size checks on one profile (as received, and decompressed per its gzip trailer).
public func checkProfileSize(_ payload: [UInt8], labels: LabelSet, options: IngestOptions, tooLarge: APIError.Kind) throws(APIError) {
    guard !payload.isEmpty else { throw APIError(.invalidArgument, "empty profile for \(labels)") }
    guard payload.count <= options.maxPayloadBytes else {
        throw APIError.exceeding(
            tooLarge, "max_payload_bytes", options.maxPayloadBytes,
            "the profile with labels '\(clip("\(labels)"))' exceeds the size limit (actual: \(payload.count))")
    }
    let decompressed = ProfileSize.decompressedEstimate(payload)
    guard decompressed <= options.maxProfileBytes else {
        throw APIError.exceeding(
            tooLarge, "max_profile_bytes", options.maxProfileBytes,
            "uncompressed profile payload size exceeds limit of \(ByteCount.format(options.maxProfileBytes)) (\(clip("\(labels)")): \(ByteCount.format(decompressed)))"
        )
    }
}

/// Pyroscope's legacy `POST /ingest` into one raw envelope.
public enum LegacyIngestDecoder {
    public static let prevProfileMessage = "unsupported client version. Please update github.com/grafana/pyroscope-go to the latest version"

    /// - Parameters:
    ///   - query: the decoded query parameters (first value of each).
    ///   - contentType: the request's Content-Type, if any.
    public static func envelope(
        query: [String: String], contentType: String?, body: [UInt8], tenant: String,
        now: Date, options: IngestOptions
    ) throws(APIError) -> RawEnvelope {
        let name = try PyroscopeName(parsing: query["name"] ?? "")
        let format = (query["format"] ?? "").lowercased()
        let type = (contentType ?? "").split(separator: ";").first.map { String($0).trimmingSpaces.lowercased() } ?? ""
        let from = query["from"].map { PyroscopeTime.parse($0, now: now) } ?? now
        let until = query["until"].map { PyroscopeTime.parse($0, now: now) } ?? now
        let spyName = query["spyName"].flatMap { $0.isEmpty ? nil : $0 } ?? "unknown"

        enum Kind {
            case rawPprof
            case pprofForm(String)
            case folded
        }
        let kind: Kind
        switch format {
        case "trie", "tree", "lines", "jfr", "speedscope":
            throw APIError(.unprocessable, "format \"\(format)\" is not supported by Kiln (send pprof or folded text)")
        case "pprof":
            kind = .rawPprof
        case "", "folded", "groups":
            if type == "binary/octet-stream+trie" || type == "binary/octet-stream+tree" {
                throw APIError(.unprocessable, "Content-Type \(type) is not supported by Kiln (send pprof or folded text)")
            }
            if let boundary = contentType.flatMap({ MultipartForm.boundary(contentType: $0) }) {
                kind = .pprofForm(boundary)
            } else if type == "multipart/form-data" {
                throw APIError(.invalidArgument, "multipart/form-data without a boundary")
            } else {
                kind = .folded
            }
        default:
            throw APIError(.invalidArgument, "unknown format \"\(format)\"")
        }

        var attributes: [String: String] = ["spyName": spyName]
        for key in ["sampleRate", "units", "aggregationType"] {
            if let v = query[key], !v.isEmpty { attributes[key] = v }
        }
        var labels = LabelSet()
        let application: String
        let payload: [UInt8]
        let payloadFormat: PayloadFormat
        switch kind {
        case .rawPprof:
            application = name.application
            payload = body
            payloadFormat = .pprof
        case .pprofForm(let boundary):
            let form = try MultipartForm(body: body, boundary: boundary)
            if let prev = form.field("prev_profile"), !prev.isEmpty {
                throw APIError(.invalidArgument, prevProfileMessage)
            }
            guard let profile = form.field("profile") else {
                throw APIError(.invalidArgument, "multipart form has no \"profile\" field")
            }
            if let config = form.field("sample_type_config") {
                guard (try? JSONSerialization.jsonObject(with: Data(config))) is [String: Any] else {
                    throw APIError(.invalidArgument, "sample_type_config is not a JSON object")
                }
                attributes["sample_type_config"] = String(decoding: config, as: UTF8.self)
            }
            application = name.application
            payload = Array(profile)
            payloadFormat = .pprof
        case .folded:
            // The name's suffix says what the numbers are (Pyroscope's convertMetadata).
            let folded = try name.foldedType()
            application = folded.application
            labels[LabelName.metricName] = folded.metricName
            attributes["name"] = folded.metricName
            attributes["sampleType"] = folded.sampleType
            attributes["sampleUnit"] = folded.sampleUnit
            if attributes["units"] == nil { attributes["units"] = foldedUnits(folded) }
            payload = body
            payloadFormat = .folded
        }
        labels["pyroscope_spy"] = spyName
        for (rawName, value) in name.labels where LabelRules.allowedForIngestion(rawName) {
            guard let labelName = LabelRules.sanitizedName(rawName) else {
                throw APIError(.invalidArgument, "invalid label name '\(clip(rawName))'")
            }
            labels[labelName] = value
        }
        if labels[LabelName.serviceName] == nil {
            labels[LabelName.serviceName] = application
        } else if labels["app_name"] == nil {
            labels["app_name"] = application
        }
        guard labels.count <= options.maxLabelNames else {
            throw APIError.exceeding(
                .invalidArgument, "max_label_names_per_series", options.maxLabelNames,
                "profile series '\(clip("\(labels)"))' has \(labels.count) label names")
        }
        for l in labels.labels where l.name.utf8.count > options.maxLabelNameLength {
            throw APIError.exceeding(
                .invalidArgument, "max_label_name_length", options.maxLabelNameLength,
                "label name '\(clip(l.name))' is \(l.name.utf8.count) bytes")
        }
        for l in labels.labels where l.value.utf8.count > options.maxLabelValueLength {
            throw APIError.exceeding(
                .invalidArgument, "max_label_value_length", options.maxLabelValueLength,
                "the value of label '\(clip(l.name))' is \(l.value.utf8.count) bytes")
        }
        try checkProfileSize(payload, labels: labels, options: options, tooLarge: .bodyTooLarge)
        // `/ingest` profiles are never cumulative: Pyroscope labels them __delta__="false".
        return RawEnvelope(
            tenant: tenant, labels: labels, source: .push, format: payloadFormat,
            startNanos: PyroscopeTime.nanos(from), endNanos: PyroscopeTime.nanos(until),
            cumulative: false, attributes: attributes, payload: payload)
    }

    /// The `units` the normaliser's folded reader understands, for a name suffix that implies them.
    static func foldedUnits(_ t: PyroscopeName.FoldedType) -> String {
        switch (t.sampleType, t.sampleUnit) {
        case (_, "bytes"): "bytes"
        case (_, "nanoseconds"): "lock_nanoseconds"
        case ("goroutines", _): "goroutines"
        case (let type, _) where type.hasSuffix("objects"): "objects"
        default: "samples"
        }
    }
}

/// `application/x-www-form-urlencoded` query decoding (`+` is a space, `%XX` a byte); the first value of
/// a repeated key wins.
