import Foundation
import KilnFoundation
import ProfileModel

/// How long a tenant's data is kept at each resolution, by the age of a block's newest sample.
public struct ResolutionAges: Sendable, Equatable {
    /// Older data is kept per minute; nil keeps full resolution (and makes `perHourAfter` moot).
    public var perMinuteAfter: Duration?
    /// Older data is kept per hour; nil never goes past per minute.
    public var perHourAfter: Duration?
    /// Older data is removed; nil keeps it forever.
    public var retention: Duration?

    public init(perMinuteAfter: Duration? = nil, perHourAfter: Duration? = nil, retention: Duration? = nil) {
        self.perMinuteAfter = perMinuteAfter
        self.perHourAfter = perHourAfter
        self.retention = retention
    }

    /// `TENANT=PER_MINUTE_AFTER/PER_HOUR_AFTER/RETENTION`, each a duration (`DurationText`) or `off`.
    public static func parseTenantAges(_ text: String) throws -> (tenant: String, ages: ResolutionAges) {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        let ages = parts.count == 2 ? parts[1].split(separator: "/", omittingEmptySubsequences: false).map(String.init) : []
        guard parts.count == 2, !parts[0].isEmpty, ages.count == 3 else {
            throw BlockError(
                "--tenant-retention \"\(clip(text))\": expected TENANT=PER_MINUTE_AFTER/PER_HOUR_AFTER/RETENTION, e.g. acme=3d/14d/90d")
        }
        let durations = try ages.map { part -> Duration? in
            if part == "off" { return nil }
            guard let d = DurationText.parse(part) else {
                throw BlockError("--tenant-retention \"\(clip(text))\": \"\(clip(part))\" is neither a duration (e.g. 7d) nor off")
            }
            return d
        }
        return (parts[0], ResolutionAges(perMinuteAfter: durations[0], perHourAfter: durations[1], retention: durations[2]))
    }

    /// The resolution (ms) a block whose newest sample is at `maxTime` should have now; nil: full. Without a
    /// per-minute age nothing is downsampled, whatever the per-hour age says.
    public func resolutionMillis(maxTime: Int64, nowNanos: Int64) -> Int64? {
        guard let perMinuteAfter, maxTime < nowNanos - perMinuteAfter.nanos else { return nil }
        if let perHourAfter, maxTime < nowNanos - perHourAfter.nanos { return Downsampling.hourMillis }
        return Downsampling.minuteMillis
    }
}

/// Turns full-resolution samples into per-minute or per-hour buckets: per series and stack, every sample
/// whose time falls in (T − resolution, T] summed into one stamped T — the same alignment as a
/// `SelectSeries` point — so a time series whose start and step are whole buckets reads the same sums from
/// either resolution, and a range covering whole buckets the same flame graph.
public enum Downsampling {
    public static let minuteMillis: Int64 = 60_000
    public static let hourMillis: Int64 = 3_600_000

    /// A profile of a batch: its series (index into `batch.series`) at one time.
    public struct SeriesTime: Hashable, Sendable {
        public var series: UInt32
        public var time: Int64

        public init(series: UInt32, time: Int64) {
            self.series = series
            self.time = time
        }
    }

    /// The end of the bucket holding `nanos`: the smallest multiple of `width` at or after it.
    public static func bucketEnd(_ nanos: Int64, width: Int64) -> Int64 {
        // Swift's division truncates toward zero, which rounds a negative quotient up already.
        nanos > 0 ? (nanos + width - 1) / width * width : nanos / width * width
    }

    /// `batch` bucketed to `resolutionMillis`: one sample per (series, bucket, stack), span ids dropped,
    /// symbols and series as they were. `profiles` says how many profiles a (series, time) of the input
    /// stands for where more than one (an input already downsampled); the result says the same of each
    /// bucket, which holds every profile within it.
    public static func downsample(_ batch: SampleBatch, resolutionMillis: Int64, profiles: [SeriesTime: Int32] = [:]) -> (
        batch: SampleBatch, profiles: [SeriesTime: Int32]
    ) {
        let width = resolutionMillis * 1_000_000
        var out = batch
        out.sampleSeries = []
        out.sampleStacks = []
        out.sampleValues = []
        out.sampleTimes = []
        out.sampleSpans = []
        // A block's samples come in (series, time) order, so each (series, bucket) is one run of stack sums.
        // Input in another order still sums right; a bucket met in two runs becomes two rows of one stamp,
        // which readers add up.
        var sums = StackRunSums(stacks: batch.stacks.count)
        var run: SeriesTime?
        func flush() {
            guard let run else { return }
            sums.drain { stack, sum in
                out.sampleSeries.append(run.series)
                out.sampleStacks.append(UInt32(stack))
                out.sampleValues.append(sum)
                out.sampleTimes.append(run.time)
                out.sampleSpans.append(0)
            }
        }
        var bucketProfiles: [SeriesTime: Int32] = [:]
        var seenProfiles = Set<SeriesTime>()
        var previous: SeriesTime?
        for i in 0..<batch.sampleCount {
            let series = batch.sampleSeries[i]
            let time = batch.sampleTimes[i]
            let bucket = SeriesTime(series: series, time: bucketEnd(time, width: width))
            // Samples of one profile are adjacent in a block: the set is asked once per profile.
            let profile = SeriesTime(series: series, time: time)
            if profile != previous, seenProfiles.insert(profile).inserted {
                bucketProfiles[bucket, default: 0] += profiles[profile] ?? 1
            }
            previous = profile
            if bucket != run {
                flush()
                run = bucket
            }
            sums.add(stack: Int(batch.sampleStacks[i]), batch.sampleValues[i])
        }
        flush()
        return (out, bucketProfiles)
    }
}

