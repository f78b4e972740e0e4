import Foundation
import KilnProtos
import TestSupport
import Testing

@testable import QueryAPI

/// Every field of every query request, read from the `.proto` files the generated types come from, set one
/// at a time to a value other than its default: a field Kiln does not honour must be refused naming it;
/// a field it honours must not be (its effect is checked by each feature's own tests). So no field, present
/// or added to the protos later, can be answered as if it had not been sent.
@Suite struct DescriptorFieldTests {
    struct Field {
        var name: String
        var type: String
        var repeated: Bool
        var json: String {
            // protoc's JSON name: lower camel case of the field name (profile_typeID → profileTypeID).
            let parts = name.split(separator: "_")
            return String(parts[0]) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        }
    }

    struct Protos {
        var messages: [String: [Field]] = [:]
        var enums: [String: [String]] = [:]

        init() throws {
            let dir = TestEnvironment.repoRoot.appendingPathComponent("Sources/KilnProtos/proto")
            for file in ["querier/v1/querier.proto", "types/v1/types.proto"] {
                let text = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
                var current: (kind: String, name: String)?
                for raw in text.split(separator: "\n") {
                    let line = raw.split(separator: "/", maxSplits: 1).first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
                    let words = line.split(separator: " ").map(String.init)
                    if words.count >= 2, ["message", "enum"].contains(words[0]) {
                        current = (words[0], words[1])
                        if words[0] == "message" { messages[words[1], default: []] = [] } else { enums[words[1]] = [] }
                        if line.hasSuffix("}") { current = nil }
                        continue
                    }
                    if line == "}" {
                        current = nil
                        continue
                    }
                    guard let current, line.hasSuffix(";"), line.contains("=") else { continue }
                    if current.kind == "enum" {
                        enums[current.name]!.append(words[0])
                    } else {
                        let repeated = words[0] == "repeated"
                        let rest = ["repeated", "optional"].contains(words[0]) ? Array(words.dropFirst()) : words
                        let type = rest[0].split(separator: ".").last.map(String.init) ?? rest[0]
                        messages[current.name]!.append(Field(name: rest[1], type: type, repeated: repeated))
                    }
                }
            }
        }

        /// A JSON value other than the default for a field of `type`, or nil for a message type (whose fields
        /// are set one at a time instead).
        func value(_ field: Field) -> Any? {
            let scalar: Any?
            switch field.type {
            case "string": scalar = "x"
            case "bytes": scalar = "eA=="
            case "bool": scalar = true
            case "double", "float": scalar = 2.5
            case "int32", "int64", "uint32", "uint64", "sint32", "sint64": scalar = 7
            default:
                if let values = enums[field.type] { scalar = values.count > 1 ? values[1] : values[0] } else { scalar = nil }
            }
            guard let scalar else { return nil }
            return field.repeated ? [scalar] : scalar
        }

        /// Every field of `message` set alone: `path` names it (message fields expanded, three levels deep),
        /// `place` is where its value goes in the request JSON (a repeated message gets one element).
        func settings(of message: String, depth: Int = 0) -> [(path: [String], place: [String], value: Any)] {
            var out: [(path: [String], place: [String], value: Any)] = []
            for field in messages[message] ?? [] {
                if let v = value(field) {
                    out.append(([field.json], [field.json], v))
                    continue
                }
                guard depth < 3 else { continue }
                for inner in settings(of: field.type, depth: depth + 1) {
                    if field.repeated {
                        out.append(([field.json] + inner.path, [field.json], [DescriptorFieldTests.merged([:], inner.place, inner.value)]))
                    } else {
                        out.append(([field.json] + inner.path, [field.json] + inner.place, inner.value))
                    }
                }
            }
            return out
        }
    }

    static func merged(_ base: [String: Any], _ path: [String], _ value: Any) -> [String: Any] {
        var out = base
        if path.count == 1 {
            out[path[0]] = value
        } else {
            out[path[0]] = merged(base[path[0]] as? [String: Any] ?? [:], Array(path.dropFirst()), value)
        }
        return out
    }

    typealias Q = QueryAPITests

