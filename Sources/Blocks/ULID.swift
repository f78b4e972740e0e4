import Foundation
import ObjectStore

/// A ULID: 48-bit millisecond timestamp + 80 bits of entropy, written as 26 Crockford base32 characters that
/// sort lexicographically by time. Block folders are named by one.
public struct ULID: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// Big-endian bytes: 6 timestamp bytes, then 10 entropy bytes.
    public let bytes: [UInt8]

    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    public init(timestampMillis: UInt64, entropy: [UInt8]) {
        precondition(entropy.count >= 10, "a ULID needs 80 bits of entropy")
        var b = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { b[i] = UInt8(truncatingIfNeeded: timestampMillis >> (8 * (5 - UInt64(i)))) }
        for i in 0..<10 { b[6 + i] = entropy[i] }
        bytes = b
    }

    /// A fresh ULID with random entropy.
    public static func make(timestampMillis: UInt64 = UInt64(Date().timeIntervalSince1970 * 1000)) -> ULID {
        var rng = SystemRandomNumberGenerator()
        return ULID(timestampMillis: timestampMillis, entropy: (0..<10).map { _ in UInt8.random(in: 0...255, using: &rng) })
    }

    /// A ULID whose entropy is derived from `seed` (SHA-256), so the same inputs always name the same block.
    public static func deterministic(timestampMillis: UInt64, seed: String) -> ULID {
        let digest = SigV4Signer.sha256Hex(Array(seed.utf8))
        var entropy: [UInt8] = []
        var it = digest.utf8.makeIterator()
        while entropy.count < 10, let hi = it.next(), let lo = it.next() {
            entropy.append(UInt8(hexDigit(hi) << 4 | hexDigit(lo)))
        }
        return ULID(timestampMillis: timestampMillis, entropy: entropy)
    }

    private static func hexDigit(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : c - 87 }

    /// Parses 26 Crockford base32 characters (case-insensitive; I/L read as 1, O as 0).
    public init?(string: String) {
        let chars = Array(string.utf8)
        guard chars.count == 26 else { return nil }
        var value: [UInt8] = []
        for c in chars {
            guard let v = Self.decode(c) else { return nil }
            value.append(v)
        }
        // The first character holds only 3 bits (26*5 = 130 = 128 + 2 leading zero bits).
        guard value[0] <= 7 else { return nil }
        var out = [UInt8](repeating: 0, count: 16)
        var acc: UInt32 = 0
        var bits = 0
        var idx = 0
        // Skip the 2 padding bits of the first character.
        acc = UInt32(value[0])
        bits = 3
        for v in value.dropFirst() {
            acc = (acc << 5) | UInt32(v)
            bits += 5
            if bits >= 8 {
                bits -= 8
                out[idx] = UInt8(truncatingIfNeeded: acc >> UInt32(bits))
                idx += 1
                acc &= (1 << UInt32(bits)) - 1
            }
        }
        bytes = out
    }

    private static func decode(_ c: UInt8) -> UInt8? {
        var c = c
        if c >= 97 && c <= 122 { c -= 32 }
        switch c {
        case 79: return 0  // O
        case 73, 76: return 1  // I, L
        default:
            return alphabet.firstIndex(of: c).map { UInt8($0) }
        }
    }

    public var timestampMillis: UInt64 {
        var t: UInt64 = 0
        for i in 0..<6 { t = t << 8 | UInt64(bytes[i]) }
        return t
    }

    public var string: String {
        var out = [UInt8](repeating: 0, count: 26)
        // 128 bits as 26 groups of 5 bits, the first group holding the top 3 bits.
        var hi: UInt64 = 0
        var lo: UInt64 = 0
        for i in 0..<8 { hi = hi << 8 | UInt64(bytes[i]) }
        for i in 8..<16 { lo = lo << 8 | UInt64(bytes[i]) }
        for i in 0..<26 {
            let shift = 125 - 5 * i  // bit position of this group's lowest bit, counted from the LSB of 128
            let v: UInt64
            if shift >= 64 {
                v = (hi >> UInt64(shift - 64)) & 31
            } else if shift + 5 <= 64 {
                v = (lo >> UInt64(shift)) & 31
            } else {
                v = ((lo >> UInt64(shift)) | (hi << UInt64(64 - shift))) & 31
            }
            out[i] = Self.alphabet[Int(v)]
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { string }
    public static func < (a: ULID, b: ULID) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }

    public init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let u = ULID(string: s) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a ULID: \(s)"))
        }
        self = u
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(string)
    }
}
