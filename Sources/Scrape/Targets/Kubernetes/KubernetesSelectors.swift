/// Syntax checks of Kubernetes label and field selectors, so a typo is refused when the configuration
/// loads rather than by the API server on every list.
public enum KubernetesSelectors {
    /// Label selector terms, comma separated: `key`, `!key`, `key=value`, `key==value`, `key!=value`,
    /// `key in (a,b)`, `key notin (a,b)`. Nil when the selector is well formed.
    public static func labelSelectorProblem(_ selector: String) -> String? {
        for term in splitTerms(selector) {
            let t = term.trimmingSpaces
            if t.isEmpty { return "empty term" }
            if let problem = setTermProblem(t) {
                if problem.isEmpty { continue }
                return problem
            }
            if t.hasPrefix("!") {
                if !isKey(String(t.dropFirst()).trimmingSpaces) { return "\"\(t)\" is not !key" }
                continue
            }
            guard let (key, value) = splitOperator(t) else {
                if isKey(t) { continue }
                return "\"\(t)\" is not key, !key, key=value, key!=value, key in (...) or key notin (...)"
            }
            if !isKey(key) { return "\"\(key)\" is not a valid label key" }
            if !isValue(value) { return "\"\(value)\" is not a valid label value" }
        }
        return nil
    }

    /// Field selector terms, comma separated: `field=value`, `field==value` or `field!=value`.
    public static func fieldSelectorProblem(_ selector: String) -> String? {
        for term in splitTerms(selector) {
            let t = term.trimmingSpaces
            guard let (field, _) = splitOperator(t), !field.isEmpty else {
                return "\"\(t)\" is not field=value, field==value or field!=value"
            }
        }
        return nil
    }

    /// Splits at commas outside parentheses.
    static func splitTerms(_ s: String) -> [String] {
        var out: [String] = []
        var current = ""
        var depth = 0
        for c in s {
            if c == "(" { depth += 1 }
            if c == ")" { depth -= 1 }
            if c == ",", depth == 0 {
                out.append(current)
                current = ""
            } else {
                current.append(c)
            }
        }
        out.append(current)
        return out
    }

    /// `key in (...)` / `key notin (...)`: "" when well formed, a problem, or nil when not a set term.
    static func setTermProblem(_ t: String) -> String? {
        let words = t.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard words.count == 2 else { return nil }
        let rest = words[1].trimmingSpaces
        for op in ["in", "notin"] where rest.hasPrefix(op) {
            let list = rest.dropFirst(op.count).trimmingSpaces
            guard list.hasPrefix("("), list.hasSuffix(")") else { return nil }
            if !isKey(String(words[0])) { return "\"\(words[0])\" is not a valid label key" }
            for v in list.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false) {
                if !isValue(v.trimmingSpaces) { return "\"\(v)\" is not a valid label value" }
            }
            return ""
        }
        return nil
    }

    static func splitOperator(_ t: String) -> (String, String)? {
        for op in ["!=", "==", "="] {
            if let r = t.range(of: op) {
                return (String(t[..<r.lowerBound]).trimmingSpaces, String(t[r.upperBound...]).trimmingSpaces)
            }
        }
        return nil
    }

    /// `[prefix/]name`: a DNS subdomain prefix and a name of letters, digits, `-`, `_`, `.` (at most 63).
    static func isKey(_ key: String) -> Bool {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.last, isValue(String(name)), !name.isEmpty else { return false }
        if parts.count == 2 {
            let prefix = parts[0]
            return !prefix.isEmpty && prefix.count <= 253
                && prefix.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == ".") }
        }
        return true
    }

    /// Empty, or at most 63 letters, digits, `-`, `_`, `.`, starting and ending alphanumeric.
    static func isValue(_ v: String) -> Bool {
        if v.isEmpty { return true }
        guard v.count <= 63, v.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
            return false
        }
        return v.first!.isLetter || v.first!.isNumber ? (v.last!.isLetter || v.last!.isNumber) : false
    }
}

extension StringProtocol {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
