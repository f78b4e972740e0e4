import Foundation
import ProfileModel
import Synchronization

/// Why a query was refused; the message names the fault (shown to Grafana and the UI as is).
public struct QueryError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case invalidArgument
        case tooLarge
        case unavailable
    }

    public var kind: Kind
    public var message: String
    /// The documented name of the per-tenant limit that refused the query, if one did.
    public var limit: String?

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// One PromQL-style label matcher: `name="v"`, `name!="v"`, `name=~"re"`, `name!~"re"`. Regular expressions
/// match the whole value, as in Prometheus.
public struct LabelMatcher: Sendable, CustomStringConvertible {
    public enum Operator: String, Sendable {
        case equal = "="
        case notEqual = "!="
        case regex = "=~"
        case notRegex = "!~"
    }

    public let name: String
    public let op: Operator
    public let value: String
    private let pattern: LinearRegex?
    private let memo: RegexMemo?

    public init(_ name: String, _ op: Operator, _ value: String) throws(QueryError) {
        self.name = name
        self.op = op
        self.value = value
        switch op {
        case .equal, .notEqual:
            pattern = nil
            memo = nil
        case .regex, .notRegex:
            guard value.utf8.count <= LabelSelector.maxRegexBytes else {
                throw QueryError(
                    .invalidArgument,
                    "regular expression for \(name) is \(value.utf8.count) bytes; the limit is \(LabelSelector.maxRegexBytes)")
            }
            do {
                pattern = try LinearRegex(value)
                memo = RegexMemo()
            } catch {
                throw QueryError(
                    .invalidArgument,
                    "invalid regular expression for \(name): \"\(value.count > 80 ? String(value.prefix(80)) + "…" : value)\": \(error)")
            }
        }
    }

    /// Whether a label value (nil when the series lacks the label, which matches like the empty string, as
    /// in Prometheus) satisfies the matcher.
    public func matches(_ labelValue: String?) -> Bool {
        let v = labelValue ?? ""
        switch op {
        case .equal: return v == value
        case .notEqual: return v != value
        case .regex: return regexMatches(v)
        case .notRegex: return !regexMatches(v)
        }
    }

    /// Linear in the value's length (LinearRegex); a value seen before is answered from the memo, as the
    /// same few values recur across series and blocks.
    private func regexMatches(_ v: String) -> Bool {
        guard let pattern, let memo else { return false }
        if let known = memo.lookup(v) { return known }
        let result = pattern.wholeMatch(v)
        memo.store(v, result)
        return result
    }

    public var description: String { "\(name)\(op.rawValue)\"\(value)\"" }
}

/// Answers of one regex matcher by label value, bounded (cleared when full).
final class RegexMemo: Sendable {
    static let capacity = 4096
    private let answers = Mutex<[String: Bool]>([:])

    func lookup(_ value: String) -> Bool? { answers.withLock { $0[value] } }

    func store(_ value: String, _ result: Bool) {
        answers.withLock { a in
            if a.count >= Self.capacity { a.removeAll(keepingCapacity: true) }
            a[value] = result
        }
    }
}

/// A PromQL-style selector `{a="x", b=~"y.*"}`: a series matches when every matcher matches.
public struct LabelSelector: Sendable, CustomStringConvertible {
    public static let maxSelectorBytes = 8192
    public static let maxRegexBytes = 1024
    public static let maxMatchers = 64

    public var matchers: [LabelMatcher]

    public init(_ matchers: [LabelMatcher] = []) { self.matchers = matchers }

    /// Parses `{...}`; an empty string or `{}` selects everything.
    public init(parsing text: String) throws(QueryError) {
        guard text.utf8.count <= Self.maxSelectorBytes else {
            throw QueryError(.invalidArgument, "label selector is \(text.utf8.count) bytes; the limit is \(Self.maxSelectorBytes)")
        }
        var parser = SelectorParser(Array(text.utf8))
        matchers = try parser.parseSelector()
    }

    public func matches(_ labels: LabelSet) -> Bool {
        matchers.allSatisfy { $0.matches(labels[$0.name]) }
    }

    public var description: String { "{" + matchers.map(\.description).joined(separator: ",") + "}" }
}

/// `<profile type ID>{selector}` as the legacy render API's `query` parameter takes it.
public struct ProfileQuery: Sendable {
    public var profileType: ProfileTypeID
    public var selector: LabelSelector

