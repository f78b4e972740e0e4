import APICommon

/// Limits of the push ingest endpoints. Defaults suit one `kiln-scraper` in front of a Kafka cluster; every
/// one is a flag of `kiln-scraper`.
public struct IngestOptions: Sendable {
    /// Largest request body as sent (compressed or not). Larger: 413 before the body is read.
    /// Pyroscope's default is 256 MB; Kiln's records are at most 16 MiB, so a body much larger than a
    /// few profiles cannot be stored anyway.
    public var maxBodyBytes: Int = 64 << 20
    /// How long a client may take to send its whole body: a slower one gets 408 and loses the connection.
    public var bodyReadTimeout: Duration = Connect.bodyReadTimeout
    /// Largest single profile after decompression, read from the gzip trailer (ISIZE) without inflating;
    /// the normaliser enforces its own limit while inflating. Pyroscope's default is 4 MiB.
    public var maxProfileBytes: Int = 16 << 20
    /// Largest single profile as received (it travels as one Kafka record; the producer's and topic's
    /// default record limit is 16 MiB, minus room for the envelope).
    public var maxPayloadBytes: Int = (16 << 20) - (64 << 10)
    /// Per-tenant ingest rate (bytes per second of decompressed profile) and burst. 0 = unlimited.
    public var rateBytesPerSecond: Double = Double(32 << 20)
    public var burstBytes: Double = Double(64 << 20)
    /// Bytes accepted but not yet acknowledged by the publisher, across all requests. A push that would
    /// exceed it waits up to `admissionTimeout` for room, then gets 503.
    public var maxInFlightBytes: Int = 256 << 20
    public var admissionTimeout: Duration = .seconds(2)
    /// How long a push waits for the publisher (Kafka's acknowledgement) before answering 503. The record
    /// may still land afterwards; a retried push is then stored twice (at-least-once).
    public var publishTimeout: Duration = .seconds(15)
    /// Label limits (Pyroscope's defaults).
    public var maxLabelNames: Int = 30
    public var maxLabelNameLength: Int = 1024
    public var maxLabelValueLength: Int = 2048
    /// Active series per tenant: distinct label sets pushed within `activeSeriesWindow` (Pyroscope's
    /// `max-global-series-per-tenant`, 5000). 0 = unlimited.
    public var maxSeriesPerTenant: Int = 5000
    public var activeSeriesWindow: Duration = .seconds(3600)
    /// Who may push: open (tenant from `X-Scope-OrgID`) or the credentials of `--auth-file`.
    public var access: TenantAccess = .open
    /// Per-tenant values of the limits above (`--limits-file`).
    public var overrides: LimitOverrides = .none

    public init() {}

    /// These options with the tenant's overrides applied.
    public func forTenant(_ tenant: String) -> IngestOptions {
        guard let values = overrides.tenants[tenant], !values.isEmpty else { return self }
        var o = self
        for (name, v) in values {
            switch name {
            case .ingestionRateMB: o.rateBytesPerSecond = v * 1_048_576
            case .ingestionBurstMB: o.burstBytes = v * 1_048_576
            case .maxProfileBytes: o.maxProfileBytes = Int(clamping: Int64(v))
            case .maxSeries: o.maxSeriesPerTenant = Int(clamping: Int64(v))
            case .maxLabelNamesPerSeries: o.maxLabelNames = Int(clamping: Int64(v))
            case .maxLabelNameLength: o.maxLabelNameLength = Int(clamping: Int64(v))
            case .maxLabelValueLength: o.maxLabelValueLength = Int(clamping: Int64(v))
            case .maxQueryLengthHours, .maxFlameGraphNodes: break
            }
        }
        return o
    }
}
