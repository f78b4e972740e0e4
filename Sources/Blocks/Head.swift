import Foundation
import KilnFoundation
import ProfileModel

/// A function's identity, with its strings resolved (batches number strings independently).
public struct FunctionKey: Hashable, Sendable {
    public var name: String
    public var systemName: String
    public var filename: String
    public var startLine: Int64

    public init(name: String, systemName: String, filename: String, startLine: Int64) {
        self.name = name
        self.systemName = systemName
        self.filename = filename
        self.startLine = startLine
    }
}

/// Where a batch came from on the normalized topic, when it came from Kafka.
public struct RecordPosition: Hashable, Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// The topic's incarnation (see `PartitionKey.topicID`), when known.
    public var topicID: String?

    public init(topic: String, partition: Int32, offset: Int64, topicID: String? = nil) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.topicID = topicID
    }

    public var key: PartitionKey { PartitionKey(topic: topic, partition: partition, topicID: topicID) }
}

/// The in-memory block of one tenant: it absorbs `SampleBatch`es, deduplicating series, symbols and stacks
/// across batches, until it is cut into a block.
///
/// Stacks live in a parent-pointer trie keyed by (parent node, frame): a stack is the node of its leaf, so
/// stacks sharing a prefix share its nodes. Node ids grow in insertion order, so a parent's id is always
/// smaller than its children's — the reader can rebuild paths in one forward pass.
public struct Head: Sendable {
    public let tenant: String
    /// Wall-clock time of the first append, for cutting by age.
    public private(set) var openedAt: Date?

    // Symbols.
    private(set) var functions: [FunctionKey] = []
    private var functionIndex = DenseIDIndex()
    private(set) var frames: [(function: UInt32, line: Int64)] = []
    private var frameIndex = DenseIDIndex()

    // Stack tree.
    private(set) var nodeParents: [Int32] = []
    private(set) var nodeFrames: [UInt32] = []
    private var nodeIndex = DenseIDIndex()

    // Series.
    private(set) var series: [BatchSeries] = []
    /// Per series: its sampling period, the last known one a batch gave (0: unknown).
    private(set) var seriesPeriods: [Int64] = []
    private var seriesIndex = DenseIDIndex()

    // Samples, struct of arrays.
    private(set) var sampleSeries: [UInt32] = []
    private(set) var sampleStacks: [UInt32] = []
    private(set) var sampleValues: [Int64] = []
    private(set) var sampleTimes: [Int64] = []
    private(set) var sampleSpans: [UInt64] = []

    /// Raw-topic provenances and normalized-topic offsets held, per partition.
    public private(set) var rawOffsets: [PartitionKey: OffsetRanges] = [:]
    public private(set) var normalizedOffsets: [PartitionKey: OffsetRanges] = [:]

    /// Profiles a (series, time) of a downsampled head stands for, where more than one: a bucket of a
    /// per-minute or per-hour block sums every profile within it (written to profiles.parquet's `profiles`).
    private(set) var profileCounts: [Downsampling.SeriesTime: Int32] = [:]

    public private(set) var minTime: Int64 = .max
    public private(set) var maxTime: Int64 = .min
    public private(set) var batches = 0

    public init(tenant: String) { self.tenant = tenant }

    public var sampleCount: Int { sampleValues.count }
    /// The lowest normalized-topic offset held (a level-0 head holds one partition's); nil when none.
    public var firstNormalizedOffset: Int64? { normalizedOffsets.values.compactMap(\.lowerBound).min() }
    public var isEmpty: Bool { sampleValues.isEmpty && rawOffsets.isEmpty && normalizedOffsets.isEmpty }
    public var stackNodeCount: Int { nodeParents.count }
    public var seriesCount: Int { series.count }

