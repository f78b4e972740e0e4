/// How a location without lines (unsymbolized: eBPF, perf, a stripped binary) is named wherever Kiln turns
/// pprof into stacks: after its mapping's file and its address, e.g. `libc.so.6+0x1f2e3`.
public enum UnsymbolizedFrame {
    /// The file of a location without a mapping, or of a mapping without a path.
    public static let unknownFile = Array("unknown".utf8)

    /// The last non-empty `/`-separated component of a mapping's path, or the path itself when it has none ("/").
    public static func file(_ path: [UInt8]) -> [UInt8] {
        let slash = UInt8(ascii: "/")
        guard let end = path.lastIndex(where: { $0 != slash }) else { return path }
        let start = path[..<end].lastIndex(of: slash).map { $0 + 1 } ?? 0
        return Array(path[start...end])
    }

    /// Appends `file+0x<address in lower-case hex>` without making Strings: an unsymbolized profile names
    /// every location this way.
    public static func appendName(file: [UInt8], address: UInt64, to out: inout [UInt8]) {
        out.append(contentsOf: file)
        out.append(contentsOf: "+0x".utf8)
        let digits = max(1, (67 - address.leadingZeroBitCount) / 4)
        for k in stride(from: digits - 1, through: 0, by: -1) {
            let nibble = UInt8(truncatingIfNeeded: address >> UInt64(4 * k)) & 0xF
            out.append(nibble < 10 ? 0x30 + nibble : 0x57 + nibble)
        }
    }

    /// The name of a location without lines in `profile`.
    public static func name(of location: PprofLocation, in profile: PprofProfile) -> String {
        let path = location.mappingIndex >= 0 ? Array(profile.string(profile.mappings[Int(location.mappingIndex)].filename).utf8) : []
        var out: [UInt8] = []
        appendName(file: path.isEmpty ? unknownFile : file(path), address: location.address, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
