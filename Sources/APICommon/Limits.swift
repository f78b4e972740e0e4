import Foundation
import Metrics
import Synchronization

/// Per-tenant overrides of the limits, from `--limits-file` (JSON, docs/security.md):
///
/// ```json
/// {"tenants": {"shop": {"ingestion_rate_mb": 64, "max_series": 20000, "max_query_length_hours": 744}}}
/// ```
///
/// A tenant not listed, and every limit a tenant does not list, keeps the process's defaults (its flags).
/// Both `kiln-scraper` and `kiln-query` read the same file and apply the limits they enforce.
public struct LimitOverrides: Sendable, Equatable {
    /// Limit names as the file and the error messages spell them.
    public enum Name: String, Sendable, CaseIterable {
        case ingestionRateMB = "ingestion_rate_mb"
        case ingestionBurstMB = "ingestion_burst_mb"
        case maxProfileBytes = "max_profile_bytes"
        case maxSeries = "max_series"
        case maxLabelNamesPerSeries = "max_label_names_per_series"
        case maxLabelNameLength = "max_label_name_length"
        case maxLabelValueLength = "max_label_value_length"
        case maxQueryLengthHours = "max_query_length_hours"
        case maxFlameGraphNodes = "max_flamegraph_nodes"
    }

    public var tenants: [String: [Name: Double]]

    public static let none = LimitOverrides(tenants: [:])

    public init(tenants: [String: [Name: Double]]) { self.tenants = tenants }

    public func value(_ name: Name, tenant: String) -> Double? { tenants[tenant]?[name] }

    public static func load(contentsOf url: URL) throws -> LimitOverrides {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw AuthFileError("cannot read the limits file \(url.path): \(error.localizedDescription)")
        }
        do { return try LimitOverrides(json: Array(data)) } catch {
            throw AuthFileError("limits file \(url.path): \(error)")
        }
    }

    public init(json bytes: [UInt8]) throws(AuthFileError) {
        guard let root = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
            let tenants = root["tenants"] as? [String: Any]
        else {
            throw AuthFileError("expected an object {\"tenants\": {\"<tenant>\": {\"<limit>\": <number>}}}")
        }
        var out: [String: [Name: Double]] = [:]
        for (tenant, value) in tenants {
            if let why = TenantID.validationError(tenant) { throw AuthFileError("tenants: \(why)") }
            guard let limits = value as? [String: Any] else { throw AuthFileError("tenants.\(tenant) is not an object") }
            var parsed: [Name: Double] = [:]
            for (key, v) in limits {
                guard let name = Name(rawValue: key) else {
                    throw AuthFileError(
                        "tenants.\(tenant): unknown limit \"\(key)\" (known: \(Name.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                guard let n = (v as? NSNumber)?.doubleValue, n.isFinite, n >= 0, !(v is Bool) else {
                    throw AuthFileError("tenants.\(tenant).\(key) must be a non-negative number")
                }
                parsed[name] = n
            }
            out[tenant] = parsed
        }
        self.tenants = out
    }
}

/// Counts refusals by a named limit: `kiln_discarded_total{reason, tenant}` for pushes, and
/// `kiln_query_refused_total{reason, tenant}` for queries.
public enum LimitMetrics {
    public static func discarded(_ error: APIError, tenant: String) {
        guard let limit = error.limit else { return }
        Counter(label: "kiln_discarded_total", dimensions: [("reason", limit), ("tenant", tenant)]).increment()
    }

    public static func queryRefused(_ limit: String, tenant: String) {
        Counter(label: "kiln_query_refused_total", dimensions: [("reason", limit), ("tenant", tenant)]).increment()
    }

    /// The per-tenant limits a push is refused by, and those a query is.
    static let pushLimits: [LimitOverrides.Name] = [
        .ingestionRateMB, .maxProfileBytes, .maxSeries, .maxLabelNamesPerSeries, .maxLabelNameLength, .maxLabelValueLength,
    ]
    static let queryLimits: [LimitOverrides.Name] = [.maxQueryLengthHours]
    static let queryEndpoints: Set<String> = ["query", "render", "ui"]

    /// A tenant's refusal series at zero, from its first request to `endpoint` on.
    static func zero(tenant: String, endpoint: String) {
        let (label, limits) =
            queryEndpoints.contains(endpoint) ? ("kiln_query_refused_total", queryLimits) : ("kiln_discarded_total", pushLimits)
        EventCounters.zero(label, key: tenant, limits.map { [("reason", $0.rawValue), ("tenant", tenant)] })
    }
}
