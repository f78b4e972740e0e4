// libFuzzer target over the OTLP profiles decoder (built by scripts/fuzz.sh together with the sources it
// needs from KilnFoundation, ProfileModel, PprofCodec and OTLPIngest). Any input must either be refused
// (a decoding error, a request or profile problem) or become pprof that the pprof decoder reads back.

@_cdecl("LLVMFuzzerTestOneInput")
public func otlpDecoderFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let wire = try? OTLPWireRequest(bytes), wire.requestProblem == nil else { return 0 }
    var check = DictionaryCheck(wire)
    var units: [ProfileUnit] = []
    for p in wire.profiles.indices {
        let profile = wire.profiles[p]
        guard profile.problem == nil, (try? check.check(profile: p)) != nil, let type = profile.sampleType,
            let groups = try? TimeGroups(wire, profile, profileTime: 1)
        else { continue }
        for group in groups.groups {
            var unit = ProfileUnit(
                key: .init(labels: LabelSet(), start: group.start, duration: 0, periodType: profile.periodType, period: profile.period))
            unit.columns = [type]
            unit.members = [.init(profile: p, column: 0, events: group.events)]
            units.append(unit)
        }
    }
    var assembler = PprofAssembler(check: check)
    for unit in units {
        guard let pprof = try? assembler.build(unit) else { continue }
        do {
            _ = try PprofDecoder(limits: .unbounded()).decode(pprof)
        } catch {
            fatalError("assembled pprof does not decode: \(error)")
        }
    }
    return 0
}
