import CPrefetch
import PprofCodec
import ProfileModel

/// Builds a batch's symbol and stack tables from one pprof profile, deduplicating as it goes. Work is
/// cached per pprof string, function and location, so each is converted once however many samples use it.
struct BatchBuilder {
    private let profile: PprofProfile
    private var strings: StringInterner
    private var functions = SymbolIndex<FunctionSymbol>()
    private var frames = SymbolIndex<FrameSymbol>()

    private var stringMap: [Int32]
    private var functionMap: [Int32]
    /// pprof location -> its frames in the batch (innermost first): `start << 32 | count` into
    /// `locationFrameBuffer`; 0 until first use (every location has at least one frame). Flat, so
    /// reading a cached expansion allocates nothing.
    private var locationFrames: [UInt64]
    private var locationFrameBuffer: [UInt32] = []
    /// pprof mapping -> `mappingFile`'s answer, once asked.
    private var mappingFiles: [(file: [UInt8], filename: UInt32)?]
    /// Reused for each unsymbolized location's name.
    private var nameScratch: [UInt8] = []
    /// pprof location -> a content hash of its frames, stable across profiles.
    private var locationHashes: [UInt64?]
    /// Distinct frame runs: the batch's stack table itself (same layout as `StackTable`).
    private var frameRuns: RunInterner

    init(profile: PprofProfile) {
        self.profile = profile
        stringMap = [Int32](repeating: -1, count: profile.stringCount)
        // The profile's strings bound the batch's (names made for unsymbolized frames aside).
        strings = StringInterner(capacity: profile.stringCount, bytes: profile.stringLengths.reduce(0) { $0 + Int($1) })
        functionMap = [Int32](repeating: -1, count: profile.functions.count)
        locationFrames = [UInt64](repeating: 0, count: profile.locations.count)
        locationFrameBuffer.reserveCapacity(profile.locations.count + profile.lines.count)
        locationHashes = [UInt64?](repeating: nil, count: profile.locations.count)
        mappingFiles = Array(repeating: nil, count: profile.mappings.count)
        frameRuns = RunInterner()
    }

    /// The batch's deduplicated symbols.
    var symbols: SymbolTable { SymbolTable(strings: strings.strings, functions: functions.symbols, frames: frames.symbols) }

    /// The batch's deduplicated stacks.
    var stacks: StackTable { StackTable(starts: frameRuns.starts, frames: frameRuns.elements) }

    private mutating func string(_ pprofIndex: Int32) -> UInt32 {
        let mapped = stringMap[Int(pprofIndex)]
        if mapped >= 0 { return UInt32(mapped) }
        let bytes = profile.stringBytes(pprofIndex)
        let index = bytes.withUnsafeBufferPointer { strings.intern($0) }
        stringMap[Int(pprofIndex)] = Int32(index)
        return index
    }

    private mutating func function(_ pprofIndex: Int32) -> UInt32 {
        let mapped = functionMap[Int(pprofIndex)]
        if mapped >= 0 { return UInt32(mapped) }
        let f = profile.functions[Int(pprofIndex)]
        let index = functions.intern(
            FunctionSymbol(
                name: string(f.name), systemName: string(f.systemName),
                filename: string(f.filename), startLine: f.startLine))
        functionMap[Int(pprofIndex)] = Int32(index)
        return index
    }

