import PostgresWire
import StatementClassifier

// Reads main refuses. The classifier sees a statement's text, not what the names in it stand for: a
// view whose function writes, a view over an unlogged table, a table main's read-only user may not
// read, a table or function another session has just created and the replica has not replayed yet.
// Main then answers with an error PostgreSQL would not have given this client, which may write
// and sees what the primary has. Such a read, sent on its own in autocommit, is asked again on
// writeable — the answer the client would have had — as long as nothing of main's answer has reached
// the client (a RowDescription at most, which arrives with the error and is dropped with it). Main
// ran nothing it could keep: a standby writes nothing, and the statement failed there.
//
// Only a simple Query with one plain read (`StatementInfo.isPlainRead`), with nothing else in flight
// and no transaction open, is kept for this: its bytes are copied into storage reused from query to
// query (about 40 instructions a query).

extension Session {
    /// Errors from main that writeable may answer differently, by SQLSTATE.
    static let refusalsWriteableMayAnswer: Set<String> = [
        SQLState.readOnlySQLTransaction,      // 25006: the read wrote (a function behind a view)
        SQLState.featureNotSupported,         // 0A000: an unlogged or temporary relation behind a view
        "42501",                              // insufficient privilege: main's user may not read it
        "55000",                              // recovery is in progress; currval not yet defined here
        "42P01", "42883", "42703", "3F000",   // a table, function, column or schema not replayed yet
    ]

    /// Whether a read about to go to main is kept for asking writeable again. What the statement is
    /// (`StatementInfo.isPlainRead`) is looked at only if main refuses it.
    @inline(__always)
    func mayRetryOnWriteable(_ statements: [StatementInfo]) -> Bool {
        units.isEmpty && transaction == nil && statements.count == 1 && settings.hasWriteable
            && deferredBegin == nil && pinned == nil
    }

    /// The kept query is one statement that only reads.
    func keptQueryIsPlainRead() -> Bool {
        guard retryQueryLength > 5 else { return false }
        let infos = retryQuery.withUnsafeBytes { bytes in
            classifier.classify(utf8: UnsafeRawBufferPointer(rebasing: bytes[5..<(retryQueryLength - 1)])).statements
        }
        return infos.count == 1 && infos[0].isPlainRead
    }

    /// Copies the Query message into storage that only grows: one copy, no allocation per query.
    @inline(__always)
    mutating func keepForRetry(_ query: UnsafeRawBufferPointer) {
        if retryQuery.count < query.count { retryQuery = [UInt8](repeating: 0, count: max(query.count, 256)) }
        retryQuery.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: query.baseAddress!, byteCount: query.count) }
        retryQueryLength = query.count
    }

    /// Main's ErrorResponse `f` for the head unit, which may be asked again: true when it is one
    /// writeable may answer otherwise and none of the unit's replies has reached the client — the ones
    /// before the error in this read, from `runStart`, hold no row. The unit then drops its replies.
    mutating func startsRetry(_ role: BackendRole, _ f: Frame, _ buffer: UnsafeRawBufferPointer,
                              repliesFrom runStart: Int) -> Bool {
        guard role == .main, units.count == 1, let code = Self.decodeError(f, buffer)?.code,
              Self.refusalsWriteableMayAnswer.contains(code), keptQueryIsPlainRead() else {
            return false
        }
        var offset = runStart
        while offset < f.start, case .frame(let reply) = frameMessage(buffer, at: offset, maxMessageSize: Int(Int32.max)) {
            // A RowDescription, notices, parameter changes: nothing the client has acted on.
            switch reply.type {
            case UInt8(ascii: "T"), UInt8(ascii: "N"), UInt8(ascii: "S"): offset = reply.end
            default: return false
            }
        }
        units.mutateFirst { $0.retrying = true; $0.mayRetryOnWriteable = false }
        // A relation made unlogged behind the proxy's back: learnt, so that the next read of it goes
        // to writeable at once (see `backendMessage`).
        if code == SQLState.featureNotSupported { catalogMissesUnlogged = true }
        return true
    }

    /// Sends the kept read to writeable, once nothing else is in flight and writeable can take it;
    /// else it stays pending (the shell pumps the session again when writeable opens).
    mutating func retryOnWriteable<Out: SessionOutput>(_ out: inout Out) {
        guard retryPending, units.isEmpty else { return }
        let query = retryQuery
        let length = retryQueryLength
        retryingOnWriteable = true
        let sent = query.withUnsafeBytes { bytes in
            simpleQuery(UnsafeRawBufferPointer(rebasing: bytes[0..<length]), Frame(type: UInt8(ascii: "Q"), start: 0, end: length), &out)
        }
        retryingOnWriteable = false
        if sent != nil { retryPending = false }
    }
}
