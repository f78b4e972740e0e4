// Recursive-descent parser for the Alloy configuration syntax:
//   body       := statement*
//   statement  := ident ('.' ident)* ( '=' expr | string? '{' body '}' )
//   expr       := string | ['-'] number | true | false | null | list | object | path [ '(' args ')' ]
// Statements end at a line break or before a closing brace, as in Alloy.

public enum AlloyParser {
    /// Parses a whole file into its top-level statements.
    public static func parse(_ source: String, file: String) throws(ConfigError) -> [Statement] {
        var lexer = Lexer(source: source, file: file)
        var parser = ParserState(tokens: try lexer.tokenize())
        let body = try parser.parseBody(closedBy: nil)
        return body
    }
}

private struct ParserState {
    let tokens: [Token]
    var index = 0

    init(tokens: [Token]) { self.tokens = tokens }

    var current: Token { tokens[index] }
    var previous: Token { tokens[max(index - 1, 0)] }

    mutating func next() -> Token {
        let t = tokens[index]
        if index < tokens.count - 1 { index += 1 }
        return t
    }

    func isPunctuation(_ c: Character) -> Bool {
        if case .punctuation(c) = current.kind { return true }
        return false
    }

    mutating func expectPunctuation(_ c: Character, _ context: String) throws(ConfigError) {
        guard isPunctuation(c) else {
            throw ConfigError("expected '\(c)' \(context), found \(current.kind.display)", at: current.position)
        }
        _ = next()
    }

    mutating func expectIdentifier(_ context: String) throws(ConfigError) -> String {
        guard case .identifier(let name) = current.kind else {
            throw ConfigError("expected identifier \(context), found \(current.kind.display)", at: current.position)
        }
        _ = next()
        return name
    }

    mutating func parseBody(closedBy opener: Token?) throws(ConfigError) -> [Statement] {
        var statements: [Statement] = []
        while true {
            if case .endOfFile = current.kind {
                if let opener {
                    throw ConfigError(
                        "missing '}' to close the block opened at line \(opener.position.line), column \(opener.position.column)",
                        at: current.position)
                }
                return statements
            }
            if isPunctuation("}") {
                guard opener != nil else { throw ConfigError("unexpected '}' without a matching '{'", at: current.position) }
                _ = next()
                return statements
            }
            statements.append(try parseStatement())
            // Alloy separates statements with line breaks; two on one line are an error.
            if !isPunctuation("}"), current.kind != .endOfFile, current.position.line == previous.position.line {
                throw ConfigError(
                    "expected a line break or '}' after \(describe(statements.last!)), found \(current.kind.display)", at: current.position)
            }
        }
    }

    private func describe(_ statement: Statement) -> String {
        switch statement {
        case .attribute(let a): return "attribute \"\(a.name)\""
        case .block(let b): return "block \(b.displayName)"
        }
    }

    mutating func parseStatement() throws(ConfigError) -> Statement {
        let start = current
        guard case .identifier(let first) = start.kind else {
            throw ConfigError("expected an attribute or block name, found \(start.kind.display)", at: start.position)
        }
        _ = next()
        var parts = [first]
        while isPunctuation(".") {
            _ = next()
            parts.append(try expectIdentifier("after '.' in block name"))
        }
        let name = parts.joined(separator: ".")
        if isPunctuation("=") {
            guard parts.count == 1 else {
                throw ConfigError("attribute name \"\(name)\" must be a single identifier", at: start.position)
            }
            _ = next()
            let value = try parseExpression()
            return .attribute(Attribute(name: name, position: start.position, value: value))
        }
        var label: String?
        if case .string(let l) = current.kind {
            label = l
            _ = next()
            guard isPunctuation("{") else {
                throw ConfigError("expected '{' after block label \"\(l)\", found \(current.kind.display)", at: current.position)
            }
        }
        guard isPunctuation("{") else {
            throw ConfigError("expected '=' or '{' after identifier \"\(name)\", found \(current.kind.display)", at: current.position)
        }
        let opener = next()
        let body = try parseBody(closedBy: opener)
        return .block(Block(name: name, label: label, position: start.position, body: body))
    }

