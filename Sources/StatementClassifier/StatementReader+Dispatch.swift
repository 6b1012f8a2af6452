/// The first word of a statement decides how the rest is read.
extension StatementReader {
    /// Reads the statement that starts with `first` to its end and says what it does.
    mutating func readStatement(first: Token) -> StatementInfo {
        guard first.kind == .word else {
            if first.kind == .openParen { return query(first) }
            return writeable("unknown")
        }
        switch bytes[first.start] | 0x20 {
        case 0x61: // a
            if matches(first, "alter") { return alter() }
            if matches(first, "abort") { return rollback(command: "abort", isAbort: true) }
            if matches(first, "analyze") || matches(first, "analyse") { return writeable("analyze") }
        case 0x62: // b
            if matches(first, "begin") { return begin(command: "begin") }
        case 0x63: // c
            if matches(first, "commit") { return commit(command: "commit", allowsPrepared: true) }
            if matches(first, "copy") { return copy() }
            if matches(first, "create") { return create() }
            if matches(first, "close") { return close() }
            if matches(first, "call") { return writeable("call") }
            if matches(first, "checkpoint") { return writeable("checkpoint") }
            if matches(first, "cluster") { return writeable("cluster") }
            if matches(first, "comment") { return writeable("comment") }
        case 0x64: // d
            if matches(first, "delete") { return writeable("delete") }
            if matches(first, "declare") { return declare() }
            if matches(first, "deallocate") { return deallocate() }
            if matches(first, "discard") { return discard() }
            if matches(first, "drop") { return drop() }
            if matches(first, "do") { return doBlock() }
        case 0x65: // e
            if matches(first, "execute") { return execute() }
            if matches(first, "explain") { return explain() }
            if matches(first, "end") { return commit(command: "end", allowsPrepared: false) }
        case 0x66: // f
            if matches(first, "fetch") { return fetch(command: "fetch") }
        case 0x67: // g
            if matches(first, "grant") { return writeable("grant") }
        case 0x69: // i
            if matches(first, "insert") { return writeable("insert") }
            if matches(first, "import") { return writeable("import foreign schema") }
        case 0x6C: // l
            if matches(first, "listen") { return pinned(.listen, command: "listen") }
            if matches(first, "lock") { return writeable("lock") }
            if matches(first, "load") { return writeable("load") }
        case 0x6D: // m
            if matches(first, "merge") { return writeable("merge") }
            if matches(first, "move") { return fetch(command: "move") }
        case 0x6E: // n
            if matches(first, "notify") { return writeable("notify") }
        case 0x70: // p
            if matches(first, "prepare") { return prepare() }
        case 0x72: // r
            if matches(first, "rollback") { return rollback(command: "rollback", isAbort: false) }
            if matches(first, "release") { return release() }
            if matches(first, "reset") { return reset() }
            if matches(first, "revoke") { return writeable("revoke") }
            if matches(first, "refresh") { return writeable("refresh materialized view") }
            if matches(first, "reindex") { return writeable("reindex") }
            if matches(first, "reassign") { return writeable("reassign owned") }
        case 0x73: // s
            if matches(first, "select") { return query(first) }
            if matches(first, "set") { return set() }
            if matches(first, "show") { return show() }
            if matches(first, "savepoint") { return transactionControl(.savepoint(name: name(next())), command: "savepoint") }
            if matches(first, "start") { return begin(command: "start transaction") }
            if matches(first, "security") { return writeable("security label") }
        case 0x74: // t
            if matches(first, "table") { return query(first) }
            if matches(first, "truncate") { return writeable("truncate") }
        case 0x75: // u
            if matches(first, "update") { return writeable("update") }
            if matches(first, "unlisten") {
                // Only a session pinned by its LISTEN has anything to undo, and a pinned session runs
                // everything on writeable; otherwise UNLISTEN is a no-op a standby accepts (pool resets).
                lexer.skipToEnd()
                return StatementInfo(target: .main, command: "unlisten")
            }
        case 0x76: // v
            if matches(first, "values") { return query(first) }
            if matches(first, "vacuum") { return writeable("vacuum") }
        case 0x77: // w
            if matches(first, "with") { return query(first) }
        default:
            break
        }
        // Not a command we know: the safe side. Its name is kept short: it is for logs, and it may be garbage.
        let shown = Token(kind: first.kind, start: first.start, end: min(first.end, first.start + 32))
        return writeable(lowercasedText(shown))
    }

    /// SHOW reads a setting, which both backends hold alike (session SETs are kept on both) — except
    /// those that tell a standby from a primary. Through the proxy the session can write, so those are
    /// answered by writeable: pgJDBC's `targetServerType=primary` and pgx's `target_session_attrs`
    /// ask `SHOW transaction_read_only` and refuse a connection that says `on`. Inside a transaction
    /// the transaction's backend answers, as for every statement.
    mutating func show() -> StatementInfo {
        let setting = next()
        if matches(setting, "transaction_read_only") || matches(setting, "default_transaction_read_only")
            || matches(setting, "in_hot_standby") {
            var info = writeable("show")
            info.asksWriteable = true
            return info
        }
        return main("show")
    }

    /// DO runs on writeable; what its body leaves behind in the session cannot be replayed on main.
    /// A body that mentions a temporary table or set_config pins the session to writeable, where that
    /// state lives: the next read must not go to main and miss it. (A word in a comment or a string
    /// inside the body pins too: the safe side.)
    mutating func doBlock() -> StatementInfo {
        var info = StatementInfo(target: .writeable, command: "do")
        while true {
            let token = next()
            if token.kind == .end { break }
            guard token.kind == .dollarString || token.kind == .string, info.pin == nil else { continue }
            if bodyMentions(token, "temp") || bodyMentions(token, "temporary") || bodyMentions(token, "pg_temp") {
                info.pin = .temporaryTable
            } else if bodyMentions(token, "set_config") {
                info.pin = .settingInBlock
            }
        }
        return info
    }

    /// Whether the text of `token` holds `word` (lower case) as a whole word, in any letter case.
    private func bodyMentions(_ token: Token, _ word: StaticString) -> Bool {
        let w = word.utf8Start
        let length = word.utf8CodeUnitCount
        var i = token.start
        let last = token.end - length
        while i <= last {
            if ASCII.lowercased(bytes[i]) == w[0], i == token.start || !ASCII.isIdentifierPart(bytes[i - 1]),
               i + length == token.end || !ASCII.isIdentifierPart(bytes[i + length]) {
                var k = 1
                while k < length && ASCII.lowercased(bytes[i + k]) == w[k] { k += 1 }
                if k == length { return true }
            }
            i += 1
        }
        return false
    }

    // MARK: - Shapes shared by many commands

    mutating func query(_ first: Token) -> StatementInfo {
        readQuery(first: first).statement
    }

    mutating func writeable(_ command: String) -> StatementInfo {
        lexer.skipToEnd()
        return StatementInfo(target: .writeable, command: command)
    }

    mutating func main(_ command: String) -> StatementInfo {
        lexer.skipToEnd()
        return StatementInfo(target: .main, command: command)
    }

    mutating func pinned(_ pin: PinReason, command: String) -> StatementInfo {
        lexer.skipToEnd()
        return StatementInfo(target: .writeable, command: command, pin: pin)
    }

    /// Consumes a parenthesised group whose `(` is the next token.
    mutating func skipParenthesized() {
        guard next().kind == .openParen else { return }
        let inside = lexer.depth
        while true {
            let token = next()
            if token.kind == .end || (token.kind == .closeParen && lexer.depth < inside) { return }
        }
    }
}
