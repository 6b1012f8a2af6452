/// A SQL lexer over UTF-8 bytes, following PostgreSQL's scanner closely enough to find statement boundaries,
/// keywords and names without being fooled by strings, comments or dollar quotes.
///
/// It is a small value: copying it is how callers look ahead. It stops at the end of one statement
/// (a `;` outside parentheses) and keeps returning `.end` there; the caller restarts after the `;`.
/// It skips whitespace and comments itself, noting any routing hint found in a comment.
struct Lexer {
    let bytes: UnsafePointer<UInt8>
    let count: Int
    var position: Int
    /// Parenthesis depth within the current statement.
    var depth = 0
    /// Set on an unterminated string, comment, dollar quote or quoted name, an unbalanced `)`,
    /// or a byte SQL does not allow: the statement is not understood.
    var malformed = false
    /// The first routing hint seen in a comment of this statement.
    var hint: RouteTarget?

    init(bytes: UnsafePointer<UInt8>, count: Int, position: Int) {
        self.bytes = bytes
        self.count = count
        self.position = position
    }

    @inline(__always) private func byte(_ index: Int) -> UInt8 {
        index < count ? bytes[index] : 0
    }

    /// The next token of the statement, or `.end` (repeatedly) once the statement is over.
    mutating func next() -> Token {
        // Most tokens follow one space: step over it here and call out only for more.
        if position < count && bytes[position] == ASCII.space { position += 1 }
        if position < count && bytes[position] <= ASCII.slash { skipSpaceAndComments() }
        let start = position
        guard start < count else {
            // An unclosed `(` at the end of the text.
            if depth > 0 { malformed = true }
            return Token(kind: .end, start: count, end: count)
        }
        let b = bytes[start]
        switch b {
        case ASCII.semicolon:
            if depth <= 0 { return Token(kind: .end, start: start, end: start) }
            return single(.semicolon, start)
        case ASCII.openParen:
            depth += 1
            return single(.openParen, start)
        case ASCII.closeParen:
            depth -= 1
            if depth < 0 { malformed = true }
            return single(.closeParen, start)
        case ASCII.comma:
            return single(.comma, start)
        case ASCII.dot:
            if ASCII.isDigit(byte(start + 1)) { return lexNumber(start) }
            return single(.dot, start)
        case ASCII.quote:
            return lexString(start, contentStart: start + 1, backslashEscapes: false)
        case ASCII.doubleQuote:
            return lexQuotedName(start, contentStart: start + 1)
        case ASCII.dollar:
            return lexDollar(start)
        case ASCII.zero...ASCII.nine:
            return lexNumber(start)
        case ASCII.openBracket, ASCII.closeBracket:
            return single(.punctuation, start)
        case ASCII.colon:
            position = start + (byte(start + 1) == ASCII.colon ? 2 : 1)
            return Token(kind: .punctuation, start: start, end: position)
        default:
            if ASCII.isIdentifierStart(b) { return lexWordOrPrefixedLiteral(start, first: b) }
            if ASCII.isOperator(b) { return lexOperator(start) }
            malformed = true
            return single(.invalid, start)
        }
    }

