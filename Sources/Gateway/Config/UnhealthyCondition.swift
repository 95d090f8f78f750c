/// The subset of CEL that health policies use for `unhealthyCondition`:
/// `response.code` compared with integers by `== != < <= > >=`, `&&`, `||`, `!`,
/// parentheses, `true`, `false`. Anything else is rejected with its position.
public indirect enum UnhealthyCondition: Sendable, Hashable, CustomStringConvertible {
    case literal(Bool)
    case compare(ComparisonOperator, Operand, Operand)
    case not(UnhealthyCondition)
    case and(UnhealthyCondition, UnhealthyCondition)
    case or(UnhealthyCondition, UnhealthyCondition)

    public enum ComparisonOperator: String, Sendable, CaseIterable {
        case equal = "==", notEqual = "!=", lessOrEqual = "<=", greaterOrEqual = ">=", less = "<", greater = ">"
    }

    public enum Operand: Sendable, Hashable, CustomStringConvertible {
        case responseCode
        case integer(Int)
        public var description: String {
            switch self {
            case .responseCode: return "response.code"
            case .integer(let n): return String(n)
            }
        }
    }

    /// An expression outside the subset, with its 1-based column.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let expression: String
        public let position: Int
        public let message: String
        public var description: String {
            // A long expression is cut: the position says where the problem is.
            let shown = expression.count > 60 ? expression.prefix(60) + "..." : expression
            return "unhealthyCondition \"\(shown)\": \(message) at position \(position)"
        }
    }

    /// The default when a health policy sets none: a 5xx.
    public static let defaultCondition = UnhealthyCondition.compare(.greaterOrEqual, .responseCode, .integer(500))

    /// True when a response with this status is unhealthy.
    public func evaluate(code: Int) -> Bool {
        switch self {
        case .literal(let value): return value
        case .not(let inner): return !inner.evaluate(code: code)
        case .and(let a, let b): return a.evaluate(code: code) && b.evaluate(code: code)
        case .or(let a, let b): return a.evaluate(code: code) || b.evaluate(code: code)
        case .compare(let op, let lhs, let rhs):
            let l = lhs.value(code), r = rhs.value(code)
            switch op {
            case .equal: return l == r
            case .notEqual: return l != r
            case .less: return l < r
            case .lessOrEqual: return l <= r
            case .greater: return l > r
            case .greaterOrEqual: return l >= r
            }
        }
    }

    public var description: String {
        switch self {
        case .literal(let value): return String(value)
        case .not(let inner): return "!(\(inner))"
        case .and(let a, let b): return "(\(a) && \(b))"
        case .or(let a, let b): return "(\(a) || \(b))"
        case .compare(let op, let l, let r): return "\(l) \(op.rawValue) \(r)"
        }
    }

    /// The deepest nesting of `(` and `!` accepted: the parser and `evaluate` recurse once
    /// per level, and a lab file must not be able to overflow the stack.
    public static let maxNesting = 64
    /// The most `&&` and `||` in one condition: a long chain is a tree as deep as it is long.
    public static let maxOperators = 256
    /// The longest condition text read (characters).
    public static let maxLength = 8192

    /// Parses a condition. Public for the fuzz target: any text gives a condition or a
    /// `ParseError`, never a trap.
    public static func parse(_ text: String) throws(ParseError) -> UnhealthyCondition {
        guard text.utf8.count <= maxLength else {
            throw ParseError(expression: String(text.prefix(40)) + "...", position: maxLength + 1,
                             message: "longer than \(maxLength) characters")
        }
        var parser = Parser(text: text)
        return try parser.parseAll()
    }

    // MARK: Parser (recursive descent: or -> and -> unary -> primary)

    private struct Token: Equatable {
        enum Kind: Equatable { case ident(String), int(Int), op(String), lparen, rparen, end, unknown(String) }
        let kind: Kind
        let position: Int
    }

    private struct Parser {
        let text: String
        var tokens: [Token] = []
        var index = 0
        /// Open `(` and `!` around the current token.
        var depth = 0
        var operators = 0

        init(text: String) {
            self.text = text
            self.tokens = Self.tokenize(text)
        }

        static func tokenize(_ text: String) -> [Token] {
            var tokens: [Token] = []
            let chars = Array(text)
            var i = 0
            while i < chars.count {
                let c = chars[i]
                let position = i + 1
                if c.isWhitespace { i += 1; continue }
                if c.isASCII && c.isNumber {
                    var j = i
                    while j < chars.count, chars[j].isASCII && chars[j].isNumber { j += 1 }
                    let digits = String(chars[i..<j])
                    // Past Int is no status code: an error at its position, not a silent Int.max.
                    tokens.append(Token(kind: Int(digits).map { .int($0) } ?? .unknown(digits), position: position))
                    i = j
                } else if c.isLetter || c == "_" {
                    var j = i
                    while j < chars.count, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" || chars[j] == "." { j += 1 }
                    tokens.append(Token(kind: .ident(String(chars[i..<j])), position: position))
                    i = j
                } else if c == "(" {
                    tokens.append(Token(kind: .lparen, position: position)); i += 1
                } else if c == ")" {
                    tokens.append(Token(kind: .rparen, position: position)); i += 1
                } else {
                    let two = i + 1 < chars.count ? String(chars[i...i + 1]) : ""
                    if ["==", "!=", "<=", ">=", "&&", "||"].contains(two) {
                        tokens.append(Token(kind: .op(two), position: position)); i += 2
                    } else if ["<", ">", "!"].contains(String(c)) {
                        tokens.append(Token(kind: .op(String(c)), position: position)); i += 1
                    } else {
                        tokens.append(Token(kind: .unknown(String(c)), position: position)); i += 1
                    }
                }
            }
            tokens.append(Token(kind: .end, position: chars.count + 1))
            return tokens
        }

        var current: Token { tokens[index] }

        func fail(_ message: String, at token: Token? = nil) -> ParseError {
            ParseError(expression: text, position: (token ?? current).position, message: message)
        }

        mutating func parseAll() throws(ParseError) -> UnhealthyCondition {
            if case .end = current.kind { throw fail("empty expression") }
            let expr = try parseOr()
            guard case .end = current.kind else { throw fail("unexpected \(describe(current))") }
            return expr
        }

        mutating func parseOr() throws(ParseError) -> UnhealthyCondition {
            var lhs = try parseAnd()
            while current.kind == .op("||") {
                try countOperator()
                index += 1
                lhs = .or(lhs, try parseAnd())
            }
            return lhs
        }

        mutating func parseAnd() throws(ParseError) -> UnhealthyCondition {
            var lhs = try parseUnary()
            while current.kind == .op("&&") {
                try countOperator()
                index += 1
                lhs = .and(lhs, try parseUnary())
            }
            return lhs
        }

        mutating func countOperator() throws(ParseError) {
            operators += 1
            if operators > UnhealthyCondition.maxOperators {
                throw fail("more than \(UnhealthyCondition.maxOperators) && and || operators")
            }
        }

        /// One more level of `(` or `!`; refused past the limit, before recursing.
        mutating func enter() throws(ParseError) {
            depth += 1
            if depth > UnhealthyCondition.maxNesting {
                throw fail("nested deeper than \(UnhealthyCondition.maxNesting) levels of ( and !")
            }
        }

        mutating func parseUnary() throws(ParseError) -> UnhealthyCondition {
            if current.kind == .op("!") {
                try enter()
                index += 1
                let inner = try parseUnary()
                depth -= 1
                return .not(inner)
            }
            return try parsePrimary()
        }

        mutating func parsePrimary() throws(ParseError) -> UnhealthyCondition {
            let token = current
            switch token.kind {
            case .lparen:
                try enter()
                index += 1
                let inner = try parseOr()
                guard current.kind == .rparen else { throw fail("expected ) to close the ( at position \(token.position), found \(describe(current))") }
                index += 1
                depth -= 1
                return inner
            case .ident("true"):
                index += 1
                return .literal(true)
            case .ident("false"):
                index += 1
                return .literal(false)
            case .ident, .int:
                let lhs = try parseOperand()
                guard case .op(let symbol) = current.kind, let op = ComparisonOperator(rawValue: symbol) else {
                    throw fail("expected a comparison (== != < <= > >=) after \(lhs), found \(describe(current))")
                }
                index += 1
                let rhs = try parseOperand()
                if case .integer = lhs, case .integer = rhs {
                    throw fail("a comparison needs response.code on one side", at: token)
                }
                return .compare(op, lhs, rhs)
            default:
                throw fail("expected response.code, an integer, true, false, ! or (, found \(describe(token))")
            }
        }

        mutating func parseOperand() throws(ParseError) -> Operand {
            let token = current
            switch token.kind {
            case .int(let n):
                index += 1
                return .integer(n)
            case .ident("response.code"):
                index += 1
                return .responseCode
            case .ident(let name):
                let hint = name.hasPrefix("response.") || name.hasPrefix("request.") ? "; only response.code is supported" : ""
                throw fail("unsupported identifier \(name)\(hint)", at: token)
            default:
                throw fail("expected response.code or an integer, found \(describe(token))")
            }
        }

        func describe(_ token: Token) -> String {
            switch token.kind {
            case .ident(let s): return "'\(s)'"
            case .int(let n): return "'\(n)'"
            case .op(let s): return "'\(s)'"
            case .lparen: return "'('"
            case .rparen: return "')'"
            case .end: return "the end"
            case .unknown(let s): return "'\(s)' (not in the supported CEL subset)"
            }
        }
    }
}

extension UnhealthyCondition.Operand {
    func value(_ code: Int) -> Int {
        switch self {
        case .responseCode: return code
        case .integer(let n): return n
        }
    }
}
