#if canImport(Glibc)
import Glibc
#endif
import PostgresWire
import StatementClassifier

/// Settings a session needs, taken from the configuration snapshot when the client logged in.
public struct SessionSettings: Sendable {
    /// With no writeable backend everything goes to main.
    public var hasWriteable: Bool
    public var maxMessageSize: Int
    /// An extended-protocol batch buffered past this without Sync or Flush is decided on what was seen.
    public var maxBatchLookahead: Int
    public var logRouting: Bool

    public init(hasWriteable: Bool, maxMessageSize: Int = 1 << 30 - 1, maxBatchLookahead: Int = 1 << 20,
                logRouting: Bool = false) {
        self.hasWriteable = hasWriteable
        self.maxMessageSize = maxMessageSize
        self.maxBatchLookahead = maxBatchLookahead
        self.logRouting = logRouting
    }
}

/// One client's session: decides where each unit of work runs and keeps both backends consistent.
///
/// A *unit* is a simple Query, an extended-protocol batch up to Sync, or a fast-path call: it runs on
/// one backend and ends with that backend's ReadyForQuery. Units may be pipelined on one backend;
/// before a unit goes to the other backend, the session waits until every earlier unit has answered,
/// so responses reach the client in the order it asked.
public struct Session {
    public private(set) var settings: SessionSettings
    public var classifier: Classifier {
        didSet { classifierVersion &+= 1 }
    }
    /// Bumped whenever `classifier` is replaced (a catalog refresh): classifications stored with an
    /// older version are not reused.
    var classifierVersion = 0

    var backends: [BackendState] = [BackendState(), BackendState()]
    public private(set) var history = SessionHistory()
    /// Session statements run inside the open transaction: recorded only if it commits.
    var uncommittedHistory: [(key: String, sql: String)] = []
    /// The savepoints of the open transaction, each with how much of `uncommittedHistory` came before
    /// it: ROLLBACK TO a savepoint undoes the session changes made since, as PostgreSQL does.
    var savepointMarks: [(name: String, historyCount: Int)] = []
    /// The session set a custom setting (`app.tenant`). PostgreSQL keeps such a name defined in the
    /// backend after RESET and DISCARD ALL (it reads as '' instead of NULL): its backends are not handed
    /// to another client.
    public private(set) var definedCustomSettings = false
    /// The transaction open on writeable has run something that may write (a read-only one, or one
    /// of plain reads, leaves nothing for main to replay when it ends).
    var transactionWrote = false
    /// Protocol-level prepared statements by name ("" is the unnamed one).
    var statements = StatementNames<PreparedStatement>()
    /// The bytes of the long names among them (and among those the backends hold).
    var longNames = LongStatementNames()
    var nextGeneration: UInt64 = 1
    /// SQL-level PREPAREd statements: where their bodies must run.
    var sqlPrepared: [String: RouteTarget] = [:]
    /// WITH HOLD cursors declared in read-only transactions on main: they outlive the transaction
    /// there, so FETCH, MOVE and CLOSE of them go to main whatever else reads do meanwhile.
    var mainHoldCursors: Set<String> = []
    /// Main refused a read of a relation it cannot open (unlogged, unknown to the catalog): refresh it.
    var catalogMissesUnlogged = false

    /// The transaction as predicted from what was sent; ReadyForQuery corrects it.
    public private(set) var transaction: BackendRole?
    public private(set) var pinned: PinReason?
    /// Set by the shell before each call: main is down, lags past `max_replica_lag`, or has not yet
    /// replayed this session's last write. Reads outside a transaction then go to writeable.
    public var readsToWriteable = false
    /// Set by the shell when main is unusable and `read_fallback = error`: reads outside a
    /// transaction get this ErrorResponse instead of running.
    public var readRefusal: [UInt8]?
    var defaultReadOnly = false
    var defaultSerializable = false
    /// What the client set at login: RESET and DISCARD ALL return the defaults to these.
    let startupDefaults: TransactionDefaults
    /// The process ID the client was given (its BackendKeyData), and each backend's own.
    public var clientProcessID: Int32 = 0
    var backendProcessIDs: [Int32] = [0, 0]

    var units = UnitQueue()
    /// The statement list simple queries are classified into, kept between queries so that
    /// classifying one allocates nothing.
    var classified: [StatementInfo] = []
    /// Recent statement texts' classifications, reused when only their literals change.
    var templates = StatementTemplates()

    /// The templates this session learnt with its current classifier, for the next session of the
    /// same database and classifier (nil when it learnt none, or they were made with an older one).
    public var templatesToPassOn: StatementTemplates? {
        templates.isCurrent(version: classifierVersion) ? templates : nil
    }

    /// Starts with the templates a finished session of the same database passed on — which must have
    /// been made with the classifier this session has. A client that connects for each statement
    /// otherwise lexes and reads its statement afresh every time.
    public mutating func adoptTemplates(_ passedOn: StatementTemplates) {
        templates = passedOn.restamped(version: classifierVersion)
    }
    /// The statement names an extended batch uses without parsing them, kept between batches.
    var neededNames: [StatementName] = []
    /// The Parses an extended batch holds, kept between batches.
    var batchParses: [BatchParse] = []
    /// A BEGIN answered by the proxy and not yet sent: the transaction's first statement decides
    /// where it runs (a `SET TRANSACTION` first may change its access mode or isolation level).
    /// Held as the client's Query message, sent on as it came.
    var deferredBegin: [UInt8]?
    /// The held BEGIN's own access mode: nil for a plain BEGIN, true for BEGIN READ ONLY.
    var deferredBeginReadOnly: Bool?
    /// The ReadyForQuery status of the last client unit.
    var lastStatus = UInt8(ascii: "I")
    /// An extended batch decided at a Flush (or at the lookahead limit) keeps its backend until Sync —
    /// unless what the client sends next needs the other backend (`endOpenBatch`).
    var openBatch: BackendRole?
    /// An open batch on main was ended with the proxy's own Sync because the client's next messages
    /// need writeable: client input waits for that Sync's ReadyForQuery, which says whether the batch
    /// failed (then, as PostgreSQL does, the client's messages up to its own Sync are skipped).
    var closingBatch = false
    /// The backend in copy-in mode: it sent CopyInResponse and the copy has not ended. PostgreSQL
    /// ignores Sync and Flush then, so they go there and start nothing.
    var copyInBackend: BackendRole?
    /// A COPY FROM STDIN ran in an extended batch that ended with Sync, which PostgreSQL ignored in
    /// copy-in mode: the client's next Sync ends that unit, on this backend (tokio-postgres copies so).
    var copyOwesSync: BackendRole?
    /// A statement's copy being compared with the client's before it runs (Session+ResultShapes.swift),
    /// and whether any copy was found to differ.
    var shapeCheck: ShapeCheck?
    /// What the comparisons found, by statement name (kept apart: most statements are never compared).
    var shapeVerdicts: [StatementName: ShapeVerdict] = [:]
    var refusedShapes = false
    /// What the client gets instead of the backend message just dropped (see `backendInput`).
    var replacementMessage: [UInt8]?
    /// A backend failed to open while a client unit waited for it: answer that unit with this error.
    var openFailure: (role: BackendRole, error: [UInt8])?
    /// The Query message of the last read main may hand back (`Session+MainRefusals.swift`), kept in
    /// storage reused from query to query.
    var retryQuery: [UInt8] = []
    var retryQueryLength = 0
    /// Main's refusal of it, the client's answer should writeable be down.
    var retryMainError: [UInt8] = []
    /// The held BEGIN READ ONLY the kept read was the first statement of (nil for a read in autocommit):
    /// main's transaction is rolled back, and the transaction starts again on writeable.
    var retryBegin: [UInt8]?
    /// Main refused that read: it runs again on writeable as soon as writeable can take it.
    public internal(set) var retryPending = false
    /// Set by `retryOnWriteable` around sending the kept query again: it goes to writeable whatever its class.
    var retryingOnWriteable = false
    public private(set) var closed = false
    /// The catalog was refreshed for the unit now waiting; if it still calls unknown functions, they
    /// are treated as writing rather than refreshing again.
    var catalogRefreshedForUnit = false

    public init(settings: SessionSettings, classifier: Classifier, mainIsOpen: Bool = true,
                defaults: TransactionDefaults = TransactionDefaults()) {
        self.settings = settings
        self.classifier = classifier
        startupDefaults = defaults
        defaultReadOnly = defaults.readOnly
        defaultSerializable = defaults.serializable
        if mainIsOpen { backends[BackendRole.main.rawValue].status = .open }
    }

    // MARK: - Queries the shell asks

    /// The backend running the client's current unit (for CancelRequest), if any.
    public var activeBackend: BackendRole? { units.firstBackend }
    public var hasUnitsInFlight: Bool { !units.isEmpty }
    public func isOpen(_ role: BackendRole) -> Bool { backends[role.rawValue].status == .open }
    public var isIdle: Bool { units.isEmpty && transaction == nil && deferredBegin == nil }

    // MARK: - Client input

    /// Consumes as many complete client messages from `buffer` as can be routed now; returns how many
    /// bytes were consumed. The shell calls it again after any backend event while bytes remain.
    public mutating func clientInput<Out: SessionOutput>(_ buffer: UnsafeRawBufferPointer, _ out: inout Out) -> Int {
        var offset = 0
        if retryPending { retryOnWriteable(&out) }
        while !closed, offset < buffer.count {
            // A read main refused runs again first: the client's later statements wait for its answer.
            if closingBatch || shapeCheck != nil || retryPending || units.firstRetrying { return offset }
            let frame: Frame
            switch frameMessage(buffer, at: offset, maxMessageSize: settings.maxMessageSize) {
            case .needMore:
                return offset
            case .invalid(let why):
                protocolViolation(why, &out)
                return buffer.count
            case .frame(let f):
                frame = f
            }
            let consumed: Int?
            if skipUntilSync && frame.type != UInt8(ascii: "X") {
                // After an error in a batch PostgreSQL skips every message up to Sync, whatever its kind.
                consumed = skipToSync(buffer, from: offset, &out)
            } else if let role = openBatch, frame.type == UInt8(ascii: "Q") || frame.type == UInt8(ascii: "F") {
                // A Query or function call after a batch left open at a Flush (asyncpg prepares so,
                // then may run a plain statement): the batch ends first, with the proxy's own Sync,
                // and once its answer says whether it failed, the message is a unit of its own — or
                // skipped up to the client's Sync, as PostgreSQL skips it after an error.
                endOpenBatch(on: role, &out)
                closingBatch = true
                return offset
            } else {
                consumed = clientMessage(buffer, frame, at: offset, &out)
            }
            guard let next = consumed else { return offset }
            offset = next
        }
        return offset
    }

