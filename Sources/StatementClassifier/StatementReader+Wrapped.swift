/// Statements that wrap a query: EXPLAIN, COPY, DECLARE; and the cursor commands FETCH, MOVE, CLOSE.
extension StatementReader {
    /// EXPLAIN [ANALYZE] [VERBOSE] statement, or EXPLAIN (option [value], ...) statement.
    /// With ANALYZE the statement runs and decides; without, nothing runs and nothing is written, but the
    /// plan is made where the statement would run.
    mutating func explain() -> StatementInfo {
        var analyze = false
        var token = next()
        if token.kind == .openParen {
            let inside = lexer.depth
            var expectingOption = true
            while true {
                let option = next()
                if option.kind == .end { return writeable("explain") }
                if option.kind == .closeParen && lexer.depth < inside { break }
                if option.kind == .comma {
                    expectingOption = true
                } else if expectingOption {
                    expectingOption = false
                    if matches(option, "analyze") || matches(option, "analyse") {
                        analyze = !isFalseOptionValue(peek())
                    }
                }
            }
            token = next()
        } else {
            while matches(token, "analyze") || matches(token, "analyse") || matches(token, "verbose") {
                if !matches(token, "verbose") { analyze = true }
                token = next()
            }
        }
        guard token.kind != .end, bodyNesting < Self.maximumBodyNesting else {
            if bodyNesting >= Self.maximumBodyNesting { lexer.malformed = true }
            return writeable("explain")
        }
        bodyNesting += 1
        let body = readStatement(first: token)
        bodyNesting -= 1
        if analyze {
            return StatementInfo(target: body.target, command: "explain", session: body.session, pin: body.pin,
                                 executes: body.executes, settingValue: body.settingValue)
        }
        // Nothing runs, but the plan is made where the statement would run: a standby's read-only user
        // may not plan a write (42501), and a standby cannot open an unlogged table.
        return StatementInfo(target: body.target, command: "explain", executes: body.executes,
                             asksWriteable: body.target == .writeable)
    }

    /// `false`, `off`, `0` (or the same as a string) turn an EXPLAIN option off.
    private func isFalseOptionValue(_ token: Token) -> Bool {
        switch token.kind {
        case .word:
            return matches(token, "false") || matches(token, "off")
        case .number:
            return token.length == 1 && bytes[token.start] == ASCII.zero
        case .string:
            guard let value = stringValue(token)?.lowercased() else { return false }
            return value == "false" || value == "off" || value == "0"
        default:
            return false
        }
    }

    /// COPY table [(columns)] FROM STDIN | file | PROGRAM ..., COPY table TO STDOUT | file | PROGRAM ...,
    /// COPY (query) TO .... Only a copy to the client of a query that reads can run on main; server files
    /// and programs stay on writeable.
    mutating func copy() -> StatementInfo {
        var token = next()
        if matches(token, "binary") { token = next() }
        var query: QueryFeatures?
        if token.kind == .openParen {
            let inside = lexer.depth
            let first = next()
            query = readQuery(first: first, closingBelow: inside)
        } else {
            guard token.isName else { return writeable("copy") }
            var unlogged = functions.hasUnlogged && isUnloggedName(token)
            while peek().kind == .dot {
                _ = next()
                let part = next()
                guard part.isName else { return writeable("copy") }
                if functions.hasUnlogged && isUnloggedName(part) { unlogged = true }
            }
            if peek().kind == .openParen { skipParenthesized() }
            if unlogged { query = QueryFeatures(command: "copy"); query?.asksWriteable = true }
        }
        let direction = next()
        if matches(direction, "from") {
            if query == nil && matches(next(), "stdin") {
                lexer.skipToEnd()
                return StatementInfo(target: .writeable, command: "copy", copyFromStdin: true)
            }
            return writeable("copy")
        }
        guard matches(direction, "to"), matches(next(), "stdout") else { return writeable("copy") }
        lexer.skipToEnd()
        let writes = query?.writes ?? false
        let asks = !writes && query?.asksWriteable == true
        return StatementInfo(target: writes || asks ? .writeable : .main, command: "copy", pin: query?.pin, asksWriteable: asks)
    }

    /// DECLARE name [BINARY] [ASENSITIVE | INSENSITIVE] [[NO] SCROLL] CURSOR [{WITH | WITHOUT} HOLD] FOR query.
    /// A WITH HOLD cursor outlives its transaction on one backend, so it pins the session to writeable.
    mutating func declare() -> StatementInfo {
        let nameToken = next()
        guard nameToken.isName else { return writeable("declare") }
        let cursorName = name(nameToken)
        var token = next()
        while token.kind != .end && !matches(token, "cursor") { token = next() }
        guard token.kind != .end else { return writeable("declare") }
        var hold = false
        token = next()
        if matches(token, "with") && skip("hold") {
            hold = true
            token = next()
        } else if matches(token, "without") && skip("hold") {
            token = next()
        }
        guard matches(token, "for") else {
            lexer.skipToEnd()
            return StatementInfo(target: .writeable, command: "declare", cursor: cursorName)
        }
        let features = readQuery(first: next())
        if hold {
            return StatementInfo(target: .writeable, command: "declare", pin: .holdCursor, cursor: cursorName)
        }
        let asks = !features.writes && features.asksWriteable
        return StatementInfo(target: features.writes || asks ? .writeable : .main, command: "declare", pin: features.pin,
                             cursor: cursorName, callsUnknownFunction: features.callsUnknownFunction, asksWriteable: asks)
    }

    /// FETCH / MOVE [direction [FROM | IN]] cursor: the cursor's name is the last name in the statement.
    mutating func fetch(command: String) -> StatementInfo {
        var cursorToken = Token.none
        while true {
            let token = next()
            if token.kind == .end { break }
            if token.isName { cursorToken = token }
        }
        guard cursorToken.isName else { return StatementInfo(target: .writeable, command: command) }
        return StatementInfo(target: .main, command: command, cursor: name(cursorToken))
    }

    /// CLOSE cursor | ALL
    mutating func close() -> StatementInfo {
        let token = next()
        lexer.skipToEnd()
        if matches(token, "all") { return StatementInfo(target: .main, command: "close") }
        guard token.isName else { return StatementInfo(target: .writeable, command: "close") }
        return StatementInfo(target: .main, command: "close", cursor: name(token))
    }
}
