/// One lexical token of SQL text: a kind and a byte range into the query buffer.
/// Tokens never own text, so lexing allocates nothing.
struct Token {
    var kind: TokenKind
    /// Offset of the first byte.
    var start: Int
    /// Offset one past the last byte.
    var end: Int

    var length: Int { end - start }

    /// A placeholder used where "no previous token" is needed.
    static let none = Token(kind: .end, start: 0, end: 0)

    /// An unquoted word or a quoted identifier: something that can name a table, function or setting.
    var isName: Bool { kind == .word || kind == .quotedName }
}

enum TokenKind: UInt8 {
    /// The end of the statement: a `;` at parenthesis depth 0, or the end of the text.
    case end
    /// An unquoted identifier or keyword.
    case word
    /// `"..."` or `U&"..."`.
    case quotedName
    /// `'...'`, `E'...'`, `U&'...'`, `B'...'`, `X'...'`, `N'...'`.
    case string
    /// `$$...$$` or `$tag$...$tag$`.
    case dollarString
    case number
    /// `$1`
    case parameter
    case openParen
    case closeParen
    case comma
    case dot
    /// A `;` inside parentheses (at depth 0 it ends the statement instead).
    case semicolon
    /// A run of operator characters, e.g. `=`, `<>`, `||`, `->>`.
    case op
    /// `[`, `]`, `:`, `::`.
    case punctuation
    /// A byte that PostgreSQL's lexer rejects; the statement is not understood.
    case invalid
}