    /// The memory the head holds and its encoding briefly adds, for cutting by size and for sizing merges. A
    /// sample costs 32 bytes of columns, 4 of sort order while encoding, and 8 more for what a merge holds
    /// beside its head (the source block being read, allocator slack) — measured with `kiln bench compaction`,
    /// whose merges stay within this estimate (docs/block-format.md).
    public var estimatedBytes: Int {
        sampleValues.count * Self.bytesPerSample + nodeParents.count * 40 + frames.count * 40
            + functions.reduce(0) { $0 + 64 + $1.name.utf8.count + $1.systemName.utf8.count + $1.filename.utf8.count }
            + series.count * 256
    }

    static let bytesPerSample = 44

    /// What cutting a head into a block holds beside it whatever the head's size: one row group's sorted
    /// sample columns (`BlockWriter.Options.samplesPerRowGroup`, 128 Ki rows) and the compressor's state.
    /// Cuts and merges keep their estimate this far below their budget.
    public static let encodingReserveBytes = 8 << 20

    /// The same estimate from a block's counts, for planning merges; a function's strings are taken as
    /// 96 bytes (the measured mean of the fixtures' Go function names and paths is below that).
    public static func estimatedBytes(samples: Int, stackNodes: Int, frames: Int, functions: Int, series: Int) -> Int {
        samples * bytesPerSample + stackNodes * 40 + frames * 40 + functions * (64 + 96) + series * 256
    }

    /// Whether the head already holds this raw record's batch (`rawTopicID`: the raw topic's incarnation).
    public func holds(raw provenance: Provenance, rawTopicID: String? = nil) -> Bool {
        rawOffsets.holds(
            PartitionKey(topic: provenance.topic, partition: provenance.partition, topicID: rawTopicID), offset: provenance.offset)
    }

    public func holds(normalized position: RecordPosition) -> Bool {
        normalizedOffsets.holds(position.key, offset: position.offset)
    }

    /// Adds a batch. Its provenance is recorded as held (even when it has no samples, so an empty batch is
    /// also counted once). The caller decides about duplicates (`holds`) before calling.
    public mutating func append(_ batch: SampleBatch, from position: RecordPosition? = nil, rawTopicID: String? = nil, now: Date = Date()) {
        precondition(batch.tenant == tenant, "batch of tenant \(batch.tenant) given to the head of \(tenant)")
        if openedAt == nil { openedAt = now }
        batches += 1
        rawOffsets[
            PartitionKey(topic: batch.provenance.topic, partition: batch.provenance.partition, topicID: rawTopicID), default: OffsetRanges()
        ]
        .insert(batch.provenance.offset)
        if let position {
            normalizedOffsets[position.key, default: OffsetRanges()].insert(position.offset)
        }
        appendSamples(batch)
    }

    /// Room for `samples` more samples, so a merge, whose size is known beforehand, fills its arrays without
    /// growing them by doubling (which holds the old and the new array at once and leaves up to half unused).
    mutating func reserveCapacity(samples: Int) {
        let total = sampleValues.count + samples
        sampleSeries.reserveCapacity(total)
        sampleStacks.reserveCapacity(total)
        sampleValues.reserveCapacity(total)
        sampleTimes.reserveCapacity(total)
        sampleSpans.reserveCapacity(total)
    }