    /// One client message (a whole batch for the extended protocol); nil when it must wait.
    mutating func clientMessage<Out: SessionOutput>(_ buffer: UnsafeRawBufferPointer, _ frame: Frame, at offset: Int,
                                                    _ out: inout Out) -> Int? {
        switch frame.type {
        case UInt8(ascii: "Q"):
            return simpleQuery(buffer, frame, &out)
        case UInt8(ascii: "H"), UInt8(ascii: "S"):
            if let role = copyInBackend ?? copyOwesSync {
                // PostgreSQL ignores Sync and Flush in copy-in mode; the first Sync after the copy ends
                // the unit of an extended batch whose own Sync was ignored so.
                if copyInBackend == nil && frame.type == UInt8(ascii: "S") { copyOwesSync = nil }
                out.sendToBackend(role, UnsafeRawBufferPointer(rebasing: buffer[frame.start..<frame.end]))
                return frame.end
            }
            return extendedBatch(buffer, from: offset, &out)
        case UInt8(ascii: "P"), UInt8(ascii: "B"), UInt8(ascii: "D"), UInt8(ascii: "E"), UInt8(ascii: "C"):
            return extendedBatch(buffer, from: offset, &out)
        case UInt8(ascii: "d"), UInt8(ascii: "c"), UInt8(ascii: "f"):
            return copyData(buffer, frame, &out)
        case UInt8(ascii: "F"):
            return functionCall(buffer, frame, &out)
        case UInt8(ascii: "X"):
            closed = true
            out.closeSession(reason: "client terminated")
            return buffer.count
        default:
            protocolViolation("unexpected message type \"\(Character(UnicodeScalar(frame.type)))\"", &out)
            return buffer.count
        }
    }

    mutating func protocolViolation<Out: SessionOutput>(_ why: String, _ out: inout Out) {
        let bytes = WireEncode.error(severity: "FATAL", code: "08P01", message: "protocol violation: \(why)")
        bytes.withUnsafeBytes { out.sendToClient($0) }
        closed = true
        out.closeSession(reason: "protocol violation: \(why)")
    }

    // MARK: Simple query

    mutating func simpleQuery<Out: SessionOutput>(_ buffer: UnsafeRawBufferPointer, _ frame: Frame, _ out: inout Out) -> Int? {
        // A simple Query drops the unnamed statement, wherever it runs (PostgreSQL drops it on the
        // backend that runs the Query; the other backend's copy is closed if the client binds it).
        statements[.unnamed] = nil
        let sqlEnd = max(frame.payloadStart, frame.end - 1)  // drop the terminating NUL
        let sql = UnsafeRawBufferPointer(rebasing: buffer[frame.payloadStart..<sqlEnd])
        var statements: [StatementInfo] = []
        swap(&statements, &classified)
        defer { swap(&statements, &classified) }
        templates.classify(utf8: sql, with: classifier, version: classifierVersion, into: &statements)
        // Only transaction control is held or answered here: most queries skip both calls.
        if statements.count == 1 && statements[0].transaction != nil,
           deferBegin(statements, UnsafeRawBufferPointer(rebasing: buffer[frame.start..<frame.end]), &out)
            || finishDeferredBeginLocally(statements, &out) {
            return frame.end
        }
        let currentClassifier = classifier
        if needsCatalog(statements, &out, names: { currentClassifier.unknownFunctionNames(utf8: sql) }) { return nil }
        var (role, why) = route(statements)
        if statements.contains(where: \.callsUnknownFunction) { (role, why) = routeUnknown(role, why) }
        if retryingOnWriteable { (role, why) = (.writeable, .mainRefused) }
        if let failure = takeOpenFailure(for: role) ?? refusedRead(role, why) {
            answerFailedUnit(failure, &out)
            return frame.end
        }
        guard ready(role, &out) else { return nil }
        // The first statement of a held read-only transaction may be asked again too (with its BEGIN).
        holdBeginForRetry(role, why)
        sendDeferredBegin(to: role, &out)
        out.unitStarted(role, why: why, sql: sql)
        var unit = Unit(backend: role, kind: .client)
        unit.effects = effects(of: statements, sql: sql)
        unit.startedInTransaction = transaction != nil
        if role == .main && (why == .read || why == .readOnlyTransaction && retryBegin != nil)
            && mayRetryOnWriteable(count: statements.count, bytes: frame.end - frame.start) {
            unit.mayRetryOnWriteable = true
            keepForRetry(UnsafeRawBufferPointer(rebasing: buffer[frame.start..<frame.end]))
        }
        predictTransaction(statements, on: role)
        units.append(unit)
        out.sendToBackend(role, UnsafeRawBufferPointer(rebasing: buffer[frame.start..<frame.end]))
        return frame.end
    }

    // MARK: Extended protocol

    /// Handles an extended-protocol batch starting at `start`: everything up to Sync (or Flush) goes
    /// to one backend in one send.
    mutating func extendedBatch<Out: SessionOutput>(_ buffer: UnsafeRawBufferPointer, from start: Int, _ out: inout Out) -> Int? {
        if skipUntilSync {
            return skipToSync(buffer, from: start, &out)
        }
        if let role = openBatch {
            // Decided earlier (Flush): the rest of the batch follows to the same backend.
            return forwardDecidedBatch(buffer, from: start, to: role, &out)
        }
        // Look ahead to the end of the batch.
        var offset = start
        var end: Int?
        var endsWithSync = false
        var infos: [StatementInfo] = []
        /// Each Parse of the batch, in order, with its class (`rememberParses` stores them).
        var parses: [BatchParse] = []
        // Names of statements bound or described but not parsed in this batch (a prepared-mode
        // client's every batch). Both lists are kept by the session, so a batch allocates neither.
        var needed: [StatementName] = []
        swap(&needed, &neededNames)
        swap(&parses, &batchParses)
        defer {
            while !needed.isEmpty { needed.removeLast() }
            while !parses.isEmpty { parses.removeLast() }
            swap(&needed, &neededNames)
            swap(&parses, &batchParses)
        }
        var sawFlushOnly = false
        var firstText: Range<Int>?
        var unknownNames: [String] = []
        var sawClose = false
        scan: while true {
            switch frameMessage(buffer, at: offset, maxMessageSize: settings.maxMessageSize) {
            case .needMore:
                if offset - start < settings.maxBatchLookahead { return nil }
                end = offset
                sawFlushOnly = true
                break scan
            case .invalid(let why):
                protocolViolation(why, &out)
                return buffer.count
            case .frame(let f):
                switch f.type {
                case UInt8(ascii: "P"):
                    guard let (nameRange, sqlRange) = leadingCStrings(buffer, f) else {
                        protocolViolation("malformed Parse message", &out)
                        return buffer.count
                    }
                    let name = StatementName(buffer, nameRange)
                    let qc = classesLearning(ofParse: f, name: name, sql: sqlRange, in: buffer)
                    // Sharing the array when it is the batch's only statement list: no copy.
                    if infos.isEmpty { infos = qc } else { infos.append(contentsOf: qc) }
                    parses.append(BatchParse(name: name, classes: qc, message: f.start..<f.end, sql: sqlRange))
                    if qc.contains(where: \.callsUnknownFunction) {
                        unknownNames += classifier.unknownFunctionNames(utf8: UnsafeRawBufferPointer(rebasing: buffer[sqlRange]))
                    }
                    if firstText == nil { firstText = sqlRange }
                case UInt8(ascii: "B"):
                    guard let (_, stmtRange) = leadingCStrings(buffer, f) else {
                        protocolViolation("malformed Bind message", &out)
                        return buffer.count
                    }
                    let name = StatementName(buffer, stmtRange)
                    if !parses.contains(where: { $0.name == name }) {
                        needed.append(name)
                        if let known = statements.classes(of: name) {
                            if infos.isEmpty { infos = known } else { infos.append(contentsOf: known) }
                        }
                    }
                case UInt8(ascii: "D"):
                    if f.end - f.payloadStart >= 2, buffer[f.payloadStart] == UInt8(ascii: "S"),
                       let nameRange = cStringRange(buffer, from: f.payloadStart + 1, limit: f.end) {
                        let name = StatementName(buffer, nameRange)
                        if !parses.contains(where: { $0.name == name }) { needed.append(name) }
                    }
                case UInt8(ascii: "S"):
                    end = f.end
                    endsWithSync = true
                    break scan
                case UInt8(ascii: "H"):
                    // A Flush with nothing before it (psycopg sends one after a pipeline's Sync) has
                    // nothing to flush: every earlier batch ended with a Sync. Opening a batch on it
                    // would tie the client's next statement to whichever backend was used last.
                    if offset == start { return f.end }
                    end = f.end
                    sawFlushOnly = true
                    break scan
                case UInt8(ascii: "C"):
                    sawClose = true
                case UInt8(ascii: "E"):
                    break
                default:
                    // Another kind of message inside a batch: decide on what we have.
                    end = offset
                    sawFlushOnly = true
                    break scan
                }
                offset = f.end
            }
        }
        guard let batchEnd = end, batchEnd > start else { return nil }

        let namesToLearn = unknownNames
        if needsCatalog(infos, &out, names: { namesToLearn }) { return nil }
        var (role, why) = route(infos)
        if infos.contains(where: \.callsUnknownFunction) { (role, why) = routeUnknown(role, why) }
        if retryingOnWriteable { (role, why) = (.writeable, .mainRefused) }
        if let failure = takeOpenFailure(for: role) ?? refusedRead(role, why) {
            // Drop the client's batch up to its Sync; answer the error once.
            if endsWithSync { answerFailedUnit(failure, &out) }
            else { openBatch = nil; skipUntilSync = true; failure.error.withUnsafeBytes { out.sendToClient($0) } }
            return batchEnd
        }
        // A statement needed here may have to be compared with the client's copy on the other backend first.
        guard ready(role, &out), needed.isEmpty || !startShapeCheck(needed: needed, on: role, &out) else { return nil }
        holdBeginForRetry(role, why)
        sendDeferredBegin(to: role, &out)
        // The log shows the batch's first statement text; bound values are never logged.
        out.unitStarted(role, why: why, sql: UnsafeRawBufferPointer(rebasing: buffer[firstText ?? start..<start]))
        var unit = Unit(backend: role, kind: .client)
        let staysOpen = !endsWithSync && sawFlushOnly
        if role == .main && (why == .read || why == .readOnlyTransaction && retryBegin != nil) && (endsWithSync || staysOpen) && !sawClose
            && mayRetryOnWriteable(count: infos.count, bytes: batchEnd - start) {
            unit.mayRetryOnWriteable = true
            keepForRetry(UnsafeRawBufferPointer(rebasing: buffer[start..<batchEnd]))
        }
        unit.swallowLeft = injectStatements(needed: needed, parsed: parses, on: role, &out)
        unit.effects = effects(of: infos, sql: nil)
        if unit.effects.sessionChanges != nil {
            resolveBoundSettings(&unit.effects, infos, buffer[start..<batchEnd], bindMayFollow: staysOpen)
        }
        unit.startedInTransaction = transaction != nil
        unit.endsWithSync = endsWithSync
        // Remember every Parse of the batch, so later batches can prepare it elsewhere; a batch that
        // parses or closes a named statement keeps what it replaced, in case the server refuses it.
        // A batch left open at a Flush keeps them from the start: what the client sends on may parse.
        if !parses.isEmpty || sawClose || staysOpen {
            var undos: [StatementUndo]? = staysOpen || sawClose || parses.contains(where: { !$0.name.isEmpty }) ? [] : nil
            if !parses.isEmpty || sawClose {
                rememberBatch(buffer, from: start, to: batchEnd, on: role, parses: parses, sawClose: sawClose, undos: &undos)
            }
            unit.statementUndos = undos
        }
        predictTransaction(infos, on: role)
        units.append(unit)
        out.sendToBackend(role, UnsafeRawBufferPointer(rebasing: buffer[start..<batchEnd]))
        if staysOpen { openBatch = role }
        return batchEnd
    }

