import Blocks
import KilnFoundation
import ProfileModel

/// The ID of one stored profile — a series' samples at one time — as exemplars name it and
/// `profile_id_selector` selects it: a version-7 UUID computed from what identifies the profile, so
/// nothing is stored for it and every copy of a profile (a replay, a compacted block) has the same ID.
///
/// Layout (RFC 9562 UUIDv7, big-endian): 48 bits of Unix milliseconds, the version (7), the 20 bits of
/// sub-millisecond nanoseconds split around the variant (12 bits, then 8), and the top 54 bits of the
/// series labels' FNV-1a fingerprint (`LabelSet.fingerprint`, without `__profile_type__`, so the
/// sample types of one pprof share an ID, as in Pyroscope). The ID carries the profile's exact time:
/// a lookup reads only the blocks that hold that instant and compares fingerprints there.
public struct ProfileID: Hashable, Sendable, CustomStringConvertible {
    public let timeNanos: Int64
    /// The top 54 bits of the series' label fingerprint.
    public let seriesHash: UInt64

    public init(timeNanos: Int64, labels: LabelSet) {
        self.init(timeNanos: timeNanos, seriesHash: Self.seriesHash(labels))
    }

    init(timeNanos: Int64, seriesHash: UInt64) {
        self.timeNanos = timeNanos
        self.seriesHash = seriesHash
    }

    /// The 54 bits of a series' labels an ID holds: every label but `__profile_type__`.
    public static func seriesHash(_ labels: LabelSet) -> UInt64 {
        var withoutType = labels
        withoutType[LabelName.profileType] = nil
        return withoutType.fingerprint >> 10
    }

    /// Parses the canonical 8-4-4-4-12 form (either case) of an ID this type wrote. `field` names the request
    /// field in the refusal.
    public init(parsing text: String, field: String) throws(QueryError) {
        let dashes = text.utf8.enumerated().filter { $0.element == UInt8(ascii: "-") }.map(\.offset)
        guard text.utf8.count == 36, dashes == Self.dashes, let bytes = Hex.bytes(text.filter { $0 != "-" }) else {
            throw QueryError(.invalidArgument, "\(field) \"\(text.prefix(64))\" is not a UUID (8-4-4-4-12 hex digits)")
        }
        let high = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let low = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard high >> 12 & 0xF == 7, low >> 62 == 0b10 else {
            throw QueryError(
                .invalidArgument,
                "\(field) \"\(text)\" is not a profile ID Kiln gave out (Kiln's are version-7 UUIDs, from exemplars)")
        }
        let millis = Int64(high >> 16)
        let subMillis = Int64((high & 0xFFF) << 8 | (low >> 54 & 0xFF))
        guard subMillis < 1_000_000 else {
            throw QueryError(.invalidArgument, "\(field) \"\(text)\" is not a profile ID Kiln gave out (its time is malformed)")
        }
        self.init(timeNanos: millis * 1_000_000 + subMillis, seriesHash: low & (1 << 54 - 1))
    }

    /// Where the canonical text has its dashes.
    private static let dashes = [8, 13, 18, 23]

    /// The canonical lowercase 8-4-4-4-12 text.
    public var description: String {
        // Times before 1970 do not occur in blocks (ingest refuses them); clamp rather than trap.
        let nanos = max(timeNanos, 0)
        let millis = UInt64(nanos / 1_000_000) & (1 << 48 - 1)
        let subMillis = UInt64(nanos % 1_000_000)
        let high = millis << 16 | 0x7 << 12 | subMillis >> 8
        let low = 0b10 << 62 | (subMillis & 0xFF) << 54 | seriesHash & (1 << 54 - 1)
        var text = Hex.string(high) + Hex.string(low)
        for position in Self.dashes { text.insert("-", at: text.index(text.startIndex, offsetBy: position)) }
        return text
    }
}

/// Profiles selected by ID (`profile_id_selector`): exactly the profiles named, within the selection's
/// range and selector.
public struct ProfileSelection: Sendable, Equatable {
    public let ids: Set<ProfileID>

    /// nil for an empty list (every profile).
    public static func parse(_ texts: [String], field: String = "profile_id_selector") throws(QueryError) -> ProfileSelection? {
        guard !texts.isEmpty else { return nil }
        var ids = Set<ProfileID>()
        for text in texts { ids.insert(try ProfileID(parsing: text, field: field)) }
        return ProfileSelection(ids: ids)
    }

    /// The smallest time range holding every selected profile.
    public var timeRange: ClosedRange<Int64> {
        let times = ids.map(\.timeNanos)
        return times.min()!...times.max()!
    }

    /// The (series, time) pairs of a block's series that these IDs name, by block-local series id.
    func blockProfiles(series: [Int32: LabelSet]) -> Set<BlockProfileKey> {
        var byHash: [UInt64: [Int64]] = [:]
        for id in ids { byHash[id.seriesHash, default: []].append(id.timeNanos) }
        var out = Set<BlockProfileKey>()
        for (series, labels) in series {
            for time in byHash[ProfileID.seriesHash(labels)] ?? [] { out.insert(BlockProfileKey(series: series, timeNanos: time)) }
        }
        return out
    }
}