    /// Adds the samples and symbols of a batch without recording its provenance (compaction records the
    /// sources' provenance wholesale with `absorb(provenance:)`).
    mutating func appendSamples(_ batch: SampleBatch) {
        let symbols = batch.symbols
        // Batch-local ids → head ids, filled lazily so unreferenced symbols and stacks are not kept.
        var functionMap = [UInt32](repeating: .max, count: symbols.functions.count)
        var frameMap = [UInt32](repeating: .max, count: symbols.frames.count)
        var stackMap = [UInt32](repeating: .max, count: batch.stacks.count)
        var seriesMap = [UInt32](repeating: .max, count: batch.series.count)
        // The last stack resolved, root first: its batch frames and their trie nodes.
        var pathFrames: [UInt32] = []
        var pathNodes: [Int32] = []
        let strings = symbols.strings

        func stringHash(_ i: UInt32) -> UInt64 { strings.withUTF8(Int(i)) { FastHash.bytes($0) } }
        func same(_ text: String, _ i: UInt32) -> Bool {
            strings.withUTF8(Int(i)) { bytes in
                var text = text
                return text.withUTF8 {
                    $0.count == bytes.count && ($0.count == 0 || memcmp($0.baseAddress!, bytes.baseAddress!, $0.count) == 0)
                }
            }
        }
        // Known functions are found by their bytes in the batch; only a new one becomes `String`s.
        func function(_ i: UInt32) -> UInt32 {
            if functionMap[Int(i)] != .max { return functionMap[Int(i)] }
            let f = symbols.functions[Int(i)]
            var h = FastHash.combine(FastHash.processSeed, stringHash(f.name))
            h = FastHash.combine(h, stringHash(f.systemName))
            h = FastHash.combine(h, stringHash(f.filename))
            let hash = FastHash.finish(FastHash.combine(h, UInt64(bitPattern: f.startLine)))
            let (id, isNew) = functionIndex.lookUpOrAdd(hash: hash) { id in
                let known = functions[Int(id)]
                return known.startLine == f.startLine && same(known.name, f.name) && same(known.systemName, f.systemName)
                    && same(known.filename, f.filename)
            }
            if isNew {
                functions.append(
                    FunctionKey(
                        name: strings[Int(f.name)], systemName: strings[Int(f.systemName)], filename: strings[Int(f.filename)],
                        startLine: f.startLine))
            }
            functionMap[Int(i)] = id
            return id
        }
        func frame(_ i: UInt32) -> UInt32 {
            if frameMap[Int(i)] != .max { return frameMap[Int(i)] }
            let f = symbols.frames[Int(i)]
            let function = function(f.function)
            let hash = FastHash.finish(
                FastHash.combine(FastHash.combine(FastHash.processSeed, UInt64(function)), UInt64(bitPattern: f.line)))
            let (id, isNew) = frameIndex.lookUpOrAdd(hash: hash) { id in frames[Int(id)] == (function, f.line) }
            if isNew { frames.append((function, f.line)) }
            frameMap[Int(i)] = id
            return id
        }

        for i in 0..<batch.sampleCount {
            let s = Int(batch.sampleSeries[i])
            if seriesMap[s] == .max {
                let key = batch.series[s]
                let (id, isNew) = seriesIndex.lookUpOrAdd(hash: Self.hash(key)) { series[Int($0)] == key }
                let period = batch.period(ofSeries: s)
                if isNew {
                    series.append(key)
                    seriesPeriods.append(period)
                } else if period != 0 {
                    seriesPeriods[Int(id)] = period
                }
                seriesMap[s] = id
            }
            let st = Int(batch.sampleStacks[i])
            if stackMap[st] == .max {
                // pprof order is leaf first; the trie is walked from the root. The root-side frames a stack
                // shares with the stack resolved before it reuse that stack's nodes: a profile's stacks share
                // their callers, and the trie lookups below are the largest part of appending.
                let frames = batch.stacks.stack(st)
                var parent: Int32 = -1
                var level = 0
                while level < frames.count && level < pathFrames.count && pathFrames[level] == frames[frames.endIndex - 1 - level] {
                    parent = pathNodes[level]
                    level += 1
                }
                pathFrames.removeSubrange(level...)
                pathNodes.removeSubrange(level...)
                while level < frames.count {
                    let batchFrame = frames[frames.endIndex - 1 - level]
                    let frame = frame(batchFrame)
                    let hash = FastHash.finish(
                        FastHash.combine(FastHash.processSeed, UInt64(UInt32(bitPattern: parent)) << 32 | UInt64(frame)))
                    let (id, isNew) = nodeIndex.lookUpOrAdd(hash: hash) { id in
                        nodeParents[Int(id)] == parent && nodeFrames[Int(id)] == frame
                    }
                    if isNew {
                        nodeParents.append(parent)
                        nodeFrames.append(frame)
                    }
                    parent = Int32(id)
                    pathFrames.append(batchFrame)
                    pathNodes.append(parent)
                    level += 1
                }
                precondition(parent >= 0, "empty stacks are dropped by the normaliser")
                stackMap[st] = UInt32(parent)
            }
            let t = batch.sampleTimes[i]
            sampleSeries.append(seriesMap[s])
            sampleStacks.append(stackMap[st])
            sampleValues.append(batch.sampleValues[i])
            sampleTimes.append(t)
            sampleSpans.append(i < batch.sampleSpans.count ? batch.sampleSpans[i] : 0)
            if t < minTime { minTime = t }
            if t > maxTime { maxTime = t }
        }
    }

