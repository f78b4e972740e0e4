/// Why a pprof payload was rejected. `description` is one line that names the fault, suitable for a DLQ
/// header or a CLI error, e.g. `location 7: line 2 references function 0 (reserved)`.
public struct PprofError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Zero bytes of input.
        case empty
        /// The gzip stream is corrupt or truncated.
        case decompression
        /// The bytes are not a well-formed protobuf encoding of `perftools.profiles.Profile`.
        case malformed
        /// Well-formed protobuf that breaks a pprof invariant (ids, references, value counts).
        case invalid
        /// A `PprofLimits` bound was exceeded.
        case limit
        /// Profiles that cannot be combined (merge).
        case incompatible
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
