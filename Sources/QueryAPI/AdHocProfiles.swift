import APICommon
import Blocks
import Foundation
import Hummingbird
import KilnFoundation
import KilnProtos
import ObjectStore
import PprofCodec
import ProfileModel
import Query

/// `adhocprofiles.v1.AdHocProfileService`: one profile file opened on its own, as Grafana's Profiles
/// Drilldown does from its "ad hoc" view (upload a `.pb.gz`, see its flame graph, switch sample types, diff
/// two files). Each upload is one object, `<tenant>/adhoc/<ULID>-<name>`, in the block store beside the
/// tenant's blocks (block listings skip names that are not ULIDs), so every kiln-query replica sees it.
/// Kiln reads pprof files (gzipped or not); any other format is refused by name.
public struct AdHocProfiles: Sendable {
    /// The largest file, decoded from base64 and decompressed.
    public static let maxProfileBytes = 16 << 20

    let store: any ObjectStore
    let now: @Sendable () -> Date

    public init(store: any ObjectStore, now: @escaping @Sendable () -> Date = Date.init) {
        self.store = store
        self.now = now
    }

    struct Stored: Codable {
        var name: String
        /// Milliseconds since the Unix epoch.
        var uploadedAt: Int64
        /// The file as uploaded, base64.
        var data: String
    }

    /// A stored profile, decoded.
    struct Opened {
        var id: String
        var name: String
        var uploadedAt: Int64
        var profile: PprofProfile
    }

    static func prefix(_ tenant: String) -> String { "\(tenant)/adhoc/" }

    /// `[a-zA-Z0-9._-]`: the bytes of a name kept in the store (ad hoc profile IDs, setting names).
    static func isNameByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x2D || b == 0x5F
    }

    /// As Pyroscope stores names: every character outside [a-zA-Z0-9._-] becomes '_'.
    static func cleanName(_ name: String) -> String {
        String(decoding: name.utf8.prefix(200).map { isNameByte($0) ? $0 : UInt8(ascii: "_") }, as: UTF8.self)
    }

    static func validate(id: String) throws(APIError) {
        guard !id.isEmpty, id.utf8.count <= 240, id.utf8.allSatisfy(isNameByte), id != ".", id != ".." else {
            throw APIError(.invalidArgument, "id \"\(id.prefix(120))\" is invalid: it can only contain [a-zA-Z0-9_-.]")
        }
    }

    static func decode(_ base64: String, name: String) throws(APIError) -> PprofProfile {
        guard base64.utf8.count <= (maxProfileBytes / 3 + 1) * 4 else {
            throw APIError.exceeding(
                .bodyTooLarge, "adhoc_max_profile_bytes", maxProfileBytes, "the profile file is larger than Kiln opens")
        }
        guard let bytes = Data(base64Encoded: base64) else {
            throw APIError(.invalidArgument, "profile of \"\(name.prefix(120))\" is not base64 (standard alphabet)")
        }
        var limits = PprofLimits.default
        limits.maxDecompressedBytes = maxProfileBytes
        do {
            return try PprofDecoder(limits: limits).decode([UInt8](bytes))
        } catch {
            throw APIError(
                .invalidArgument, "\"\(name.prefix(120))\" is not a pprof file Kiln can read (only pprof is supported): \(error)")
        }
    }

    /// Checks and stores an uploaded file; answers it decoded.
    func upload(name: String, base64: String, tenant: String) async throws -> Opened {
        let name = Self.cleanName(name)
        let profile = try await BlockingWork.shared.run(bytes: base64.utf8.count) { () throws(APIError) in
            try Self.decode(base64, name: name)
        }
        let uploadedAt = Int64(now().timeIntervalSince1970 * 1000)
        let id = ULID.make(timestampMillis: UInt64(uploadedAt)).string + "-" + name
        let stored = Stored(name: name, uploadedAt: uploadedAt, data: base64)
        try await store.put(Self.prefix(tenant) + id, Array(try JSONEncoder().encode(stored)))
        return Opened(id: id, name: name, uploadedAt: uploadedAt, profile: profile)
    }

    /// A stored file, decoded; 404 when there is none.
    func open(id: String, tenant: String) async throws -> Opened {
        try Self.validate(id: id)
        let bytes: [UInt8]
        do {
            bytes = try await store.get(Self.prefix(tenant) + id)
        } catch let error as ObjectStoreError where error.kind == .notFound {
            throw APIError(.notFound, "ad hoc profile \(id) not found")
        }
        let stored = try JSONDecoder().decode(Stored.self, from: Data(bytes))
        let profile = try await BlockingWork.shared.run(bytes: stored.data.utf8.count) { () throws(APIError) in
            try Self.decode(stored.data, name: stored.name)
        }
        return Opened(id: id, name: stored.name, uploadedAt: stored.uploadedAt, profile: profile)
    }

    /// Every stored file of the tenant, newest first.
    func list(tenant: String) async throws -> [Adhocprofiles_V1_AdHocProfilesProfileMetadata] {
        let prefix = Self.prefix(tenant)
        var out: [Adhocprofiles_V1_AdHocProfilesProfileMetadata] = []
        for object in try await store.list(prefix: prefix, delimiter: "/").objects {
            let id = String(object.key.dropFirst(prefix.count))
            guard let dash = id.firstIndex(of: "-"), let ulid = ULID(string: String(id[..<dash])) else { continue }
            var m = Adhocprofiles_V1_AdHocProfilesProfileMetadata()
            m.id = id
            m.name = String(id[id.index(after: dash)...])
            m.uploadedAt = Int64(ulid.timestampMillis)
            out.append(m)
        }
        return out.sorted { ($0.uploadedAt, $0.id) > ($1.uploadedAt, $1.id) }
    }
}