    /// Adds a downsampled batch: its samples, and how many profiles each of its (series index, bucket time)
    /// stands for.
    mutating func appendDownsampled(_ batch: SampleBatch, profileCounts: [Downsampling.SeriesTime: Int32]) {
        appendSamples(batch)
        for (profile, count) in profileCounts where count != 1 {
            let key = batch.series[Int(profile.series)]
            guard let headSeries = seriesIndex.find(hash: Self.hash(key), matches: { series[Int($0)] == key }) else { continue }
            self.profileCounts[Downsampling.SeriesTime(series: headSeries, time: profile.time), default: 0] += count
        }
    }

    /// A series' labels through `FastHash` (its profile type is one of them).
    private static func hash(_ series: BatchSeries) -> UInt64 {
        var h = FastHash.processSeed
        for label in series.labels.labels {
            var (name, value) = (label.name, label.value)
            h = FastHash.combine(h, name.withUTF8 { FastHash.bytes($0) })
            h = FastHash.combine(h, value.withUTF8 { FastHash.bytes($0) })
        }
        return FastHash.finish(h)
    }

    /// Records provenance held by data merged in from elsewhere (compaction).
    mutating func absorb(provenance: KafkaProvenance) {
        for (k, v) in provenance.rawByPartition { rawOffsets[k, default: OffsetRanges()].formUnion(v) }
        for (k, v) in provenance.normalizedByPartition { normalizedOffsets[k, default: OffsetRanges()].formUnion(v) }
    }

    /// Sum of values per profile type.
    public var totalsByProfileType: [String: Int64] {
        var totals: [String: Int64] = [:]
        for i in 0..<sampleValues.count { totals[series[Int(sampleSeries[i])].profileType.id, default: 0] &+= sampleValues[i] }
        return totals
    }

    /// The frames of stack `id`, leaf first.
    public func stack(_ id: UInt32) -> [UInt32] {
        var out: [UInt32] = []
        var n = Int32(id)
        while n >= 0 {
            out.append(nodeFrames[Int(n)])
            n = nodeParents[Int(n)]
        }
        return out
    }
}

/// When to cut a head into a block: whichever limit is reached first.
public struct CutPolicy: Sendable, Equatable {
    /// Age of the head's first batch.
    public var maxAge: Duration
    /// Estimated in-memory size.
    public var maxBytes: Int
    public var maxSamples: Int

    /// 5 minutes bounds the delay until data is queryable from the store and the replay after a crash;
    /// 256 MiB keeps a head's encoding (which briefly doubles it) inside a modest container.
    public init(maxAge: Duration = .seconds(300), maxBytes: Int = 256 << 20, maxSamples: Int = 8_000_000) {
        self.maxAge = maxAge
        self.maxBytes = maxBytes
        self.maxSamples = maxSamples
    }

    public func shouldCut(_ head: Head, now: Date = Date()) -> Bool {
        guard !head.isEmpty else { return false }
        if head.sampleCount >= maxSamples || head.estimatedBytes + Head.encodingReserveBytes >= maxBytes { return true }
        guard let opened = head.openedAt else { return false }
        let age = now.timeIntervalSince(opened)
        let limit = Double(maxAge.components.seconds) + Double(maxAge.components.attoseconds) / 1e18
        return age >= limit
    }
}
