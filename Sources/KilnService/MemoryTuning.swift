#if canImport(Glibc)
    import CMalloc
#endif

/// glibc malloc settings for processes that allocate and free buffers of megabytes per record (a large
/// profile's decompressed bytes, its stack table, the encoded batch).
///
/// By default glibc serves such blocks with `mmap` and returns them to the kernel on `free`, so every
/// record pays page faults and page zeroing for memory it just gave back (on the fixture profiles, 8,200
/// faults per round against 740, and a tenth of the normaliser's time in the kernel). Blocks below 32 MiB (glibc's ceiling for the setting) now come from the
/// heap, and freed memory is kept for reuse rather than trimmed. The cost: resident memory stays near
/// its peak instead of falling back between large records.
public enum MemoryTuning {
    public static let mmapThreshold = 32 << 20

    public static func keepFreedMemoryForReuse() {
        #if canImport(Glibc)
            _ = mallopt(M_MMAP_THRESHOLD, Int32(mmapThreshold))
            _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
        #endif
    }

    /// Back to glibc's starting thresholds (128 KiB), with the kept memory returned: for a process that
    /// tuned itself for one phase (the benchmark runner, before suites that measure peak memory).
    public static func restoreDefaults() {
        #if canImport(Glibc)
            _ = mallopt(M_MMAP_THRESHOLD, 128 << 10)
            _ = mallopt(M_TRIM_THRESHOLD, 128 << 10)
            _ = malloc_trim(0)
        #endif
    }
}
