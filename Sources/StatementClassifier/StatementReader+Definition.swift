/// CREATE / ALTER / DROP: always writeable; this file finds what else they mean — temporary objects that
/// pin the session, and changes to functions that make the session core reload the function catalog.
extension StatementReader {
    mutating func create() -> StatementInfo {
        var temporary = false
        var unlogged = false
        var token = next()
        while true {
            if matches(token, "or") && skip("replace") {
                token = next()
            } else if matches(token, "temp") || matches(token, "temporary") {
                temporary = true
                token = next()
            } else if matches(token, "unlogged") {
                unlogged = true
                token = next()
            } else if isCreateModifier(token) {
                token = next()
            } else {
                break
            }
        }
        guard token.kind == .word else { return writeable("create") }
        var info = StatementInfo(target: .writeable, command: definitionCommand("create ", token))
        // A new unlogged relation is one main cannot read: the catalog learns its name.
        info.changesFunctions = unlogged && !temporary
        if matches(token, "table") || matches(token, "view") || matches(token, "sequence") {
            if temporary || createsInTemporarySchema() { info.pin = .temporaryTable }
        } else if matches(token, "function") || matches(token, "procedure") {
            info.changesFunctions = true
            skipRoutineDefinition()
        } else if matches(token, "extension") {
            info.changesFunctions = true
        }
        lexer.skipToEnd()
        return info
    }

    /// Words between CREATE and the object type that do not change routing.
    private func isCreateModifier(_ token: Token) -> Bool {
        matches(token, "global") || matches(token, "local") || matches(token, "unlogged")
            || matches(token, "recursive") || matches(token, "trusted") || matches(token, "procedural")
            || matches(token, "unique") || matches(token, "default") || matches(token, "constraint")
    }

    /// CREATE TABLE [IF NOT EXISTS] pg_temp.name ...
    private mutating func createsInTemporarySchema() -> Bool {
        var token = next()
        if matches(token, "if") {
            _ = skip("not")
            _ = skip("exists")
            token = next()
        }
        guard token.isName, peek().kind == .dot else { return false }
        return name(token) == "pg_temp"
    }

    /// A SQL-standard body `BEGIN ATOMIC stmt; stmt; END` holds `;`s that do not end the CREATE.
    private mutating func skipRoutineDefinition() {
        var atomicNesting = 0
        while true {
            let token = next()
            if token.kind == .end {
                guard atomicNesting > 0, token.start < lexer.count else { return }
                lexer.position = token.start + 1
                continue
            }
            guard token.kind == .word else { continue }
            if atomicNesting > 0 {
                if matches(token, "case") {
                    atomicNesting += 1
                } else if matches(token, "end") {
                    atomicNesting -= 1
                }
            } else if matches(token, "begin") && matches(peek(), "atomic") {
                atomicNesting = 1
            }
        }
    }

    mutating func alter() -> StatementInfo {
        let token = next()
        guard token.kind == .word else { return writeable("alter") }
        var info = StatementInfo(target: .writeable, command: definitionCommand("alter ", token))
        info.changesFunctions = matches(token, "function") || matches(token, "procedure")
            || matches(token, "routine") || matches(token, "extension")
        if matches(token, "table") || matches(token, "sequence") {
            // ALTER TABLE / SEQUENCE ... SET UNLOGGED | LOGGED: which relations main cannot read changes.
            while true {
                let word = next()
                if word.kind == .end { break }
                if matches(word, "set") && (matches(peek(), "unlogged") || matches(peek(), "logged")) {
                    info.changesFunctions = true
                }
            }
        }
        lexer.skipToEnd()
        return info
    }

    mutating func drop() -> StatementInfo {
        let token = next()
        guard token.kind == .word else { return writeable("drop") }
        var info = StatementInfo(target: .writeable, command: definitionCommand("drop ", token))
        // DROP SCHEMA ... CASCADE and DROP OWNED drop the functions inside them too.
        info.changesFunctions = matches(token, "function") || matches(token, "procedure")
            || matches(token, "routine") || matches(token, "extension") || matches(token, "schema")
            || matches(token, "owned")
        if functions.hasUnlogged && (matches(token, "table") || matches(token, "sequence")) {
            // Dropping an unlogged relation: a logged one may take its name, which main can read.
            while true {
                let name = next()
                if name.kind == .end { break }
                if name.isName && isUnloggedName(name) { info.changesFunctions = true }
            }
        }
        lexer.skipToEnd()
        return info
    }

    /// "create table", "drop materialized view", "alter foreign data wrapper"-style commands: the object
    /// word, plus the next word when the object type takes two or three.
    private mutating func definitionCommand(_ prefix: String, _ object: Token) -> String {
        var command = prefix + lowercasedText(object)
        if matches(object, "materialized") || matches(object, "foreign") || matches(object, "event")
            || matches(object, "text") || matches(object, "user") || matches(object, "access")
            || matches(object, "default") {
            let second = peek()
            if second.kind == .word && (!matches(object, "user") || matches(second, "mapping")) {
                _ = next()
                command += " " + lowercasedText(second)
                if matches(second, "data") || matches(second, "search") {
                    let third = peek()
                    if third.kind == .word && !matches(third, "if") {
                        _ = next()
                        command += " " + lowercasedText(third)
                    }
                }
            }
        }
        return command
    }
}