/// Flame graphs of one pprof file, per sample type, as Pyroscope's ad hoc view draws them: frames named by
/// function (inlined frames apart), locations without lines after their binary and address
/// (`UnsymbolizedFrame`), in flamebearer JSON.
enum AdHocFlameGraph {
    /// The profile's sample type names, in file order (e.g. `samples`, `cpu`).
    static func sampleTypes(_ profile: PprofProfile) -> [String] {
        profile.sampleTypes.map { profile.string($0.type) }
    }

    /// The index of `requested` among the sample types; the first when nil. A type the file does not have
    /// is refused, naming those it has.
    static func sampleIndex(_ requested: String?, in profiles: [PprofProfile]) throws(APIError) -> Int {
        let types = sampleTypes(profiles[0])
        guard !types.isEmpty else { throw APIError(.invalidArgument, "the profile has no sample types") }
        guard let requested, !requested.isEmpty else { return 0 }
        guard let index = types.firstIndex(of: requested), profiles.allSatisfy({ sampleTypes($0).contains(requested) }) else {
            throw APIError(
                .invalidArgument,
                "profile_type \"\(requested.prefix(120))\" is not in the profile (it has \(types.joined(separator: ", ")))")
        }
        return index
    }

    /// Adds the values of sample type `sampleType` of `profile` to `side` of `tree`.
    static func add(_ profile: PprofProfile, sampleType: String, to tree: inout StackTree, names: inout NameTable, side: Int = 0) {
        guard let column = sampleTypes(profile).firstIndex(of: sampleType) else { return }
        var frames: [Int32: [Int32]] = [:]  // location → its frames, leaf first
        var stack: [Int32] = []
        for s in 0..<profile.sampleCount {
            let values = profile.values(s)
            let value = values[values.startIndex + column]
            if value == 0 { continue }
            stack.removeAll(keepingCapacity: true)
            for location in profile.stack(s) {
                if let known = frames[location] {
                    stack += known
                    continue
                }
                let lines = profile.lines(of: Int(location))
                let named =
                    lines.isEmpty
                    ? [names.intern(UnsymbolizedFrame.name(of: profile.locations[Int(location)], in: profile))]
                    : lines.map { names.intern(profile.string(profile.functions[Int($0.functionIndex)].name)) }
                frames[location] = named
                stack += named
            }
            tree.add(rootFirst: stack.reversed(), value: value, side: side)
        }
    }

