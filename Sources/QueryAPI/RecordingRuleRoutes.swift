import APICommon
import Hummingbird
import KilnProtos
import Recording

/// The routes of `settings.v1.RecordingRulesService` (Connect unary, binary and JSON).
public enum RecordingRuleRoutes {
    public static let servicePath = "/settings.v1.RecordingRulesService/"

    public static func register<Context: RequestContext>(on router: Router<Context>, rules: RecordingRules, access: TenantAccess) {
        QueryRoutes.unary(router, path: servicePath + "ListRecordingRules", access: access, fields: RequestFields([])) {
            (_: Settings_V1_ListRecordingRulesRequest, tenant) in
            var out = Settings_V1_ListRecordingRulesResponse()
            out.rules = try await rules.list(tenant: tenant)
            return out
        }
        QueryRoutes.unary(router, path: servicePath + "GetRecordingRule", access: access, fields: RequestFields(["id"])) {
            (r: Settings_V1_GetRecordingRuleRequest, tenant) in
            var out = Settings_V1_GetRecordingRuleResponse()
            out.rule = try await rules.get(id: r.id.trimmingCharacters(in: .whitespaces), tenant: tenant)
            return out
        }
        QueryRoutes.unary(
            router, path: servicePath + "UpsertRecordingRule", access: access,
            fields: RequestFields(["id", "metricName", "matchers", "groupBy", "externalLabels", "generation", "stacktraceFilter"])
        ) { (r: Settings_V1_UpsertRecordingRuleRequest, tenant) in
            var out = Settings_V1_UpsertRecordingRuleResponse()
            out.rule = try await rules.upsert(r, tenant: tenant)
            return out
        }
        QueryRoutes.unary(router, path: servicePath + "DeleteRecordingRule", access: access, fields: RequestFields(["id"])) {
            (r: Settings_V1_DeleteRecordingRuleRequest, tenant) in
            try await rules.delete(id: r.id.trimmingCharacters(in: .whitespaces), tenant: tenant)
            return Settings_V1_DeleteRecordingRuleResponse()
        }
    }
}
