import ProfileModel

/// Turns cumulative profiles into deltas against the previous profile of the same series.
///
/// Per series (tenant + the target's labels) it keeps each stack's last cumulative values. The first
/// profile of a series is the baseline and yields nothing. A value going down means the process
/// restarted: the profile re-seeds the baseline and yields nothing (as Pyroscope does). Memory is bounded
/// by `maxSeries`; the least recently used series is forgotten, so its next profile is a new baseline.
public struct DeltaTracker: Sendable {
    public enum Outcome: Equatable, Sendable {
        /// First profile of the series: stored, nothing emitted.
        case baseline
        /// Values went down: re-seeded, nothing emitted.
        case reset
        /// `deltas[i]` is the increase of entry i since the previous profile.
        case deltas([Int64])
    }

    /// Previous cumulative values by stack key; `generation` orders series for eviction.
    private struct SeriesState: Sendable {
        var values: [StackKey: Int64]
        var lastUse: UInt64
    }

    /// A stack plus the sample labels and the sample type it was measured under, by content.
    public struct StackKey: Hashable, Sendable {
        public var hash: UInt64
        public var check: UInt64
        public init(hash: UInt64, check: UInt64) {
            self.hash = hash
            self.check = check
        }
    }

    private var series: [UInt64: SeriesState] = [:]
    private var clock: UInt64 = 0
    public let maxSeries: Int
    public private(set) var evictions = 0

    public init(maxSeries: Int = 100_000) {
        self.maxSeries = maxSeries
    }

    public var seriesCount: Int { series.count }

    /// Applies one cumulative profile of `seriesKey`: `entries` are (stack key, cumulative value).
    /// Entries with the same key are summed first (pprof may list a stack twice).
    public mutating func apply(seriesKey: UInt64, entries: [(StackKey, Int64)]) -> Outcome {
        clock += 1
        var current: [StackKey: Int64] = [:]
        current.reserveCapacity(entries.count)
        for (key, value) in entries { current[key, default: 0] += value }

        guard let previous = series[seriesKey] else {
            store(seriesKey, current)
            return .baseline
        }
        var deltas: [Int64] = []
        deltas.reserveCapacity(entries.count)
        // Deltas are reported per distinct key on its first entry; later duplicates report 0.
        var reported = Set<StackKey>()
        for (key, _) in entries {
            let now = current[key]!
            let before = previous.values[key] ?? 0
            if now < before {
                store(seriesKey, current)
                return .reset
            }
            deltas.append(reported.insert(key).inserted ? now - before : 0)
        }
        store(seriesKey, current)
        return .deltas(deltas)
    }

    // MARK: Snapshot

    /// The whole state as bytes, so a replay can stop and resume with the same deltas an uninterrupted
    /// run computes. Layout: "KD1", then little-endian u64s: clock, series count, and per series its key,
    /// last use, entry count and (hash, check, value) per entry.
    public func snapshot() -> [UInt8] {
        var out: [UInt8] = Array("KD1".utf8)
        out.reserveCapacity(3 + 16 + series.values.reduce(0) { $0 + 24 + 24 * $1.values.count })
        func put(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put(clock)
        put(UInt64(series.count))
        for (key, state) in series.sorted(by: { $0.key < $1.key }) {
            put(key)
            put(state.lastUse)
            put(UInt64(state.values.count))
            for (stack, value) in state.values.sorted(by: { ($0.key.hash, $0.key.check) < ($1.key.hash, $1.key.check) }) {
                put(stack.hash)
                put(stack.check)
                put(UInt64(bitPattern: value))
            }
        }
        return out
    }

    public struct SnapshotError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Restores what `snapshot()` wrote.
    public init(snapshot bytes: [UInt8], maxSeries: Int = 100_000) throws(SnapshotError) {
        self.init(maxSeries: maxSeries)
        guard bytes.count >= 19, bytes.starts(with: Array("KD1".utf8)) else {
            throw SnapshotError(description: "delta state snapshot: not a KD1 snapshot (\(bytes.count) bytes)")
        }
        var position = 3
        func next() throws(SnapshotError) -> UInt64 {
            guard position + 8 <= bytes.count else {
                throw SnapshotError(description: "delta state snapshot truncated at byte \(position) of \(bytes.count)")
            }
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
            position += 8
            return v
        }
        clock = try next()
        let seriesCount = try next()
        for _ in 0..<seriesCount {
            let key = try next()
            let lastUse = try next()
            let entries = try next()
            guard entries <= UInt64(bytes.count - position) / 24 else {
                throw SnapshotError(description: "delta state snapshot: series \(key) claims \(entries) entries past the end")
            }
            var values: [StackKey: Int64] = [:]
            values.reserveCapacity(Int(entries))
            for _ in 0..<entries {
                let stack = StackKey(hash: try next(), check: try next())
                values[stack] = Int64(bitPattern: try next())
            }
            series[key] = SeriesState(values: values, lastUse: lastUse)
        }
        guard position == bytes.count else {
            throw SnapshotError(description: "delta state snapshot: \(bytes.count - position) trailing bytes")
        }
    }

    private mutating func store(_ key: UInt64, _ values: [StackKey: Int64]) {
        series[key] = SeriesState(values: values, lastUse: clock)
        if series.count > maxSeries, let oldest = series.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
            series.removeValue(forKey: oldest)
            evictions += 1
        }
    }
}
