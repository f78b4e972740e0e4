import APICommon
import Foundation
import Hummingbird
import KilnProtos
import ObjectStore
import QueryAPI
import SwiftProtobuf
import TestSupport
import Testing

/// `adhocprofiles.v1.AdHocProfileService` as Drilldown's ad hoc view calls it: a real pprof file uploaded,
/// its flame graph per sample type checked against what `go tool pprof` printed for it (EXPECTED.json), the
/// list, a diff, and the refusals.
@Suite struct AdHocProfileTests {
    static func withAdHocServer(store: any ObjectStore, _ body: @Sendable (String) async throws -> Void) async throws {
        let router = Router()
        AdHocRoutes.register(on: router, profiles: AdHocProfiles(store: store), access: .open, options: QueryOptions())
        try await withServer(router, body)
    }

    static func call(_ url: String, _ method: String, json: String, tenant: String = "t1") async throws -> (status: Int, text: String) {
        let result = try await post(
            url + AdHocRoutes.servicePath + method, body: Array(json.utf8),
            headers: [("Content-Type", "application/json"), ("X-Scope-OrgID", tenant)])
        return (result.status, result.text)
    }

    static func decode<M: SwiftProtobuf.Message>(_ answer: (status: Int, text: String), as: M.Type) throws -> M {
        guard answer.status == 200 else { throw TestFailure("HTTP \(answer.status) \(answer.text)") }
        return try M(jsonString: answer.text)
    }

    /// The flamebearer's total and the self value per function name: levels are [offset, total, self, name] × n,
    /// or in a diff [left offset, total, self, right offset, total, self, name] × n (left self counted).
    static func flame(_ json: String, width: Int = 4) throws -> (
        total: Int64, selfByName: [String: Int64], metadata: [String: Any], object: [String: Any]
    ) {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let graph = try #require(object["flamebearer"] as? [String: Any])
        let names = try #require(graph["names"] as? [String])
        let levels = try #require(graph["levels"] as? [[Int64]])
        var selfByName: [String: Int64] = [:]
        for level in levels {
            for i in stride(from: 0, to: level.count, by: width) {
                selfByName[names[Int(level[i + width - 1])], default: 0] += level[i + 2]
            }
        }
        return ((graph["numTicks"] as? NSNumber)?.int64Value ?? -1, selfByName, object["metadata"] as? [String: Any] ?? [:], object)
    }

    static func expected(_ file: String) throws -> [String: Any] {
        let data = try Data(contentsOf: TestEnvironment.fixturesDir.appendingPathComponent("pprof/EXPECTED.json"))
        let all = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try #require((all["files"] as? [String: Any])?[file] as? [String: Any])
    }

