import PprofCodec
import ProfileModel

/// Folded stacks (`main;work;compute 120` per line, root first), Pyroscope's `/ingest` default format,
/// turned into a pprof profile so the rest of normalisation is shared.
///
/// The envelope's attributes say what the numbers mean: `__name__` process_cpu (or wall) values are
/// sample counts at `sampleRate` Hz (default 100) and become nanoseconds, as Pyroscope does; otherwise
/// `sampleType`/`sampleUnit` (from the name's suffix) name the type, else `units` (default `samples`).
enum FoldedProfile {
    static func parse(_ payload: [UInt8], attributes: [String: String], limits: PprofLimits) throws(NormalizationError) -> PprofProfile {
        guard payload.count <= limits.maxDecompressedBytes else {
            throw NormalizationError("folded profile of \(payload.count) bytes exceeds the limit of \(limits.maxDecompressedBytes) bytes")
        }
        let name = attributes["name"] ?? ""
        let sampleRate = Int64(attributes["sampleRate"] ?? "").flatMap { $0 > 0 ? $0 : nil } ?? 100
        let units = attributes["units"].flatMap { $0.isEmpty ? nil : $0 } ?? "samples"
        let isTime = name == "process_cpu" || name == "wall"
        let scale: Int64 = isTime ? 1_000_000_000 / sampleRate : 1

        var strings: [String] = [""]
        var stringIndex: [String: Int32] = ["": 0]
        func intern(_ s: String) -> Int32 {
            if let i = stringIndex[s] { return i }
            let i = Int32(strings.count)
            strings.append(s)
            stringIndex[s] = i
            return i
        }
        let (typeName, unitName, periodTypeName, periodUnitName): (String, String, String, String)
        if isTime {
            typeName = name == "wall" ? "wall" : "cpu"
            (unitName, periodTypeName, periodUnitName) = ("nanoseconds", typeName, "nanoseconds")
        } else if let type = attributes["sampleType"], !type.isEmpty, let unit = attributes["sampleUnit"], !unit.isEmpty {
            // The ingest route read them from the name's suffix (`app.alloc_objects` → alloc_objects/count).
            (typeName, unitName, periodTypeName, periodUnitName) = (type, unit, type, unit)
        } else {
            typeName = units
            unitName =
                ["bytes": "bytes", "objects": "count", "goroutines": "count", "samples": "count", "lock_nanoseconds": "nanoseconds"][units]
                ?? units
            (periodTypeName, periodUnitName) = (typeName, unitName)
        }
        let sampleType = PprofValueType(type: intern(typeName), unit: intern(unitName))
        let periodType = PprofValueType(type: intern(periodTypeName), unit: intern(periodUnitName))

        var functions: [PprofFunction] = []
        var locations: [PprofLocation] = []
        var lines: [PprofLine] = []
        var locationOfName: [String: Int32] = [:]
        var starts: [Int32] = [0]
        var stackLocations: [Int32] = []
        var values: [Int64] = []
        var lineNumber = 0
        let text = String(decoding: payload, as: UTF8.self)
        for rawLine in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            lineNumber += 1
            guard let space = rawLine.lastIndex(of: " ") else {
                throw NormalizationError("folded line \(lineNumber): expected \"stack value\", found no value")
            }
            guard let count = Int64(rawLine[rawLine.index(after: space)...]), count >= 0 else {
                throw NormalizationError(
                    "folded line \(lineNumber): value \"\(rawLine[rawLine.index(after: space)...])\" is not a non-negative integer")
            }
            let frames = rawLine[..<space].split(separator: ";", omittingEmptySubsequences: true)
            guard frames.count <= limits.maxStackDepth else {
                throw NormalizationError(
                    "folded line \(lineNumber): stack depth \(frames.count) exceeds the limit of \(limits.maxStackDepth)")
            }
            for frame in frames.reversed() {
                let frameName = String(frame.prefix(limits.maxSymbolLength))
                if let location = locationOfName[frameName] {
                    stackLocations.append(location)
                    continue
                }
                let functionIndex = Int32(functions.count)
                functions.append(PprofFunction(id: UInt64(functionIndex) + 1, name: intern(frameName), systemName: intern(frameName)))
                let location = Int32(locations.count)
                locations.append(PprofLocation(id: UInt64(location) + 1, lineStart: Int32(lines.count), lineCount: 1))
                lines.append(PprofLine(functionIndex: functionIndex))
                locationOfName[frameName] = location
                stackLocations.append(location)
            }
            starts.append(Int32(stackLocations.count))
            let (scaled, overflow) = count.multipliedReportingOverflow(by: scale)
            guard !overflow else {
                throw NormalizationError("folded line \(lineNumber): value \(count) overflows when scaled to nanoseconds")
            }
            values.append(scaled)
            guard values.count <= limits.maxSamples else {
                throw NormalizationError("folded profile has more than \(limits.maxSamples) samples (the limit)")
            }
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
            data: data, stringOffsets: offsets, stringLengths: lengths, sampleTypes: [sampleType],
            periodType: periodType, period: isTime ? scale : 1,
            sampleLocationStarts: starts, sampleLocations: stackLocations, values: values,
            sampleLabelStarts: [Int32](repeating: 0, count: starts.count),
            locations: locations, lines: lines, functions: functions)
    }
}
