import PostgresWire
import StatementClassifier

// Reads main refuses. The classifier sees a statement's text, not what the names in it stand for: a
// view whose function writes, a view over an unlogged table, a table main's read-only user may not
// read, a table or function another session has just created and the replica has not replayed yet.
// Main then answers with an error PostgreSQL would not have given this client, which may write
// and sees what the primary has. Such a read, sent on its own in autocommit, is asked again on
// writeable — the answer the client would have had — as long as nothing of main's answer has reached
// the client (descriptions and Parse / Bind completions at most, which arrive with the error and are
// dropped with it). Main ran nothing it could keep: a standby writes nothing, and the statement
// failed there. Should writeable be down, main's refusal is the answer after all.
//
// Kept for this: a simple Query, an extended-protocol batch ending with Sync, either part of a batch
// left open at a Flush (asyncpg's prepare, then its execute) — with one plain read
// (`StatementInfo.isPlainRead`), nothing else in flight and no transaction open; or a simple Query
// that is the first statement of a held BEGIN READ ONLY (psycopg's `read_only`, asyncpg's
// `readonly=True`): main's transaction is then rolled back and the BEGIN held again, for writeable. The bytes are
// copied into storage reused from query to query (a few dozen instructions). A batch runs again as it
// came: its statements are prepared on writeable as any batch's are.

extension Session {
    /// Errors from main that writeable may answer differently, by SQLSTATE.
    static let refusalsWriteableMayAnswer: Set<String> = [
        SQLState.readOnlySQLTransaction,      // 25006: the read wrote (a function behind a view)
        SQLState.featureNotSupported,         // 0A000: an unlogged or temporary relation behind a view
        "42501",                              // insufficient privilege: main's user may not read it
        "55000",                              // recovery is in progress; currval not yet defined here
        "42P01", "42883", "42703", "3F000",   // a table, function, column or schema not replayed yet
    ]

    /// Refusals that will come again for the same text: such a read is learnt as writeable's
    /// (`learnRefusal`). Not the ones of an object the replica has yet to replay, nor 0A000, which
    /// also says "cached plan must not change result type" (and an unlogged relation is learnt by
    /// looking at the catalog again).
    static let refusalsThatStay: Set<String> = [SQLState.readOnlySQLTransaction, "42501"]

    /// Whether a read about to go to main is kept for asking writeable again (`count`: its statements).
    /// What the statements are (`StatementInfo.isPlainRead`) is looked at only if main refuses them.
    @inline(__always)
    func mayRetryOnWriteable(count: Int, bytes: Int) -> Bool {
        count == 1 && bytes <= Self.retryKeepLimit && settings.hasWriteable && pinned == nil && openBatch == nil
            && (retryBegin == nil ? units.isEmpty && transaction == nil && deferredBegin == nil
                                  : units.count == 1 && units.firstKind == .replay)
    }

    /// The largest query or batch kept (a read with a 100 MB parameter is not worth holding twice).
    static var retryKeepLimit: Int { 64 << 10 }

    /// Copies the Query message, or the batch through its Sync, into storage that only grows: one
    /// copy, no allocation per query. What was kept is told apart by its first byte (`Q` or not).
    @inline(__always)
    mutating func keepForRetry(_ bytes: UnsafeRawBufferPointer) {
        if retryQuery.count < bytes.count { retryQuery = [UInt8](repeating: 0, count: max(bytes.count, 256)) }
        retryQuery.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        retryQueryLength = bytes.count
    }

