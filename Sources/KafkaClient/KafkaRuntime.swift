import CRdKafka
import Logging
import Synchronization

/// The librdkafka library loaded at run time. Kiln compiles against Debian's headers (2.0.2) but must run
/// on librdkafka >= 2.2: 2.0.2 misparses the tagged fields of modern ApiVersions responses (so it cannot
/// talk to Tansu at all) and carries consumer-group, idempotent-producer and seek bugs fixed since.
public enum KafkaRuntime {
    /// The oldest librdkafka Kiln runs on, in `rd_kafka_version()`'s 0xMMmmrrxx form (2.2.0).
    public static let minimumVersion: Int = 0x0202_00ff

    /// `rd_kafka_version()`: 0xMMmmrrxx.
    public static var version: Int { Int(rd_kafka_version()) }

    /// `rd_kafka_version_str()`, e.g. `2.16.0`.
    public static var versionString: String { String(cString: rd_kafka_version_str()) }

    /// Throws a clear error when the librdkafka loaded at run time is older than 2.2.
    public static func checkVersion() throws {
        try check(version: version, versionString: versionString)
    }

    /// The check itself, separate so tests can feed it versions this process does not load.
    static func check(version: Int, versionString: String) throws {
        // Compare major.minor.revision only; the low byte is the pre-release tag (0xff = final).
        guard version >> 8 >= minimumVersion >> 8 else {
            throw KafkaError(
                .unsupportedRuntime,
                """
                librdkafka \(versionString) is loaded, but Kiln needs librdkafka >= 2.2. \
                Older versions (Debian 12 ships 2.0.2) cannot parse the tagged fields in the ApiVersions \
                responses of Tansu and other modern brokers, so every connection fails, and they carry \
                consumer-group, idempotent-producer and seek bugs fixed since. Fix: run scripts/setup.sh \
                and put .venv/kiln-lib on LD_LIBRARY_PATH (export LD_LIBRARY_PATH=$PWD/.venv/kiln-lib), \
                or install librdkafka >= 2.2 system-wide.
                """)
        }
    }

    private static let logged = Atomic<Bool>(false)

    /// Called by every producer, consumer and admin client before it creates a handle: checks the
    /// version and logs it once per process.
    static func checkAndLogOnce(_ logger: Logger) throws {
        try checkVersion()
        if logged.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
            logger.info("librdkafka runtime", metadata: ["version": "\(versionString)"])
        }
    }
}
