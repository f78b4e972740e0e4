import APICommon
import Foundation
import KilnFoundation
import KilnProtos
import ObjectStore
import ProfileModel
import Query
import SwiftProtobuf

/// `settings.v1.RecordingRulesService`: per-tenant recording rules ("metrics from profiles"), with Pyroscope's
/// fields and its optimistic concurrency (`generation`). Each rule is one object,
/// `<tenant>/recording-rules/<id>.json` (the rule's protobuf JSON), in the block store beside the tenant's
/// data; an update replaces it by compare-and-swap on the object's entity tag, so two replicas (or two
/// browser tabs) updating from the same generation cannot both win. Rules from the provisioning file
/// (`--recording-rules-file`) are listed with `provisioned: true` and cannot be changed through the API.
public struct RecordingRules: Sendable {
    public static let maxRulesPerTenant = 100
    /// The most series one rule may record in a step: a `group_by` that would make more over the tenant's
    /// recent data is refused when the rule is written, and kiln-ruler drops (and counts) groups past it.
    public static let maxSeriesPerRule = 10_000

    /// How many distinct `groupBy` value combinations the series `selector` picks have in the tenant's
    /// recent data (kiln-query answers it from the blocks).
    public typealias GroupCount = @Sendable (_ tenant: String, _ selector: LabelSelector, _ groupBy: [String]) async throws -> Int

    let store: any ObjectStore
    /// Provisioned rules per tenant, by ID.
    let provisioned: [String: [Settings_V1_RecordingRule]]
    let groupCount: GroupCount?
    let seriesLimit: Int

    public init(
        store: any ObjectStore, provisioned: [String: [Settings_V1_RecordingRule]] = [:], groupCount: GroupCount? = nil,
        seriesLimit: Int = RecordingRules.maxSeriesPerRule
    ) {
        self.groupCount = groupCount
        self.seriesLimit = seriesLimit
        self.store = store
        self.provisioned = provisioned
    }

    static func prefix(_ tenant: String) -> String { "\(tenant)/recording-rules/" }
    static func key(_ tenant: String, _ id: String) -> String { prefix(tenant) + id + ".json" }