    /// Lexes to the end of the statement, so that hints and malformations in the rest are seen.
    ///
    /// Most writes are decided by their first word and skipped from there, so this is a byte scan
    /// that tracks only what the tokens would change — quotes, comments, dollar quotes, parentheses,
    /// bytes SQL rejects, where words and numbers end — at a fraction of the cost of making each
    /// token. It ends in exactly the state `skipToEndByTokens` does (tested against it).
    mutating func skipToEnd() {
        // The text in locals: read through `self` the loop reloaded both on every byte.
        let bytes = self.bytes
        let count = self.count
        var i = position
        while i < count {
            var c = bytes[i]
            if c == ASCII.space {
                // Most words follow one space: step over it without going round the loop.
                i += 1
                guard i < count else { break }
                c = bytes[i]
            }
            // Words and numbers are run over in tight loops of their own; what follows one starts a token.
            if (c | 0x20) &- ASCII.lowerA < 26 || ASCII.isIdentifierStart(c) {
                if c | 0x20 == ASCII.lowerE && byte(i + 1) == ASCII.quote {
                    i = skipQuoted(from: i + 2, closer: ASCII.quote, backslashEscapes: true)
                    continue
                }
                i += 1
                while i < count {
                    let d = bytes[i]
                    guard (d | 0x20) &- ASCII.lowerA < 26 || ASCII.isIdentifierPart(d) else { break }
                    i += 1
                }
                continue
            }
            if c == ASCII.space {
                i += 1
                continue
            }
            if ASCII.isDigit(c) || (c == ASCII.dot && ASCII.isDigit(byte(i + 1))) {
                i += 1
                while i < count {
                    let d = bytes[i]
                    guard ASCII.isDigit(d) || ASCII.isLetter(d) || d == ASCII.underscore || d == ASCII.dot else { break }
                    i += 1
                }
                continue
            }
            switch c {
            case ASCII.semicolon:
                if depth <= 0 {
                    position = i
                    return
                }
                i += 1
            case ASCII.openParen:
                depth += 1
                i += 1
            case ASCII.closeParen:
                depth -= 1
                if depth < 0 { malformed = true }
                i += 1
            case ASCII.quote:
                i = skipQuoted(from: i + 1, closer: ASCII.quote, backslashEscapes: false)
            case ASCII.doubleQuote:
                i = skipQuoted(from: i + 1, closer: ASCII.doubleQuote, backslashEscapes: false)
            case ASCII.dollar:
                i = skipDollar(i)
            case ASCII.minus where byte(i + 1) == ASCII.minus:
                var end = i + 2
                while end < count, bytes[end] != ASCII.newline, bytes[end] != ASCII.carriageReturn { end += 1 }
                noteHint(from: i + 2, to: end)
                i = end
            case ASCII.slash where byte(i + 1) == ASCII.star:
                position = i
                skipBlockComment()
                i = position
            default:
                // Other space, operators and punctuation change nothing; any other byte SQL rejects.
                if !ASCII.isSpace(c) && !ASCII.isOperator(c) && c != ASCII.comma && c != ASCII.colon && c != ASCII.dot
                    && c != ASCII.openBracket && c != ASCII.closeBracket {
                    malformed = true
                }
                i += 1
            }
        }
        position = count
        if depth > 0 { malformed = true }
    }

    /// The token-by-token walk `skipToEnd` stands for.
    mutating func skipToEndByTokens() {
        while next().kind != .end {}
    }

    /// Past the closing quote of a string or quoted name whose content starts at `start`; at the
    /// end of the text, marked malformed, when it never closes.
    private mutating func skipQuoted(from start: Int, closer: UInt8, backslashEscapes: Bool) -> Int {
        var i = start
        while i < count {
            let c = bytes[i]
            if c == closer {
                if byte(i + 1) == closer { i += 2; continue }
                return i + 1
            }
            if backslashEscapes && c == ASCII.backslash { i += 2; continue }
            i += 1
        }
        malformed = true
        return count
    }

    /// Past a `$` token at `start`: a parameter, a dollar-quoted string, or (malformed) a lone `$`.
    private mutating func skipDollar(_ start: Int) -> Int {
        position = start
        _ = lexDollar(start)
        return position
    }

    /// The offset where the statement ended (its `;`, or the end of the text). Valid after `.end`.
    var endOffset: Int { min(position, count) }

    // MARK: - Tokens

    @inline(__always) private mutating func single(_ kind: TokenKind, _ start: Int) -> Token {
        position = start + 1
        return Token(kind: kind, start: start, end: start + 1)
    }

    private mutating func lexWordOrPrefixedLiteral(_ start: Int, first: UInt8) -> Token {
        let second = byte(start + 1)
        switch first | 0x20 {
        case ASCII.lowerE where second == ASCII.quote:
            return lexString(start, contentStart: start + 2, backslashEscapes: true)
        case ASCII.lowerB where second == ASCII.quote,
             ASCII.lowerX where second == ASCII.quote,
             ASCII.lowerN where second == ASCII.quote:
            return lexString(start, contentStart: start + 2, backslashEscapes: false)
        case ASCII.lowerU where second == ASCII.ampersand:
            let third = byte(start + 2)
            if third == ASCII.quote { return lexString(start, contentStart: start + 3, backslashEscapes: false) }
            if third == ASCII.doubleQuote { return lexQuotedName(start, contentStart: start + 3) }
        default:
            break
        }
        var i = start + 1
        while i < count {
            let c = bytes[i]
            // Letters of either case, most of a name or keyword, take one test; the rest the full one.
            guard (c | 0x20) &- ASCII.lowerA < 26 || ASCII.isIdentifierPart(c) else { break }
            i += 1
        }
        position = i
        return Token(kind: .word, start: start, end: i)
    }

    /// `'...'` with `''` for a quote; with `backslashEscapes` (E-strings) `\` also escapes the next byte.
    private mutating func lexString(_ start: Int, contentStart: Int, backslashEscapes: Bool) -> Token {
        var i = contentStart
        while i < count {
            let c = bytes[i]
            if c == ASCII.quote {
                if byte(i + 1) == ASCII.quote { i += 2; continue }
                position = i + 1
                return Token(kind: .string, start: start, end: position)
            }
            if backslashEscapes && c == ASCII.backslash { i += 2; continue }
            i += 1
        }
        return unterminated(.string, start)
    }