    /// After a failed open answered at a Flush, the rest of the client's batch is dropped up to Sync.
    var skipUntilSync = false

    mutating func skipToSync<Out: SessionOutput>(_ buffer: UnsafeRawBufferPointer, from start: Int, _ out: inout Out) -> Int? {
        var offset = start
        while case .frame(let f) = frameMessage(buffer, at: offset, maxMessageSize: settings.maxMessageSize) {
            offset = f.end
            if f.type == UInt8(ascii: "S") {
                skipUntilSync = false
                let status: UInt8 = transaction == nil ? UInt8(ascii: "I") : UInt8(ascii: "E")
                WireEncode.readyForQuery(status).withUnsafeBytes { out.sendToClient($0) }
                break
            }
        }
        return offset > start ? offset : nil
    }

    /// Forwards messages of a batch whose backend is already chosen, through its Sync.
    mutating func forwardDecidedBatch<Out: SessionOutput>(_ buffer: UnsafeRawBufferPointer, from start: Int,
                                                          to role: BackendRole, _ out: inout Out) -> Int? {
        if role == .main, transaction == nil, settings.hasWriteable, continuationNeedsWriteable(buffer, from: start) {
            // A write after reads the client already flushed (psycopg's pipeline fetching a result
            // midway, asyncpg preparing then running an INSERT): main cannot run it. The batch ends on
            // main, and once its answer says whether it failed, what follows is a batch of its own.
            endOpenBatch(on: role, &out)
            closingBatch = true
            return nil
        }
        var offset = start
        while offset < buffer.count {
            guard case .frame(let f) = frameMessage(buffer, at: offset, maxMessageSize: settings.maxMessageSize) else { break }
            if f.type == UInt8(ascii: "P") || f.type == UInt8(ascii: "C") {
                // Into the open unit's undos (it keeps them from its start: see `extendedBatch`).
                var undos: [StatementUndo]?
                units.mutateLast { swap(&undos, &$0.statementUndos) }
                rememberParses(buffer, from: f.start, to: f.end, on: role, parses: [], undos: &undos)
                units.mutateLast { swap(&undos, &$0.statementUndos) }
            }
            offset = f.end
            if f.type == UInt8(ascii: "S") { openBatch = nil; break }
            let isExtended = f.type == UInt8(ascii: "P") || f.type == UInt8(ascii: "B") || f.type == UInt8(ascii: "D")
                || f.type == UInt8(ascii: "E") || f.type == UInt8(ascii: "C") || f.type == UInt8(ascii: "H")
            if !isExtended { offset = f.start; break }
        }
        guard offset > start else { return nil }
        if units.lastAwaitsSettingFromBind { resolveBoundSettingInContinuation(buffer, from: start, to: offset) }
        // What was kept of the batch's first part is no longer the whole of what main has.
        if units.firstMayRetry { units.mutateFirst { $0.mayRetryOnWriteable = false } }
        if openBatch == nil, role == .main { keepContinuationForRetry(UnsafeRawBufferPointer(rebasing: buffer[start..<offset])) }
        out.sendToBackend(role, UnsafeRawBufferPointer(rebasing: buffer[start..<offset]))
        return offset
    }

    /// What a Parse's statements do: the stored class when the statement is parsed again with the same
    /// text (and the classifier has not changed since), else the classifier's answer.
    @inline(__always)
    func classes(ofParse f: Frame, name: StatementName, sql: Range<Int>, in buffer: UnsafeRawBufferPointer) -> [StatementInfo] {
        statements.classification(of: name, ifSameAs: UnsafeRawBufferPointer(rebasing: buffer[f.start..<f.end]),
                                  version: classifierVersion)
            ?? classifier.classify(utf8: UnsafeRawBufferPointer(rebasing: buffer[sql])).statements
    }

    /// The same, through the session's statement templates on a new text: drivers that send each
    /// statement with its values written in (pgJDBC's plain Statement, psycopg 3 without parameters)
    /// Parse a new text every time.
    @inline(__always)
    mutating func classesLearning(ofParse f: Frame, name: StatementName, sql: Range<Int>, in buffer: UnsafeRawBufferPointer) -> [StatementInfo] {
        if let known = statements.classification(of: name, ifSameAs: UnsafeRawBufferPointer(rebasing: buffer[f.start..<f.end]),
                                                 version: classifierVersion) {
            return known
        }
        var infos: [StatementInfo] = []
        templates.classify(utf8: UnsafeRawBufferPointer(rebasing: buffer[sql]), with: classifier, version: classifierVersion,
                           into: &infos)
        return infos
    }

    /// Whether the client's messages from `start` (the rest of a batch open on main) hold a statement
    /// that must run on writeable. Only complete messages are read; later ones are checked as they come.
    /// (Mutating for `route`'s sake.)
    mutating func continuationNeedsWriteable(_ buffer: UnsafeRawBufferPointer, from start: Int) -> Bool {
        var infos: [StatementInfo] = []
        var parsedNames: [StatementName] = []
        var offset = start
        scan: while case .frame(let f) = frameMessage(buffer, at: offset, maxMessageSize: settings.maxMessageSize) {
            offset = f.end
            switch f.type {
            case UInt8(ascii: "P"):
                guard let (nameRange, sqlRange) = leadingCStrings(buffer, f) else { break scan }
                let name = StatementName(buffer, nameRange)
                parsedNames.append(name)
                infos += classes(ofParse: f, name: name, sql: sqlRange, in: buffer)
            case UInt8(ascii: "B"):
                guard let (_, stmtRange) = leadingCStrings(buffer, f) else { break scan }
                let name = StatementName(buffer, stmtRange)
                if !parsedNames.contains(name), let known = statements.classes(of: name) { infos += known }
            case UInt8(ascii: "D"), UInt8(ascii: "E"), UInt8(ascii: "C"), UInt8(ascii: "H"):
                continue
            default:
                break scan
            }
        }
        if infos.contains(where: \.callsUnknownFunction) { return true }
        return !infos.isEmpty && route(infos).0 == .writeable
    }

    /// Ends the batch open on `role` with a Sync of the proxy's own; its ReadyForQuery is not the
    /// client's and is dropped. PostgreSQL would run what follows in the same implicit transaction;
    /// the batch's statements commit at this Sync instead.
    mutating func endOpenBatch<Out: SessionOutput>(on role: BackendRole, _ out: inout Out) {
        openBatch = nil
        WireEncode.sync.withUnsafeBytes { out.sendToBackend(role, $0) }
        // Not asked again elsewhere: the client has moved on from it.
        units.mutateLast { $0.swallowsReady = true; $0.mayRetryOnWriteable = false }
    }

    /// Makes sure every statement the batch uses exists on `role`: injects Close + Parse for the
    /// missing ones and Close for stale ones the batch is about to re-Parse. Returns how many responses
    /// (ParseComplete / CloseComplete) to swallow.
    mutating func injectStatements<Out: SessionOutput>(needed: [StatementName], parsed: [BatchParse], on role: BackendRole,
                                                       _ out: inout Out) -> Int {
        var swallow = 0
        // `backends[...]` is changed in place: a copy of it would make its dictionary copy on write.
        for parse in parsed where !parse.name.isEmpty {
            let name = parse.name
            if backends[role.rawValue].prepared[name] != nil && statements[name] == nil {
                // The client closed it, but this backend still has the old one: drop it first.
                closeMessage(name).withUnsafeBytes { out.sendToBackend(role, $0) }
                backends[role.rawValue].prepared[name] = nil
                swallow += 1
            }
        }
        for name in needed {
            // The generation first, read in place: the usual answer is "already prepared there".
            guard let generation = statements.generation(of: name) else {
                // The client has no such statement (closed, or the unnamed one a simple Query dropped),
                // but this backend may still hold an old one: drop it, so the client gets PostgreSQL's
                // 26000 instead of running a stale statement.
                if backends[role.rawValue].prepared[name] != nil {
                    closeMessage(name).withUnsafeBytes { out.sendToBackend(role, $0) }
                    backends[role.rawValue].prepared[name] = nil
                    swallow += 1
                }
                continue
            }
            guard backends[role.rawValue].prepared[name] != generation,
                  let statement = statements[name] else { continue }
            if refusedShapes, shapeDiffers(name, generation: generation, on: role) {
                // Prepared here it would describe other columns than the client was given: leave it
                // missing, so the client's Bind fails there and its error becomes PostgreSQL's 0A000.
                applyRefusal(name, on: role)
                if backends[role.rawValue].prepared[name] != nil {
                    closeMessage(name).withUnsafeBytes { out.sendToBackend(role, $0) }
                    backends[role.rawValue].prepared[name] = nil
                    swallow += 1
                }
                continue
            }
            var bytes = closeMessage(name)
            bytes.append(contentsOf: statement.messageForCopies)
            bytes.withUnsafeBytes { out.sendToBackend(role, $0) }
            backends[role.rawValue].prepared[name] = statement.generation
            swallow += 2
        }
        return swallow
    }