    public init(parsing text: String) throws(QueryError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let brace = trimmed.firstIndex(of: "{") ?? trimmed.endIndex
        let typeText = String(trimmed[..<brace])
        guard let type = ProfileTypeID(parsing: typeText) else {
            throw QueryError(
                .invalidArgument,
                "query \"\(text)\": \"\(typeText)\" is not a profile type ID (name:sample_type:sample_unit:period_type:period_unit)")
        }
        profileType = type
        selector = try LabelSelector(parsing: String(trimmed[brace...]))
    }
}

/// A small hand-written parser: label names are `[a-zA-Z_][a-zA-Z0-9_.]*` or quoted, values double- or
/// single-quoted or back-quoted strings with Go escapes.
struct SelectorParser {
    let bytes: [UInt8]
    var i = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseSelector() throws(QueryError) -> [LabelMatcher] {
        skipSpaces()
        if i == bytes.count { return [] }
        try expect(UInt8(ascii: "{"))
        var matchers: [LabelMatcher] = []
        skipSpaces()
        while peek != UInt8(ascii: "}") {
            guard matchers.count < LabelSelector.maxMatchers else {
                throw QueryError(.invalidArgument, "label selector has more than \(LabelSelector.maxMatchers) matchers")
            }
            let name = try parseName()
            skipSpaces()
            let op = try parseOperator()
            skipSpaces()
            let value = try parseString()
            matchers.append(try LabelMatcher(name, op, value))
            skipSpaces()
            if peek == UInt8(ascii: ",") {
                i += 1
                skipSpaces()
            } else if peek != UInt8(ascii: "}") {
                throw fault("expected \",\" or \"}\"")
            }
        }
        i += 1
        skipSpaces()
        guard i == bytes.count else { throw fault("unexpected text after \"}\"") }
        return matchers
    }

    var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    mutating func skipSpaces() {
        while let c = peek, c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d { i += 1 }
    }

    mutating func expect(_ c: UInt8) throws(QueryError) {
        guard peek == c else { throw fault("expected \"\(Character(Unicode.Scalar(c)))\"") }
        i += 1
    }

    func fault(_ what: String) -> QueryError {
        let text = String(decoding: bytes, as: UTF8.self)
        return QueryError(.invalidArgument, "label selector \(text.debugDescription): \(what) at position \(i + 1)")
    }

    /// A bare name, or a quoted one as Prometheus 3 and Pyroscope take for names outside the bare
    /// alphabet (`{"k8s.namespace"="x"}`, `{"service.name"="checkout"}`).
    mutating func parseName() throws(QueryError) -> String {
        if let c = peek, c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") || c == UInt8(ascii: "`") {
            let name = try parseString()
            guard !name.isEmpty else { throw fault("a quoted label name is empty") }
            return name
        }
        let start = i
        func isStart(_ c: UInt8) -> Bool { (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c == 0x5f }
        guard let c = peek, isStart(c) else { throw fault("expected a label name") }
        i += 1
        while let c = peek, isStart(c) || (c >= 0x30 && c <= 0x39) || c == 0x2e { i += 1 }
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }

    mutating func parseOperator() throws(QueryError) -> LabelMatcher.Operator {
        let next = i + 1 < bytes.count ? bytes[i + 1] : nil
        switch (peek, next) {
        case (UInt8(ascii: "="), UInt8(ascii: "~")):
            i += 2
            return .regex
        case (UInt8(ascii: "!"), UInt8(ascii: "=")):
            i += 2
            return .notEqual
        case (UInt8(ascii: "!"), UInt8(ascii: "~")):
            i += 2
            return .notRegex
        case (UInt8(ascii: "="), _):
            i += 1
            return .equal
        default: throw fault("expected one of = != =~ !~")
        }
    }

    mutating func parseString() throws(QueryError) -> String {
        guard let quote = peek, quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") || quote == UInt8(ascii: "`") else {
            throw fault("expected a quoted value")
        }
        i += 1
        var out: [UInt8] = []
        while let c = peek {
            i += 1
            if c == quote { return String(decoding: out, as: UTF8.self) }
            if c == UInt8(ascii: "\\") && quote != UInt8(ascii: "`") {
                guard let e = peek else { break }
                i += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0d)
                default: out.append(e)
                }
            } else {
                out.append(c)
            }
        }
        throw fault("unterminated string")
    }
}