    /// The rest of a batch left open at a Flush, just sent to main through its Sync (asyncpg prepares
    /// with Parse, Describe, Flush, then sends Bind, Execute, Sync once it has the description): kept
    /// to be asked again on its own, the client having what main said to the first part.
    mutating func keepContinuationForRetry(_ bytes: UnsafeRawBufferPointer) {
        guard units.count == 1, transaction == nil, settings.hasWriteable, deferredBegin == nil, pinned == nil,
              bytes.count <= Self.retryKeepLimit else { return }
        var expected = 0
        var offset = 0
        scan: while case .frame(let f) = frameMessage(bytes, at: offset, maxMessageSize: Int(Int32.max)) {
            offset = f.end
            switch f.type {
            case UInt8(ascii: "P"), UInt8(ascii: "B"), UInt8(ascii: "C"): expected += 1
            case UInt8(ascii: "E"): break scan
            default: return  // a Describe's replies vary: not kept
            }
        }
        guard expected > 0 else { return }
        keepForRetry(bytes)
        units.mutateFirst { $0.mayRetryOnWriteable = true; $0.retryExpectedReplies = expected }
    }

    /// What the kept query or batch names: a Query's text, a Parse's text (with the statement name it
    /// is parsed as), a statement bound by name. Copied out: read only after main refused the read.
    enum KeptStatement {
        case text([UInt8], parsedAs: StatementName?)
        case bound(StatementName)
    }

    func keptStatements() -> [KeptStatement] {
        var found: [KeptStatement] = []
        retryQuery.withUnsafeBytes { kept in
            let bytes = UnsafeRawBufferPointer(rebasing: kept[0..<retryQueryLength])
            var offset = 0
            while case .frame(let f) = frameMessage(bytes, at: offset, maxMessageSize: Int(Int32.max)) {
                offset = f.end
                switch f.type {
                case UInt8(ascii: "Q"):
                    found.append(.text(Array(bytes[f.payloadStart..<max(f.payloadStart, f.end - 1)]), parsedAs: nil))
                case UInt8(ascii: "P"):
                    guard let (name, sql) = leadingCStrings(bytes, f) else { return }
                    found.append(.text(Array(bytes[sql]), parsedAs: StatementName(bytes, name)))
                case UInt8(ascii: "B"):
                    guard let (_, name) = leadingCStrings(bytes, f) else { return }
                    found.append(.bound(StatementName(bytes, name)))
                default:
                    continue
                }
            }
        }
        return found
    }

    /// The kept query or batch runs one statement, and it only reads.
    func keptStatementIsPlainRead() -> Bool {
        var infos: [StatementInfo] = []
        for kept in keptStatements() {
            switch kept {
            case .text(let sql, _):
                infos += sql.withUnsafeBytes { classifier.classify(utf8: $0).statements }
            case .bound(let name):
                // A statement parsed in this batch was counted at its Parse.
                if !name.isEmpty, let known = statements.classes(of: name) { infos += known }
            }
        }
        return infos.count == 1 && infos[0].isPlainRead
    }

    /// Main refused the kept read with `code`. When main would refuse it again, whatever the replica
    /// replays, the read is learnt as one only writeable can answer — in the session's templates
    /// (passed on to later sessions of the database) and in its prepared statement — so that it no
    /// longer pays a refused round trip on main each time. A new catalog forgets it.
    mutating func learnRefusal(_ code: String) {
        guard Self.refusalsThatStay.contains(code) else { return }
        for kept in keptStatements() {
            switch kept {
            case .text(let sql, let name):
                sql.withUnsafeBytes { _ = templates.markAnsweredByWriteable(utf8: $0) }
                if let name { markAnsweredByWriteable(name) }
            case .bound(let name):
                markAnsweredByWriteable(name)
            }
        }
    }

    private mutating func markAnsweredByWriteable(_ name: StatementName) {
        guard var prepared = statements[name] else { return }
        for i in prepared.statements.indices { prepared.statements[i].markAnsweredByWriteable() }
        statements[name] = prepared
    }

