import APICommon
import Foundation
import Hummingbird
import KilnProtos
import ObjectStore

/// `settings.v1.SettingsService`: per-tenant key/value settings, as Grafana's Profiles Drilldown app
/// reads them on every flame-graph and diff view. Each setting is one object, `<tenant>/settings/<name>.json`,
/// in the block store beside the tenant's blocks (not a block folder: block listings skip names that are not
/// ULIDs), so every kiln-query replica sees the same settings and they outlive restarts. The write with the
/// newest `modifiedAt` wins; an older one is answered with the setting as stored.
public struct TenantSettings: Sendable {
    public static let maxValueBytes = 64 * 1024
    public static let maxSettings = 100
    public static let maxNameBytes = 128

    let store: any ObjectStore
    let now: @Sendable () -> Date

    public init(store: any ObjectStore, now: @escaping @Sendable () -> Date = Date.init) {
        self.store = store
        self.now = now
    }

    static func prefix(_ tenant: String) -> String { "\(tenant)/settings/" }
    static func key(_ tenant: String, _ name: String) -> String { prefix(tenant) + name + ".json" }

    struct Stored: Codable {
        var name: String
        var value: String
        var modifiedAt: Int64
    }

    static func validate(name: String) throws(APIError) {
        guard !name.isEmpty, name.utf8.count <= maxNameBytes,
            name.utf8.allSatisfy(AdHocProfiles.isNameByte), name != ".", name != ".."
        else {
            throw APIError(
                .invalidArgument, "setting name \"\(name.prefix(200))\" must be 1-\(maxNameBytes) letters, digits, '.', '-' or '_'")
        }
    }

    public func all(tenant: String) async throws -> [Settings_V1_Setting] {
        let listing = try await store.list(prefix: Self.prefix(tenant), delimiter: nil)
        var out: [Settings_V1_Setting] = []
        for object in listing.objects where object.key.hasSuffix(".json") {
            // None: deleted between the listing and the read.
            if let stored = try await stored(object.key) { out.append(Self.message(stored)) }
        }
        return out.sorted { $0.name < $1.name }
    }

    /// Stores `setting` unless a newer write of the same name is stored; returns what is stored after.
    public func set(_ setting: Settings_V1_Setting, tenant: String) async throws -> Settings_V1_Setting {
        try Self.validate(name: setting.name)
        guard setting.value.utf8.count <= Self.maxValueBytes else {
            throw APIError.exceeding(
                .invalidArgument, "settings_max_value_bytes", Self.maxValueBytes,
                "setting \(setting.name) has a value of \(setting.value.utf8.count) bytes")
        }
        let key = Self.key(tenant, setting.name)
        let existing = try await stored(key)
        if existing == nil {
            let count = try await store.list(prefix: Self.prefix(tenant), delimiter: nil).objects.count
            guard count < Self.maxSettings else {
                throw APIError.exceeding(.invalidArgument, "settings_max_count", Self.maxSettings, "tenant \(tenant) has \(count) settings")
            }
        }
        let modifiedAt = setting.modifiedAt > 0 ? setting.modifiedAt : Int64(now().timeIntervalSince1970 * 1000)
        if let existing, existing.modifiedAt > modifiedAt { return Self.message(existing) }
        let stored = Stored(name: setting.name, value: setting.value, modifiedAt: modifiedAt)
        try await store.put(key, Array(try JSONEncoder().encode(stored)))
        return Self.message(stored)
    }

    /// The setting stored at `key`, or nil when there is none. Any other failure of the store is an error:
    /// taking it for "none" could let an older write replace a newer one.
    func stored(_ key: String) async throws -> Stored? {
        let bytes: [UInt8]
        do {
            bytes = try await store.get(key)
        } catch let error as ObjectStoreError where error.kind == .notFound {
            return nil
        }
        return try JSONDecoder().decode(Stored.self, from: Data(bytes))
    }

    public func delete(name: String, tenant: String) async throws {
        try Self.validate(name: name)
        try await store.delete(Self.key(tenant, name))
    }

    static func message(_ stored: Stored) -> Settings_V1_Setting {
        var m = Settings_V1_Setting()
        m.name = stored.name
        m.value = stored.value
        m.modifiedAt = stored.modifiedAt
        return m
    }
}

/// The routes of `settings.v1.SettingsService` (Connect unary, binary and JSON).
public enum SettingsRoutes {
    public static let servicePath = "/settings.v1.SettingsService/"

    public static func register<Context: RequestContext>(on router: Router<Context>, settings: TenantSettings, access: TenantAccess) {
        QueryRoutes.unary(router, path: servicePath + "Get", access: access, fields: RequestFields([])) {
            (_: Settings_V1_GetSettingsRequest, tenant) in
            var out = Settings_V1_GetSettingsResponse()
            out.settings = try await settings.all(tenant: tenant)
            return out
        }
        QueryRoutes.unary(router, path: servicePath + "Set", access: access, fields: RequestFields(["setting"])) {
            (r: Settings_V1_SetSettingsRequest, tenant) in
            guard r.hasSetting else { throw APIError(.invalidArgument, "SetSettingsRequest needs a setting") }
            var out = Settings_V1_SetSettingsResponse()
            out.setting = try await settings.set(r.setting, tenant: tenant)
            return out
        }
        QueryRoutes.unary(router, path: servicePath + "Delete", access: access, fields: RequestFields(["name"])) {
            (r: Settings_V1_DeleteSettingsRequest, tenant) in
            try await settings.delete(name: r.name, tenant: tenant)
            return Settings_V1_DeleteSettingsResponse()
        }
    }
}
