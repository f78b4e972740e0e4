import APICommon
import Foundation
import Hummingbird
import KilnProtos
import ObjectStore
import QueryAPI
import SwiftProtobuf
import TestSupport
import Testing

/// `settings.v1.SettingsService` as Drilldown calls it: JSON from the browser, binary from connect-go.
@Suite struct SettingsTests {
    static func withSettingsServer(store: any ObjectStore, _ body: @Sendable (String) async throws -> Void) async throws {
        let router = Router()
        SettingsRoutes.register(on: router, settings: TenantSettings(store: store), access: .open)
        try await withServer(router, body)
    }

    static func call<Resp: SwiftProtobuf.Message>(_ url: String, _ method: String, json: String, tenant: String, as: Resp.Type) async throws
        -> Resp
    {
        let result = try await post(
            url + SettingsRoutes.servicePath + method, body: Array(json.utf8),
            headers: [("Content-Type", "application/json"), ("X-Scope-OrgID", tenant)])
        guard result.status == 200 else { throw TestFailure("\(method): HTTP \(result.status) \(result.text)") }
        return try Resp(jsonUTF8Bytes: result.body)
    }

    @Test("set, get and delete per tenant; the store, not the server, keeps them (a second server sees them)")
    func roundTripAcrossServers() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-settings-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = FileObjectStore(root: folder)
        try await Self.withSettingsServer(store: store) { url in
            let empty = try await Self.call(url, "Get", json: "{}", tenant: "t1", as: Settings_V1_GetSettingsResponse.self)
            #expect(empty.settings.isEmpty)
            let set = try await Self.call(
                url, "Set", json: #"{"setting":{"name":"pluginSettings","value":"{\"maxNodes\":16384}"}}"#,
                tenant: "t1", as: Settings_V1_SetSettingsResponse.self)
            #expect(set.setting.name == "pluginSettings")
            #expect(set.setting.modifiedAt > 0, "an unset modifiedAt becomes the time of the write")
        }
        // A second server on the same store: another kiln-query replica, or this one after a restart.
        try await Self.withSettingsServer(store: store) { url in
            let request = Settings_V1_GetSettingsRequest()
            let binary = try await post(
                url + SettingsRoutes.servicePath + "Get", body: try request.serializedBytes(),
                headers: [("Content-Type", "application/proto"), ("X-Scope-OrgID", "t1")])
            #expect(binary.status == 200)
            let got = try Settings_V1_GetSettingsResponse(serializedBytes: binary.body)
            #expect(got.settings.map(\.name) == ["pluginSettings"])
            #expect(got.settings.first?.value == #"{"maxNodes":16384}"#)
            let other = try await Self.call(url, "Get", json: "{}", tenant: "t2", as: Settings_V1_GetSettingsResponse.self)
            #expect(other.settings.isEmpty, "settings are per tenant")
            _ = try await Self.call(
                url, "Delete", json: #"{"name":"pluginSettings"}"#, tenant: "t1", as: Settings_V1_DeleteSettingsResponse.self)
            #expect(try await Self.call(url, "Get", json: "{}", tenant: "t1", as: Settings_V1_GetSettingsResponse.self).settings.isEmpty)
        }
    }

    @Test("the newest modifiedAt wins; an older write is answered with what is stored")
    func lastWriteWins() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-settings-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let settings = TenantSettings(store: FileObjectStore(root: folder))
        func setting(_ value: String, at millis: Int64) -> Settings_V1_Setting {
            var s = Settings_V1_Setting()
            s.name = "theme"
            s.value = value
            s.modifiedAt = millis
            return s
        }
        #expect(try await settings.set(setting("dark", at: 2000), tenant: "t").value == "dark")
        #expect(try await settings.set(setting("light", at: 1000), tenant: "t").value == "dark")
        #expect(try await settings.set(setting("light", at: 3000), tenant: "t").value == "light")
        #expect(try await settings.all(tenant: "t").map(\.value) == ["light"])
    }

    @Test("bad names, oversized values and fields Kiln does not know are refused with their reason")
    func refusals() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-settings-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try await Self.withSettingsServer(store: FileObjectStore(root: folder)) { url in
            for (json, reason) in [
                (#"{"setting":{"name":"../x","value":"v"}}"#, "setting name"),
                (#"{"setting":{"name":"big","value":"\#(String(repeating: "x", count: 70_000))"}}"#, "settings_max_value_bytes"),
                (#"{"setting":{"name":"a","value":"v","owner":"x"}}"#, "owner"),
            ] {
                let result = try await post(
                    url + SettingsRoutes.servicePath + "Set", body: Array(json.utf8),
                    headers: [("Content-Type", "application/json")])
                #expect(result.status == 400, "\(reason): \(result.text.prefix(200))")
                #expect(result.text.contains(reason), "\(result.text.prefix(300))")
            }
        }
    }
}

@Suite struct FeatureFlagTests {
    @Test("GetFeatureFlags lists Pyroscope's feature names with what Kiln offers, in JSON and binary")
    func featureFlags() async throws {
        let router = Router()
        FeatureFlagRoutes.register(on: router, access: .open)
        try await withServer(router) { url in
            let json = try await post(url + FeatureFlagRoutes.path, body: Array("{}".utf8), headers: [("Content-Type", "application/json")])
            #expect(json.status == 200, "\(json.text)")
            let answer = try Capabilities_V1_GetFeatureFlagsResponse(jsonUTF8Bytes: json.body)
            let flags = Dictionary(uniqueKeysWithValues: answer.featureFlags.map { ($0.name, $0.enabled) })
            #expect(flags["pyroscopeRuler"] == false, "no ruler evaluates the rules: Drilldown must not offer them")
            #expect(Set(flags.keys).isSuperset(of: ["v2StorageLayer", "pyroscopeRuler", "pyroscopeRulerFunctions", "utf8LabelNames"]))
            let withRuler = Dictionary(uniqueKeysWithValues: FeatureFlagRoutes.flags(rulerRunning: true).map { ($0.name, $0.enabled) })
            #expect(withRuler["pyroscopeRuler"] == true && withRuler["pyroscopeRulerFunctions"] == true)
            let binary = try await post(
                url + FeatureFlagRoutes.path, body: try Capabilities_V1_GetFeatureFlagsRequest().serializedBytes(),
                headers: [("Content-Type", "application/proto")])
            #expect(try Capabilities_V1_GetFeatureFlagsResponse(serializedBytes: binary.body) == answer)
        }
    }
}