    /// Flamebearer JSON of `tree` (one side: "single"; two: "double", a diff).
    static func json(_ tree: StackTree, names: NameTable, maxNodes: Int, profile: PprofProfile, sampleType: String) -> String {
        let column = sampleTypes(profile).firstIndex(of: sampleType) ?? 0
        let unit = profile.string(profile.sampleTypes[column].unit)
        let type = ProfileTypeID(
            name: sampleType, sampleType: sampleType, sampleUnit: unit,
            periodType: profile.periodType.map { profile.string($0.type) } ?? "",
            periodUnit: profile.periodType.map { profile.string($0.unit) } ?? "")
        let graph = FlameGraphLevels(tree: tree, nameTable: names, maxNodes: maxNodes)
        var metadata = RenderRoutes.metadata(type, format: tree.sides == 2 ? "double" : "single")
        metadata["name"] = sampleType  // Pyroscope names an ad hoc flame graph by its sample type
        var object: [String: Any] = [
            "version": 1,
            "flamebearer": ["names": graph.names, "levels": graph.levels, "numTicks": graph.total, "maxSelf": graph.maxSelf],
            "metadata": metadata,
        ]
        if tree.sides == 2 {
            object["leftTicks"] = graph.leftTicks
            object["rightTicks"] = graph.rightTicks
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The answer of Upload and Get.
    static func response(_ opened: AdHocProfiles.Opened, profileType: String?, maxNodes: Int) throws(APIError)
        -> Adhocprofiles_V1_AdHocProfilesGetResponse
    {
        let index = try sampleIndex(profileType, in: [opened.profile])
        let types = sampleTypes(opened.profile)
        var names = NameTable()
        var tree = StackTree()
        add(opened.profile, sampleType: types[index], to: &tree, names: &names)
        var out = Adhocprofiles_V1_AdHocProfilesGetResponse()
        out.id = opened.id
        out.name = opened.name
        out.uploadedAt = opened.uploadedAt
        out.profileType = types[index]
        out.profileTypes = types
        out.flamebearerProfile = json(tree, names: names, maxNodes: maxNodes, profile: opened.profile, sampleType: types[index])
        return out
    }
}

/// The routes of `adhocprofiles.v1.AdHocProfileService` (Connect unary, binary and JSON).
public enum AdHocRoutes {
    public static let servicePath = "/adhocprofiles.v1.AdHocProfileService/"
    /// Upload carries the file in base64: its body may be that much larger than a query's.
    static let maxUploadRequestBytes = (AdHocProfiles.maxProfileBytes / 3 + 1) * 4 + 64 * 1024

    public static func register<Context: RequestContext>(
        on router: Router<Context>, profiles: AdHocProfiles, access: TenantAccess, options: QueryOptions
    ) {
        QueryRoutes.unary(
            router, path: servicePath + "Upload", access: access, fields: RequestFields(["name", "profile", "maxNodes"]),
            maxRequestBytes: maxUploadRequestBytes
        ) { (r: Adhocprofiles_V1_AdHocProfilesUploadRequest, tenant) in
            let opened = try await profiles.upload(name: r.name, base64: r.profile, tenant: tenant)
            return try AdHocFlameGraph.response(
                opened, profileType: nil, maxNodes: options.maxNodes(r.hasMaxNodes ? r.maxNodes : nil, tenant: tenant))
        }
        QueryRoutes.unary(router, path: servicePath + "Get", access: access, fields: RequestFields(["id", "profileType", "maxNodes"])) {
            (r: Adhocprofiles_V1_AdHocProfilesGetRequest, tenant) in
            let opened = try await profiles.open(id: r.id, tenant: tenant)
            return try AdHocFlameGraph.response(
                opened, profileType: r.hasProfileType ? r.profileType : nil,
                maxNodes: options.maxNodes(r.hasMaxNodes ? r.maxNodes : nil, tenant: tenant))
        }
        QueryRoutes.unary(router, path: servicePath + "List", access: access, fields: RequestFields([])) {
            (_: Adhocprofiles_V1_AdHocProfilesListRequest, tenant) in
            var out = Adhocprofiles_V1_AdHocProfilesListResponse()
            out.profiles = try await profiles.list(tenant: tenant)
            return out
        }
        QueryRoutes.unary(
            router, path: servicePath + "Diff", access: access, fields: RequestFields(["leftId", "rightId", "profileType", "maxNodes"])
        ) { (r: Adhocprofiles_V1_AdHocProfilesDiffRequest, tenant) in
            let left = try await profiles.open(id: r.leftID, tenant: tenant)
            let right = try await profiles.open(id: r.rightID, tenant: tenant)
            let common = AdHocFlameGraph.sampleTypes(left.profile).filter(AdHocFlameGraph.sampleTypes(right.profile).contains)
            guard !common.isEmpty else {
                throw APIError(
                    .invalidArgument,
                    "no sample type in both profiles (left: \(AdHocFlameGraph.sampleTypes(left.profile).joined(separator: ", ")); "
                        + "right: \(AdHocFlameGraph.sampleTypes(right.profile).joined(separator: ", ")))")
            }
            let type = r.hasProfileType && !r.profileType.isEmpty ? r.profileType : common[0]
            _ = try AdHocFlameGraph.sampleIndex(type, in: [left.profile, right.profile])
            var names = NameTable()
            var tree = StackTree(sides: 2)
            AdHocFlameGraph.add(left.profile, sampleType: type, to: &tree, names: &names, side: 0)
            AdHocFlameGraph.add(right.profile, sampleType: type, to: &tree, names: &names, side: 1)
            var out = Adhocprofiles_V1_AdHocProfilesDiffResponse()
            out.profileTypes = common
            out.flamebearerProfile = AdHocFlameGraph.json(
                tree, names: names, maxNodes: options.maxNodes(r.hasMaxNodes ? r.maxNodes : nil, tenant: tenant), profile: left.profile,
                sampleType: type)
            return out
        }
    }
}