    mutating func parseExpression() throws(ConfigError) -> Expression {
        let token = current
        switch token.kind {
        case .string(let s):
            _ = next()
            return .string(s, token.position)
        case .number(let n):
            _ = next()
            return .number(n, token.position)
        case .punctuation("-"):
            _ = next()
            guard case .number(let n) = current.kind else {
                throw ConfigError("expected a number after '-', found \(current.kind.display)", at: current.position)
            }
            _ = next()
            return .number(-n, token.position)
        case .punctuation("["):
            return try parseList()
        case .punctuation("{"):
            return try parseObject()
        case .identifier(let word):
            _ = next()
            if parsesAsKeyword(word) {
                switch word {
                case "true": return .bool(true, token.position)
                case "false": return .bool(false, token.position)
                default: return .null(token.position)
                }
            }
            var path = [word]
            while isPunctuation(".") {
                _ = next()
                path.append(try expectIdentifier("after '.' in reference"))
            }
            if isPunctuation("(") {
                _ = next()
                var arguments: [Expression] = []
                while !isPunctuation(")") {
                    arguments.append(try parseExpression())
                    if isPunctuation(",") {
                        _ = next()
                    } else if !isPunctuation(")") {
                        throw ConfigError(
                            "expected ',' or ')' in arguments of \(path.joined(separator: ".")), found \(current.kind.display)",
                            at: current.position)
                    }
                }
                _ = next()
                return .call(function: path, arguments: arguments, token.position)
            }
            return .reference(path, token.position)
        case .endOfFile:
            throw ConfigError("expected a value, found end of file", at: token.position)
        default:
            throw ConfigError("expected a value, found \(token.kind.display)", at: token.position)
        }
    }

    private func parsesAsKeyword(_ word: String) -> Bool {
        word == "true" || word == "false" || word == "null"
    }

    mutating func parseList() throws(ConfigError) -> Expression {
        let open = next()
        var items: [Expression] = []
        while true {
            if isPunctuation("]") {
                _ = next()
                break
            }
            if case .endOfFile = current.kind {
                throw ConfigError(
                    "missing ']' to close the list opened at line \(open.position.line), column \(open.position.column)",
                    at: current.position)
            }
            items.append(try parseExpression())
            if isPunctuation(",") {
                _ = next()
            } else if !isPunctuation("]") {
                throw ConfigError("expected ',' or ']' in list, found \(current.kind.display)", at: current.position)
            }
        }
        return .list(items, open.position)
    }

    mutating func parseObject() throws(ConfigError) -> Expression {
        let open = next()
        var fields: [ObjectField] = []
        var seen = Set<String>()
        while true {
            if isPunctuation("}") {
                _ = next()
                break
            }
            let keyToken = current
            let key: String
            switch keyToken.kind {
            case .identifier(let k), .string(let k): key = k
            case .endOfFile:
                throw ConfigError(
                    "missing '}' to close the object opened at line \(open.position.line), column \(open.position.column)",
                    at: keyToken.position)
            default:
                throw ConfigError("expected an object key (identifier or string), found \(keyToken.kind.display)", at: keyToken.position)
            }
            _ = next()
            guard isPunctuation("=") else {
                throw ConfigError("expected '=' after object key \"\(key)\", found \(current.kind.display)", at: current.position)
            }
            _ = next()
            guard seen.insert(key).inserted else {
                throw ConfigError("duplicate object key \"\(key)\"", at: keyToken.position)
            }
            fields.append(ObjectField(key: key, keyPosition: keyToken.position, value: try parseExpression()))
            if isPunctuation(",") {
                _ = next()
            } else if !isPunctuation("}") {
                throw ConfigError("expected ',' or '}' in object, found \(current.kind.display)", at: current.position)
            }
        }
        return .object(fields, open.position)
    }
}
