/// Bounds that protect the process from hostile or runaway profiles. Every bound either rejects the
/// profile with a `.limit` error or truncates in a documented, counted way (see docs/pprof.md).
public struct PprofLimits: Sendable, Equatable {
    /// Largest decompressed (raw protobuf) size in bytes. Inflation stops as soon as the output would
    /// exceed it, so a gzip bomb costs at most this much memory and the time to inflate this much.
    public var maxDecompressedBytes: Int
    /// Largest number of Sample messages; more rejects the profile.
    public var maxSamples: Int
    /// Deepest stack kept per sample. Deeper stacks are TRUNCATED: the `maxStackDepth` frames nearest
    /// the leaf are kept (what the Go runtime itself does), the root-side rest is dropped and the
    /// sample is counted in `PprofProfile.truncatedStacks`. 0 = no limit.
    public var maxStackDepth: Int
    /// Most labels (string and numeric) on one sample; more rejects the profile. 0 = no limit.
    public var maxLabelsPerSample: Int
    /// Longest string-table entry in bytes. Longer strings are TRUNCATED to this length (cut back to a
    /// UTF-8 boundary) and counted in `PprofProfile.truncatedStrings`. 0 = no limit.
    public var maxSymbolLength: Int

    public init(
        maxDecompressedBytes: Int, maxSamples: Int, maxStackDepth: Int, maxLabelsPerSample: Int,
        maxSymbolLength: Int
    ) {
        self.maxDecompressedBytes = maxDecompressedBytes
        self.maxSamples = maxSamples
        self.maxStackDepth = maxStackDepth
        self.maxLabelsPerSample = maxLabelsPerSample
        self.maxSymbolLength = maxSymbolLength
    }

    /// Kiln's default: Pyroscope's per-sample bounds (depth 1000, 100 labels, 65535-byte symbols) with
    /// room for large real profiles (merged server exports reach 7 MB raw and 120k samples).
    public static let `default` = PprofLimits(
        maxDecompressedBytes: 64 << 20, maxSamples: 1_000_000,
        maxStackDepth: 1000, maxLabelsPerSample: 100,
        maxSymbolLength: 65535)

    /// Grafana Pyroscope's ingest defaults (`validation.max-profile-size-bytes` 4 MiB uncompressed,
    /// `max-profile-stacktrace-samples` 16000, depth 1000, 100 labels, 65535-byte symbols).
    public static let pyroscope = PprofLimits(
        maxDecompressedBytes: 4 << 20, maxSamples: 16000,
        maxStackDepth: 1000, maxLabelsPerSample: 100,
        maxSymbolLength: 65535)

    /// No per-sample bounds; only the size cap (which the decoder always needs).
    public static func unbounded(maxDecompressedBytes: Int = 1 << 30) -> PprofLimits {
        PprofLimits(
            maxDecompressedBytes: maxDecompressedBytes, maxSamples: Int.max, maxStackDepth: 0,
            maxLabelsPerSample: 0, maxSymbolLength: 0)
    }
}