/// Sums per stack within one run of samples (a series, or a series' bucket) without hashing: a dense sum per
/// stack and the run that last touched it, so starting a run clears nothing.
struct StackRunSums {
    private var sums: [Int64]
    private var runOfStack: [Int]
    private var run = 0
    private var touched: [Int32] = []

    init(stacks: Int) {
        sums = [Int64](repeating: 0, count: stacks)
        runOfStack = [Int](repeating: -1, count: stacks)
    }

    mutating func add(stack: Int, _ value: Int64) {
        if runOfStack[stack] != run {
            runOfStack[stack] = run
            sums[stack] = 0
            touched.append(Int32(stack))
        }
        sums[stack] &+= value
    }

    /// Hands out the run's sums in stack order, then starts the next run.
    mutating func drain(_ body: (Int32, Int64) -> Void) {
        touched.sort()
        for stack in touched { body(stack, sums[Int(stack)]) }
        touched.removeAll(keepingCapacity: true)
        run += 1
    }
}

extension Compactor {
    /// Rewrites a block at `resolutionMillis` and marks the original superseded. The new block holds the
    /// same sources and sorts after the original (its ULID is one millisecond later), so the live listing
    /// shows exactly one of them; its totals per profile type are checked equal before it is uploaded.
    @discardableResult
    public func downsample(_ meta: BlockMeta, toMillis resolutionMillis: Int64, now: Date = Date()) async throws -> BlockMeta {
        let reader = BlockReader(store: store, meta: meta)
        let batch = try await reader.asBatch()
        // A block already downsampled says how many profiles each bucket stands for; the batch numbers its
        // series in the order of the block's series table.
        var profiles: [Downsampling.SeriesTime: Int32] = [:]
        if meta.resolutionMillis != nil {
            let series = try await reader.series()
            let position = Dictionary(uniqueKeysWithValues: series.enumerated().map { ($1.id, UInt32($0)) })
            let totals = try await reader.profileTotals(time: Int64.min...Int64.max, series: Set(series.map(\.id)))
            for i in 0..<totals.count where totals.profiles[i] != 1 {
                guard let s = position[totals.seriesIDs[i]] else { continue }
                profiles[Downsampling.SeriesTime(series: s, time: totals.timeNanos[i])] = totals.profiles[i]
            }
        }
        let ulid = ULID.deterministic(
            timestampMillis: meta.ulid.timestampMillis + 1, seed: "\(meta.tenant)|\(resolutionMillis)ms|\(meta.ulid)")
        let lineage = BlockMeta.Compaction(level: meta.compaction.level, sources: meta.compaction.sources, parents: [meta.ulid])
        let (writer, known) = (self.writer, profiles)
        // Bucketing and encoding a block is seconds of CPU: off the cooperative pool.
        let block = try await BlockingWork.shared.run {
            let (bucketed, counts) = Downsampling.downsample(batch, resolutionMillis: resolutionMillis, profiles: known)
            var head = Head(tenant: meta.tenant)
            head.appendDownsampled(bucketed, profileCounts: counts)
            head.absorb(provenance: meta.kafka)
            return try writer.encode(head, ulid: ulid, compaction: lineage, createdAt: now, resolutionMillis: resolutionMillis)
        }
        guard block.meta.totalsByProfileType == meta.totalsByProfileType else {
            throw BlockError(
                "downsampling \(meta.ulid) changed the totals: \(block.meta.totalsByProfileType) vs \(meta.totalsByProfileType)")
        }
        try await BlockWriter.upload(block, to: store)
        try await markForDeletion(tenant: meta.tenant, ulid: meta.ulid, reason: "downsampled", supersededBy: ulid, now: now)
        logger.info(
            "downsampled",
            metadata: [
                "tenant": "\(meta.tenant)", "block": "\(meta.ulid)", "into": "\(ulid)", "resolution_ms": "\(resolutionMillis)",
                "samples": "\(meta.stats.samples) → \(block.meta.stats.samples)",
                "bytes": "\(meta.files.reduce(0) { $0 + $1.sizeBytes }) → \(block.totalBytes)",
            ])
        return block.meta
    }
}