    @Test("each field is honoured or refused by name, for every query RPC")
    func everyFieldHonouredOrRefused() async throws {
        let protos = try Protos()
        let selection: [String: Any] = ["profileTypeID": Q.cpu, "labelSelector": "{}", "start": Q.startMillis, "end": Q.endMillis]
        let table: [(method: String, message: String, fields: RequestFields, base: [String: Any])] = [
            ("ProfileTypes", "ProfileTypesRequest", .profileTypes, ["start": Q.startMillis, "end": Q.endMillis]),
            ("LabelNames", "LabelNamesRequest", .labelNames, ["start": Q.startMillis, "end": Q.endMillis]),
            ("LabelValues", "LabelValuesRequest", .labelValues, ["name": "service_name", "start": Q.startMillis, "end": Q.endMillis]),
            ("Series", "SeriesRequest", .series, ["start": Q.startMillis, "end": Q.endMillis]),
            ("SelectMergeStacktraces", "SelectMergeStacktracesRequest", .selectMergeStacktraces, selection),
            (
                "SelectMergeSpanProfile", "SelectMergeSpanProfileRequest", .selectMergeSpanProfile,
                selection.merging(["spanSelector": ["00000000000000ff"]]) { $1 }
            ),
            ("SelectMergeProfile", "SelectMergeProfileRequest", .selectMergeProfile, selection),
            ("SelectSeries", "SelectSeriesRequest", .selectSeries, selection.merging(["step": 15]) { $1 }),
            ("Diff", "DiffRequest", .diff, ["left": selection, "right": selection]),
            ("GetProfileStats", "GetProfileStatsRequest", .profileStats, [:]),
            ("SelectHeatmap", "SelectHeatmapRequest", .selectHeatmap, selection.merging(["step": 15]) { $1 }),
            ("AnalyzeQuery", "AnalyzeQueryRequest", .analyzeQuery, ["query": Q.cpu + "{}", "start": Q.startMillis, "end": Q.endMillis]),
        ]
        // As JSON text: the server closure is Sendable, [String: Any] is not.
        let rpcs = table.map { (method: $0.method, message: $0.message, fields: $0.fields, base: Self.json($0.base)) }
        try await Q().withQueryServer { _, url in
            var checked = 0
            for rpc in rpcs {
                let baseObject = try #require(try JSONSerialization.jsonObject(with: Data(rpc.base.utf8)) as? [String: Any])
                try #require(protos.messages[rpc.message] != nil, "\(rpc.message) not found in the protos")
                let base = try await RequestFieldTests.postJSON(url, "/querier.v1.QuerierService/" + rpc.method, rpc.base)
                #expect(base.status == 200, "\(rpc.method) base request: \(base.text.prefix(300))")
                for setting in protos.settings(of: rpc.message) {
                    let body = Self.merged(baseObject, setting.place, setting.value)
                    let path = setting.path.joined(separator: ".")
                    let result = try await RequestFieldTests.postJSON(url, "/querier.v1.QuerierService/" + rpc.method, Self.json(body))
                    let error = RequestFieldTests.connectError(result)
                    let refused = result.status == 400 && error?.code == "unimplemented"
                    let honoured = rpc.fields.honoured.contains { path == $0 || path.hasPrefix($0 + ".") }
                    if honoured {
                        #expect(!refused, "\(rpc.method).\(path) is honoured but was refused: \(result.text.prefix(300))")
                    } else {
                        #expect(
                            refused,
                            "\(rpc.method).\(path) is not honoured but was answered: HTTP \(result.status) \(result.text.prefix(200))")
                        // The refusal names the field, or the message field that holds it.
                        let named = (1...setting.path.count).contains { k in
                            error?.message.contains(RequestFields.protoName(setting.path.prefix(k).joined(separator: "."))) == true
                        }
                        #expect(named, "\(rpc.method).\(path): \(error?.message ?? "-")")
                    }
                    checked += 1
                }
            }
            #expect(checked > 60, "only \(checked) fields were tried")
            print("request fields tried: \(checked)")
        }
    }

    static func json(_ object: [String: Any]) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
    }

    @Test("every field a RequestFields list names exists in the protos (a misspelt name would refuse a field it meant to honour)")
    func honouredNamesExist() throws {
        let protos = try Protos()
        let lists: [(String, RequestFields)] = [
            ("ProfileTypesRequest", .profileTypes), ("LabelNamesRequest", .labelNames), ("LabelValuesRequest", .labelValues),
            ("SeriesRequest", .series), ("SelectMergeStacktracesRequest", .selectMergeStacktraces),
            ("SelectMergeSpanProfileRequest", .selectMergeSpanProfile), ("SelectMergeProfileRequest", .selectMergeProfile),
            ("SelectSeriesRequest", .selectSeries), ("DiffRequest", .diff),
        ]
        for (message, fields) in lists {
            for path in fields.honoured {
                var type = message
                for part in path.split(separator: ".") {
                    let field = protos.messages[type]?.first { $0.json == part }
                    #expect(field != nil, "\(message): \(path) names no field (\(part) not in \(type))")
                    type = field?.type ?? ""
                }
            }
        }
    }
}
