/// SET / RESET / DISCARD / SQL PREPARE / EXECUTE / DEALLOCATE: session state that the session core keeps
/// on both backends (so these go to main, and the core sends them to both), except role changes, which pin
/// the session to writeable.
extension StatementReader {
    /// SET [SESSION | LOCAL] name { = | TO } value | FROM CURRENT, and the special forms
    /// TIME ZONE, NAMES, SCHEMA, ROLE, SESSION AUTHORIZATION, XML OPTION, CONSTRAINTS, TRANSACTION,
    /// SESSION CHARACTERISTICS AS TRANSACTION.
    mutating func set() -> StatementInfo {
        var token = next()
        var local = false
        if matches(token, "session") {
            if skip("characteristics") { return sessionCharacteristics() }
            token = next()
        } else if matches(token, "local") {
            local = true
            token = next()
        }
        let name: String
        if matches(token, "transaction") {
            let modes = readTransactionModes()
            return StatementInfo(target: .writeable, command: "set transaction",
                                 transaction: .setTransaction(readOnly: modes.readOnly, serializable: modes.serializable))
        } else if matches(token, "role") {
            name = "role"
        } else if matches(token, "session") && skip("authorization") {
            name = "session_authorization"
        } else if matches(token, "authorization") {
            name = "session_authorization"
        } else if matches(token, "time") && skip("zone") {
            name = "timezone"
        } else if matches(token, "names") {
            name = "client_encoding"
        } else if matches(token, "schema") && peek().kind == .string {
            name = "search_path"
        } else if matches(token, "xml") && skip("option") {
            name = "xmloption"
        } else if matches(token, "constraints") {
            // Deferral of constraints lasts only for the current transaction.
            lexer.skipToEnd()
            return StatementInfo(target: .main, command: "set", session: .set(name: "constraints", local: true))
        } else if let dotted = readDottedName(first: token) {
            name = dotted
            let following = peek()
            if following.kind == .op && following.length == 1 && bytes[following.start] == 0x3D {
                _ = next()
            } else if matches(following, "to") {
                _ = next()
            } else if matches(following, "from") {
                lexer.skipToEnd()
                return StatementInfo(target: .main, command: "set", session: .set(name: name, local: local))
            } else {
                return writeable("set")
            }
        } else {
            return writeable("set")
        }
        let separator = peek()
        if (separator.kind == .op && separator.length == 1 && bytes[separator.start] == 0x3D) || matches(separator, "to") {
            _ = next()
        }
        let value = readSettingValue()
        if name == "role" || name == "session_authorization" {
            return StatementInfo(target: .writeable, command: "set", session: .set(name: name, local: local),
                                 pin: local ? nil : .role, settingValue: value)
        }
        return StatementInfo(target: .main, command: "set", session: .set(name: name, local: local), settingValue: value)
    }

    /// SET SESSION CHARACTERISTICS AS TRANSACTION modes: sets the defaults for later transactions.
    /// With several modes, the isolation level is reported (it is the one that keeps a session on writeable).
    private mutating func sessionCharacteristics() -> StatementInfo {
        _ = skip("as")
        _ = skip("transaction")
        let modes = readTransactionModes()
        let name: String
        let value: String?
        if let isolation = modes.isolation {
            name = "default_transaction_isolation"
            value = isolation
        } else if let readOnly = modes.readOnly {
            name = "default_transaction_read_only"
            value = readOnly ? "on" : "off"
        } else if let deferrable = modes.deferrable {
            name = "default_transaction_deferrable"
            value = deferrable ? "on" : "off"
        } else {
            return StatementInfo(target: .writeable, command: "set")
        }
        return StatementInfo(target: .main, command: "set", session: .set(name: name, local: false), settingValue: value)
    }

