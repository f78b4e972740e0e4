import PprofCodec

/// Builds small pprof profiles by hand for tests: stacks are function names, leaf first.
struct SyntheticProfile {
    struct Sample {
        var stack: [String]
        var values: [Int64]
        var labels: [(String, String)] = []
    }

    var sampleTypes: [(String, String)]
    var periodType: (String, String)
    var samples: [Sample]
    var timeNanos: Int64 = 1_700_000_000_000_000_000

    func build() -> PprofProfile {
        var strings = [""]
        func intern(_ s: String) -> Int32 {
            if let i = strings.firstIndex(of: s) { return Int32(i) }
            strings.append(s)
            return Int32(strings.count - 1)
        }
        var functions: [PprofFunction] = []
        var locations: [PprofLocation] = []
        var lines: [PprofLine] = []
        var locationOf: [String: Int32] = [:]
        var starts: [Int32] = [0]
        var stackLocations: [Int32] = []
        var values: [Int64] = []
        var labelStarts: [Int32] = [0]
        var labels: [PprofLabel] = []
        let types = sampleTypes.map { PprofValueType(type: intern($0.0), unit: intern($0.1)) }
        let period = PprofValueType(type: intern(periodType.0), unit: intern(periodType.1))
        for sample in samples {
            for name in sample.stack {
                if let l = locationOf[name] {
                    stackLocations.append(l)
                    continue
                }
                functions.append(
                    PprofFunction(
                        id: UInt64(functions.count + 1), name: intern(name), systemName: intern(name), filename: intern("main.go")))
                lines.append(PprofLine(functionIndex: Int32(functions.count - 1), line: Int64(10 + functions.count)))
                locations.append(PprofLocation(id: UInt64(locations.count + 1), lineStart: Int32(lines.count - 1), lineCount: 1))
                locationOf[name] = Int32(locations.count - 1)
                stackLocations.append(Int32(locations.count - 1))
            }
            starts.append(Int32(stackLocations.count))
            values.append(contentsOf: sample.values)
            for (k, v) in sample.labels { labels.append(PprofLabel(key: intern(k), str: intern(v))) }
            labelStarts.append(Int32(labels.count))
        }
        var data: [UInt8] = []
        var offsets: [UInt32] = []
        var lengths: [UInt32] = []
        for s in strings {
            offsets.append(UInt32(data.count))
            lengths.append(UInt32(s.utf8.count))
            data.append(contentsOf: s.utf8)
        }
        return PprofProfile(
            data: data, stringOffsets: offsets, stringLengths: lengths, sampleTypes: types,
            periodType: period, period: 1, timeNanos: timeNanos,
            sampleLocationStarts: starts, sampleLocations: stackLocations, values: values,
            sampleLabelStarts: labelStarts, labels: labels,
            locations: locations, lines: lines, functions: functions)
    }

    func encoded() -> [UInt8] { PprofEncoder.encodeGzip(build()) }
}