    /// Reads the provisioning file: a JSON object of tenant → rules, each rule in the API's JSON form.
    public static func provisioned(file: String) throws -> [String: [Settings_V1_RecordingRule]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw APIError(.invalidArgument, "\(file): expected a JSON object of tenant → list of rules")
        }
        var out: [String: [Settings_V1_RecordingRule]] = [:]
        for (tenant, value) in object {
            guard let list = value as? [Any] else {
                throw APIError(.invalidArgument, "\(file): the rules of tenant \(tenant) are not a list")
            }
            for (i, item) in list.enumerated() {
                let json = try JSONSerialization.data(withJSONObject: item)
                var rule: Settings_V1_RecordingRule
                do {
                    rule = try Settings_V1_RecordingRule(jsonUTF8Bytes: json)
                } catch {
                    throw APIError(.invalidArgument, "\(file): rule \(i + 1) of tenant \(tenant): \(error)")
                }
                var request = Settings_V1_UpsertRecordingRuleRequest()
                (request.id, request.metricName, request.matchers, request.groupBy, request.externalLabels) =
                    (rule.id, rule.metricName, rule.matchers, rule.groupBy, rule.externalLabels)
                if rule.hasStacktraceFilter { request.stacktraceFilter = rule.stacktraceFilter }
                do {
                    let checked = try validate(request, newID: { "provisioned" + letters(i) })
                    rule = checked
                    rule.generation = 1
                    rule.provisioned = true
                } catch {
                    throw APIError(.invalidArgument, "\(file): rule \(i + 1) of tenant \(tenant): \(error)")
                }
                out[tenant, default: []].append(rule)
            }
        }
        return out
    }

    /// `n` as letters (a, b, …, z, ba, …): provisioned rules without an ID get one that is stable in the file.
    static func letters(_ n: Int) -> String {
        var n = n
        var out = ""
        repeat {
            out = String(UnicodeScalar(UInt8(97 + n % 26))) + out
            n /= 26
        } while n > 0
        return out
    }

    /// Rule IDs are letters only, as Pyroscope's.
    static func isRuleID(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy { $0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A }
    }

    /// The rule an upsert describes, checked as Pyroscope checks it; every problem is named at once.
    static func validate(_ r: Settings_V1_UpsertRecordingRuleRequest, newID: () -> String) throws(APIError) -> Settings_V1_RecordingRule {
        var problems: [String] = []
        let id = r.id.isEmpty ? newID() : r.id
        if !isRuleID(id) {
            problems.append("id \"\(id.prefix(80))\" must be 1-64 letters")
        }
        let metricName = r.metricName.trimmingCharacters(in: .whitespaces)
        if metricName.isEmpty {
            problems.append("metric_name is required")
        } else if !LabelRules.isValidMetricName(metricName) {
            problems.append("metric_name \"\(metricName.prefix(120))\" is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
        }
        var profileTypes: [String] = []
        for text in r.matchers {
            do {
                for m in try LabelSelector(parsing: text).matchers where m.name == LabelName.profileType {
                    if m.op != .equal {
                        problems.append("the \(LabelName.profileType) matcher must be an equality (=), not \(m.op.rawValue)")
                    } else if ProfileTypeID(parsing: m.value) == nil {
                        problems.append("\(LabelName.profileType) \"\(m.value.prefix(120))\" is not a profile type ID")
                    }
                    profileTypes.append(m.value)
                }
            } catch {
                problems.append("matcher \"\(text.prefix(120))\" is invalid: \(error)")
            }
        }
        if profileTypes.count != 1 {
            problems.append("matchers must hold exactly one \(LabelName.profileType) matcher (found \(profileTypes.count))")
        }
        for name in r.groupBy where !LabelName.isValid(name) {
            problems.append("group_by label \"\(name.prefix(120))\" is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        }
        for label in r.externalLabels where !LabelName.isValid(label.name) {
            problems.append("external_labels name \"\(label.name.prefix(120))\" is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        }
        if r.generation < 0 { problems.append("generation must not be negative") }
        if r.hasStacktraceFilter, r.stacktraceFilter.hasFunctionName, r.stacktraceFilter.functionName.functionName.isEmpty {
            problems.append("stacktrace_filter.function_name.function_name is empty")
        }
        guard problems.isEmpty else { throw APIError(.invalidArgument, "invalid recording rule: " + problems.joined(separator: "; ")) }
        var rule = Settings_V1_RecordingRule()
        rule.id = id
        rule.metricName = metricName
        rule.profileType = profileTypes[0]
        rule.matchers = r.matchers
        rule.groupBy = r.groupBy
        rule.externalLabels = r.externalLabels
        if r.hasStacktraceFilter { rule.stacktraceFilter = r.stacktraceFilter }
        return rule
    }

    static func generatedID() -> String {
        String((0..<10).map { _ in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".randomElement()! })
    }

    func stored(_ key: String) async throws -> (rule: Settings_V1_RecordingRule, etag: String)? {
        guard let info = try await store.head(key), let etag = info.etag else { return nil }
        let bytes: [UInt8]
        do {
            bytes = try await store.get(key)
        } catch let error as ObjectStoreError where error.kind == .notFound {
            return nil
        }
        return (try Settings_V1_RecordingRule(jsonUTF8Bytes: bytes), etag)
    }

    public func list(tenant: String) async throws -> [Settings_V1_RecordingRule] {
        var out = provisioned[tenant] ?? []
        let fixed = Set(out.map(\.id))
        for object in try await store.list(prefix: Self.prefix(tenant), delimiter: "/").objects where object.key.hasSuffix(".json") {
            if let (rule, _) = try await stored(object.key), !fixed.contains(rule.id) { out.append(rule) }
        }
        return out
    }

    public func get(id: String, tenant: String) async throws -> Settings_V1_RecordingRule {
        if let rule = provisioned[tenant]?.first(where: { $0.id == id }) { return rule }
        guard Self.isRuleID(id), let (rule, _) = try await stored(Self.key(tenant, id))
        else {
            throw APIError(.notFound, "no recording rule with id \"\(id.prefix(80))\"")
        }
        return rule
    }

    /// Creates the rule (generation 1) or replaces the stored one of the same ID if `generation` is the
    /// stored generation (it then grows by one); 409 `already_exists` naming both generations otherwise.
    public func upsert(_ r: Settings_V1_UpsertRecordingRuleRequest, tenant: String) async throws -> Settings_V1_RecordingRule {
        var rule = try Self.validate(r, newID: Self.generatedID)
        try await checkCardinality(rule, tenant: tenant)
        if provisioned[tenant]?.contains(where: { $0.id == rule.id }) == true {
            throw APIError(.forbidden, "recording rule \(rule.id) is provisioned from the rules file; change it there")
        }
        let key = Self.key(tenant, rule.id)
        let condition: WriteCondition
        if let (current, etag) = try await stored(key) {
            guard r.generation == current.generation else {
                throw APIError(
                    .conflict,
                    "conflicting update of recording rule \(rule.id): it is at generation \(current.generation), the update was made from \(r.generation); read it again"
                )
            }
            rule.generation = current.generation + 1
            condition = .matches(etag: etag)
        } else {
            let count = try await store.list(prefix: Self.prefix(tenant), delimiter: "/").objects.count
            guard count < Self.maxRulesPerTenant else {
                throw APIError.exceeding(
                    .rateLimited, "recording_rules_max", Self.maxRulesPerTenant, "the tenant has as many recording rules as it may")
            }
            rule.generation = 1
            condition = .absent
        }
        guard try await store.put(key, try rule.jsonUTF8Bytes(), if: condition) != nil else {
            throw APIError(.conflict, "conflicting update of recording rule \(rule.id): it changed meanwhile; read it again")
        }
        return rule
    }

    /// Every matcher of the rule's selectors in one selector: a series is the rule's when it matches all.
    static func selector(_ rule: Settings_V1_RecordingRule) throws -> LabelSelector {
        var matchers: [LabelMatcher] = []
        for text in rule.matchers { matchers += try LabelSelector(parsing: text).matchers }
        return LabelSelector(matchers)
    }

    /// Refuses a `group_by` that would record more than `maxSeriesPerRule` series on the tenant's recent
    /// data, naming the labels and the count.
    func checkCardinality(_ rule: Settings_V1_RecordingRule, tenant: String) async throws {
        guard let groupCount, !rule.groupBy.isEmpty else { return }
        let count = try await groupCount(tenant, try Self.selector(rule), rule.groupBy)
        guard count <= seriesLimit else {
            throw APIError.exceeding(
                .invalidArgument, "recording_rule_series_max", seriesLimit,
                "group_by [\(rule.groupBy.joined(separator: ", "))] makes \(count) series over the tenant's last 24 hours; a rule may record at most \(seriesLimit) (group by fewer or coarser labels)"
            )
        }
    }

    /// kiln-query's count: the distinct `groupBy` values of the series the selector picks in the `window`
    /// before `now()` (ms).
    public static func groupCount(
        engine: QueryEngine, window: Duration = .seconds(86_400),
        now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) -> GroupCount {
        { tenant, selector, groupBy in
            let end = now()
            let labels = try await engine.seriesLabels(
                tenant: tenant, selectors: [selector], time: (end - window.wholeMilliseconds) * 1_000_000...end * 1_000_000)
            return Set(labels.map { l in groupBy.map { l[$0] ?? "" } }).count
        }
    }

    public func delete(id: String, tenant: String) async throws {
        if provisioned[tenant]?.contains(where: { $0.id == id }) == true {
            throw APIError(.forbidden, "recording rule \(id) is provisioned from the rules file; remove it there")
        }
        guard Self.isRuleID(id) else {
            throw APIError(.invalidArgument, "id \"\(id.prefix(80))\" must be 1-64 letters")
        }
        try await store.delete(Self.key(tenant, id))
    }
}