    @Test(.requires(.fixtures))
    func uploadGetListAndDiffARealProfile() async throws {
        let file = "go_cpu_ap-query_2026.pb.gz"
        let facts = try Self.expected(file)
        let totals = try #require(facts["totals"] as? [[String: Any]])
        let typeNames = totals.map { $0["type"] as? String ?? "" }
        let firstTotal = (totals[0]["total"] as? NSNumber)?.int64Value
        let topTotal = (facts["top_total"] as? NSNumber)?.int64Value
        let topFlat = (facts["top5_flat"] as? [[String: Any]] ?? []).map {
            ($0["name"] as? String ?? "", ($0["flat"] as? NSNumber)?.int64Value ?? -1)
        }
        let bytes = try fixture(file)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-adhoc-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = FileObjectStore(root: folder)
        try await Self.withAdHocServer(store: store) { url in
            let upload = try Self.decode(
                try await Self.call(
                    url, "Upload", json: #"{"name":"my cpu/profile.pb.gz","profile":"\#(Data(bytes).base64EncodedString())"}"#),
                as: Adhocprofiles_V1_AdHocProfilesGetResponse.self)
            #expect(upload.name == "my_cpu_profile.pb.gz", "names keep [a-zA-Z0-9._-] only, as Pyroscope's")
            #expect(upload.profileTypes == typeNames)
            #expect(upload.profileType == "samples", "the first sample type unless one is asked for")
            let first = try Self.flame(upload.flamebearerProfile)
            #expect(first.total == firstTotal)
            #expect(first.metadata["name"] as? String == "samples" && first.metadata["format"] as? String == "single")

            // Get the CPU time: the total and every function's flat value are what go tool pprof printed.
            let cpu = try Self.decode(
                try await Self.call(url, "Get", json: #"{"id":"\#(upload.id)","profileType":"cpu"}"#),
                as: Adhocprofiles_V1_AdHocProfilesGetResponse.self)
            #expect(cpu.profileType == "cpu" && cpu.uploadedAt == upload.uploadedAt && cpu.name == upload.name)
            let graph = try Self.flame(cpu.flamebearerProfile)
            #expect(graph.total == topTotal)
            for (name, flat) in topFlat { #expect(graph.selfByName[name, default: 0] == flat, "flat of \(name)") }
            #expect(
                graph.metadata["units"] as? String == "samples" && (graph.metadata["sampleRate"] as? NSNumber)?.intValue == 1_000_000_000)

            // A second upload, then the list (newest first), over binary protobuf as connect-go sends it.
            let second = try Self.decode(
                try await Self.call(url, "Upload", json: #"{"name":"again.pb.gz","profile":"\#(Data(bytes).base64EncodedString())"}"#),
                as: Adhocprofiles_V1_AdHocProfilesGetResponse.self)
            let binary = try await post(
                url + AdHocRoutes.servicePath + "List", body: try Adhocprofiles_V1_AdHocProfilesListRequest().serializedBytes(),
                headers: [("Content-Type", "application/proto"), ("X-Scope-OrgID", "t1")])
            #expect(binary.status == 200)
            let list = try Adhocprofiles_V1_AdHocProfilesListResponse(serializedBytes: binary.body)
            #expect(list.profiles.map(\.id) == [second.id, upload.id])
            #expect(list.profiles.last?.name == upload.name && list.profiles.last?.uploadedAt == upload.uploadedAt)
            let other = try Self.decode(
                try await Self.call(url, "List", json: "{}", tenant: "t2"), as: Adhocprofiles_V1_AdHocProfilesListResponse.self)
            #expect(other.profiles.isEmpty, "ad hoc profiles are per tenant")

            // The diff of the file with itself: both sides hold the whole total.
            let diff = try Self.decode(
                try await Self.call(url, "Diff", json: #"{"leftId":"\#(upload.id)","rightId":"\#(second.id)","profileType":"cpu"}"#),
                as: Adhocprofiles_V1_AdHocProfilesDiffResponse.self)
            #expect(diff.profileTypes == ["samples", "cpu"])
            let double = try Self.flame(diff.flamebearerProfile, width: 7)
            for (name, flat) in topFlat { #expect(double.selfByName[name, default: 0] == flat, "left flat of \(name) in the diff") }
            #expect(double.metadata["format"] as? String == "double")
            #expect((double.object["leftTicks"] as? NSNumber)?.int64Value == graph.total)
            #expect((double.object["rightTicks"] as? NSNumber)?.int64Value == graph.total)

            // Refusals name what is wrong.
            let unknownType = try await Self.call(url, "Get", json: #"{"id":"\#(upload.id)","profileType":"alloc_space"}"#)
            #expect(unknownType.status == 400 && unknownType.text.contains("samples, cpu"), "\(unknownType)")
            let missing = try await Self.call(url, "Get", json: #"{"id":"01J00000000000000000000000-gone"}"#)
            #expect(missing.status == 404 && missing.text.contains("not found"), "\(missing)")
            let badID = try await Self.call(url, "Get", json: #"{"id":"../t2/adhoc/x"}"#)
            #expect(badID.status == 400 && badID.text.contains("invalid"), "\(badID)")
            let notPprof = try await Self.call(
                url, "Upload", json: #"{"name":"stacks.txt","profile":"\#(Data("main;work 10\n".utf8).base64EncodedString())"}"#)
            #expect(notPprof.status == 400 && notPprof.text.contains("not a pprof file"), "\(notPprof)")
            let notBase64 = try await Self.call(url, "Upload", json: #"{"name":"x","profile":"%%%"}"#)
            #expect(notBase64.status == 400 && notBase64.text.contains("base64"), "\(notBase64)")
            #expect(
                try await Self.decode(try await Self.call(url, "List", json: "{}"), as: Adhocprofiles_V1_AdHocProfilesListResponse.self)
                    .profiles.count == 2)
        }
    }
}
