// libFuzzer target over every request decoder the HTTP side serves (built by scripts/fuzz.sh through
// SwiftPM with KILN_FUZZ=1, every module instrumented): Connect unary bodies, binary and JSON, identity and
// gzip, for each query, settings and push RPC, followed by the checks their routes make (fields Kiln does
// not honour, label selectors, profile type IDs, span IDs); and the legacy `POST /ingest` body (raw pprof,
// multipart forms, folded text) with its `name` parameter. The first input byte picks the decoder and the
// codec; any input must end in a refusal (an error), never in a crash, a hang or unbounded memory.
import APICommon
import Foundation
import IngestAPI
import KilnProtos
import ProfileModel
import Query
import QueryAPI
import SwiftProtobuf

/// Decodes `body` as the route for `M` does, then runs the route's own checks on the result.
private func connect<M: SwiftProtobuf.Message>(
    _ type: M.Type, _ fields: RequestFields, _ body: [UInt8], _ codec: Connect.Codec, _ encoding: String,
    unknownFields: Connect.UnknownFields = .refuse, selectors: (M) -> [String] = { _ in [] }, types: (M) -> [String] = { _ in [] },
    then: (M) throws -> Void = { _ in }
) {
    guard let message: M = try? Connect.decode(body, codec: codec, encoding: encoding, limit: 1 << 20, unknownFields: unknownFields),
        (try? fields.check(message)) != nil
    else { return }
    for text in selectors(message) { _ = try? LabelSelector(parsing: text) }
    for text in types(message) { _ = ProfileTypeID(parsing: text) }
    _ = try? then(message)
}

/// Legacy ingest: the next byte picks the format and Content-Type, the bytes up to the first newline are the
/// `name` parameter (`app.cpu{k=v}`), the rest is the body.
private func legacyIngest(_ input: ArraySlice<UInt8>) {
    guard let mode = input.first else { return }
    let rest = input.dropFirst()
    let newline = rest.firstIndex(of: 10) ?? rest.endIndex
    let name = String(decoding: rest[..<newline], as: UTF8.self)
    let body = Array(rest[(newline == rest.endIndex ? newline : newline + 1)...])
    let variants: [(format: String, contentType: String?)] = [
        ("folded", nil), ("", "text/plain"), ("pprof", "application/octet-stream"),
        ("", "multipart/form-data; boundary=kilnfuzz"), ("pprof", "multipart/form-data; boundary=\"kiln fuzz\""),
        ("groups", "multipart/form-data"), ("lines", nil),
    ]
    let variant = variants[Int(mode) % variants.count]
    _ = try? LegacyIngestDecoder.envelope(
        query: ["name": name, "format": variant.format, "from": "now-10s", "until": "now", "sampleRate": "100"],
        contentType: variant.contentType, body: body, tenant: "fuzz", now: Date(timeIntervalSince1970: 1_700_000_000),
        options: IngestOptions())
}

/// libFuzzer's driver (LLVM 11+). SwiftPM links an executable's `main` to its module's entry point, so the
/// entry point hands over to libFuzzer rather than libFuzzer supplying `main`.
@_silgen_name("LLVMFuzzerRunDriver")
private func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32
) -> Int32

@main
enum RequestDecoderFuzzMain {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(runFuzzerDriver(&argc, &argv, requestDecoderFuzz))
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func requestDecoderFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let pick = Int(data[0])
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let codec: Connect.Codec = pick & 1 == 0 ? .proto : .json
    let encoding = pick & 2 == 0 ? "identity" : "gzip"
    switch (pick >> 2) % 18 {
    case 0: connect(Querier_V1_ProfileTypesRequest.self, .profileTypes, input, codec, encoding)
    case 1: connect(Types_V1_LabelNamesRequest.self, .labelNames, input, codec, encoding, selectors: \.matchers)
    case 2: connect(Types_V1_LabelValuesRequest.self, .labelValues, input, codec, encoding, selectors: \.matchers)
    case 3: connect(Querier_V1_SeriesRequest.self, .series, input, codec, encoding, selectors: \.matchers)
    case 4:
        connect(
            Querier_V1_SelectMergeStacktracesRequest.self, .selectMergeStacktraces, input, codec, encoding,
            selectors: { [$0.labelSelector] }, types: { [$0.profileTypeID] }, then: { _ = try Selection.spanIDs($0.spanSelector) })
    case 5:
        connect(
            Querier_V1_SelectMergeSpanProfileRequest.self, .selectMergeSpanProfile, input, codec, encoding,
            selectors: { [$0.labelSelector] }, types: { [$0.profileTypeID] }, then: { _ = try Selection.spanIDs($0.spanSelector) })
    case 6:
        connect(
            Querier_V1_SelectMergeProfileRequest.self, .selectMergeProfile, input, codec, encoding, selectors: { [$0.labelSelector] },
            types: { [$0.profileTypeID] })
    case 7:
        connect(
            Querier_V1_SelectSeriesRequest.self, .selectSeries, input, codec, encoding, selectors: { [$0.labelSelector] },
            types: { [$0.profileTypeID] })
    case 8:
        connect(
            Querier_V1_DiffRequest.self, .diff, input, codec, encoding, selectors: { [$0.left.labelSelector, $0.right.labelSelector] },
            types: { [$0.left.profileTypeID, $0.right.profileTypeID] })
    case 9: connect(Types_V1_GetProfileStatsRequest.self, .profileStats, input, codec, encoding)
    case 10: connect(Querier_V1_AnalyzeQueryRequest.self, .analyzeQuery, input, codec, encoding, selectors: { [$0.query] })
    case 11:
        connect(
            Querier_V1_SelectHeatmapRequest.self, .selectHeatmap, input, codec, encoding, selectors: { [$0.labelSelector] },
            types: { [$0.profileTypeID] })
    case 12: connect(Settings_V1_GetSettingsRequest.self, RequestFields([]), input, codec, encoding)
    case 13: connect(Settings_V1_SetSettingsRequest.self, RequestFields(["setting"]), input, codec, encoding)
    case 14: connect(Settings_V1_DeleteSettingsRequest.self, RequestFields(["name"]), input, codec, encoding)
    case 15:
        // Push takes unknown fields (newer SDKs add metadata) and checks every series and profile.
        connect(
            Push_V1_PushRequest.self, RequestFields([]), input, codec, encoding, unknownFields: .ignore,
            then: {
                _ = try ConnectPushDecoder.envelopes(
                    $0, tenant: "fuzz", now: Date(timeIntervalSince1970: 1_700_000_000), options: IngestOptions())
            })
    default: legacyIngest(input[...])
    }
    return 0
}