    /// Converts a location into batch frames once per profile, into `locationFrameBuffer`. A location
    /// without lines (unsymbolized) becomes one frame named after its mapping and address, e.g.
    /// `libc.so.6+0x1f2e3`.
    private mutating func expandLocation(_ location: Int) {
        if locationFrames[location] != 0 { return }
        let start = locationFrameBuffer.count
        let lines = profile.lines(of: location)
        if lines.isEmpty {
            let loc = profile.locations[location]
            let (file, filename) = mappingFile(Int(loc.mappingIndex))
            nameScratch.removeAll(keepingCapacity: true)
            UnsymbolizedFrame.appendName(file: file, address: loc.address, to: &nameScratch)
            let name = nameScratch.withUnsafeBufferPointer { strings.intern($0) }
            let function = functions.intern(FunctionSymbol(name: name, systemName: name, filename: filename, startLine: 0))
            locationFrameBuffer.append(frames.intern(FrameSymbol(function: function, line: 0)))
        } else {
            for line in lines {
                locationFrameBuffer.append(frames.intern(FrameSymbol(function: function(line.functionIndex), line: line.line)))
            }
        }
        locationFrames[location] = UInt64(start) << 32 | UInt64(locationFrameBuffer.count - start)
    }

    /// A mapping's file name as unsymbolized frames are named after it (the path's last component, or
    /// "unknown") and its path's string id (0 without one); worked out once per mapping.
    private mutating func mappingFile(_ mappingIndex: Int) -> (file: [UInt8], filename: UInt32) {
        guard mappingIndex >= 0 else { return (UnsymbolizedFrame.unknownFile, 0) }
        if let known = mappingFiles[mappingIndex] { return known }
        let pathIndex = profile.mappings[mappingIndex].filename
        let path = Array(profile.string(pathIndex).utf8)
        let known = path.isEmpty ? (UnsymbolizedFrame.unknownFile, UInt32(0)) : (UnsymbolizedFrame.file(path), string(pathIndex))
        mappingFiles[mappingIndex] = known
        return known
    }

    /// Expands `pending` locations (in location order) into frames. Each line goes through three tables
    /// (strings, functions, frames), and in a large profile each lookup is a cache miss, as are the reads
    /// of its function and name in the profile. One table per pass, so a lookup's key is known a few lines
    /// ahead and its slot (and what the key is read from) is prefetched while earlier lines are done.
    private mutating func expandLocations(_ pending: [Int32]) {
        var lineFunctions: [Int32] = []
        var lineIndices: [Int32] = []
        var symbolized: [Int32] = []
        symbolized.reserveCapacity(pending.count)
        let lineBound = pending.reduce(0) { $0 + Int(profile.locations[Int($1)].lineCount) }
        lineFunctions.reserveCapacity(lineBound)
        lineIndices.reserveCapacity(lineBound)
        for location in pending {
            let loc = profile.locations[Int(location)]
            if loc.lineCount == 0 {
                expandLocation(Int(location))
                continue
            }
            symbolized.append(location)
            for li in Int(loc.lineStart)..<Int(loc.lineStart) + Int(loc.lineCount) {
                lineIndices.append(Int32(li))
                lineFunctions.append(profile.lines[li].functionIndex)
            }
        }
        let count = lineFunctions.count
        // Sized once for the most symbols these lines can add: growing by doubling re-placed every
        // symbol each time, and with the probes prefetched a large table no longer costs a miss per lookup.
        functions.reserve(count)
        frames.reserve(count)
        Self.internStrings(of: lineFunctions, profile: profile, strings: &strings, stringMap: &stringMap)
        Self.internFunctions(of: lineFunctions, profile: profile, stringMap: stringMap, functions: &functions, functionMap: &functionMap)
        // Frames: the lines' frame ids in order, then each location's share of them.
        var start = locationFrameBuffer.count
        locationFrameBuffer += Self.internFrames(of: lineIndices, profile: profile, functionMap: functionMap, frames: &frames)
        for location in symbolized {
            let lineCount = Int(profile.locations[Int(location)].lineCount)
            locationFrames[Int(location)] = UInt64(start) << 32 | UInt64(lineCount)
            start += lineCount
        }
    }

