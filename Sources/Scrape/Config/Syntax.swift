// The syntax tree of an Alloy configuration file, with a position on every node so that the
// semantic layer can point at the exact place a value came from.

/// A place in a configuration file: 1-based line and column (columns count UTF-8 bytes).
public struct SourcePosition: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// Any problem in a configuration file, rendered as `file:line:column: message`.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var position: SourcePosition
    public var message: String

    public init(_ message: String, at position: SourcePosition) {
        self.message = message
        self.position = position
    }

    public var description: String { "\(position): \(message)" }
}

/// A value expression. References (`pyroscope.write.x.receiver`) stay symbolic; the semantic
/// layer resolves them against the components the file defines.
public indirect enum Expression: Sendable, Equatable {
    case string(String, SourcePosition)
    case number(Double, SourcePosition)
    case bool(Bool, SourcePosition)
    case null(SourcePosition)
    case list([Expression], SourcePosition)
    case object([ObjectField], SourcePosition)
    case reference([String], SourcePosition)
    case call(function: [String], arguments: [Expression], SourcePosition)

    public var position: SourcePosition {
        switch self {
        case .string(_, let p), .number(_, let p), .bool(_, let p), .null(let p), .list(_, let p),
            .object(_, let p), .reference(_, let p), .call(_, _, let p):
            return p
        }
    }

    /// How the value is named in error messages.
    public var kindName: String {
        switch self {
        case .string: return "string"
        case .number: return "number"
        case .bool: return "bool"
        case .null: return "null"
        case .list: return "list"
        case .object: return "object"
        case .reference(let path, _): return "reference \(path.joined(separator: "."))"
        case .call(let f, _, _): return "call to \(f.joined(separator: "."))"
        }
    }
}

public struct ObjectField: Sendable, Equatable {
    public var key: String
    public var keyPosition: SourcePosition
    public var value: Expression
}

public struct Attribute: Sendable, Equatable {
    public var name: String
    public var position: SourcePosition
    public var value: Expression
}

/// `name "label" { body }`; `name` may be dotted (`pyroscope.scrape`, `profile.process_cpu`).
public struct Block: Sendable, Equatable {
    public var name: String
    public var label: String?
    public var position: SourcePosition
    public var body: [Statement]

    /// `pyroscope.scrape "x"` — how the block is named in error messages.
    public var displayName: String {
        if let label { return "\(name) \"\(label)\"" }
        return name
    }
}

public enum Statement: Sendable, Equatable {
    case attribute(Attribute)
    case block(Block)
}
