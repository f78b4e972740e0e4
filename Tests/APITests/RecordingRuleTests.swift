import APICommon
import Foundation
import Hummingbird
import KilnProtos
import ObjectStore
import Query
import QueryAPI
import Recording
import SwiftProtobuf
import TestSupport
import Testing

/// `settings.v1.RecordingRulesService` as Drilldown and profilecli call it: rules created, read, updated from
/// the generation last read (and refused from an older one, also when replicas race), deleted, provisioned
/// from a file, and bad rules refused with every problem named.
@Suite struct RecordingRuleTests {
    static let cpu = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"

    static func withRulesServer(
        store: any ObjectStore, provisioned: [String: [Settings_V1_RecordingRule]] = [:], _ body: @Sendable (String) async throws -> Void
    ) async throws {
        let router = Router()
        RecordingRuleRoutes.register(on: router, rules: RecordingRules(store: store, provisioned: provisioned), access: .open)
        try await withServer(router, body)
    }

    static func call(_ url: String, _ method: String, json: String, tenant: String = "t1") async throws -> (status: Int, text: String) {
        let result = try await post(
            url + RecordingRuleRoutes.servicePath + method, body: Array(json.utf8),
            headers: [("Content-Type", "application/json"), ("X-Scope-OrgID", tenant)])
        return (result.status, result.text)
    }

    static func rule(_ answer: (status: Int, text: String)) throws -> Settings_V1_RecordingRule {
        guard answer.status == 200 else { throw TestFailure("HTTP \(answer.status) \(answer.text)") }
        return try Settings_V1_UpsertRecordingRuleResponse(jsonString: answer.text).rule
    }

    static func upsertJSON(id: String = "", generation: Int64 = 0, metric: String = "profiles_cpu_seconds_total") -> String {
        #"{"id":"\#(id)","metricName":"\#(metric)","matchers":["{__profile_type__=\"\#(cpu)\", service_name=\"checkout\"}"],"#
            + #""groupBy":["region"],"externalLabels":[{"name":"team","value":"payments"}],"generation":"\#(generation)","#
            + #""stacktraceFilter":{"functionName":{"functionName":"encoding/json.Marshal"}}}"#
    }

