import ProfileModel

/// Pyroscope's profile names and which sample types accumulate.
public enum ProfileNaming {
    /// The `__name__` for a profile when the sender gave none, from its sample types (what Pyroscope's
    /// clients would have set): CPU, memory, goroutine, mutex/block contention, wall.
    public static func inferName(sampleTypes: [String], periodType: String) -> String {
        let types = Set(sampleTypes)
        if types.contains("alloc_space") || types.contains("inuse_space") || types.contains("alloc_objects")
            || types.contains("inuse_objects")
        {
            return "memory"
        }
        if types.contains("goroutine") || types.contains("goroutines") { return "goroutine" }
        if types.contains("contentions") || types.contains("delay") { return periodType == "contentions" ? "mutex" : "block" }
        if types.contains("wall") { return "wall" }
        if types.contains("cpu") || types.contains("samples") || periodType == "cpu" { return "process_cpu" }
        // Never empty: a profile type ID needs a name, and a block with an unnamed type cannot be read.
        return sampleTypes.last { !$0.isEmpty } ?? "unknown"
    }

    /// Sample types whose values accumulate since process start in Go's plain endpoints
    /// (`/debug/pprof/allocs`, `/mutex`, `/block`): these become deltas. `inuse_*` are snapshots.
    public static let cumulativeSampleTypes: Set<String> = ["alloc_objects", "alloc_space", "contentions", "delay"]
}
