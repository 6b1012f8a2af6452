/// BEGIN / START TRANSACTION / SET TRANSACTION modes, COMMIT, ROLLBACK, savepoints, two-phase commit.
struct TransactionModes {
    /// nil when neither READ ONLY nor READ WRITE was given.
    var readOnly: Bool?
    /// The lower-cased isolation level, when given.
    var isolation: String?
    var deferrable: Bool?
    /// False when something in the list is not one of the modes PostgreSQL accepts: the server will
    /// refuse the statement, and the proxy must not answer for it.
    var understood = true

    var serializable: Bool { isolation == "serializable" }
}

extension StatementReader {
    /// BEGIN [WORK | TRANSACTION] [modes] and START TRANSACTION [modes]. A read-only transaction can run
    /// on main, unless it is serializable, which a standby cannot run.
    mutating func begin(command: String) -> StatementInfo {
        if !skip("work") { _ = skip("transaction") }
        let modes = readTransactionModes()
        // Not understood: not taken for a BEGIN (the session would hold it and answer for it); the
        // server's error — or, should it be valid after all, its transaction status — tells the truth.
        guard modes.understood else { return StatementInfo(target: .writeable, command: command) }
        let target: RouteTarget = modes.readOnly == true && !modes.serializable ? .main : .writeable
        return StatementInfo(target: target, command: command,
                             transaction: .begin(readOnly: modes.readOnly, serializable: modes.serializable))
    }

    /// `ISOLATION LEVEL ...`, `READ ONLY | READ WRITE`, `[NOT] DEFERRABLE`, separated by spaces or commas,
    /// read to the end of the statement.
    mutating func readTransactionModes() -> TransactionModes {
        var modes = TransactionModes()
        while true {
            let token = next()
            if token.kind == .end { return modes }
            if matches(token, "isolation") {
                if !skip("level") { modes.understood = false }
                let level = next()
                if matches(level, "serializable") {
                    modes.isolation = "serializable"
                } else if matches(level, "repeatable") {
                    if !skip("read") { modes.understood = false }
                    modes.isolation = "repeatable read"
                } else if matches(level, "read") {
                    if skip("committed") {
                        modes.isolation = "read committed"
                    } else if skip("uncommitted") {
                        modes.isolation = "read uncommitted"
                    } else {
                        modes.understood = false
                    }
                } else {
                    modes.understood = false
                }
            } else if matches(token, "read") {
                if skip("only") {
                    modes.readOnly = true
                } else if skip("write") {
                    modes.readOnly = false
                } else {
                    modes.understood = false
                }
            } else if matches(token, "not") {
                if skip("deferrable") { modes.deferrable = false } else { modes.understood = false }
            } else if matches(token, "deferrable") {
                modes.deferrable = true
            } else if token.kind != .comma {
                modes.understood = false
            }
        }
    }

    /// COMMIT / END [WORK | TRANSACTION] [AND [NO] CHAIN], and COMMIT PREPARED 'gid'.
    mutating func commit(command: String, allowsPrepared: Bool) -> StatementInfo {
        if allowsPrepared && skip("prepared") {
            return transactionControl(.finishPrepared, command: "commit prepared")
        }
        return transactionControl(.commit(chain: readChain()), command: command)
    }

    /// ROLLBACK / ABORT [WORK | TRANSACTION] [AND [NO] CHAIN]; ROLLBACK (not ABORT) also has
    /// ROLLBACK [...] TO [SAVEPOINT] name and ROLLBACK PREPARED 'gid'.
    mutating func rollback(command: String, isAbort: Bool) -> StatementInfo {
        if !isAbort && skip("prepared") {
            return transactionControl(.finishPrepared, command: "rollback prepared")
        }
        if !skip("work") { _ = skip("transaction") }
        if !isAbort && skip("to") {
            _ = skip("savepoint")
            return transactionControl(.rollbackToSavepoint(name: name(next())), command: command)
        }
        return transactionControl(.rollback(chain: readChain()), command: command)
    }

    /// RELEASE [SAVEPOINT] name
    mutating func release() -> StatementInfo {
        _ = skip("savepoint")
        return transactionControl(.releaseSavepoint(name: name(next())), command: "release")
    }

    /// [WORK | TRANSACTION] [AND [NO] CHAIN]
    private mutating func readChain() -> Bool {
        if !skip("work") { _ = skip("transaction") }
        guard skip("and") else { return false }
        return !skip("no")
    }

    mutating func transactionControl(_ control: TransactionControl, command: String) -> StatementInfo {
        lexer.skipToEnd()
        return StatementInfo(target: .writeable, command: command, transaction: control)
    }
}