    /// Main's ErrorResponse `f` for the head unit, which may be asked again: true when it is one
    /// writeable may answer otherwise and none of the unit's replies has reached the client — the ones
    /// before the error in this read, from `runStart`, hold no row. The unit then drops its replies.
    mutating func startsRetry<Out: SessionOutput>(_ role: BackendRole, _ f: Frame, _ buffer: UnsafeRawBufferPointer,
                                                  repliesFrom runStart: Int, _ out: inout Out) -> Bool {
        guard role == .main, units.count == 1, let code = Self.decodeError(f, buffer)?.code,
              Self.refusalsWriteableMayAnswer.contains(code), keptStatementIsPlainRead() else {
            return false
        }
        var offset = runStart
        // The rest of an open batch: exactly its own completions came before the error (any reply
        // of the batch's first part among them would already be the client's).
        let expected = units.firstRetryExpectedReplies
        var completions = 0
        while offset < f.start, case .frame(let reply) = frameMessage(buffer, at: offset, maxMessageSize: Int(Int32.max)) {
            // Parse, Bind and Close done, descriptions, notices, parameter changes: nothing the client
            // has acted on (no row, no command completed).
            switch reply.type {
            case UInt8(ascii: "1"), UInt8(ascii: "2"), UInt8(ascii: "3"):
                completions += 1
            case UInt8(ascii: "N"), UInt8(ascii: "S"):
                break
            case UInt8(ascii: "T"), UInt8(ascii: "t"), UInt8(ascii: "n"):
                // A description: the whole batch's, or (for the rest of an open batch, which has no
                // Describe) one the client is still owed for its first part.
                if expected > 0 { return false }
            default:
                return false
            }
            offset = reply.end
        }
        if expected > 0 && completions != expected { return false }
        // The batch's Parses and Closes main did not carry out are undone, as for any error; the batch
        // makes them again on writeable.
        if units.firstKeepsStatementUndos { undoUnansweredStatementChanges() }
        units.mutateFirst { $0.retrying = true; $0.mayRetryOnWriteable = false }
        // The client's answer if writeable cannot be asked after all.
        retryMainError = Array(buffer[f.start..<f.end])
        // A batch left open at a Flush (the first part of asyncpg's prepare) waits for a Sync before
        // main answers ReadyForQuery: the proxy sends its own, and the batch opens again on writeable.
        if openBatch == role { endOpenBatch(on: role, &out) }
        // A relation made unlogged behind the proxy's back: learnt, so that the next read of it goes
        // to writeable at once (see `backendMessage`).
        if code == SQLState.featureNotSupported { catalogMissesUnlogged = true }
        learnRefusal(code)
        return true
    }

    /// Sends the kept read to writeable, once nothing else is in flight and writeable can take it;
    /// else it stays pending (the shell pumps the session again when writeable opens).
    mutating func retryOnWriteable<Out: SessionOutput>(_ out: inout Out) {
        guard retryPending, units.isEmpty else { return }
        let isBatch = retryQueryLength > 0 && retryQuery[0] != UInt8(ascii: "Q")
        if let failure = takeOpenFailure(for: .writeable) {
            // Writeable is down: main's refusal is the answer after all, as it would have been.
            if openFailure?.error == failure.error { openFailure = nil }
            retryPending = false
            retryMainError.withUnsafeBytes { out.sendToClient($0) }
            let endsWithSync = retryQueryLength >= 5 && retryQuery[retryQueryLength - 5] == UInt8(ascii: "S")
            if !isBatch || endsWithSync {
                // The first statement of a read-only transaction: the client's transaction has failed,
                // and ends with the client's ROLLBACK, answered here (`finishDeferredBeginLocally`).
                let status = deferredBegin != nil ? UInt8(ascii: "E") : UInt8(ascii: "I")
                WireEncode.readyForQuery(status).withUnsafeBytes { out.sendToClient($0) }
            } else {
                // The first part of a batch left open: PostgreSQL skips to the client's Sync.
                skipUntilSync = true
            }
            return
        }
        let query = retryQuery
        let length = retryQueryLength
        retryingOnWriteable = true
        let sent = query.withUnsafeBytes { kept in
            let bytes = UnsafeRawBufferPointer(rebasing: kept[0..<length])
            return isBatch ? extendedBatch(bytes, from: 0, &out)
                : simpleQuery(bytes, Frame(type: UInt8(ascii: "Q"), start: 0, end: length), &out)
        }
        retryingOnWriteable = false
        if sent != nil { retryPending = false }
    }
}
