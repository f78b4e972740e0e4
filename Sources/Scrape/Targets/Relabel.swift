import Foundation
import ProfileModel

/// A target or series label set. Names starting with `__` are internal (e.g. `__address__`).
public typealias LabelSet = [String: String]

public enum RelabelAction: String, Sendable, CaseIterable {
    case replace, keep, drop, hashmod, labelmap, labeldrop, labelkeep, keepequal, dropequal, lowercase, uppercase
}

/// A regular expression anchored at both ends, as Prometheus relabeling requires.
/// Go's `(?P<name>...)` named groups are accepted and translated for ICU.
///
/// Relabeling runs every rule over every label of every discovered target (a 10,000-pod cluster is
/// hundreds of thousands of matches), so the common shapes skip the regex engine: a pattern without
/// metacharacters is compared as a string, `(.*)` captures the whole value, and a literal prefix
/// (`__meta_kubernetes_pod_label_(.+)`) rejects non-matching names before the engine runs.
public struct RelabelRegex: Sendable, CustomStringConvertible {
    public let pattern: String
    let compiled: NSRegularExpression
    /// The whole pattern, when it has no metacharacters.
    let literal: String?
    /// `(.*)`: every value without a line break matches, whole.
    let capturesAll: Bool
    /// Bytes every match starts with.
    let requiredPrefix: [UInt8]

    public init(_ pattern: String) throws {
        self.pattern = pattern
        let icu = pattern.replacingOccurrences(of: "(?P<", with: "(?<")
        self.compiled = try NSRegularExpression(pattern: "^(?:" + icu + ")$", options: [])
        let (prefix, isLiteral) = Self.literalPrefix(pattern)
        literal = isLiteral ? pattern : nil
        requiredPrefix = Array(prefix.utf8)
        capturesAll = pattern == "(.*)"
    }

    public var description: String { pattern }

    static let metacharacters: Set<Character> = ["\\", ".", "^", "$", "|", "?", "*", "+", "(", ")", "[", "]", "{", "}"]

    /// The literal characters a pattern starts with (none if it has a top-level alternation), and
    /// whether that is the whole pattern.
    static func literalPrefix(_ pattern: String) -> (prefix: String, whole: Bool) {
        var depth = 0
        var escaped = false
        var inClass = false
        for c in pattern {
            if escaped {
                escaped = false
                continue
            }
            switch c {
            case "\\": escaped = true
            case "[": inClass = true
            case "]": inClass = false
            case "(" where !inClass: depth += 1
            case ")" where !inClass: depth -= 1
            case "|" where !inClass && depth == 0: return ("", false)
            default: break
            }
        }
        var prefix: [Character] = []
        var rest = Substring(pattern)
        while let c = rest.first, !metacharacters.contains(c) {
            prefix.append(c)
            rest = rest.dropFirst()
        }
        if let next = rest.first, "?*+{".contains(next), !prefix.isEmpty {
            prefix.removeLast()  // the last literal is quantified: it may be absent or repeated
        }
        return (String(prefix), rest.isEmpty)
    }

    /// What a match captured: groups by number or name.
    struct Match {
        let group: (String) -> String
    }

    func firstMatch(_ s: String) -> Match? {
        if capturesAll, !s.unicodeScalars.contains(where: Self.isLineTerminator) {
            return Match { $0 == "0" || $0 == "1" ? s : "" }
        }
        if let literal {
            return s.utf8.elementsEqual(literal.utf8) ? Match { $0 == "0" ? s : "" } : nil
        }
        if !s.utf8.starts(with: requiredPrefix) { return nil }
        guard let result = compiled.firstMatch(in: s, options: [], range: NSRange(s.startIndex..., in: s)) else { return nil }
        return Match { name in
            let range: NSRange
            if let n = Int(name) {
                guard n < result.numberOfRanges else { return "" }
                range = result.range(at: n)
            } else {
                range = result.range(withName: name)
            }
            guard range.location != NSNotFound, let r = Range(range, in: s) else { return "" }
            return String(s[r])
        }
    }

    /// ICU's `.` does not match these.
    static func isLineTerminator(_ c: Unicode.Scalar) -> Bool {
        c == "\n" || c == "\r" || c == "\u{85}" || c == "\u{2028}" || c == "\u{2029}"
    }

    public func matches(_ s: String) -> Bool { firstMatch(s) != nil }

