import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Prometheus `file_sd` target files: `[{"targets": ["host:port"], "labels": {"k": "v"}}]` in JSON,
/// or the same structure in YAML (the block/flow subset file_sd files use; see docs/scraping.md).
public enum FileTargets {
    public struct FormatError: Error, CustomStringConvertible, Equatable {
        public var file: String
        public var line: Int?
        public var message: String
        public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
    }

    /// The targets a file describes; every target carries `__address__` and `__meta_filepath`.
    public static func parse(_ data: Data, path: String) throws -> [LabelSet] {
        let groups: [(targets: [String], labels: [String: String])]
        if path.hasSuffix(".yml") || path.hasSuffix(".yaml") {
            groups = try parseYAML(String(decoding: data, as: UTF8.self), path: path)
        } else {
            groups = try parseJSON(data, path: path)
        }
        return targets(groups, meta: "__meta_filepath", value: path)
    }

    /// One label set per target of each group: the group's labels, `__address__`, and `meta` = `value`
    /// (where the targets came from).
    static func targets(_ groups: [(targets: [String], labels: [String: String])], meta: String, value: String) -> [LabelSet] {
        var out: [LabelSet] = []
        for group in groups {
            for target in group.targets {
                var labels = group.labels
                labels["__address__"] = target
                labels[meta] = value
                out.append(labels)
            }
        }
        return out
    }

