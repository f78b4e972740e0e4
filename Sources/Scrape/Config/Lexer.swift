// Tokenizer for the Alloy configuration syntax. Works on UTF-8 bytes; positions are 1-based.

enum TokenKind: Sendable, Equatable {
    case identifier(String)
    case string(String)
    case number(Double)
    case punctuation(Character)  // { } [ ] ( ) = , . : -
    case endOfFile

    var display: String {
        switch self {
        case .identifier(let s): return "identifier \"\(s)\""
        case .string(let s): return "string \"\(s)\""
        case .number(let n): return "number \(Lexer.format(n))"
        case .punctuation(let c): return "'\(c)'"
        case .endOfFile: return "end of file"
        }
    }
}

struct Token: Sendable, Equatable {
    var kind: TokenKind
    var position: SourcePosition
}

struct Lexer {
    private let bytes: [UInt8]
    private let file: String
    private var index = 0
    private var line = 1
    private var lineStart = 0

    init(source: String, file: String) {
        self.bytes = Array(source.utf8)
        self.file = file
    }

    static func format(_ n: Double) -> String {
        if n == n.rounded(), abs(n) < 1e15 { return String(Int64(n)) }
        return String(n)
    }

    private var position: SourcePosition {
        SourcePosition(file: file, line: line, column: index - lineStart + 1)
    }

    private func peek(_ offset: Int = 0) -> UInt8? {
        let i = index + offset
        return i < bytes.count ? bytes[i] : nil
    }

    private mutating func advance() {
        if bytes[index] == UInt8(ascii: "\n") {
            line += 1
            lineStart = index + 1
        }
        index += 1
    }

    mutating func tokenize() throws(ConfigError) -> [Token] {
        var tokens: [Token] = []
        while true {
            try skipTrivia()
            let start = position
            guard let c = peek() else {
                tokens.append(Token(kind: .endOfFile, position: start))
                return tokens
            }
            switch c {
            case UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "["), UInt8(ascii: "]"),
                UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "="), UInt8(ascii: ","),
                UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "-"):
                advance()
                tokens.append(Token(kind: .punctuation(Character(Unicode.Scalar(c))), position: start))
            case UInt8(ascii: "\""):
                tokens.append(Token(kind: .string(try lexQuoted()), position: start))
            case UInt8(ascii: "`"):
                tokens.append(Token(kind: .string(try lexRaw()), position: start))
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                tokens.append(Token(kind: .number(try lexNumber()), position: start))
            default:
                if Self.isIdentifierStart(c) {
                    let from = index
                    while let n = peek(), Self.isIdentifierStart(n) || Self.isDigit(n) { advance() }
                    let name = String(decoding: bytes[from..<index], as: UTF8.self)
                    tokens.append(Token(kind: .identifier(name), position: start))
                } else {
                    throw ConfigError("unexpected character \(Self.describe(c))", at: start)
                }
            }
        }
    }

    private static func isIdentifierStart(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
            || c == UInt8(ascii: "_")
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    private static func describe(_ c: UInt8) -> String {
        if c >= 0x20 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        return "byte 0x" + String(c, radix: 16)
    }

    private mutating func skipTrivia() throws(ConfigError) {
        while let c = peek() {
            if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") {
                advance()
            } else if c == UInt8(ascii: "/"), peek(1) == UInt8(ascii: "/") {
                while let n = peek(), n != UInt8(ascii: "\n") { advance() }
            } else if c == UInt8(ascii: "/"), peek(1) == UInt8(ascii: "*") {
                let start = position
                advance()
                advance()
                while true {
                    guard let n = peek() else { throw ConfigError("unterminated block comment", at: start) }
                    if n == UInt8(ascii: "*"), peek(1) == UInt8(ascii: "/") {
                        advance()
                        advance()
                        break
                    }
                    advance()
                }
            } else {
                return
            }
        }
    }

    private mutating func lexNumber() throws(ConfigError) -> Double {
        let start = position
        let from = index
        while let c = peek(), Self.isDigit(c) { advance() }
        if peek() == UInt8(ascii: "."), let d = peek(1), Self.isDigit(d) {
            advance()
            while let c = peek(), Self.isDigit(c) { advance() }
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            advance()
            if let s = peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { advance() }
            guard let d = peek(), Self.isDigit(d) else { throw ConfigError("malformed number exponent", at: start) }
            while let c = peek(), Self.isDigit(c) { advance() }
        }
        if let c = peek(), Self.isIdentifierStart(c) {
            throw ConfigError("unexpected \(Self.describe(c)) after number; durations are strings such as \"15s\"", at: position)
        }
        let text = String(decoding: bytes[from..<index], as: UTF8.self)
        guard let value = Double(text) else { throw ConfigError("malformed number \"\(text)\"", at: start) }
        return value
    }

    private mutating func lexRaw() throws(ConfigError) -> String {
        let start = position
        advance()
        let from = index
        while let c = peek(), c != UInt8(ascii: "`") { advance() }
        guard peek() != nil else { throw ConfigError("unterminated raw string", at: start) }
        let text = String(decoding: bytes[from..<index], as: UTF8.self)
        advance()
        return text
    }

    /// A double-quoted string with Go-style escapes.
    private mutating func lexQuoted() throws(ConfigError) -> String {
        let start = position
        advance()
        var out: [UInt8] = []
        while true {
            guard let c = peek() else { throw ConfigError("unterminated string", at: start) }
            if c == UInt8(ascii: "\n") { throw ConfigError("unterminated string (strings cannot span lines)", at: start) }
            if c == UInt8(ascii: "\"") {
                advance()
                break
            }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                advance()
                continue
            }
            let escapePosition = position
            advance()
            guard let e = peek() else { throw ConfigError("unterminated string", at: start) }
            advance()
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "a"): out.append(0x07)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "v"): out.append(0x0B)
            case UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "'"): out.append(e)
            case UInt8(ascii: "x"):
                out.append(UInt8(try hexDigits(2, escapeAt: escapePosition)))
            case UInt8(ascii: "u"), UInt8(ascii: "U"):
                let value = try hexDigits(e == UInt8(ascii: "u") ? 4 : 8, escapeAt: escapePosition)
                guard let scalar = Unicode.Scalar(value) else {
                    throw ConfigError("invalid Unicode code point in escape", at: escapePosition)
                }
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default:
                throw ConfigError("unknown escape sequence \\\(Character(Unicode.Scalar(e)))", at: escapePosition)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private mutating func hexDigits(_ count: Int, escapeAt: SourcePosition) throws(ConfigError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<count {
            guard let c = peek(), let digit = Self.hexValue(c) else {
                throw ConfigError("escape sequence needs \(count) hex digits", at: escapeAt)
            }
            value = value * 16 + UInt32(digit)
            advance()
        }
        return value
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