    /// Expands `$1`, `${1}`, `$name`, `${name}` and `$$` in `template` like Go's `Regexp.Expand`:
    /// a name runs as far as letters, digits and `_` go, and an unknown group expands to "".
    func expand(_ template: String, match: Match) -> String {
        let chars = Array(template.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        let group = match.group
        func isNameChar(_ c: Unicode.Scalar) -> Bool {
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "_"
        }
        while i < chars.count {
            let c = chars[i]
            guard c == "$", i + 1 < chars.count else {
                out.append(c)
                i += 1
                continue
            }
            let n = chars[i + 1]
            if n == "$" {
                out.append("$")
                i += 2
                continue
            }
            if n == "{" {
                var j = i + 2
                var name = ""
                while j < chars.count, isNameChar(chars[j]) {
                    name.unicodeScalars.append(chars[j])
                    j += 1
                }
                if j < chars.count, chars[j] == "}", !name.isEmpty {
                    out.append(contentsOf: group(name).unicodeScalars)
                    i = j + 1
                } else {
                    out.append(c)
                    i += 1  // malformed: keep the '$' literally, as Go does
                }
                continue
            }
            var j = i + 1
            var name = ""
            while j < chars.count, isNameChar(chars[j]) {
                name.unicodeScalars.append(chars[j])
                j += 1
            }
            if name.isEmpty {
                out.append(c)
                i += 1
                continue
            }
            out.append(contentsOf: group(name).unicodeScalars)
            i = j
        }
        return String(out)
    }
}

/// One `rule { ... }` of `discovery.relabel`, with Prometheus' defaults.
public struct RelabelRule: Sendable {
    public var sourceLabels: [String] = []
    public var separator: String = ";"
    public var regex: RelabelRegex
    public var modulus: UInt64 = 0
    public var targetLabel: String = ""
    public var replacement: String = "$1"
    public var action: RelabelAction = .replace

    public init(
        sourceLabels: [String] = [], separator: String = ";", regex: String = "(.*)", modulus: UInt64 = 0,
        targetLabel: String = "", replacement: String = "$1", action: RelabelAction = .replace
    ) throws {
        self.sourceLabels = sourceLabels
        self.separator = separator
        self.regex = try RelabelRegex(regex)
        self.modulus = modulus
        self.targetLabel = targetLabel
        self.replacement = replacement
        self.action = action
    }

    /// What is wrong with this rule for its action, if anything (Prometheus' checks).
    public var validationProblem: String? {
        switch action {
        case .replace, .lowercase, .uppercase, .keepequal, .dropequal:
            if targetLabel.isEmpty { return "relabel action \"\(action.rawValue)\" requires target_label" }
        case .hashmod:
            if targetLabel.isEmpty { return "relabel action \"hashmod\" requires target_label" }
            if modulus == 0 { return "relabel action \"hashmod\" requires a modulus greater than 0" }
        case .labelmap, .labeldrop, .labelkeep, .keep, .drop:
            break
        }
        if action == .labeldrop || action == .labelkeep {
            if !sourceLabels.isEmpty || !targetLabel.isEmpty {
                return "relabel action \"\(action.rawValue)\" takes only regex (label names are matched)"
            }
        }
        if [.replace, .lowercase, .uppercase, .hashmod].contains(action), !targetLabel.contains("$"),
            !Relabeling.isValidLabelName(targetLabel)
        {
            return "\"\(targetLabel)\" is not a valid label name"
        }
        return nil
    }
}

public enum Relabeling {
    public static func isValidLabelName(_ name: String) -> Bool { LabelName.isValid(name) }

    /// Applies `rules` in order; nil means the target was dropped.
    public static func apply(_ rules: [RelabelRule], to labels: LabelSet) -> LabelSet? {
        var current = labels
        for rule in rules {
            guard let next = apply(rule, to: current) else { return nil }
            current = next
        }
        return current
    }

    public static func apply(_ rule: RelabelRule, to labels: LabelSet) -> LabelSet? {
        var labels = labels
        let value = rule.sourceLabels.map { labels[$0] ?? "" }.joined(separator: rule.separator)
        switch rule.action {
        case .keep:
            return rule.regex.matches(value) ? labels : nil
        case .drop:
            return rule.regex.matches(value) ? nil : labels
        case .keepequal:
            return value == (labels[rule.targetLabel] ?? "") ? labels : nil
        case .dropequal:
            return value == (labels[rule.targetLabel] ?? "") ? nil : labels
        case .replace:
            guard let match = rule.regex.firstMatch(value) else { return labels }
            let target = rule.regex.expand(rule.targetLabel, match: match)
            guard isValidLabelName(target) else { return labels }
            let result = rule.regex.expand(rule.replacement, match: match)
            if result.isEmpty { labels.removeValue(forKey: target) } else { labels[target] = result }
            return labels
        case .lowercase:
            labels[rule.targetLabel] = value.lowercased()
            return labels
        case .uppercase:
            labels[rule.targetLabel] = value.uppercased()
            return labels
        case .hashmod:
            labels[rule.targetLabel] = String(PrometheusHash.of(value) % rule.modulus)
            return labels
        case .labelmap:
            var out = labels
            for (name, v) in labels {
                guard let match = rule.regex.firstMatch(name) else { continue }
                let newName = rule.regex.expand(rule.replacement, match: match)
                guard isValidLabelName(newName) else { continue }
                out[newName] = v
            }
            return out
        case .labeldrop:
            return labels.filter { !rule.regex.matches($0.key) }
        case .labelkeep:
            return labels.filter { rule.regex.matches($0.key) }
        }
    }
}
