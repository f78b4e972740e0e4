import ProfileModel
import Testing

@testable import Normalization

/// The symbol index against a plain dictionary: equal symbols share an id, ids are dense in first-seen
/// order, and the stored symbols are the distinct ones in that order, across table growth.
@Suite struct SymbolIndexTests {
    @Test(arguments: [1, 15, 16, 17, 5000])
    func idsMatchADictionary(count: Int) {
        var state: UInt64 = 0x2545_F491_4F6C_DD1D &+ UInt64(count)
        func next(_ bound: UInt64) -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state % bound
        }
        var functions = SymbolIndex<FunctionSymbol>()
        var frames = SymbolIndex<FrameSymbol>()
        // Reserved for part of the stream only, so the rest grows the table.
        functions.reserve(count / 3)
        var functionIDs: [FunctionSymbol: UInt32] = [:]
        var frameIDs: [FrameSymbol: UInt32] = [:]
        for _ in 0..<count {
            // Few distinct values per field, so repeats and near misses (one field apart) are common;
            // lines past 32 bits and negative ones check the 64-bit fields whole.
            let line = Int64(bitPattern: next(4) << 32 | next(6)) * (next(2) == 0 ? 1 : -1)
            let function = FunctionSymbol(
                name: UInt32(next(20)), systemName: UInt32(next(3)), filename: UInt32(next(4)),
                startLine: line)
            let expectedFunction = functionIDs[function] ?? UInt32(functionIDs.count)
            functionIDs[function] = expectedFunction
            #expect(functions.intern(function) == expectedFunction)
            let frame = FrameSymbol(function: expectedFunction % 50, line: line)
            let expectedFrame = frameIDs[frame] ?? UInt32(frameIDs.count)
            frameIDs[frame] = expectedFrame
            #expect(frames.intern(frame) == expectedFrame)
        }
        #expect(functions.symbols.count == functionIDs.count)
        #expect(frames.symbols.count == frameIDs.count)
        for (symbol, id) in functionIDs { #expect(functions.symbols[Int(id)] == symbol) }
        for (symbol, id) in frameIDs { #expect(frames.symbols[Int(id)] == symbol) }
    }
}
