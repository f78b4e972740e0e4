import CVarint

/// The tables `kiln_small_varints` steps by (see CVarint): for each pattern of end bits in a 12-byte
/// window, how many whole varints of one to three bytes start it (at most four), the bytes they take,
/// and a byte shuffle that puts each one's bytes in its own 32-bit lane.
enum SmallVarints {
    typealias Tables = (keys: UnsafePointer<UInt16>, shuffles: UnsafePointer<UInt8>)

    /// Built once per process and never freed or written again, so sharing the pointers is safe.
    nonisolated(unsafe) static let tables: Tables? = build()

    private static func build() -> Tables? {
        guard kiln_small_varints_supported() != 0 else { return nil }
        let keys = UnsafeMutablePointer<UInt16>.allocate(capacity: 1 << 12)
        var shuffles: [[UInt8]] = [Array(repeating: 0x80, count: 16)]  // entry 0: nothing decodable
        var shuffleIDs: [[Int]: Int] = [:]
        for ends in 0..<1 << 12 {
            var lengths: [Int] = []
            var start = 0
            for bit in 0..<12 where ends & (1 << bit) != 0 {
                let length = bit + 1 - start
                if length > 3 || lengths.count == 4 { break }
                lengths.append(length)
                start = bit + 1
            }
            guard !lengths.isEmpty else {
                keys[ends] = 0
                continue
            }
            let id =
                shuffleIDs[lengths]
                ?? {
                    var shuffle = [UInt8](repeating: 0x80, count: 16)
                    var at = 0
                    for (lane, length) in lengths.enumerated() {
                        for k in 0..<length { shuffle[4 * lane + k] = UInt8(at + k) }
                        at += length
                    }
                    shuffles.append(shuffle)
                    shuffleIDs[lengths] = shuffles.count - 1
                    return shuffles.count - 1
                }()
            keys[ends] = UInt16(lengths.count | start << 3 | id << 7)
        }
        let flat = UnsafeMutablePointer<UInt8>.allocate(capacity: 16 * shuffles.count)
        for (i, shuffle) in shuffles.enumerated() {
            for k in 0..<16 { flat[16 * i + k] = shuffle[k] }
        }
        return (UnsafePointer(keys), UnsafePointer(flat))
    }
}