    /// `name` or `name.name...` (custom settings such as `myapp.user_id`), lower-cased.
    private mutating func readDottedName(first: Token) -> String? {
        guard first.isName else { return nil }
        var out: [UInt8] = []
        appendName(first, to: &out)
        while peek().kind == .dot {
            _ = next()
            let part = next()
            guard part.isName else { return nil }
            out.append(ASCII.dot)
            appendName(part, to: &out)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The rest of the statement as a setting's value: a string's contents, a lower-cased word or number,
    /// or the raw text of a list or expression; nil for DEFAULT or nothing.
    private mutating func readSettingValue() -> String? {
        let first = next()
        if first.kind == .end { return nil }
        var last = first
        var count = 1
        while true {
            let token = next()
            if token.kind == .end { break }
            last = token
            count += 1
        }
        if count == 1 {
            if first.kind == .string { return stringValue(first) }
            if first.kind == .word { return matches(first, "default") ? nil : lowercasedText(first) }
            if first.kind == .quotedName { return name(first) }
        }
        return text(from: first.start, to: last.end)
    }

    /// RESET name | ALL | ROLE | SESSION AUTHORIZATION | TIME ZONE | TRANSACTION ISOLATION LEVEL
    mutating func reset() -> StatementInfo {
        let token = next()
        if matches(token, "all") {
            return session(.resetAll, command: "reset")
        }
        // Back to the login role: nothing to pin for. A session that changed its role is pinned
        // already (and stays so); one that did not only undoes nothing, which pool resets do often.
        if matches(token, "role") {
            lexer.skipToEnd()
            return StatementInfo(target: .writeable, command: "reset", session: .reset(name: "role"))
        }
        if matches(token, "session") && skip("authorization") {
            lexer.skipToEnd()
            return StatementInfo(target: .writeable, command: "reset", session: .reset(name: "session_authorization"))
        }
        if matches(token, "time") && skip("zone") {
            return session(.reset(name: "timezone"), command: "reset")
        }
        if matches(token, "transaction") && skip("isolation") {
            return session(.reset(name: "transaction_isolation"), command: "reset")
        }
        guard let name = readDottedName(first: token) else { return writeable("reset") }
        return session(.reset(name: name), command: "reset")
    }

    /// DISCARD ALL | PLANS | SEQUENCES | TEMP | TEMPORARY
    mutating func discard() -> StatementInfo {
        let token = next()
        guard token.kind == .word else { return writeable("discard") }
        let what = matches(token, "temporary") ? "temp" : lowercasedText(token)
        return session(.discard(what: what), command: "discard")
    }

    /// DEALLOCATE [PREPARE] name | ALL
    mutating func deallocate() -> StatementInfo {
        var token = next()
        if matches(token, "prepare") && peek().kind != .end { token = next() }
        if matches(token, "all") { return session(.deallocate(name: nil), command: "deallocate") }
        guard token.isName else { return writeable("deallocate") }
        return session(.deallocate(name: name(token)), command: "deallocate")
    }

    /// PREPARE name [(types)] AS statement — the body decides where an EXECUTE runs;
    /// PREPARE TRANSACTION 'gid' — two-phase commit.
    mutating func prepare() -> StatementInfo {
        let nameToken = next()
        if matches(nameToken, "transaction") && peek().kind == .string {
            return transactionControl(.prepareTransaction, command: "prepare transaction")
        }
        guard nameToken.isName else { return writeable("prepare") }
        let statementName = name(nameToken)
        if peek().kind == .openParen { skipParenthesized() }
        guard skip("as") else { return writeable("prepare") }
        let bodyFirst = next()
        guard bodyFirst.kind != .end, bodyNesting < Self.maximumBodyNesting else {
            if bodyNesting >= Self.maximumBodyNesting { lexer.malformed = true }
            return writeable("prepare")
        }
        bodyNesting += 1
        let body = readStatement(first: bodyFirst)
        bodyNesting -= 1
        return StatementInfo(target: body.target, command: "prepare",
                             session: .prepare(name: statementName, target: body.target))
    }

    /// EXECUTE name [(arguments)] — the session core routes it by what `name` prepared; arguments that
    /// call writing functions make it writeable on their own.
    mutating func execute() -> StatementInfo {
        let nameToken = next()
        guard nameToken.isName else { return writeable("execute") }
        var info = StatementInfo(target: .main, command: "execute", executes: name(nameToken))
        let following = next()
        if following.kind == .openParen {
            let arguments = readQuery(first: following)
            if arguments.writes { info.target = .writeable }
            info.pin = arguments.pin
        }
        lexer.skipToEnd()
        return info
    }

    private mutating func session(_ effect: SessionEffect, command: String) -> StatementInfo {
        lexer.skipToEnd()
        return StatementInfo(target: .main, command: command, session: effect)
    }
}