    static func parseJSON(_ data: Data, path: String) throws -> [(targets: [String], labels: [String: String])] {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw FormatError(file: path, line: nil, message: "invalid JSON: \(error.localizedDescription)")
        }
        guard let list = object as? [Any] else {
            throw FormatError(file: path, line: nil, message: "expected a JSON array of target groups")
        }
        return try list.enumerated().map { index, element in
            guard let group = element as? [String: Any] else {
                throw FormatError(file: path, line: nil, message: "target group \(index) is not an object")
            }
            for key in group.keys where key != "targets" && key != "labels" {
                throw FormatError(file: path, line: nil, message: "target group \(index) has unknown key \"\(key)\"")
            }
            guard let targets = group["targets"] as? [String] else {
                throw FormatError(file: path, line: nil, message: "target group \(index) needs \"targets\": a list of strings")
            }
            var labels: [String: String] = [:]
            if let raw = group["labels"] {
                guard let map = raw as? [String: String] else {
                    throw FormatError(file: path, line: nil, message: "target group \(index): \"labels\" must map strings to strings")
                }
                labels = map
            }
            return (targets, labels)
        }
    }

    /// Line-based reader for file_sd YAML: a top-level sequence of mappings with `targets`
    /// (block or flow list of scalars) and `labels` (block or flow mapping of scalars).
    static func parseYAML(_ text: String, path: String) throws -> [(targets: [String], labels: [String: String])] {
        var groups: [(targets: [String], labels: [String: String])] = []
        var section: String?
        var sectionIndent = 0
        func fail(_ line: Int, _ message: String) -> FormatError { FormatError(file: path, line: line, message: message) }

        for (offset, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = offset + 1
            let line = stripComment(String(rawLine)).replacingOccurrences(of: "\r", with: "")
            if line.trimmingCharacters(in: .whitespaces).isEmpty || line.hasPrefix("---") { continue }
            let indent = line.prefix { $0 == " " }.count
            if line.contains("\t") { throw fail(number, "tabs are not allowed in YAML indentation") }
            var content = String(line.dropFirst(indent))
            if indent == 0 {
                guard content.hasPrefix("- ") || content == "-" else {
                    throw fail(number, "expected a list of target groups (lines starting with '- ')")
                }
                groups.append(([], [:]))
                section = nil
                content = String(content.dropFirst(content == "-" ? 1 : 2)).trimmingCharacters(in: .whitespaces)
                if content.isEmpty { continue }
                sectionIndent = indent + 2
            } else if let current = section, indent > sectionIndent {
                guard !groups.isEmpty else { throw fail(number, "content before the first target group") }
                if current == "targets" {
                    guard content.hasPrefix("- ") else { throw fail(number, "expected '- host:port' under targets") }
                    groups[groups.count - 1].targets.append(try scalar(String(content.dropFirst(2)), line: number, path: path))
                } else {
                    let (k, v) = try keyValue(content, line: number, path: path)
                    guard let v else { throw fail(number, "label \"\(k)\" needs a value") }
                    groups[groups.count - 1].labels[k] = try scalar(v, line: number, path: path)
                }
                continue
            } else {
                sectionIndent = indent
            }
            guard !groups.isEmpty else { throw fail(number, "content before the first target group") }
            if content.hasPrefix("- "), section == "targets" {
                // A list item at the same indent as `targets:` (YAML allows this).
                groups[groups.count - 1].targets.append(try scalar(String(content.dropFirst(2)), line: number, path: path))
                continue
            }
            let (key, value) = try keyValue(content, line: number, path: path)
            switch key {
            case "targets":
                section = "targets"
                if let value {
                    groups[groups.count - 1].targets += try flowList(value, line: number, path: path)
                    section = nil
                }
            case "labels":
                section = "labels"
                if let value {
                    groups[groups.count - 1].labels.merge(try flowMap(value, line: number, path: path)) { $1 }
                    section = nil
                }
            default:
                throw fail(number, "unknown key \"\(key)\" in target group (expected targets or labels)")
            }
        }
        return groups
    }

    private static func stripComment(_ line: String) -> String {
        var quote: Character?
        var previous: Character = " "
        for (i, c) in zip(line.indices, line) {
            if let q = quote {
                if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "#", previous == " " || i == line.startIndex {
                return String(line[..<i])
            }
            previous = c
        }
        return line
    }

    private static func keyValue(_ s: String, line: Int, path: String) throws -> (String, String?) {
        guard let colon = s.firstIndex(of: ":") else {
            throw FormatError(file: path, line: line, message: "expected 'key: value'")
        }
        let key = try scalar(String(s[..<colon]), line: line, path: path)
        let rest = s[s.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        return (key, rest.isEmpty ? nil : rest)
    }

    private static func scalar(_ s: String, line: Int, path: String) throws -> String {
        let t = s.trimmingCharacters(in: .whitespaces)
        if t.count >= 2, (t.hasPrefix("\"") && t.hasSuffix("\"")) || (t.hasPrefix("'") && t.hasSuffix("'")) {
            return String(t.dropFirst().dropLast())
        }
        if t.hasPrefix("\"") || t.hasPrefix("'") { throw FormatError(file: path, line: line, message: "unterminated quoted string") }
        return t
    }

    private static func splitFlow(_ inner: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var quote: Character?
        for c in inner {
            if let q = quote {
                if c == q { quote = nil }
                current.append(c)
                continue
            }
            if c == "\"" || c == "'" {
                quote = c
                current.append(c)
                continue
            }
            if c == "," {
                parts.append(current)
                current = ""
                continue
            }
            current.append(c)
        }
        if !current.trimmingCharacters(in: .whitespaces).isEmpty { parts.append(current) }
        return parts
    }

    private static func flowList(_ s: String, line: Int, path: String) throws -> [String] {
        guard s.hasPrefix("["), s.hasSuffix("]") else {
            throw FormatError(file: path, line: line, message: "targets must be a list")
        }
        return try splitFlow(String(s.dropFirst().dropLast())).map { try scalar($0, line: line, path: path) }
    }

    private static func flowMap(_ s: String, line: Int, path: String) throws -> [String: String] {
        guard s.hasPrefix("{"), s.hasSuffix("}") else {
            throw FormatError(file: path, line: line, message: "labels must be a mapping")
        }
        var out: [String: String] = [:]
        for part in splitFlow(String(s.dropFirst().dropLast())) {
            let (k, v) = try keyValue(part, line: line, path: path)
            out[k] = try scalar(v ?? "", line: line, path: path)
        }
        return out
    }

    /// Expands the patterns (glob characters in the last path element only), sorted for stable output.
    public static func expand(_ patterns: [String]) -> [String] {
        var out: [String] = []
        for pattern in patterns {
            let url = URL(fileURLWithPath: pattern)
            let name = url.lastPathComponent
            guard name.contains(where: { "*?[".contains($0) }) else {
                out.append(pattern)
                continue
            }
            let dir = url.deletingLastPathComponent().path
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            for entry in entries.sorted() where fnmatch(name, entry, 0) == 0 {
                out.append((dir as NSString).appendingPathComponent(entry))
            }
        }
        return out
    }
}

/// Watches the files of one `discovery.file` component: re-reads them when their set, size or
/// modification time changes. A file that fails to parse keeps its last good targets.
public final class FileTargetWatcher: TargetDiscovery {
    public let component: FileDiscoveryComponent
    private struct FileState: Sendable {
        var mtime: Date?
        var size: Int
        var targets: [LabelSet]
    }
    private struct State: Sendable {
        var files: [String: FileState] = [:]
        var lastErrors: [String: String] = [:]
    }
    private let state = Mutex(State())

    public init(component: FileDiscoveryComponent) { self.component = component }

    public var id: String { "discovery.file.\(component.label)" }

    public func run(changed: @escaping @Sendable () -> Void) async {
        await poll(every: component.refreshInterval, changed: changed) { refresh() }
    }

    /// Current targets of all files, in file order.
    public var targets: [LabelSet] {
        state.withLock { s in s.files.keys.sorted().flatMap { s.files[$0]!.targets } }
    }

    /// Errors of the last refresh, by file (empty when all files parsed).
    public var errors: [String: String] { state.withLock { $0.lastErrors } }

    /// Checks the files; returns true when the target list changed.
    @discardableResult
    public func refresh() -> Bool {
        let paths = FileTargets.expand(component.files)
        var updates: [String: FileState] = [:]
        var errors: [String: String] = [:]
        let previous = state.withLock { $0.files }
        for path in paths {
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            let mtime = attributes?[.modificationDate] as? Date
            let size = (attributes?[.size] as? NSNumber)?.intValue ?? -1
            if let old = previous[path], old.mtime == mtime, old.size == size {
                updates[path] = old
                continue
            }
            do {
                let data = try Data(contentsOf: URL(fileURLWithPath: path))
                updates[path] = FileState(mtime: mtime, size: size, targets: try FileTargets.parse(data, path: path))
            } catch {
                errors[path] = "\(error)"
                if let old = previous[path] { updates[path] = old }  // keep the last good targets
            }
        }
        return state.withLock { s in
            let before = s.files.keys.sorted().flatMap { s.files[$0]!.targets }
            s.files = updates
            s.lastErrors = errors
            let after = s.files.keys.sorted().flatMap { s.files[$0]!.targets }
            return before != after
        }
    }
}