    /// Remembers the Parses of a batch just sent to `role`. Without a Close among them the batch's
    /// own list says where each Parse lies; with one, the messages are walked in order. `undos`, when
    /// given, gets what each Parse and Close replaced, in the order of their replies.
    mutating func rememberBatch(_ buffer: UnsafeRawBufferPointer, from start: Int, to end: Int, on role: BackendRole,
                                parses: [BatchParse], sawClose: Bool, undos: inout [StatementUndo]?) {
        if sawClose {
            rememberParses(buffer, from: start, to: end, on: role, parses: parses, undos: &undos)
            return
        }
        for i in parses.indices {
            if undos != nil { undos!.append(undo(of: parses[i].name)) }
            rememberParse(buffer, parses[i].message, sql: parses[i].sql, name: parses[i].name,
                          known: parses[i].classes, on: role)
        }
    }

    /// `parses` holds each Parse in the range with its class, in order, when the caller has them.
    mutating func rememberParses(_ buffer: UnsafeRawBufferPointer, from start: Int, to end: Int, on role: BackendRole,
                                 parses: [BatchParse] = []) {
        var noUndos: [StatementUndo]?
        rememberParses(buffer, from: start, to: end, on: role, parses: parses, undos: &noUndos)
    }

    mutating func rememberParses(_ buffer: UnsafeRawBufferPointer, from start: Int, to end: Int, on role: BackendRole,
                                 parses: [BatchParse], undos: inout [StatementUndo]?) {
        var offset = start
        var parseIndex = 0
        while offset < end, case .frame(let f) = frameMessage(buffer, at: offset, maxMessageSize: settings.maxMessageSize) {
            offset = f.end
            switch f.type {
            case UInt8(ascii: "P"):
                guard let (nameRange, sqlRange) = leadingCStrings(buffer, f) else { continue }
                let known = parseIndex < parses.count ? parses[parseIndex].classes : nil
                parseIndex += 1
                let name = StatementName(buffer, nameRange)
                if undos != nil { undos!.append(undo(of: name)) }
                rememberParse(buffer, f.start..<f.end, sql: sqlRange, name: name, known: known, on: role)
            case UInt8(ascii: "C"):
                guard f.end - f.payloadStart >= 2, buffer[f.payloadStart] == UInt8(ascii: "S"),
                      let nameRange = cStringRange(buffer, from: f.payloadStart + 1, limit: f.end) else {
                    // A portal's Close: its CloseComplete is counted too.
                    if undos != nil { undos!.append(StatementUndo(name: nil, statement: nil, prepared: [])) }
                    continue
                }
                let name = StatementName(buffer, nameRange)
                if undos != nil { undos!.append(undo(of: name)) }
                statements[name] = nil
                backends[role.rawValue].prepared[name] = nil
            default:
                continue
            }
        }
    }

    /// What statement `name` is now, everywhere, before a Parse or Close of the client changes it.
    func undo(of name: StatementName) -> StatementUndo {
        StatementUndo(name: name, statement: statements[name], prepared: backends.map { $0.prepared[name] })
    }

    /// The head unit failed: the Parses and Closes of it the server had not yet answered did not
    /// happen (PostgreSQL refuses a Parse of a name it has, or of text it cannot parse, and skips the
    /// rest of the batch), so each statement they touched is again what it was.
    mutating func undoUnansweredStatementChanges() {
        var undos: [StatementUndo]?
        var answered = 0
        units.mutateFirst { unit in
            swap(&undos, &unit.statementUndos)
            answered = unit.statementRepliesSeen
        }
        guard let undos else { return }
        for undo in undos[min(answered, undos.count)...].reversed() {
            guard let name = undo.name else { continue }
            statements[name] = undo.statement
            for role in BackendRole.allCases { backends[role.rawValue].prepared[name] = undo.prepared[role.rawValue] }
        }
    }

    /// Close of statement `name`, as the proxy writes it to a backend. Only names a backend or the
    /// client holds are closed, and each came through `rememberParse`, which keeps a long name's bytes.
    func closeMessage(_ name: StatementName) -> [UInt8] {
        let message = longNames.withBytes(of: name) { WireEncode.close(statement: $0) }
        assert(message != nil, "statement name without its bytes")
        return message ?? []
    }

    /// Describe of statement `name` (one the client holds), as the proxy writes it to a backend.
    func describeMessage(_ name: StatementName) -> [UInt8] {
        let message = longNames.withBytes(of: name) { WireEncode.describe(statement: $0) }
        assert(message != nil, "statement name without its bytes")
        return message ?? []
    }

    /// Stores the Parse message at `message` as statement `name`, prepared on `role` from now on.
    private mutating func rememberParse(_ buffer: UnsafeRawBufferPointer, _ message: Range<Int>, sql: Range<Int>,
                                        name: StatementName, known: [StatementInfo]?, on role: BackendRole) {
        let parse = UnsafeRawBufferPointer(rebasing: buffer[message])
        if name.isLong, longNames.remember(name, UnsafeRawBufferPointer(rebasing: parse[5..<(5 + name.count)])) {
            var table = LongStatementNames()
            swap(&table, &longNames)
            table.trim { held in statements[held] != nil || backends.contains { $0.prepared[held] != nil } }
            longNames = table
        }
        let generation = nextGeneration
        nextGeneration += 1
        let version = classifierVersion
        let reparsed = statements.update(name) { stored -> Bool in
            // The same statement parsed again (drivers re-Parse the unnamed statement for every
            // query): keep its bytes and class, only the generation is new.
            guard stored?.isSame(as: parse, version: version) == true else { return false }
            stored?.generation = generation
            return true
        }
        if !reparsed {
            let infos = known ?? classifier.classify(utf8: UnsafeRawBufferPointer(rebasing: buffer[sql])).statements
            statements[name] = PreparedStatement(parseMessage: Array(parse), statements: infos,
                                                 generation: generation, classifierVersion: version)
        }
        backends[role.rawValue].prepared[name] = generation
        for other in BackendRole.allCases where other != role {
            // Any older statement of that name elsewhere is now stale.
            if backends[other.rawValue].prepared[name] != nil { backends[other.rawValue].prepared[name] = 0 }
        }
    }

    // MARK: COPY data and fast-path calls

    mutating func copyData<Out: SessionOutput>(_ buffer: UnsafeRawBufferPointer, _ frame: Frame, _ out: inout Out) -> Int? {
        // COPY data belongs to the unit that started the COPY: the newest one in flight.
        guard let role = units.lastBackend else { return frame.end }  // stray data: PostgreSQL ignores it too
        out.sendToBackend(role, UnsafeRawBufferPointer(rebasing: buffer[frame.start..<frame.end]))
        if frame.type != UInt8(ascii: "d") && copyInBackend == role { copyInBackend = nil }
        return frame.end
    }

    mutating func functionCall<Out: SessionOutput>(_ buffer: UnsafeRawBufferPointer, _ frame: Frame, _ out: inout Out) -> Int? {
        let role: BackendRole = settings.hasWriteable ? (transaction ?? .writeable) : (transaction ?? .main)
        if let failure = takeOpenFailure(for: role) {
            answerFailedUnit(failure, &out)
            return frame.end
        }
        guard ready(role, &out) else { return nil }
        sendDeferredBegin(to: role, &out)
        out.unitStarted(role, why: .functionCall, sql: UnsafeRawBufferPointer(start: nil, count: 0))
        units.append(Unit(backend: role, kind: .client))
        out.sendToBackend(role, UnsafeRawBufferPointer(rebasing: buffer[frame.start..<frame.end]))
        return frame.end
    }

    // MARK: - Routing

    /// Where a unit made of these statements runs, and why. Mutating though it changes nothing: called
    /// (not inlined) from the mutating batch handlers, a non-mutating method got a copy of the whole
    /// session (about 480 bytes, and a retain of each of its references) on every batch.
    mutating func route(_ infos: [StatementInfo]) -> (BackendRole, RoutingReason) {
        guard settings.hasWriteable else { return (.main, .noWriteable) }
        if let transaction { return (transaction, .transaction) }
        if deferredBegin != nil {
            // What the transaction will be: the first statement's SET TRANSACTION, else the BEGIN's
            // own mode, else the session default. Main runs only read-only, non-serializable ones.
            var readOnly = deferredBeginReadOnly ?? defaultReadOnly
            var serializable = false
            if case .setTransaction(let setReadOnly, let setSerializable)? = infos.first?.transaction {
                readOnly = setReadOnly ?? readOnly
                serializable = setSerializable
            }
            // A first statement a standby refuses even in a read-only transaction (NOTIFY, LOCK,
            // ANALYZE, pg_current_xact_id(), a read of an unlogged table, ...) needs the primary, which
            // runs it read-only too. Not a SHOW of the read-only settings: in a read-only transaction
            // main's answer is the right one.
            let needsPrimary = infos.contains {
                $0.target == .writeable && $0.transaction == nil && !($0.asksWriteable && $0.command == "show")
                    && $0.pin != .holdCursor
            }
            // A transaction that starts by using a WITH HOLD cursor living on main can only run there.
            if usesMainHoldCursor(infos) { return (.main, .holdCursorOnMain) }
            if readOnly && !serializable && !needsPrimary {
                // Read-only, yet it must see the session's own writes: main may not have them yet.
                return readsToWriteable ? (.writeable, .fallback) : (.main, .readOnlyTransaction)
            }
            return (.writeable, .transaction)
        }
        if usesMainHoldCursor(infos) { return (.main, .holdCursorOnMain) }
        if pinned != nil { return (.writeable, .pinned) }
        var target = RouteTarget.main
        var reason = RoutingReason.read
        // By index, reading fields in place: `for info in infos` copied (retained) every statement.
        for i in infos.indices {
            var t = infos[i].target
            if case .begin(let readOnly, let serializable) = infos[i].transaction {
                let ro = readOnly ?? defaultReadOnly
                let ser = serializable || defaultSerializable
                t = (ro && !ser) ? .main : .writeable
                if t == .main { reason = .readOnlyTransaction }
            } else if let executes = infos[i].executes, let prepared = sqlPrepared[executes.lowercased()] {
                t = prepared
            } else {
                switch infos[i].transaction {
                case .commit?, .rollback?:
                    // No transaction is open: COMMIT / ROLLBACK only warn, as a standby does too.
                    // Writeable may be down meanwhile (pools roll back connections they get back).
                    t = .main
                default:
                    break
                }
            }
            if t == .writeable {
                target = .writeable
                reason = infos[i].hinted ? .hint : .write
            }
        }
        if target == .main && defaultSerializable { return (.writeable, .sessionDefault) }
        if target == .main && readsToWriteable { return (.writeable, .fallback) }
        if target == .main, infos.contains(where: { $0.hinted }) { reason = .hint }
        return (target == .main ? .main : .writeable, reason)
    }

