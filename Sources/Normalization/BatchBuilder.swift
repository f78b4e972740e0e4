import PprofCodec
import ProfileModel

/// Builds a batch's symbol and stack tables from one pprof profile, deduplicating as it goes. Work is
/// cached per pprof string, function and location, so each is converted once however many samples use it.
struct BatchBuilder {
    private let profile: PprofProfile
    private(set) var symbols = SymbolTable()
    private(set) var stacks = StackTable()

    private var stringMap: [Int32]
    private var stringIndex: [String: UInt32] = ["": 0]
    private var functionMap: [Int32]
    private var functionIndex: [FunctionSymbol: UInt32] = [:]
    private var frameIndex: [FrameSymbol: UInt32] = [:]
    /// pprof location -> its frames in the batch (innermost first); nil until first use.
    private var locationFrames: [[UInt32]?]
    /// pprof location -> a content hash of its frames, stable across profiles.
    private var locationHashes: [UInt64?]
    private var stackByLocations: [ArraySlice<Int32>: UInt32] = [:]
    private var stackByFrames: [[UInt32]: UInt32] = [:]

    init(profile: PprofProfile) {
        self.profile = profile
        stringMap = [Int32](repeating: -1, count: profile.stringCount)
        functionMap = [Int32](repeating: -1, count: profile.functions.count)
        locationFrames = [[UInt32]?](repeating: nil, count: profile.locations.count)
        locationHashes = [UInt64?](repeating: nil, count: profile.locations.count)
    }

    private mutating func string(_ pprofIndex: Int32) -> UInt32 {
        let mapped = stringMap[Int(pprofIndex)]
        if mapped >= 0 { return UInt32(mapped) }
        let index = intern(profile.string(pprofIndex))
        stringMap[Int(pprofIndex)] = Int32(index)
        return index
    }

    private mutating func intern(_ text: String) -> UInt32 {
        if let i = stringIndex[text] { return i }
        let i = UInt32(symbols.strings.count)
        symbols.strings.append(text)
        stringIndex[text] = i
        return i
    }

    private mutating func function(_ pprofIndex: Int32) -> UInt32 {
        let mapped = functionMap[Int(pprofIndex)]
        if mapped >= 0 { return UInt32(mapped) }
        let f = profile.functions[Int(pprofIndex)]
        let index = function(FunctionSymbol(name: string(f.name), systemName: string(f.systemName),
                                            filename: string(f.filename), startLine: f.startLine))
        functionMap[Int(pprofIndex)] = Int32(index)
        return index
    }

    private mutating func function(_ symbol: FunctionSymbol) -> UInt32 {
        if let i = functionIndex[symbol] { return i }
        let i = UInt32(symbols.functions.count)
        symbols.functions.append(symbol)
        functionIndex[symbol] = i
        return i
    }

    private mutating func frame(_ symbol: FrameSymbol) -> UInt32 {
        if let i = frameIndex[symbol] { return i }
        let i = UInt32(symbols.frames.count)
        symbols.frames.append(symbol)
        frameIndex[symbol] = i
        return i
    }

    /// A location's frames, innermost first. A location without lines (unsymbolized) becomes one frame
    /// named after its mapping and address, e.g. `libc.so.6+0x1f2e3`.
    private mutating func frames(ofLocation location: Int) -> [UInt32] {
        if let cached = locationFrames[location] { return cached }
        var result: [UInt32] = []
        let lines = profile.lines(of: location)
        if lines.isEmpty {
            let loc = profile.locations[location]
            var mappingFile = "unknown"
            var filename: UInt32 = 0
            if loc.mappingIndex >= 0 {
                let mapping = profile.mappings[Int(loc.mappingIndex)]
                let path = profile.string(mapping.filename)
                if !path.isEmpty {
                    mappingFile = path.split(separator: "/").last.map(String.init) ?? path
                    filename = string(mapping.filename)
                }
            }
            let name = intern("\(mappingFile)+0x\(String(loc.address, radix: 16))")
            result.append(frame(FrameSymbol(function: function(FunctionSymbol(name: name, systemName: name, filename: filename, startLine: 0)), line: 0)))
        } else {
            for line in lines {
                result.append(frame(FrameSymbol(function: function(line.functionIndex), line: line.line)))
            }
        }
        locationFrames[location] = result
        return result
    }

    /// The batch stack of sample `s`, deduplicated first by the pprof location run, then by frames.
    mutating func stackIndex(ofSample s: Int) -> UInt32 {
        let locations = profile.stack(s)
        if let known = stackByLocations[locations] { return known }
        var frameRun: [UInt32] = []
        frameRun.reserveCapacity(locations.count)
        for location in locations { frameRun.append(contentsOf: frames(ofLocation: Int(location))) }
        let index: UInt32
        if let known = stackByFrames[frameRun] {
            index = known
        } else {
            index = UInt32(stacks.count)
            stacks.append(frameRun)
            stackByFrames[frameRun] = index
        }
        stackByLocations[locations] = index
        return index
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
        for frameIndex in frames(ofLocation: location) {
            let f = symbols.frames[Int(frameIndex)]
            let fn = symbols.functions[Int(f.function)]
            hash.add(symbols.strings[Int(fn.name)])
            hash.add(byte: 0)
            hash.add(symbols.strings[Int(fn.filename)])
            hash.add(UInt64(bitPattern: f.line))
        }
        locationHashes[location] = hash.value
        return hash.value
    }
}
