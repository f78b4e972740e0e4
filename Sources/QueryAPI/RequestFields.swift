import APICommon
import Foundation
import SwiftProtobuf

/// The fields of each query request Kiln honours. A request that sets any other field (to anything but
/// its default) is refused with `unimplemented` naming the field: an answer that ignored part of its
/// question would look right and be wrong (a span selector ignored returns the whole service).
///
/// Fields are named by their JSON names; a nested field as `parent.child`. A message field listed whole
/// honours everything in it.
public struct RequestFields: Sendable {
    let honoured: Set<String>

    public init(_ honoured: Set<String>) { self.honoured = honoured }

    /// The first field path `message` sets that is not honoured, or nil.
    func unhonoured(in message: some SwiftProtobuf.Message) -> String? {
        // Proto3 JSON leaves out every field at its default, so what remains is exactly what was set.
        guard let bytes: [UInt8] = try? message.jsonUTF8Bytes(),
            let parsed = try? JSONSerialization.jsonObject(with: Data(bytes)),
            let object = parsed as? [String: Any]
        else { return nil }
        return firstUnhonoured(object, prefix: "")
    }

    private func firstUnhonoured(_ object: [String: Any], prefix: String) -> String? {
        for key in object.keys.sorted() {
            let path = prefix.isEmpty ? key : prefix + "." + key
            if honoured.contains(path) { continue }
            let inner = path + "."
            guard honoured.contains(where: { $0.hasPrefix(inner) }) else { return path }
            let children: [[String: Any]] =
                if let one = object[key] as? [String: Any] { [one] } else { object[key] as? [[String: Any]] ?? [] }
            for child in children {
                if let found = firstUnhonoured(child, prefix: path) { return found }
            }
        }
        return nil
    }

    /// Refuses `message` when it sets a field not honoured.
    public func check<M: SwiftProtobuf.Message>(_ message: M) throws(APIError) {
        guard let path = unhonoured(in: message) else { return }
        throw APIError(
            .unsupportedField,
            "\(M.protoMessageName) field \(Self.protoName(path)) is not supported by Kiln yet; "
                + "refused rather than answered as if it were not set")
    }

    /// `spanSelector` → `span_selector`, `stackTraceSelector.callSite` → `stack_trace_selector.call_site`.
    static func protoName(_ jsonPath: String) -> String {
        jsonPath.split(separator: ".").map { part in
            var out = ""
            var previousLower = false
            for c in part {
                if c.isUppercase && previousLower { out.append("_") }
                out.append(Character(c.lowercased()))
                previousLower = c.isLowercase
            }
            return out
        }.joined(separator: ".")
    }

    static let range: Set<String> = ["start", "end"]
    static let selection: Set<String> = range.union(["profileTypeID", "labelSelector"])

    public static let profileTypes = RequestFields(range)
    public static let labelNames = RequestFields(range.union(["matchers"]))
    public static let labelValues = RequestFields(range.union(["matchers", "name"]))
    public static let series = RequestFields(range.union(["matchers", "labelNames"]))
    public static let selectMergeStacktraces = RequestFields(
        selection.union(["maxNodes", "format", "stackTraceSelector.callSite", "spanSelector", "profileIdSelector"]))
    public static let selectMergeSpanProfile = RequestFields(selection.union(["maxNodes", "format", "spanSelector"]))
    public static let selectMergeProfile = RequestFields(selection.union(["maxNodes", "stackTraceSelector.callSite", "profileIdSelector"]))
    public static let selectSeries = RequestFields(selection.union(["groupBy", "step", "aggregation", "limit", "exemplarType"]))
    public static let diff = RequestFields(
        Set(
            ["left", "right"].flatMap { side in
                selection.union(["maxNodes", "format", "spanSelector", "profileIdSelector"]).map { "\(side).\($0)" }
            }))
    public static let profileStats = RequestFields([])
    public static let analyzeQuery = RequestFields(range.union(["query"]))
    public static let selectHeatmap = RequestFields(selection.union(["step", "groupBy", "queryType", "exemplarType", "limit"]))
}