    /// FETCH, MOVE or CLOSE of a WITH HOLD cursor declared on main.
    @inline(__always)
    func usesMainHoldCursor(_ infos: [StatementInfo]) -> Bool {
        guard !mainHoldCursors.isEmpty, infos.count == 1, infos[0].command != "declare",
              let cursor = infos[0].cursor else { return false }
        return mainHoldCursors.contains(cursor)
    }

    /// Asks the shell for a fresh function catalog when statements call functions it does not know
    /// (once per unit); true means the unit waits for it.
    mutating func needsCatalog<Out: SessionOutput>(_ infos: [StatementInfo], _ out: inout Out,
                                                   names: () -> [String]) -> Bool {
        guard settings.hasWriteable, infos.contains(where: \.callsUnknownFunction) else {
            catalogRefreshedForUnit = false
            return false
        }
        if catalogRefreshedForUnit {
            catalogRefreshedForUnit = false
            return false
        }
        catalogRefreshedForUnit = true
        out.functionCatalogNeeded(names: names())
        return true
    }

    /// Still unknown after a refresh: the safe side.
    func routeUnknown(_ role: BackendRole, _ why: RoutingReason) -> (BackendRole, RoutingReason) {
        guard settings.hasWriteable, transaction == nil, role == .main else { return (role, why) }
        return (.writeable, .write)
    }

    /// A lone BEGIN or BEGIN READ ONLY (not serializable) with nothing in flight is answered here and
    /// held: a `SET TRANSACTION` right after it may still choose the backend — READ ONLY sends the
    /// whole transaction to main, READ WRITE or ISOLATION LEVEL SERIALIZABLE to writeable (a standby
    /// refuses both). PostgreSQL takes the snapshot at the first statement, not at BEGIN.
    mutating func deferBegin<Out: SessionOutput>(_ infos: [StatementInfo], _ message: UnsafeRawBufferPointer,
                                                 _ out: inout Out) -> Bool {
        guard settings.hasWriteable, transaction == nil, deferredBegin == nil, units.isEmpty, pinned == nil,
              !defaultSerializable, infos.count == 1,
              case .begin(let readOnly, serializable: false)? = infos[0].transaction, readOnly != false else { return false }
        deferredBegin = Array(message)
        deferredBeginReadOnly = readOnly
        let answer = infos[0].command == "start transaction" ? Self.startTransactionAnswer : Self.beginAnswer
        answer.withUnsafeBytes { out.sendToClient($0) }
        return true
    }

    /// COMMIT or ROLLBACK of a held BEGIN that never ran anything: answered here too.
    mutating func finishDeferredBeginLocally<Out: SessionOutput>(_ infos: [StatementInfo], _ out: inout Out) -> Bool {
        guard deferredBegin != nil, infos.count == 1 else { return false }
        let answer: [UInt8]
        switch infos[0].transaction {
        case .commit(chain: false)?: answer = Self.commitAnswer
        case .rollback(chain: false)?: answer = Self.rollbackAnswer
        default: return false
        }
        deferredBegin = nil
        answer.withUnsafeBytes { out.sendToClient($0) }
        return true
    }

    /// CommandComplete and ReadyForQuery for a held BEGIN, and for its COMMIT / ROLLBACK before
    /// anything ran: encoded once.
    static let beginAnswer = localAnswer(tag: "BEGIN", status: UInt8(ascii: "T"))
    static let startTransactionAnswer = localAnswer(tag: "START TRANSACTION", status: UInt8(ascii: "T"))
    static let commitAnswer = localAnswer(tag: "COMMIT", status: UInt8(ascii: "I"))
    static let rollbackAnswer = localAnswer(tag: "ROLLBACK", status: UInt8(ascii: "I"))

    private static func localAnswer(tag: String, status: UInt8) -> [UInt8] {
        WireEncode.message(UInt8(ascii: "C")) { $0.append(contentsOf: tag.utf8); $0.append(0) }
            + WireEncode.readyForQuery(status)
    }

    /// The first statement of a held read-only transaction may be asked again on writeable, with its
    /// BEGIN (`Session+MainRefusals.swift`): the BEGIN is kept until that statement is answered.
    @inline(__always)
    mutating func holdBeginForRetry(_ role: BackendRole, _ why: RoutingReason) {
        if role == .main && why == .readOnlyTransaction && !retryingOnWriteable {
            retryBegin = deferredBegin
        } else if retryBegin != nil {
            retryBegin = nil
        }
    }

    /// The held BEGIN goes out first, its answer swallowed like a replayed statement's.
    mutating func sendDeferredBegin<Out: SessionOutput>(to role: BackendRole, _ out: inout Out) {
        guard let begin = deferredBegin else { return }
        deferredBegin = nil
        begin.withUnsafeBytes { out.sendToBackend(role, $0) }
        units.append(Unit(backend: role, kind: .replay))
        transaction = role
    }

    /// True when a unit may be sent to `role` now. Otherwise it asks for the backend to be opened or
    /// waits for the other backend's units to finish; the shell calls `clientInput` again later.
    mutating func ready<Out: SessionOutput>(_ role: BackendRole, _ out: inout Out) -> Bool {
        switch backends[role.rawValue].status {
        case .closed:
            backends[role.rawValue].status = .opening
            out.openBackend(role)
            return false
        case .opening:
            return false
        case .open:
            break
        }
        if let first = units.firstBackend, first != role { return false }
        replayHistory(to: role, &out)
        return true
    }

    /// Brings a backend's session state up to date before it runs anything for the client.
    mutating func replayHistory<Out: SessionOutput>(to role: BackendRole, _ out: inout Out) {
        let applied = backends[role.rawValue].appliedHistory
        guard applied < history.version else { return }
        for entry in history.pending(after: applied) {
            WireEncode.query(entry.sql).withUnsafeBytes { out.sendToBackend(role, $0) }
            units.append(Unit(backend: role, kind: .replay))
        }
        backends[role.rawValue].appliedHistory = history.version
    }

    /// A read that main cannot serve now, with `read_fallback = error`.
    func refusedRead(_ role: BackendRole, _ why: RoutingReason) -> (role: BackendRole, error: [UInt8])? {
        guard role == .main, transaction == nil, why != .readOnlyTransaction, let readRefusal else { return nil }
        return (.main, readRefusal)
    }

    // Inlined: a call of a non-mutating method from a mutating one copied the whole session (about
    // 480 bytes, and a retain of each of its references) to pass it.
    @inline(__always)
    func takeOpenFailure(for role: BackendRole) -> (role: BackendRole, error: [UInt8])? {
        guard let failure = openFailure, failure.role == role else { return nil }
        return failure
    }

    /// Answers a unit whose backend could not be opened: the error, then ReadyForQuery.
    mutating func answerFailedUnit<Out: SessionOutput>(_ failure: (role: BackendRole, error: [UInt8]), _ out: inout Out) {
        if openFailure?.error == failure.error { openFailure = nil }
        failure.error.withUnsafeBytes { out.sendToClient($0) }
        let status: UInt8 = transaction == nil && deferredBegin == nil ? UInt8(ascii: "I") : UInt8(ascii: "E")
        WireEncode.readyForQuery(status).withUnsafeBytes { out.sendToClient($0) }
    }

    /// Updates the predicted transaction from statements being sent.
    mutating func predictTransaction(_ infos: [StatementInfo], on role: BackendRole) {
        for info in infos {
            switch info.transaction {
            case .begin?:
                if transaction == nil { transaction = role }
            case .commit(let chain)?, .rollback(let chain)?:
                if !chain { transaction = nil }
            case .prepareTransaction?:
                transaction = nil
            default:
                break
            }
        }
    }

    /// What must happen when a unit made of these statements succeeds.
    func effects(of infos: [StatementInfo], sql: UnsafeRawBufferPointer?) -> UnitEffects {
        var effects = UnitEffects()
        var changes: [(SessionEffect, String?)] = []
        var holdCursor: String?
        var savepointSteps: [TransactionControl] = []
        effects.writesNothing = !infos.isEmpty
        // By index, reading fields in place: `for info in infos` copied (retained) every statement.
        for i in infos.indices {
            if let pin = infos[i].pin, effects.pin == nil { effects.pin = pin }
            if infos[i].pin == .holdCursor, let cursor = infos[i].cursor { holdCursor = cursor }
            if infos[i].changesFunctions { effects.changesFunctions = true }
            switch infos[i].transaction {
            case .commit?, .prepareTransaction?: effects.commits = true
            case .savepoint?, .rollbackToSavepoint?, .releaseSavepoint?:
                savepointSteps.append(infos[i].transaction!)
            default: break
            }
            // Fields read in place (see `UnitEffects.writesNothing`): a getter on the statement copied it.
            if effects.writesNothing && !infos[i].asksWriteable {
                let plainRead = infos[i].target == .main && infos[i].transaction == nil && !infos[i].hinted
                    && !infos[i].copyFromStdin && !infos[i].changesFunctions
                let onlyMarksATransaction: Bool
                switch infos[i].transaction {
                case .begin?, .setTransaction?, .commit?, .rollback?, .savepoint?, .rollbackToSavepoint?, .releaseSavepoint?:
                    onlyMarksATransaction = true
                case .prepareTransaction?, .finishPrepared?, nil:
                    onlyMarksATransaction = false
                }
                if !(plainRead || onlyMarksATransaction) || infos[i].pin != nil || infos[i].hasDetails {
                    effects.writesNothing = false
                }
            }
            if let session = infos[i].session { changes.append((session, infos[i].settingValue)) }
        }
        if !changes.isEmpty || holdCursor != nil || !savepointSteps.isEmpty {
            // The text to replay elsewhere: only when the unit is exactly one session statement.
            let replaySQL = infos.count == 1 && !changes.isEmpty ? sql.map { String(decoding: $0, as: UTF8.self) } : nil
            effects.sessionChanges = SessionChanges(effects: changes, replaySQL: replaySQL, holdCursor: holdCursor,
                                                    savepointSteps: savepointSteps)
        }
        return effects
    }