    @Test func createReadUpdateFromTheLastGenerationAndDelete() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-rules-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = FileObjectStore(root: folder)
        var provisioned = Settings_V1_RecordingRule()
        provisioned.id = "fromfile"
        provisioned.metricName = "fleet_cpu"
        provisioned.profileType = Self.cpu
        provisioned.matchers = [#"{__profile_type__="\#(Self.cpu)"}"#]
        provisioned.generation = 1
        provisioned.provisioned = true
        try await Self.withRulesServer(store: store, provisioned: ["t1": [provisioned]]) { url in
            let created = try Self.rule(try await Self.call(url, "UpsertRecordingRule", json: Self.upsertJSON()))
            #expect(created.id.count == 10 && created.id.allSatisfy(\.isLetter), "a generated ID: \(created.id)")
            #expect(created.generation == 1 && created.profileType == Self.cpu && !created.provisioned)
            #expect(created.stacktraceFilter.functionName.functionName == "encoding/json.Marshal")
            #expect(created.externalLabels.first?.value == "payments" && created.groupBy == ["region"])

            let got = try await Self.call(url, "GetRecordingRule", json: #"{"id":"\#(created.id)"}"#)
            #expect(got.status == 200)
            #expect(try Settings_V1_GetRecordingRuleResponse(jsonString: got.text).rule == created)

            // An update from generation 1 takes it to 2; a second one still from 1 is a conflict.
            let updated = try Self.rule(
                try await Self.call(url, "UpsertRecordingRule", json: Self.upsertJSON(id: created.id, generation: 1, metric: "cpu_total")))
            #expect(updated.generation == 2 && updated.metricName == "cpu_total")
            let stale = try await Self.call(url, "UpsertRecordingRule", json: Self.upsertJSON(id: created.id, generation: 1))
            #expect(stale.status == 409 && stale.text.contains("generation 2"), "\(stale)")

            // Replicas racing from the same generation: exactly one update wins.
            let outcomes = try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<8 {
                    group.addTask {
                        try await Self.call(
                            url, "UpsertRecordingRule", json: Self.upsertJSON(id: created.id, generation: 2, metric: "m\(i)")
                        ).status
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 == 200 }.count == 1 && outcomes.filter { $0 == 409 }.count == 7, "\(outcomes)")

            // The list holds the provisioned rule first, over binary protobuf as connect-go sends it.
            let binary = try await post(
                url + RecordingRuleRoutes.servicePath + "ListRecordingRules",
                body: try Settings_V1_ListRecordingRulesRequest().serializedBytes(),
                headers: [("Content-Type", "application/proto"), ("X-Scope-OrgID", "t1")])
            let list = try Settings_V1_ListRecordingRulesResponse(serializedBytes: binary.body)
            #expect(list.rules.map(\.id) == ["fromfile", created.id])
            #expect(list.rules.first?.provisioned == true && list.rules.last?.generation == 3)
            let other = try await Self.call(url, "ListRecordingRules", json: "{}", tenant: "t2")
            #expect(try Settings_V1_ListRecordingRulesResponse(jsonString: other.text).rules.isEmpty, "rules are per tenant")

            // Provisioned rules are changed in their file, not through the API.
            let editProvisioned = try await Self.call(url, "UpsertRecordingRule", json: Self.upsertJSON(id: "fromfile", generation: 1))
            #expect(editProvisioned.status == 403 && editProvisioned.text.contains("provisioned"), "\(editProvisioned)")
            #expect(try await Self.call(url, "DeleteRecordingRule", json: #"{"id":"fromfile"}"#).status == 403)

            #expect(try await Self.call(url, "DeleteRecordingRule", json: #"{"id":"\#(created.id)"}"#).status == 200)
            let gone = try await Self.call(url, "GetRecordingRule", json: #"{"id":"\#(created.id)"}"#)
            #expect(gone.status == 404, "\(gone)")
        }
    }

    @Test func badRulesAreRefusedWithEveryProblemNamed() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-rules-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try await Self.withRulesServer(store: FileObjectStore(root: folder)) { url in
            let bad = try await Self.call(
                url, "UpsertRecordingRule",
                json: #"{"id":"a1","metricName":"9lives","matchers":["{__profile_type__=~\"cpu.*\"}","{service_name=}"],"#
                    + #""groupBy":["bad-label"],"externalLabels":[{"name":"x y","value":"v"}]}"#)
            #expect(bad.status == 400)
            for problem in [
                "id \\\"a1\\\" must be 1-64 letters", "metric_name \\\"9lives\\\"", "must be an equality",
                "matcher \\\"{service_name=}\\\" is invalid",
                "group_by label \\\"bad-label\\\"", "external_labels name \\\"x y\\\"",
            ] {
                #expect(bad.text.contains(problem), "\(problem) not named in \(bad.text)")
            }
            let noType = try await Self.call(url, "UpsertRecordingRule", json: #"{"metricName":"m","matchers":["{service_name=\"a\"}"]}"#)
            #expect(noType.status == 400 && noType.text.contains("exactly one __profile_type__"), "\(noType)")
            let badType = try await Self.call(
                url, "UpsertRecordingRule", json: #"{"metricName":"m","matchers":["{__profile_type__=\"cpu\"}"]}"#)
            #expect(badType.status == 400 && badType.text.contains("not a profile type ID"), "\(badType)")
            let unknownField = try await Self.call(url, "UpsertRecordingRule", json: #"{"metricName":"m","prometheusDataSource":"x"}"#)
            #expect(unknownField.status == 400, "\(unknownField)")

            // The tenant's bound on rules.
            for i in 0..<RecordingRules.maxRulesPerTenant {
                _ = try Self.rule(try await Self.call(url, "UpsertRecordingRule", json: Self.upsertJSON(metric: "m\(i)")))
            }
            let tooMany = try await Self.call(url, "UpsertRecordingRule", json: Self.upsertJSON())
            #expect(tooMany.status == 429 && tooMany.text.contains("recording_rules_max"), "\(tooMany)")
        }
    }

    @Test func provisioningFileIsCheckedLikeTheAPI() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-rules-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        let text =
            #"{"acme":[{"metricName":"acme_cpu","matchers":["{__profile_type__=\"\#(Self.cpu)\"}"],"groupBy":["service_name"]},"#
            + #"{"id":"named","metricName":"acme_json","matchers":["{__profile_type__=\"\#(Self.cpu)\"}"]}]}"#
        try Data(text.utf8).write(to: file)
        let rules = try RecordingRules.provisioned(file: file.path)
        #expect(rules["acme"]?.map(\.id) == ["provisioneda", "named"])
        #expect(rules["acme"]?.allSatisfy { $0.provisioned && $0.generation == 1 && $0.profileType == Self.cpu } == true)
        try Data(#"{"acme":[{"metricName":"acme_cpu","matchers":["{service_name=\"a\"}"]}]}"#.utf8).write(to: file)
        #expect(throws: APIError.self) { try RecordingRules.provisioned(file: file.path) }
        do {
            _ = try RecordingRules.provisioned(file: file.path)
        } catch {
            #expect("\(error)".contains("rule 1 of tenant acme") && "\(error)".contains("__profile_type__"), "\(error)")
        }
    }

    /// A group-by that would record more series than a rule may is refused when the rule is written, with
    /// the count measured on the tenant's blocks (three services in the synthetic blocks; limit two here).
    @Test func aGroupByPastTheSeriesLimitIsRefusedWithItsCount() async throws {
        try await SyntheticBlocks.with { blocks in
            let engine = QueryEngine(store: blocks.store)
            let rules = RecordingRules(
                store: blocks.store,
                groupCount: RecordingRules.groupCount(engine: engine, now: { SyntheticBlocks.base / 1_000_000 + 60_000 }),
                seriesLimit: 2)
            let router = Router()
            RecordingRuleRoutes.register(on: router, rules: rules, access: .open)
            try await withServer(router) { url in
                func upsert(_ groupBy: String) async throws -> (status: Int, text: String) {
                    try await Self.call(
                        url, "UpsertRecordingRule",
                        json:
                            #"{"metricName":"profiles_recorded_cpu","matchers":["{__profile_type__=\"\#(Self.cpu)\"}"],"groupBy":[\#(groupBy)]}"#
                    )
                }
                let refused = try await upsert(#""service_name""#)
                #expect(refused.status == 400, "\(refused.text)")
                #expect(
                    refused.text.contains("group_by [service_name] makes 3 series")
                        && refused.text.contains("recording_rule_series_max = 2"), "\(refused.text)")
                let accepted = try await upsert(#""env""#)
                #expect(accepted.status == 200, "\(accepted.text)")
                // Narrowed by a matcher to one service, the same group-by fits.
                let narrowed = try await Self.call(
                    url, "UpsertRecordingRule",
                    json:
                        #"{"metricName":"profiles_recorded_cpu","matchers":["{__profile_type__=\"\#(Self.cpu)\", service_name=\"api\"}"],"groupBy":["service_name"]}"#
                )
                #expect(narrowed.status == 200, "\(narrowed.text)")
            }
        }
    }
}
