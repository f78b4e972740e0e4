// libFuzzer target over the pprof decoder (built by scripts/fuzz.sh together with Sources/PprofCodec).
// Any input must either be rejected with a PprofError or decode to a profile that survives the rest of
// the pipeline: facts, encode -> decode round trip (same shape), and merge.

@_cdecl("LLVMFuzzerTestOneInput")
public func pprofDecoderFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var limits = PprofLimits.default
    limits.maxDecompressedBytes = 8 << 20  // keep each run small; the cap logic is what is exercised
    guard let profile = try? PprofDecoder(limits: limits).decode(bytes) else { return 0 }
    let facts = ProfileFacts(profile)
    let again: PprofProfile
    do {
        again = try PprofDecoder(limits: .unbounded()).decode(PprofEncoder.encode(profile))
    } catch {
        fatalError("re-encoded profile does not decode: \(error)")
    }
    precondition(ProfileFacts(again) == facts, "round trip changed the profile's facts")
    precondition(
        again.sampleLocations == profile.sampleLocations && again.values == profile.values,
        "round trip changed samples")
    var merger = PprofMerger()
    do {
        try merger.add(profile)
        try merger.add(again)
    } catch { fatalError("self-merge failed: \(error)") }
    let merged = merger.finish()
    precondition(merged.sampleCount <= profile.sampleCount, "merge of a profile with itself grew")
    return 0
}