    /// `set_config(name, $n, false)` in a batch: the value copied to the other backend is the one the
    /// batch's Bind gives parameter n (psycopg 3, asyncpg and Django bind it so). Should the batch
    /// hold more than one such statement or Bind, or the value be NULL, the session is pinned to where
    /// it ran instead: a guess could set another value.
    func resolveBoundSettings(_ effects: inout UnitEffects, _ infos: [StatementInfo], _ batch: UnsafeRawBufferPointer.SubSequence,
                              bindMayFollow: Bool) {
        guard let changes = effects.sessionChanges, infos.contains(where: { $0.settingParameter != nil }) else { return }
        let bytes = UnsafeRawBufferPointer(rebasing: batch)
        var binds: [Frame] = []
        var offset = 0
        while case .frame(let f) = frameMessage(bytes, at: offset, maxMessageSize: Int(Int32.max)) {
            if f.type == UInt8(ascii: "B") { binds.append(f) }
            offset = f.end
        }
        let parameterized = infos.filter { $0.settingParameter != nil }
        if binds.isEmpty && bindMayFollow && parameterized.count == 1 {
            // asyncpg prepares (Parse, Describe, Flush), then binds: the rest of the batch has the value.
            effects.settingFromBind = parameterized[0].settingParameter
            return
        }
        let single = binds.count == 1 && parameterized.count == 1
        // `changes.effects` holds one entry per statement with a session effect, in order.
        var resolved: [(SessionEffect, String?)] = []
        var entry = 0
        for info in infos where info.session != nil {
            defer { entry += 1 }
            guard entry < changes.effects.count else { break }
            guard let parameter = info.settingParameter else {
                resolved.append(changes.effects[entry])
                continue
            }
            if single, let value = Self.boundParameter(parameter, of: binds[0], in: bytes) {
                resolved.append((changes.effects[entry].0, value))
            } else if effects.pin == nil {
                effects.pin = .computedSetting
            }
        }
        effects.sessionChanges = resolved.isEmpty && changes.holdCursor == nil && changes.savepointSteps.isEmpty ? nil
            : SessionChanges(effects: resolved, replaySQL: nil, holdCursor: changes.holdCursor,
                             savepointSteps: changes.savepointSteps)
    }

    /// The rest of a batch left open: the Bind of a set_config its first part parsed gives the value.
    mutating func resolveBoundSettingInContinuation(_ buffer: UnsafeRawBufferPointer, from start: Int, to end: Int) {
        var offset = start
        while offset < end, case .frame(let f) = frameMessage(buffer, at: offset, maxMessageSize: Int(Int32.max)) {
            offset = f.end
            guard f.type == UInt8(ascii: "B") else { continue }
            units.mutateLast { unit in
                guard let parameter = unit.effects.settingFromBind, let changes = unit.effects.sessionChanges else { return }
                unit.effects.settingFromBind = nil
                let value = Self.boundParameter(parameter, of: f, in: buffer)
                let resolved = changes.effects.map { change -> (SessionEffect, String?) in
                    if case .set = change.0, change.1 == nil { return (change.0, value) }
                    return change
                }
                if value == nil { unit.effects.pin = unit.effects.pin ?? .computedSetting }
                unit.effects.sessionChanges = value == nil ? nil
                    : SessionChanges(effects: resolved, replaySQL: nil, holdCursor: changes.holdCursor,
                                     savepointSteps: changes.savepointSteps)
            }
            return
        }
    }

    /// Parameter `number` (from 1) of Bind `f`, as text; nil when absent or NULL. A text parameter's
    /// binary form is its text too, which is what set_config takes.
    static func boundParameter(_ number: Int, of f: Frame, in bytes: UnsafeRawBufferPointer) -> String? {
        var reader = PayloadReader(ArraySlice(bytes[f.payloadStart..<f.end]))
        do {
            _ = try reader.readCString()
            _ = try reader.readCString()
            let formats = try reader.readInt16()
            for _ in 0..<max(0, Int(formats)) { _ = try reader.readInt16() }
            let count = try reader.readInt16()
            guard number >= 1, number <= Int(count) else { return nil }
            for i in 1...number {
                let length = try reader.readInt32()
                if length < 0 {
                    if i == number { return nil }
                    continue
                }
                let value = try reader.readBytes(Int(length))
                if i == number { return String(decoding: value, as: UTF8.self) }
            }
        } catch {
            return nil
        }
        return nil
    }

    // MARK: - Backend input

    /// Consumes complete backend messages from `buffer`, forwarding the client's share in as few
    /// sends as possible. Returns how many bytes were consumed.
    public mutating func backendInput<Out: SessionOutput>(_ role: BackendRole, _ buffer: UnsafeRawBufferPointer,
                                                         _ out: inout Out) -> Int {
        var offset = 0
        var runStart = 0  // start of the bytes to forward in one send
        var passThrough = headPassesRepliesThrough(role)
        while !closed {
            guard case .frame(let f) = frameMessage(buffer, at: offset, maxMessageSize: Int(Int32.max)) else { break }
            if passThrough {
                // Rows and the other replies to the client's own statement go on untouched: only an
                // error, a COPY, a notification or the end of the unit needs a look.
                switch f.type {
                case UInt8(ascii: "E"), UInt8(ascii: "G"), UInt8(ascii: "Z"), UInt8(ascii: "A"): break
                default:
                    offset = f.end
                    continue
                }
            }
            defer { passThrough = headPassesRepliesThrough(role) }
            if f.type == UInt8(ascii: "E"), units.firstBackend == role, units.firstMayRetry,
               startsRetry(role, f, buffer, repliesFrom: runStart, &out) {
                // Its replies so far (a RowDescription at most) and the error never reach the client.
                runStart = f.end
                offset = f.end
                continue
            }
            let forward = backendMessage(role, f, buffer)
            if forward && f.type == UInt8(ascii: "A"), let own = ownNotification(role, f, buffer) {
                // Sent by this session's own backend: the client knows it by the proxy's process ID.
                if runStart < f.start { out.sendToClient(UnsafeRawBufferPointer(rebasing: buffer[runStart..<f.start])) }
                own.withUnsafeBytes { out.sendToClient($0) }
                runStart = f.end
            }
            if !forward {
                if runStart < f.start { out.sendToClient(UnsafeRawBufferPointer(rebasing: buffer[runStart..<f.start])) }
                runStart = f.end
                if let replacement = replacementMessage {
                    replacement.withUnsafeBytes { out.sendToClient($0) }
                    replacementMessage = nil
                }
            }
            offset = f.end
            if f.type == UInt8(ascii: "Z") && forward {
                // Flush up to the unit's end before state changes that may send more.
                out.sendToClient(UnsafeRawBufferPointer(rebasing: buffer[runStart..<f.end]))
                runStart = f.end
            }
            if f.type == UInt8(ascii: "Z") { finishHead(role, buffer, f, &out) }
        }
        if runStart < offset {
            out.sendToClient(UnsafeRawBufferPointer(rebasing: buffer[runStart..<offset]))
            // Part of the head unit's answer may have gone: it is main's for good.
            if units.firstMayRetry { units.mutateFirst { $0.mayRetryOnWriteable = false } }
        }
        return offset
    }

    /// Whether `backendMessage` would forward every reply of `role` but E, G, Z and A unchanged: the
    /// head unit is the client's own, running there, with nothing of the proxy's to swallow.
    @inline(__always)
    func headPassesRepliesThrough(_ role: BackendRole) -> Bool {
        units.firstBackend == role && units.firstKind == .client && units.firstSwallowLeft == 0
            && !units.firstKeepsStatementUndos && !units.firstRetrying
    }

    /// Decides one backend message: true to forward it to the client.
    mutating func backendMessage(_ role: BackendRole, _ f: Frame, _ buffer: UnsafeRawBufferPointer) -> Bool {
        guard units.firstBackend == role else {
            // Between units: notifications, notices and parameter changes from the backend the client
            // is using reach it; the rest (e.g. a FATAL before a close) is handled by backendClosed.
            switch f.type {
            case UInt8(ascii: "A"), UInt8(ascii: "N"), UInt8(ascii: "S"): return true
            case UInt8(ascii: "E"):
                // The server ending the session on its own (idle_in_transaction_session_timeout, a
                // terminated backend): if the client must hear of it, it hears the server's words.
                if Self.decodeError(f, buffer)?.endsSession == true {
                    backends[role.rawValue].closingError = Array(buffer[f.start..<f.end])
                }
                return false
            default: return false
            }
        }
        switch units.firstKind {
        case .replay:
            if f.type == UInt8(ascii: "E") { units.mutateFirst { $0.sawError = true } }
            return false
        case .shapeCheck:
            noteShapeCheckAnswer(f, buffer)
            return false
        case .client:
            if units.firstRetrying { return false }
            if units.firstSwallowLeft > 0 {
                if f.type == UInt8(ascii: "1") || f.type == UInt8(ascii: "3") {
                    units.mutateFirst { $0.swallowLeft -= 1 }
                    return false
                }
                units.mutateFirst { $0.swallowLeft = 0 }
            }
            switch f.type {
            case UInt8(ascii: "1"), UInt8(ascii: "3"):
                // Only units that keep statement undos see these (see `headPassesRepliesThrough`).
                units.mutateFirst { $0.statementRepliesSeen += 1 }
            case UInt8(ascii: "E"):
                units.mutateFirst { $0.sawError = true }
                if units.firstKeepsStatementUndos { undoUnansweredStatementChanges() }
                let error = Self.decodeError(f, buffer)
                if error?.endsSession == true { backends[role.rawValue].toldClientOfClose = true }
                // A standby's "cannot access temporary or unlogged relations during recovery": a relation
                // made unlogged behind the proxy's back (other 0A000s cost one needless refresh).
                if role == .main && settings.hasWriteable && error?.code == SQLState.featureNotSupported {
                    catalogMissesUnlogged = true
                }
                if refusedShapes, let error, let changed = changedResultError(role, error) {
                    // Sent in its place by `backendInput`.
                    replacementMessage = changed
                    return false
                }
                // An error ends copy-in mode; PostgreSQL drops the client's remaining copy messages.
                if copyInBackend == role { copyInBackend = nil }
            case UInt8(ascii: "G"):
                copyInBackend = role
                if units.firstEndsWithSync { copyOwesSync = role }
            case UInt8(ascii: "Z"):
                if units.firstSwallowsReady { return false }
            default:
                break
            }
            return true
        }
    }

