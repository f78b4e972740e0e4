import Crypto

/// Prometheus' `hashmod` hash: the last 8 bytes of the value's MD5, big-endian. Using the same hash keeps
/// Kiln's shard assignment identical to a Prometheus or Alloy `hashmod` rule over the same value; MD5 is
/// not used for anything security-related here.
enum PrometheusHash {
    static func of(_ value: String) -> UInt64 {
        let digest = Insecure.MD5.hash(data: Array(value.utf8))
        return digest.suffix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }
}
