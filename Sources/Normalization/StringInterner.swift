import CPrefetch
import KilnFoundation
import ProfileModel

/// A batch's strings, deduplicated by their UTF-8 bytes. A pprof string is hashed and compared where it
/// lies in the payload and copied into the batch's string table only when it is new to the batch, so a
/// profile's large string table costs no `String` per entry and no dictionary of strings.
struct StringInterner {
    /// Index 0 is always "".
    private(set) var strings = StringTable()
    /// Ids of `strings` by their bytes' hash.
    private var index: DenseIDIndex

    /// Room for `capacity` strings of `bytes` bytes in all, so the table grows by copying only past them.
    init(capacity: Int, bytes: Int = 0) {
        index = DenseIDIndex(capacity: capacity + 1)
        strings.reserveCapacity(strings: capacity + 1, bytes: bytes)
        _ = intern(UnsafeBufferPointer(start: nil, count: 0))
    }

    mutating func intern(_ text: String) -> UInt32 {
        var text = text
        return text.withUTF8 { intern($0) }
    }

    /// The id of `bytes` as a `String` made from them would read: invalid UTF-8 is repaired first, so
    /// the table holds valid UTF-8 and equal repairs share an id.
    /// `hash`, when given, is `prefetchSlot(of: bytes)`'s answer, so the bytes are not hashed twice.
    mutating func intern(_ bytes: UnsafeBufferPointer<UInt8>, hash known: UInt64? = nil) -> UInt32 {
        guard StringTable.isValidUTF8(bytes) else { return intern(String(decoding: bytes, as: UTF8.self)) }
        let hash = known ?? Self.hash(bytes)
        let (id, isNew) = strings.utf8.withUnsafeBufferPointer { stored in
            index.lookUpOrAdd(hash: hash) { id in
                Self.equal(UnsafeBufferPointer(rebasing: stored[strings.byteRange(Int(id))]), bytes)
            }
        }
        if isNew { strings.appendValidUTF8(bytes) }
        return id
    }

    /// Starts loading the table slot where `bytes` would be looked up: the probe is a cache miss in a
    /// large profile's table, and a caller that knows the next strings can have it arrive early.
    /// `mutating` although it changes nothing: called on an `inout` interner, the non-mutating form
    /// copied the interner (four retains and four releases) at every call.
    /// Returns the bytes' hash for `intern(_:hash:)`.
    @discardableResult
    mutating func prefetchSlot(of bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        let hash = Self.hash(bytes)
        index.withFirstSlot(of: hash) { kiln_prefetch($0) }
        return hash
    }

    /// The table compares bytes on a hash match, so a fast hash will do.
    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 { FastHash.bytes(bytes) }

    private static func equal(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        for k in 0..<a.count where a[k] != b[k] { return false }
        return true
    }
}