    /// The head unit got its ReadyForQuery.
    mutating func finishHead<Out: SessionOutput>(_ role: BackendRole, _ buffer: UnsafeRawBufferPointer, _ f: Frame,
                                                 _ out: inout Out) {
        guard let unit = units.popFirst() else { return }
        if unit.retrying {
            out.unitFinished(role, failed: true, wroteOnWriteable: false)
            if let begin = retryBegin {
                // Main's transaction failed at its first statement: rolled back there, and held again
                // for writeable, as if the client had only just sent its BEGIN.
                WireEncode.query("ROLLBACK").withUnsafeBytes { out.sendToBackend(role, $0) }
                units.append(Unit(backend: role, kind: .replay))
                transaction = nil
                deferredBegin = begin
                retryBegin = nil
            }
            if catalogMissesUnlogged {
                catalogMissesUnlogged = false
                out.functionsMayHaveChanged()
            }
            retryPending = true
            retryOnWriteable(&out)
            return
        }
        if unit.kind != .client {
            if unit.kind == .shapeCheck { finishShapeCheckStep(&out) }
            return
        }
        retryBegin = nil
        if copyInBackend == role { copyInBackend = nil }
        if copyOwesSync == role { copyOwesSync = nil }
        let status = f.end - f.payloadStart >= 1 ? buffer[f.payloadStart] : UInt8(ascii: "I")
        let previousStatus = lastStatus
        lastStatus = status
        let inTransactionAfter = status != UInt8(ascii: "I")
        if units.isEmpty {
            // Nothing else in flight: the backend's word replaces the prediction.
            transaction = inTransactionAfter ? role : nil
        }
        if unit.swallowsReady && closingBatch {
            // The batch the proxy ended is answered: the client's input goes on, skipped up to the
            // client's own Sync if the batch failed.
            closingBatch = false
            if unit.sawError { skipUntilSync = true }
        }
        var effects = unit.effects
        if effects.settingFromBind != nil {
            // Its Bind never came: the value is not known here, so the session stays where it ran.
            effects.pin = effects.pin ?? .computedSetting
            effects.sessionChanges = nil
        }
        // A write counts once it is committed: at the end of its transaction, or at once in autocommit.
        let wroteHere = role == .writeable && !unit.sawError && !effects.writesNothing
        var committedWrite = false
        if inTransactionAfter {
            if wroteHere { transactionWrote = true }
        } else {
            committedWrite = role == .writeable && !unit.sawError && (wroteHere || transactionWrote)
            transactionWrote = false
        }
        out.unitFinished(role, failed: unit.sawError, wroteOnWriteable: committedWrite)
        guard !unit.sawError else {
            if !inTransactionAfter { uncommittedHistory.removeAll(); savepointMarks.removeAll() }
            if catalogMissesUnlogged {
                // Made unlogged behind the proxy's back (directly on the primary): learn it for next time.
                catalogMissesUnlogged = false
                out.functionsMayHaveChanged()
            }
            return
        }
        if let pin = effects.pin, pinned == nil, settings.hasWriteable, role == .writeable || pin == .role { pinned = pin }
        if effects.changesFunctions { out.functionsMayHaveChanged() }
        // Session state holds at once in autocommit; inside a transaction only once it commits.
        if let changes = effects.sessionChanges {
            for (effect, value) in changes.effects {
                apply(effect, value: value, sql: changes.replaySQL, inTransaction: inTransactionAfter)
            }
            if let cursor = changes.holdCursor {
                // Declared in a read-only transaction on main, it lives there; on writeable, the pin keeps it.
                if role == .main { mainHoldCursors.insert(cursor) } else { mainHoldCursors.remove(cursor) }
            }
        }
        if let steps = effects.sessionChanges?.savepointSteps, !steps.isEmpty, inTransactionAfter { followSavepoints(steps) }
        if !inTransactionAfter && (unit.startedInTransaction || !uncommittedHistory.isEmpty) {
            if effects.commits && previousStatus != UInt8(ascii: "E") {
                for entry in uncommittedHistory { history.record(key: entry.key, sql: entry.sql) }
            }
            uncommittedHistory.removeAll()
        }
        if !inTransactionAfter { savepointMarks.removeAll() }
        // The backend that ran the statements already has their effect.
        backends[role.rawValue].appliedHistory = max(backends[role.rawValue].appliedHistory, history.version)
    }

    /// SAVEPOINT, ROLLBACK TO and RELEASE, as a unit that ran them succeeded: the session changes made
    /// since a savepoint rolled back to are not copied anywhere at COMMIT. (Within one query string,
    /// they are followed after its session changes.)
    mutating func followSavepoints(_ steps: [TransactionControl]) {
        for step in steps {
            switch step {
            case .savepoint(let name):
                savepointMarks.append((name, uncommittedHistory.count))
            case .rollbackToSavepoint(let name):
                guard let i = savepointMarks.lastIndex(where: { $0.name == name }) else { continue }
                let kept = min(savepointMarks[i].historyCount, uncommittedHistory.count)
                uncommittedHistory.removeSubrange(kept...)
                savepointMarks.removeSubrange((i + 1)...)
            case .releaseSavepoint(let name):
                guard let i = savepointMarks.lastIndex(where: { $0.name == name }) else { continue }
                savepointMarks.removeSubrange(i...)
            default:
                continue
            }
        }
    }

    mutating func apply(_ effect: SessionEffect, value: String?, sql: String?, inTransaction: Bool) {
        var key: String?
        var text = sql
        switch effect {
        case .set(let name, let local):
            if name.contains(".") { definedCustomSettings = true }
            if local { return }
            key = "set:" + name
            noteDefault(name: name, value: value)
            if text == nil {
                // Part of a longer query string: replay just this setting.
                text = value.map { "SELECT pg_catalog.set_config('\(quoted(name))', '\(quoted($0))', false)" }
                    ?? "RESET " + name
            }
        case .reset(let name):
            key = "set:" + name
            text = "RESET " + name
            if name == "default_transaction_read_only" { defaultReadOnly = startupDefaults.readOnly }
            if name == "default_transaction_isolation" { defaultSerializable = startupDefaults.serializable }
        case .resetAll:
            key = SessionHistory.resetAllKey
            text = "RESET ALL"
            defaultReadOnly = startupDefaults.readOnly; defaultSerializable = startupDefaults.serializable
        case .discard(let what):
            guard what.lowercased() == "all" else { return }
            key = SessionHistory.resetAllKey
            text = "DISCARD ALL"
            // Temporary tables, advisory locks, LISTEN and the role are gone with it.
            pinned = nil
            defaultReadOnly = startupDefaults.readOnly; defaultSerializable = startupDefaults.serializable
            statements.removeAll(); longNames.removeAll(); sqlPrepared.removeAll(); shapeVerdicts.removeAll()
            for role in BackendRole.allCases { backends[role.rawValue].prepared.removeAll() }
        case .prepare(let name, let target):
            key = "prepare:" + name.lowercased()
            sqlPrepared[name.lowercased()] = target
        case .deallocate(let name):
            if let name {
                key = "prepare:" + name.lowercased()
                text = "DEALLOCATE \"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
                sqlPrepared[name.lowercased()] = nil
                // SQL and protocol-level statements share one namespace: asyncpg deallocates its own
                // statements so. Gone from the client's view; a copy a backend still holds is closed
                // before the name is bound there again (`injectStatements`).
                statements[StatementName(name)] = nil
            } else {
                key = SessionHistory.deallocateAllKey
                text = "DEALLOCATE ALL"
                sqlPrepared.removeAll()
                statements.removeAll(); longNames.removeAll(); shapeVerdicts.removeAll()
                for role in BackendRole.allCases { backends[role.rawValue].prepared.removeAll() }
            }
        }
        guard let key, let text else { return }
        // PREPARE and DEALLOCATE are not undone by a rollback: they hold at once, as in PostgreSQL.
        let transactional: Bool
        switch effect {
        case .prepare, .deallocate: transactional = false
        default: transactional = true
        }
        if inTransaction && transactional { uncommittedHistory.append((key, text)) } else { history.record(key: key, sql: text) }
    }

    /// Tracks the session defaults that decide where transactions may run.
    mutating func noteDefault(name: String, value: String?) {
        let value = value?.lowercased() ?? ""
        if name == "default_transaction_read_only" {
            defaultReadOnly = TransactionDefaults.isTrue(value)
        } else if name == "default_transaction_isolation" {
            defaultSerializable = value == "serializable"
        }
    }

    /// Doubles single quotes for a SQL string literal.
    func quoted(_ text: String) -> String {
        var out = ""
        for c in text { out.append(c); if c == "'" { out.append("'") } }
        return out
    }

    // MARK: - Backend lifecycle

    /// True while a backend is being opened for this session.
    public var isOpeningBackend: Bool { backends.contains { $0.status == .opening } }

    /// A reload changed the backends: forget `roles` (the shell has released their connections) and
    /// adopt whether a writeable backend exists. Call only while the session is idle; forgotten
    /// backends are opened again on demand, with the session's state replayed.
    public mutating func reconfigure(hasWriteable: Bool, forget roles: [BackendRole]) {
        settings.hasWriteable = hasWriteable
        for role in roles { backends[role.rawValue] = BackendState() }
        if !hasWriteable { pinned = nil }
    }

    /// A NotificationResponse from `role`'s own process, with the process ID the client was given in
    /// place of the backend's: clients tell their own notifications apart by comparing the two
    /// (psycopg's `Notify.pid` with `info.backend_pid`, asyncpg's listener with `get_server_pid()`).
    /// Nil for another session's notification, which keeps its sender's ID.
    func ownNotification(_ role: BackendRole, _ f: Frame, _ buffer: UnsafeRawBufferPointer) -> [UInt8]? {
        let backendID = backendProcessIDs[role.rawValue]
        guard backendID != 0, clientProcessID != 0, f.end - f.payloadStart >= 4 else { return nil }
        var sender: Int32 = 0
        for i in 0..<4 { sender = sender << 8 | Int32(buffer[f.payloadStart + i]) }
        guard sender == backendID else { return nil }
        var copy = Array(buffer[f.start..<f.end])
        let offset = f.payloadStart - f.start
        for i in 0..<4 { copy[offset + i] = UInt8(truncatingIfNeeded: clientProcessID >> (24 - 8 * i)) }
        return copy
    }

    /// The process ID `role`'s backend reported (BackendKeyData); 0 when unknown.
    public mutating func setBackendProcessID(_ processID: Int32, for role: BackendRole) {
        backendProcessIDs[role.rawValue] = processID
    }

