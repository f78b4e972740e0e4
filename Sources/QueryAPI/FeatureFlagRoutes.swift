import APICommon
import Hummingbird
import KilnProtos

/// `capabilities.v1.FeatureFlagsService/GetFeatureFlags`: the optional features Grafana's Profiles
/// Drilldown app asks about, each with whether Kiln offers it. Pyroscope's names; every one is listed,
/// enabled or not, as Pyroscope does.
public enum FeatureFlagRoutes {
    public static let path = "/capabilities.v1.FeatureFlagsService/GetFeatureFlags"

    /// `rulerRunning`: a kiln-ruler evaluates this store's recording rules (kiln-query's `--ruler-running`);
    /// without one, rules are only stored, and Drilldown must not offer metrics from profiles.
    public static func flags(rulerRunning: Bool) -> [(name: String, enabled: Bool, description: String)] {
        let ruler = rulerRunning ? "evaluated by kiln-ruler and written with Prometheus remote write" : "stored only: no kiln-ruler runs"
        return [
            ("v2StorageLayer", false, "Pyroscope's v2 storage layer (Kiln has its own block store)"),
            ("pyroscopeRuler", rulerRunning, "Recording rules exporting Prometheus metrics from profiles (\(ruler))"),
            ("pyroscopeRulerFunctions", rulerRunning, "Recording rules with a function filter (\(ruler))"),
            ("utf8LabelNames", false, "Label names beyond [a-zA-Z0-9_.] at ingest (quoted names are accepted in selectors)"),
        ]
    }

    public static func register<Context: RequestContext>(on router: Router<Context>, access: TenantAccess, rulerRunning: Bool = false) {
        let flags = flags(rulerRunning: rulerRunning)
        QueryRoutes.unary(router, path: path, access: access, fields: RequestFields([])) { (_: Capabilities_V1_GetFeatureFlagsRequest, _) in
            var out = Capabilities_V1_GetFeatureFlagsResponse()
            out.featureFlags = flags.map { flag in
                var f = Capabilities_V1_FeatureFlag()
                f.name = flag.name
                f.enabled = flag.enabled
                f.description_p = flag.description
                return f
            }
            return out
        }
    }
}
