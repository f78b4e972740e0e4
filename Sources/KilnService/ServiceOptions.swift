import ArgumentParser
import Logging

/// Flags every Kiln service takes: logging and the admin endpoint (`/metrics`, `/ready`).
public struct ServiceOptions: ParsableArguments, Sendable {
    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical. [env: KILN_LOG_LEVEL] (default: info)")
    public var logLevel: String?

    @Option(help: "Log format: logfmt or json. [env: KILN_LOG_FORMAT] (default: logfmt)")
    public var logFormat: String?

    @Option(help: "host:port serving /metrics and /ready. [env: KILN_ADMIN_LISTEN]")
    public var adminListen: String?

    @OptionGroup public var tls: TLSOptions

    public init() {}

    /// The listener's TLS, or nil for plain HTTP.
    public func resolvedTLS() throws -> ServerTLS? { try tls.resolved() }

    public func resolvedLogLevel() throws -> Logger.Level {
        let text = EnvironmentFallback.resolve(logLevel, env: "KILN_LOG_LEVEL", default: "info")
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw ServiceConfigurationError("unknown log level \"\(text)\" (use trace, debug, info, notice, warning, error or critical)")
        }
        return level
    }

    public func resolvedLogFormat() throws -> LogFormat {
        let text = EnvironmentFallback.resolve(logFormat, env: "KILN_LOG_FORMAT", default: "logfmt")
        guard let format = LogFormat(rawValue: text.lowercased()) else {
            throw ServiceConfigurationError("unknown log format \"\(text)\" (use logfmt or json)")
        }
        return format
    }

    /// The admin address; `defaultAddress` differs per service so they can share one machine.
    public func resolvedAdminListen(default defaultAddress: String) throws -> ListenAddress {
        try ListenAddress(parsing: EnvironmentFallback.resolve(adminListen, env: "KILN_ADMIN_LISTEN", default: defaultAddress))
    }
}

/// Flags of the services that answer ingest or query requests: who may call them and per-tenant limits
/// (docs/security.md). Both are off when not given.
public struct AccessOptions: ParsableArguments, Sendable {
    @Option(
        help:
            "JSON file of bearer tokens and basic-auth users, each mapped to tenants; when set, every ingest and query request must authenticate (docs/security.md). [env: KILN_AUTH_FILE] (default: none, open)"
    )
    public var authFile: String?

    @Option(help: "JSON file of per-tenant limit overrides (docs/security.md). [env: KILN_LIMITS_FILE] (default: none)")
    public var limitsFile: String?

    @Option(
        help: "Requests worked on at once; more get 503 with Retry-After (0: no bound). [env: KILN_MAX_CONCURRENT_REQUESTS] (default: 256)")
    public var maxConcurrentRequests: Int?

    @Option(
        help:
            "Requests of one tenant (X-Scope-OrgID) worked on at once; more get 503 with Retry-After (0: no bound). [env: KILN_MAX_CONCURRENT_REQUESTS_PER_TENANT] (default: 64)"
    )
    public var maxConcurrentRequestsPerTenant: Int?

    @Option(
        help:
            "Request body bytes (by Content-Length; a chunked body counts as 16 MiB) worked on at once; past it a request gets 503 with Retry-After before its body is read (0: no bound). [env: KILN_MAX_REQUEST_BYTES_IN_FLIGHT] (default: 268435456)"
    )
    public var maxRequestBytesInFlight: Int?

    public init() {}

    /// The bounds on requests in flight (total, per tenant, body bytes).
    public func resolvedConcurrency() throws -> (total: Int, perTenant: Int, bodyBytes: Int) {
        let total =
            try EnvironmentFallback.nonNegative(
                maxConcurrentRequests.map(Double.init), env: "KILN_MAX_CONCURRENT_REQUESTS", setting: "--max-concurrent-requests") ?? 256
        let perTenant =
            try EnvironmentFallback.nonNegative(
                maxConcurrentRequestsPerTenant.map(Double.init), env: "KILN_MAX_CONCURRENT_REQUESTS_PER_TENANT",
                setting: "--max-concurrent-requests-per-tenant") ?? 64
        let bodyBytes =
            try EnvironmentFallback.nonNegative(
                maxRequestBytesInFlight.map(Double.init), env: "KILN_MAX_REQUEST_BYTES_IN_FLIGHT", setting: "--max-request-bytes-in-flight")
            ?? Double(256 << 20)
        return (Int(total), Int(perTenant), Int(bodyBytes))
    }

    public var resolvedAuthFile: String? { EnvironmentFallback.resolve(authFile, env: "KILN_AUTH_FILE") }
    public var resolvedLimitsFile: String? { EnvironmentFallback.resolve(limitsFile, env: "KILN_LIMITS_FILE") }
}

/// TLS of a listener: a certificate and key, optionally a CA its clients must present certificates of.
public struct TLSOptions: ParsableArguments, Sendable {
    @Option(
        help:
            "PEM certificate chain: serve HTTPS (and TLS on OTLP gRPC) instead of plain; read again when the file changes. [env: KILN_TLS_CERT_FILE] (default: none)"
    )
    public var tlsCertFile: String?

    @Option(help: "PEM private key of --tls-cert-file. [env: KILN_TLS_KEY_FILE]")
    public var tlsKeyFile: String?

    @Option(
        help: "PEM CA certificates: require clients to present a certificate they signed. [env: KILN_TLS_CLIENT_CA_FILE] (default: none)")
    public var tlsClientCaFile: String?

    public init() {}

    public func resolved() throws -> ServerTLS? {
        try Self.serverTLS(
            certificate: EnvironmentFallback.resolve(tlsCertFile, env: "KILN_TLS_CERT_FILE"),
            key: EnvironmentFallback.resolve(tlsKeyFile, env: "KILN_TLS_KEY_FILE"),
            clientCA: EnvironmentFallback.resolve(tlsClientCaFile, env: "KILN_TLS_CLIENT_CA_FILE"), flag: "--tls")
    }

    /// TLS from resolved paths, or nil for none; half a configuration is refused naming the flags
    /// (`flag` is their common prefix, e.g. `--tls` or `--otlp-grpc-tls`).
    public static func serverTLS(certificate: String?, key: String?, clientCA: String?, flag: String) throws -> ServerTLS? {
        switch (certificate, key) {
        case (nil, nil):
            if clientCA != nil { throw ServiceConfigurationError("\(flag)-client-ca-file needs \(flag)-cert-file and \(flag)-key-file") }
            return nil
        case (let certificate?, let key?):
            return try ServerTLS(certificateFile: certificate, keyFile: key, clientCAFile: clientCA)
        case (nil, _):
            throw ServiceConfigurationError("\(flag)-key-file needs \(flag)-cert-file")
        case (_, nil):
            throw ServiceConfigurationError("\(flag)-cert-file needs \(flag)-key-file")
        }
    }
}