    /// The shell opened `role` (connected, authenticated, startup parameters applied).
    public mutating func backendOpened(_ role: BackendRole) {
        backends[role.rawValue].status = .open
        backends[role.rawValue].appliedHistory = 0
        backends[role.rawValue].prepared.removeAll()
    }

    /// Opening `role` failed; `error` is the ErrorResponse to give the client.
    public mutating func backendOpenFailed(_ role: BackendRole, error: [UInt8]) {
        backends[role.rawValue].status = .closed
        openFailure = (role, error)
    }

    /// `role` closed unexpectedly. The session goes on without it unless it was in use.
    public mutating func backendClosed<Out: SessionOutput>(_ role: BackendRole, _ out: inout Out) {
        let ended = backends[role.rawValue]
        backends[role.rawValue] = BackendState()
        // WITH HOLD cursors declared on main live nowhere else: losing main loses them.
        let inUse = units.contains { $0.backend == role } || transaction == role
            || (pinned != nil && role == .writeable) || (role == .main && !mainHoldCursors.isEmpty)
        if inUse {
            // The client hears of it once: the server's own FATAL when it sent one (already forwarded,
            // or held since it came between statements), else ours.
            if !ended.toldClientOfClose {
                let bytes = ended.closingError ?? WireEncode.error(severity: "FATAL", code: "08006",
                                                                   message: "the \(role) backend closed the connection unexpectedly",
                                                                   hint: "Reconnect; the statement may or may not have run.")
                bytes.withUnsafeBytes { out.sendToClient($0) }
            }
            closed = true
            out.closeSession(reason: "\(role) backend closed")
        }
    }

    /// A backend's ErrorResponse, decoded (errors are rare: only they pay for it).
    static func decodeError(_ f: Frame, _ buffer: UnsafeRawBufferPointer) -> ErrorFields? {
        try? ErrorFields.decode(ArraySlice(buffer[f.payloadStart..<f.end]))
    }
}

// MARK: - Supporting types

struct BackendState {
    enum Status { case closed, opening, open }
    var status = Status.closed
    /// History version this backend has applied.
    var appliedHistory: UInt64 = 0
    /// Protocol-level statements prepared here: name -> generation (0 = stale).
    var prepared = StatementNames<UInt64>()
    /// A FATAL the server sent between statements, before closing: what the client is told if it must be.
    var closingError: [UInt8]?
    /// A FATAL of the server already reached the client: nothing more is said when it closes.
    var toldClientOfClose = false
}

/// A Parse seen while looking ahead through an extended-protocol batch.
struct BatchParse {
    var name: StatementName
    var classes: [StatementInfo]
    /// Where the Parse message and its SQL text lie in the batch's buffer.
    var message: Range<Int>
    var sql: Range<Int>
}

struct PreparedStatement {
    /// The client's Parse message, verbatim.
    var parseMessage: [UInt8]
    /// The Parse that prepares it on another backend, when it differs from the client's: with the
    /// parameter types the client's copy was given (`pinParameterTypes`).
    var pinnedParse: [UInt8]?
    var messageForCopies: [UInt8] { pinnedParse ?? parseMessage }
    var statements: [StatementInfo]
    var generation: UInt64
    /// The session's `classifierVersion` when `statements` was computed.
    var classifierVersion: Int

    /// The stored class when `parse` is this statement's Parse message again, byte for byte, and the
    /// classifier has not changed since; nil otherwise.
    func classification(ifSameAs parse: UnsafeRawBufferPointer, version: Int) -> [StatementInfo]? {
        isSame(as: parse, version: version) ? statements : nil
    }

    /// The client's Parse with every parameter type spelled out as `description` (a
    /// ParameterDescription payload) says; nil when the two cannot be read or agree already.
    func parse(withParameterTypes description: [UInt8]) -> [UInt8]? {
        guard description.count >= 2 else { return nil }
        let count = Int(description[0]) << 8 | Int(description[1])
        guard description.count == 2 + 4 * count, parseMessage.count >= 5 else { return nil }
        // 'P', length, name, SQL text, then the types the client gave (Int16 count, Int32 each).
        guard let nameEnd = parseMessage[5...].firstIndex(of: 0),
              let sqlEnd = parseMessage[(nameEnd + 1)...].firstIndex(of: 0),
              sqlEnd + 3 <= parseMessage.count else { return nil }
        let given = parseMessage[(sqlEnd + 1)...]
        if Array(given) == description { return nil }
        var message = Array(parseMessage[0...sqlEnd])
        message.append(contentsOf: description)
        let length = UInt32(message.count - 1)
        message[1] = UInt8(length >> 24); message[2] = UInt8((length >> 16) & 0xff)
        message[3] = UInt8((length >> 8) & 0xff); message[4] = UInt8(length & 0xff)
        return message
    }

    func isSame(as parse: UnsafeRawBufferPointer, version: Int) -> Bool {
        guard version == classifierVersion, parse.count == parseMessage.count else { return false }
        guard parse.count > 0 else { return true }
        return parseMessage.withUnsafeBytes { memcmp($0.baseAddress!, parse.baseAddress!, parse.count) == 0 }
    }
}

struct UnitEffects {
    var pin: PinReason?
    var changesFunctions = false
    var commits = false
    /// Every statement only reads: a plain read (sent to writeable while main is behind this session's
    /// writes, down, or refused it), or one only writeable can answer (`SHOW transaction_read_only`);
    /// transaction control that only opens, ends or marks a transaction counts as reading (what the
    /// transaction wrote is counted apart, `Session.transactionWrote`).
    /// Such a unit on writeable leaves nothing for main to replay: had it counted as a write, a session
    /// reading without pause would wait for main again after each read, and never read there again.
    var writesNothing = false
    /// The parameter of a set_config whose Bind has not come yet (a batch left open at a Flush).
    var settingFromBind: Int?
    /// Nil for the usual unit: then copying a unit, as the queue does, retains nothing.
    var sessionChanges: SessionChanges?
}

/// A unit's session effects (with the value each sets) and the text that replays them elsewhere.
final class SessionChanges {
    let effects: [(SessionEffect, String?)]
    let replaySQL: String?
    /// The name of a WITH HOLD cursor the unit declares.
    let holdCursor: String?
    /// SAVEPOINT, ROLLBACK TO and RELEASE among the unit's statements, in order. Kept here, not in
    /// `UnitEffects`: an array there made every unit's copy and destruction retain and release.
    let savepointSteps: [TransactionControl]

    init(effects: [(SessionEffect, String?)], replaySQL: String?, holdCursor: String? = nil,
         savepointSteps: [TransactionControl] = []) {
        self.effects = effects
        self.replaySQL = replaySQL
        self.holdCursor = holdCursor
        self.savepointSteps = savepointSteps
    }
}

struct Unit {
    /// `shapeCheck`: the proxy's own Describes of a statement, on the backend the client prepared it
    /// on and on the one it is new to (Session+ResultShapes.swift); answered to no one.
    enum Kind { case client, replay, shapeCheck }
    var backend: BackendRole
    var kind: Kind
    /// Responses to injected messages still to swallow.
    var swallowLeft = 0
    var sawError = false
    var startedInTransaction = false
    /// The proxy ended this unit with its own Sync (`endOpenBatch`): its ReadyForQuery is not the client's.
    var swallowsReady = false
    /// An extended batch that ended with the client's Sync.
    var endsWithSync = false
    var effects = UnitEffects()
    /// A batch that parses or closes named statements: what each Parse and Close replaced, in order,
    /// and how many of them the server has answered (ParseComplete, CloseComplete). Nil for the rest.
    var statementUndos: [StatementUndo]?
    var statementRepliesSeen = 0
    /// A read main may hand back to writeable (`Session+MainRefusals.swift`) while none of its replies
    /// has reached the client; `retrying` once main refused it and its replies are dropped.
    var mayRetryOnWriteable = false
    var retrying = false
    /// For the rest of a batch left open at a Flush, kept for asking again on its own: how many
    /// ParseComplete / BindComplete / CloseComplete its messages before Execute bring (0: the unit's
    /// whole batch is kept).
    var retryExpectedReplies = 0
}

/// A statement as it was before a Parse or Close of the client changed it (`name` nil: a portal's Close).
struct StatementUndo {
    var name: StatementName?
    var statement: PreparedStatement?
    /// Its generation on each backend, by role.
    var prepared: [UInt64?]
}

/// A FIFO of units that reuses its storage.
struct UnitQueue {
    private var storage: [Unit] = []
    private var head = 0

    var isEmpty: Bool { head == storage.count }
    var count: Int { storage.count - head }
    // The fields read per backend message, without copying the unit (its effects hold references).
    var firstBackend: BackendRole? { isEmpty ? nil : storage[head].backend }
    var firstKind: Unit.Kind { storage[head].kind }
    var lastAwaitsSettingFromBind: Bool { !isEmpty && storage[storage.count - 1].effects.settingFromBind != nil }
    var firstSwallowLeft: Int { storage[head].swallowLeft }
    var firstSwallowsReady: Bool { storage[head].swallowsReady }
    var firstEndsWithSync: Bool { storage[head].endsWithSync }
    var firstKeepsStatementUndos: Bool { storage[head].statementUndos != nil }
    var firstMayRetry: Bool { !isEmpty && storage[head].mayRetryOnWriteable }
    var firstRetrying: Bool { !isEmpty && storage[head].retrying }
    var firstRetryExpectedReplies: Int { storage[head].retryExpectedReplies }
    var lastBackend: BackendRole? { isEmpty ? nil : storage[storage.count - 1].backend }

    mutating func append(_ unit: Unit) { storage.append(unit) }

    mutating func mutateFirst(_ body: (inout Unit) -> Void) { body(&storage[head]) }
    mutating func mutateLast(_ body: (inout Unit) -> Void) {
        if !isEmpty { body(&storage[storage.count - 1]) }
    }

    mutating func popFirst() -> Unit? {
        guard !isEmpty else { return nil }
        if head == storage.count - 1 {
            // The last unit (usually the only one) is moved out, not copied and destroyed; the
            // storage keeps its capacity.
            let unit = storage.removeLast()
            if head > 0 {
                storage.removeAll(keepingCapacity: true)
                head = 0
            }
            return unit
        }
        let unit = storage[head]
        head += 1
        return unit
    }

    func contains(where predicate: (Unit) -> Bool) -> Bool {
        storage[head...].contains(where: predicate)
    }
}