    /// Interns the name, system name and file name of each of `lineFunctions` (pprof function indices)
    /// into `strings`, recording each in `stringMap`. Four reads depend on each other here: the pprof
    /// function's record, its name's offset, the name's bytes, then the name's table slot; each is
    /// prefetched a few lines ahead, using what the step before brought in. Static, on raw buffers, so
    /// the loop neither retains the profile's arrays nor checks `stringMap` for uniqueness per write.
    private static func internStrings(
        of lineFunctions: [Int32], profile: PprofProfile, strings: inout StringInterner,
        stringMap: inout [Int32]
    ) {
        let count = lineFunctions.count
        profile.functions.withUnsafeBufferPointer { functions in
            profile.stringOffsets.withUnsafeBufferPointer { offsets in
                profile.stringLengths.withUnsafeBufferPointer { lengths in
                    profile.data.withUnsafeBufferPointer { data in
                        lineFunctions.withUnsafeBufferPointer { lineFunctions in
                            stringMap.withUnsafeMutableBufferPointer { stringMap in
                                func bytes(_ string: Int32) -> UnsafeBufferPointer<UInt8> {
                                    UnsafeBufferPointer(
                                        start: data.baseAddress! + Int(offsets[Int(string)]), count: Int(lengths[Int(string)]))
                                }
                                func intern(_ string: Int32, hash: UInt64? = nil) {
                                    if stringMap[Int(string)] < 0 {
                                        stringMap[Int(string)] = Int32(strings.intern(bytes(string), hash: hash))
                                    }
                                }
                                // The names' hashes from their prefetch two lines ahead (0 where none was made:
                                // the name is then hashed again, which a true hash of 0 survives too).
                                var nameHashes: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
                                for k in 0..<count {
                                    if k &+ 16 < count { kiln_prefetch(functions.baseAddress! + Int(lineFunctions[k &+ 16])) }
                                    if k &+ 10 < count {
                                        let name = Int(functions[Int(lineFunctions[k &+ 10])].name)
                                        kiln_prefetch(offsets.baseAddress! + name)
                                        kiln_prefetch(stringMap.baseAddress! + name)
                                    }
                                    if k &+ 5 < count {
                                        kiln_prefetch(data.baseAddress! + Int(offsets[Int(functions[Int(lineFunctions[k &+ 5])].name)]))
                                    }
                                    if k &+ 2 < count {
                                        let name = functions[Int(lineFunctions[k &+ 2])].name
                                        let hash = stringMap[Int(name)] < 0 ? strings.prefetchSlot(of: bytes(name)) : 0
                                        withUnsafeMutableBytes(of: &nameHashes) {
                                            $0.storeBytes(of: hash, toByteOffset: 8 * ((k &+ 2) & 3), as: UInt64.self)
                                        }
                                    }
                                    let f = functions[Int(lineFunctions[k])]
                                    let nameHash =
                                        k >= 2
                                        ? withUnsafeBytes(of: &nameHashes) { $0.load(fromByteOffset: 8 * (k & 3), as: UInt64.self) } : 0
                                    intern(f.name, hash: nameHash != 0 ? nameHash : nil)
                                    intern(f.systemName)
                                    intern(f.filename)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Interns each of `lineFunctions` (pprof function indices) into `functions`, recording it in
    /// `functionMap`. Every string is mapped by now, so a function's key is known a few lines ahead and
    /// its table slot prefetched.
    private static func internFunctions(
        of lineFunctions: [Int32], profile: PprofProfile, stringMap: [Int32],
        functions: inout SymbolIndex<FunctionSymbol>, functionMap: inout [Int32]
    ) {
        let count = lineFunctions.count
        profile.functions.withUnsafeBufferPointer { pprofFunctions in
            stringMap.withUnsafeBufferPointer { stringMap in
                lineFunctions.withUnsafeBufferPointer { lineFunctions in
                    functionMap.withUnsafeMutableBufferPointer { functionMap in
                        func symbol(_ function: Int) -> FunctionSymbol {
                            let f = pprofFunctions[function]
                            return FunctionSymbol(
                                name: UInt32(stringMap[Int(f.name)]), systemName: UInt32(stringMap[Int(f.systemName)]),
                                filename: UInt32(stringMap[Int(f.filename)]), startLine: f.startLine)
                        }
                        for k in 0..<count {
                            if k &+ 4 < count {
                                let ahead = Int(lineFunctions[k &+ 4])
                                if functionMap[ahead] < 0 { functions.prefetchSlot(symbol(ahead)) }
                            }
                            let function = Int(lineFunctions[k])
                            if functionMap[function] < 0 { functionMap[function] = Int32(functions.intern(symbol(function))) }
                        }
                    }
                }
            }
        }
    }

    /// Interns the frame of each of `lineIndices` (pprof lines, their functions mapped by now) into
    /// `frames`, a few lines' table slots prefetched ahead; returns the frame ids in line order.
    private static func internFrames(
        of lineIndices: [Int32], profile: PprofProfile, functionMap: [Int32],
        frames: inout SymbolIndex<FrameSymbol>
    ) -> [UInt32] {
        let count = lineIndices.count
        return [UInt32](unsafeUninitializedCapacity: count) { ids, initialized in
            profile.lines.withUnsafeBufferPointer { lines in
                functionMap.withUnsafeBufferPointer { functionMap in
                    lineIndices.withUnsafeBufferPointer { lineIndices in
                        func symbol(_ line: Int32) -> FrameSymbol {
                            let line = lines[Int(line)]
                            return FrameSymbol(function: UInt32(functionMap[Int(line.functionIndex)]), line: line.line)
                        }
                        for k in 0..<count {
                            if k &+ 4 < count { frames.prefetchSlot(symbol(lineIndices[k &+ 4])) }
                            ids.initializeElement(at: k, to: frames.intern(symbol(lineIndices[k])))
                        }
                    }
                }
            }
            initialized = count
        }
    }

    /// Frames stored per location without looking at its length (one 16-byte move); longer locations
    /// copy the rest in a loop. Most locations have one to four frames, and a branch on the length
    /// mispredicts often enough to dominate the interning pass.
    private static let inlineWidth = 4

    /// The batch stacks of the samples `needed` marks (others get 0), in sample order: each sample's
    /// location run becomes frames written straight into the stack table and interned there, so a stack
    /// seen before costs its hash and one comparison, and no allocation.
    mutating func stackIndices(needed: [Bool]) -> [UInt32] {
        // First the kept samples' frames are counted, so the stack table is sized once, and the locations
        // they use are marked and then expanded into symbols (in location order), so the interning pass
        // below only reads. Branch-free over small arrays: this pass reads every location id once more.
        let locationCount = profile.locations.count
        let frameCounts = profile.locations.map { UInt32(max(1, $0.lineCount)) }
        var used = [UInt8](repeating: 0, count: locationCount)
        var maxFrames = 0
        let samples = [Int32](unsafeUninitializedCapacity: profile.sampleCount) { samples, kept in
            profile.sampleLocationStarts.withUnsafeBufferPointer { starts in
                profile.sampleLocations.withUnsafeBufferPointer { locations in
                    frameCounts.withUnsafeBufferPointer { frameCounts in
                        used.withUnsafeMutableBufferPointer { used in
                            needed.withUnsafeBufferPointer { needed in
                                kept = 0
                                for s in 0..<profile.sampleCount where needed[s] {
                                    samples[kept] = Int32(s)
                                    kept &+= 1
                                    for k in Int(starts[s])..<Int(starts[s + 1]) {
                                        let location = Int(locations[k])
                                        used[location] = 1
                                        maxFrames &+= Int(frameCounts[location])
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var pending: [Int32] = []
        for location in 0..<locationCount where used[location] != 0 && locationFrames[location] == 0 {
            pending.append(Int32(location))
        }
        expandLocations(pending)
        // Each location's first frames inline, and its frame count (5 meaning more than 4): the pass
        // below loads both by location id alone, two independent loads, one of them from a table small
        // enough for the core's first-level cache.
        var inlineFrames = [SIMD4<UInt32>](repeating: SIMD4(), count: locationCount)
        var shortCounts = [UInt8](repeating: 0, count: locationCount)
        for location in 0..<locationCount where used[location] != 0 {
            let packed = locationFrames[location]
            let first = Int(truncatingIfNeeded: packed >> 32)
            let count = Int(truncatingIfNeeded: packed & 0xFFFF_FFFF)
            var four = SIMD4<UInt32>()
            for i in 0..<min(count, Self.inlineWidth) { four[i] = locationFrameBuffer[first + i] }
            inlineFrames[location] = four
            shortCounts[location] = UInt8(min(count, Self.inlineWidth + 1))
        }
        var result = [UInt32](repeating: 0, count: profile.sampleCount)
        var runs = frameRuns
        frameRuns = RunInterner()
        let ids = profile.sampleLocationStarts.withUnsafeBufferPointer { starts in
            profile.sampleLocations.withUnsafeBufferPointer { locations in
                locationFrames.withUnsafeBufferPointer { locationFrames in
                    locationFrameBuffer.withUnsafeBufferPointer { frameBuffer in
                        inlineFrames.withUnsafeBufferPointer { inlineFrames in
                            shortCounts.withUnsafeBufferPointer { shortCounts in
                                samples.withUnsafeBufferPointer { samples in
                                    // Room for the last location's 4-frame store past the final frame.
                                    runs.intern(runs: samples.count, maxElements: maxFrames + Self.inlineWidth - 1) { r, out in
                                        let s = Int(samples[r])
                                        var o = 0
                                        for k in Int(starts[s])..<Int(starts[s + 1]) {
                                            let location = Int(locations[k])
                                            var count = Int(shortCounts[location])
                                            UnsafeMutableRawPointer(out + o).storeBytes(of: inlineFrames[location], as: SIMD4<UInt32>.self)
                                            if count > Self.inlineWidth {
                                                let packed = locationFrames[location]
                                                let first = Int(truncatingIfNeeded: packed >> 32)
                                                count = Int(truncatingIfNeeded: packed & 0xFFFF_FFFF)
                                                for f in Self.inlineWidth..<count { out[o &+ f] = frameBuffer[first &+ f] }
                                            }
                                            o &+= count
                                        }
                                        return o
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        frameRuns = runs
        for (r, s) in samples.enumerated() { result[Int(s)] = ids[r] }
        return result
    }

    /// A key for sample `s`'s stack and labels by content (function names, files, lines), equal across
    /// successive profiles of a process even though pprof ids differ between them.
    mutating func contentKey(ofSample s: Int, labelsHash: UInt64) -> DeltaTracker.StackKey {
        var hash = FNV1a()
        var check: UInt64 = labelsHash
        hash.add(labelsHash)
        for location in profile.stack(s) {
            let h = locationHash(Int(location))
            hash.add(h)
            check = (check &* 31) &+ h
        }
        return DeltaTracker.StackKey(hash: hash.value, check: check)
    }

    private mutating func locationHash(_ location: Int) -> UInt64 {
        if let cached = locationHashes[location] { return cached }
        var hash = FNV1a()
        expandLocation(location)
        let packed = locationFrames[location]
        let count = Int(truncatingIfNeeded: packed & 0xFFFF_FFFF)
        let first = Int(truncatingIfNeeded: packed >> 32)
        for k in 0..<count {
            let f = frames.symbols[Int(locationFrameBuffer[first + k])]
            let fn = functions.symbols[Int(f.function)]
            strings.strings.withUTF8(Int(fn.name)) { hash.add(bytes: $0) }
            hash.add(byte: 0)
            strings.strings.withUTF8(Int(fn.filename)) { hash.add(bytes: $0) }
            hash.add(UInt64(bitPattern: f.line))
        }
        locationHashes[location] = hash.value
        return hash.value
    }
}