    /// `"..."` with `""` for a double quote.
    private mutating func lexQuotedName(_ start: Int, contentStart: Int) -> Token {
        var i = contentStart
        while i < count {
            if bytes[i] == ASCII.doubleQuote {
                if byte(i + 1) == ASCII.doubleQuote { i += 2; continue }
                position = i + 1
                return Token(kind: .quotedName, start: start, end: position)
            }
            i += 1
        }
        return unterminated(.quotedName, start)
    }

    /// `$1` (a parameter), `$tag$...$tag$` / `$$...$$` (a dollar-quoted string), or a lone `$`.
    private mutating func lexDollar(_ start: Int) -> Token {
        var i = start + 1
        if ASCII.isDigit(byte(i)) {
            while i < count, ASCII.isDigit(bytes[i]) { i += 1 }
            position = i
            return Token(kind: .parameter, start: start, end: i)
        }
        if i < count, ASCII.isIdentifierStart(bytes[i]) {
            while i < count, ASCII.isIdentifierStart(bytes[i]) || ASCII.isDigit(bytes[i]) { i += 1 }
        }
        guard byte(i) == ASCII.dollar, i < count else {
            malformed = true
            return single(.invalid, start)
        }
        let tagLength = i + 1 - start  // including both dollars
        var j = i + 1
        while j < count {
            if bytes[j] == ASCII.dollar, j + tagLength <= count, matchesTag(at: j, tagStart: start, tagLength: tagLength) {
                position = j + tagLength
                return Token(kind: .dollarString, start: start, end: position)
            }
            j += 1
        }
        return unterminated(.dollarString, start)
    }

    @inline(__always) private func matchesTag(at index: Int, tagStart: Int, tagLength: Int) -> Bool {
        for k in 0..<tagLength where bytes[index + k] != bytes[tagStart + k] { return false }
        return true
    }

    /// Digits, decimal points, exponents, `0x`/`0o`/`0b` prefixes and `_` separators: lexed loosely,
    /// since the value never matters for routing.
    private mutating func lexNumber(_ start: Int) -> Token {
        var i = start + 1
        while i < count {
            let c = bytes[i]
            if ASCII.isDigit(c) || ASCII.isLetter(c) || c == ASCII.underscore || c == ASCII.dot {
                i += 1
            } else {
                break
            }
        }
        position = i
        return Token(kind: .number, start: start, end: i)
    }

    /// A run of operator characters; `--` and `/*` inside it start a comment, as in PostgreSQL.
    private mutating func lexOperator(_ start: Int) -> Token {
        var i = start + 1
        while i < count, ASCII.isOperator(bytes[i]) {
            let c = bytes[i]
            if c == ASCII.minus && byte(i + 1) == ASCII.minus { break }
            if c == ASCII.slash && byte(i + 1) == ASCII.star { break }
            i += 1
        }
        position = i
        return Token(kind: .op, start: start, end: i)
    }

    private mutating func unterminated(_ kind: TokenKind, _ start: Int) -> Token {
        malformed = true
        position = count
        return Token(kind: kind, start: start, end: count)
    }

    // MARK: - Whitespace and comments

    private mutating func skipSpaceAndComments() {
        while position < count {
            let c = bytes[position]
            // Space, '-' and '/' are all below '0': most tokens start above it and leave at once.
            if c > ASCII.slash { return }
            if ASCII.isSpace(c) {
                position += 1
            } else if c == ASCII.minus && byte(position + 1) == ASCII.minus {
                let start = position + 2
                var i = start
                while i < count, bytes[i] != ASCII.newline, bytes[i] != ASCII.carriageReturn { i += 1 }
                noteHint(from: start, to: i)
                position = i
            } else if c == ASCII.slash && byte(position + 1) == ASCII.star {
                skipBlockComment()
            } else {
                return
            }
        }
    }

    /// `/* ... */`, nested as PostgreSQL nests them.
    private mutating func skipBlockComment() {
        let start = position + 2
        var i = start
        var nesting = 1
        while i < count {
            let c = bytes[i]
            if c == ASCII.slash && byte(i + 1) == ASCII.star {
                nesting += 1
                i += 2
            } else if c == ASCII.star && byte(i + 1) == ASCII.slash {
                nesting -= 1
                i += 2
                if nesting == 0 {
                    noteHint(from: start, to: i - 2)
                    position = i
                    return
                }
            } else {
                i += 1
            }
        }
        noteHint(from: start, to: count)
        malformed = true
        position = count
    }

    private mutating func noteHint(from start: Int, to end: Int) {
        if hint == nil, end - start >= RoutingHint.shortestLength {
            hint = RoutingHint.find(in: bytes, from: start, to: end)
        }
    }
}
