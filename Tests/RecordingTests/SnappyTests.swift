import RemoteWrite
import Testing

@Suite struct SnappyTests {
    /// Snappy's block format read back by the specification (a reader written here only to check the
    /// writer; Prometheus reads the real requests in the ruler's integration test).
    static func decompress(_ bytes: [UInt8]) throws -> [UInt8] {
        struct Corrupt: Error {}
        var i = 0
        var length = 0
        var shift = 0
        while true {
            let b = bytes[i]
            i += 1
            length |= Int(b & 0x7F) << shift
            shift += 7
            if b < 0x80 { break }
        }
        var out: [UInt8] = []
        while i < bytes.count {
            let tag = bytes[i]
            i += 1
            switch tag & 3 {
            case 0:
                var n = Int(tag >> 2)
                if n >= 60 {
                    let width = n - 59
                    n = 0
                    for k in 0..<width { n |= Int(bytes[i + k]) << (8 * k) }
                    i += width
                }
                out += bytes[i..<(i + n + 1)]
                i += n + 1
            case 1:
                let n = Int((tag >> 2) & 7) + 4
                let offset = Int(tag >> 5) << 8 | Int(bytes[i])
                i += 1
                guard offset > 0, offset <= out.count else { throw Corrupt() }
                for _ in 0..<n { out.append(out[out.count - offset]) }
            case 2:
                let n = Int(tag >> 2) + 1
                let offset = Int(bytes[i]) | Int(bytes[i + 1]) << 8
                i += 2
                guard offset > 0, offset <= out.count else { throw Corrupt() }
                for _ in 0..<n { out.append(out[out.count - offset]) }
            default:
                throw Corrupt()
            }
        }
        guard out.count == length else { throw Corrupt() }
        return out
    }

    @Test(arguments: [0, 1, 7, 8, 61, 300, 70_000, 200_000])
    func roundTripsAndShrinksRepetitiveInput(size: Int) throws {
        var rng = SystemRandomNumberGenerator()
        let words = ["__name__", "profiles_recorded_cpu", "service_name", "checkout", "profiles_rule_id"].map { Array($0.utf8) }
        var input: [UInt8] = []
        while input.count < size { input += words.randomElement(using: &rng)! + [UInt8.random(in: 0...255, using: &rng)] }
        input = Array(input.prefix(size))
        let compressed = Snappy.compress(input)
        #expect(try Self.decompress(compressed) == input)
        if size >= 70_000 { #expect(compressed.count * 3 < input.count, "repeated label text shrinks") }
    }

    @Test func randomBytesRoundTrip() throws {
        var rng = SystemRandomNumberGenerator()
        let input = (0..<100_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        #expect(try Self.decompress(Snappy.compress(input)) == input)
        // Long runs use chained copies.
        let runs = [UInt8](repeating: 7, count: 5000) + [1, 2, 3] + [UInt8](repeating: 9, count: 67)
        #expect(try Self.decompress(Snappy.compress(runs)) == runs)
    }
}
