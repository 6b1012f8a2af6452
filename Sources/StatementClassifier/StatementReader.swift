/// Reads one statement from the lexer and says what it does. The per-command parts live in the
/// `StatementReader+...` files; this file holds the token helpers they share.
struct StatementReader {
    var lexer: Lexer
    /// Unowned: a reader lives only inside `Classifier.classify`, whose `self` holds the catalog for the
    /// whole call, so the catalog outlives every reader; this saves two atomic reference-count operations
    /// per statement.
    unowned(unsafe) let functions: FunctionCatalog
    /// How many EXPLAIN / PREPARE bodies we are inside: bounded so that `EXPLAIN EXPLAIN ...` cannot
    /// exhaust the stack.
    var bodyNesting = 0
    /// When not nil, the names of unknown functions are collected here (the slow path only).
    var unknownNames: [String]? = nil
    static let maximumBodyNesting = 4

    var bytes: UnsafePointer<UInt8> { lexer.bytes }

    @inline(__always) mutating func next() -> Token { lexer.next() }

    /// The next token, without consuming it.
    @inline(__always) func peek() -> Token {
        var copy = lexer
        return copy.next()
    }

    /// True when `token` is the unquoted word `keyword` (given in lower case), in any letter case.
    @inline(__always) func matches(_ token: Token, _ keyword: StaticString) -> Bool {
        guard token.kind == .word, token.length == keyword.utf8CodeUnitCount else { return false }
        let k = keyword.utf8Start
        let b = bytes + token.start
        for i in 0..<token.length {
            let c = b[i]
            // Only letters fold; `c | 0x20` cannot turn a non-letter into a lower-case letter.
            if c != k[i] && (c | 0x20) != k[i] { return false }
        }
        return true
    }

    /// Consumes the next token when it is `keyword`.
    mutating func skip(_ keyword: StaticString) -> Bool {
        if matches(peek(), keyword) {
            _ = next()
            return true
        }
        return false
    }

    /// A name as PostgreSQL sees it: an unquoted word lower-cased, a quoted name with `""` undoubled.
    func name(_ token: Token) -> String {
        var out: [UInt8] = []
        appendName(token, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    func appendName(_ token: Token, to out: inout [UInt8]) {
        switch token.kind {
        case .word:
            for i in token.start..<token.end { out.append(ASCII.lowercased(bytes[i])) }
        case .quotedName:
            var i = token.start
            while bytes[i] != ASCII.doubleQuote { i += 1 }
            i += 1
            let end = token.end - 1
            while i < end {
                out.append(bytes[i])
                i += bytes[i] == ASCII.doubleQuote ? 2 : 1
            }
        default:
            for i in token.start..<token.end { out.append(bytes[i]) }
        }
    }

    /// The value of a plain string literal (`'...'`, `E'...'` without backslashes, `N'...'`); nil for
    /// other tokens and for strings whose escapes we do not decode.
    func stringValue(_ token: Token) -> String? {
        guard token.kind == .string else { return nil }
        var i = token.start
        let first = bytes[i] | 0x20
        if first == ASCII.lowerU || first == ASCII.lowerB || first == ASCII.lowerX { return nil }
        while bytes[i] != ASCII.quote { i += 1 }
        i += 1
        let end = token.end - 1
        guard end >= i else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(end - i)
        while i < end {
            let c = bytes[i]
            if c == ASCII.backslash && first == ASCII.lowerE { return nil }
            out.append(c)
            i += c == ASCII.quote ? 2 : 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The source text of `token`, lower-cased.
    func lowercasedText(_ token: Token) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(token.length)
        for i in token.start..<token.end { out.append(ASCII.lowercased(bytes[i])) }
        return String(decoding: out, as: UTF8.self)
    }

    /// The source text from `start` to `end`, as written.
    func text(from start: Int, to end: Int) -> String {
        String(decoding: UnsafeBufferPointer(start: bytes + start, count: max(0, end - start)), as: UTF8.self)
    }

    /// A name-like token's name, or a string literal's value (`SAVEPOINT "a"`, `DEALLOCATE 'p'` never
    /// happen, but `SET SCHEMA 'x'` does).
    func nameOrString(_ token: Token) -> String? {
        if token.isName { return name(token) }
        return stringValue(token)
    }
}
