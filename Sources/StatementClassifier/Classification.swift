/// What a piece of SQL text does, as far as routing is concerned.
/// This file is the contract between the classifier and the session core: keep it small and stable.

/// Which backend a statement needs.
public enum RouteTarget: Sendable, Equatable {
    /// Reads only: may run on the main backend (a replica).
    case main
    /// Writes, needs the primary, or is not understood: the writeable backend.
    case writeable
}

/// A transaction-control effect of one statement.
public enum TransactionControl: Sendable, Equatable {
    /// BEGIN / START TRANSACTION. `readOnly` is nil when the statement does not say;
    /// `serializable` is true for ISOLATION LEVEL SERIALIZABLE.
    case begin(readOnly: Bool?, serializable: Bool)
    /// SET TRANSACTION ... (the first one in a transaction may still choose the backend).
    case setTransaction(readOnly: Bool?, serializable: Bool)
    /// COMMIT / END / COMMIT AND CHAIN (chain: true).
    case commit(chain: Bool)
    /// ROLLBACK / ABORT (not ROLLBACK TO SAVEPOINT).
    case rollback(chain: Bool)
    /// SAVEPOINT name, ROLLBACK TO [SAVEPOINT] name, RELEASE [SAVEPOINT] name: `name` as PostgreSQL
    /// knows it (lower-cased unless quoted).
    case savepoint(name: String)
    case rollbackToSavepoint(name: String)
    case releaseSavepoint(name: String)
    /// PREPARE TRANSACTION 'gid' (ends the transaction in this session).
    case prepareTransaction
    /// COMMIT PREPARED / ROLLBACK PREPARED (cannot run inside a transaction block).
    case finishPrepared
}

/// A session-level effect: state that must hold on every backend of the session.
public enum SessionEffect: Sendable, Equatable {
    /// SET [SESSION] name = value / SET name TO DEFAULT / SET TIME ZONE ..., and set_config(name, value, false).
    /// `name` is lower-cased. `local` is true for SET LOCAL and set_config(..., true).
    case set(name: String, local: Bool)
    /// RESET name
    case reset(name: String)
    /// RESET ALL
    case resetAll
    /// DISCARD ALL / PLANS / SEQUENCES / TEMP
    case discard(what: String)
    /// SQL PREPARE name [(types)] AS statement; `target` is where the prepared body must run.
    case prepare(name: String, target: RouteTarget)
    /// DEALLOCATE [PREPARE] name | ALL  (name nil for ALL)
    case deallocate(name: String?)
}

/// Why a statement ties the session to one backend for good (or until undone).
public enum PinReason: String, Sendable, Equatable {
    case temporaryTable = "temporary table"
    case holdCursor = "WITH HOLD cursor"
    case listen = "LISTEN"
    case advisoryLock = "session advisory lock"
    case sequence = "currval after nextval"
    case role = "SET ROLE / SESSION AUTHORIZATION"
    /// A DO block that calls set_config: the setting holds on writeable only.
    case settingInBlock = "set_config inside DO"
    /// set_config with a name or value that is neither a literal nor a bound parameter: evaluated
    /// again elsewhere, it could give another value (random(), a function that writes).
    case computedSetting = "set_config of a computed value"
}

/// What one statement does.
///
/// Copied for every statement the proxy routes, so the fields most statements leave empty (the
/// names and values of session effects, cursors and prepared statements) live together in one
/// immutable box: a copy costs two reference counts instead of six.
public struct StatementInfo: Sendable, Equatable {
    /// Where it must run when no transaction dictates otherwise.
    public var target: RouteTarget
    /// Lower-cased leading keyword(s) that name the command, e.g. "select", "insert", "create table",
    /// "set", "begin", "copy", "execute". Empty for an empty statement.
    public var command: String
    public var transaction: TransactionControl?
    public var pin: PinReason?
    /// True when the statement contains a routing hint comment, with its target in `target`.
    public var hinted: Bool
    /// True for COPY ... FROM STDIN (the client will stream CopyData).
    public var copyFromStdin: Bool
    /// True when the statement is DDL that may change function volatility (CREATE/ALTER/DROP FUNCTION,
    /// CREATE EXTENSION, ...) or which relations are unlogged (CREATE UNLOGGED TABLE, ALTER TABLE ...
    /// SET UNLOGGED): the session core refreshes the catalog afterwards.
    public var changesFunctions: Bool
    /// The statement calls a function the catalog does not know (created since it was loaded, or a
    /// name that only looks like a call, such as a column-list alias): the session refreshes the
    /// catalog before routing it. Only set when `FunctionPolicy.knownFunctions` is not empty.
    public var callsUnknownFunction: Bool
    /// A read that writeable must answer: `SHOW transaction_read_only` (the session can write, so it asks
    /// the primary), a query naming an unlogged relation (a standby cannot read one), an EXPLAIN of a
    /// write (main's read-only user may not plan it). It writes nothing: reads after it need not wait
    /// for main to replay anything.
    public var asksWriteable: Bool
    /// Nil while all of its fields are nil: the usual case.
    private var details: Details? {
        didSet { hasDetails = details != nil }
    }
    /// Whether any of the rarely set fields (session effect, executes, cursor, setting value) is set.
    /// Stored, so that the session reads it in place (a getter's call copied the statement).
    public private(set) var hasDetails = false
    /// A statement that only reads and carries nothing to remember (no transaction control, pin, hint,
    /// COPY FROM STDIN, session effect, cursor or prepared statement): running it again elsewhere
    /// after a refusal changes no state the proxy keeps.
    public var isPlainRead: Bool {
        target == .main && details == nil && transaction == nil && pin == nil && !hinted && !copyFromStdin
            && !changesFunctions
    }

    /// A read main refused for good: from now on writeable answers it, and it still writes nothing.
    public mutating func markAnsweredByWriteable() {
        target = .writeable
        asksWriteable = true
    }

    /// The rarely set fields.
    private struct Rare: Sendable, Equatable {
        var session: SessionEffect?
        var executes: String?
        var cursor: String?
        var settingValue: String?
        var settingParameter: Int?

        var isEmpty: Bool {
            session == nil && executes == nil && cursor == nil && settingValue == nil && settingParameter == nil
        }
    }

    /// Immutable: a change makes a new box (`update`).
    private final class Details: Sendable, Equatable {
        let rare: Rare
        init(_ rare: Rare) { self.rare = rare }
        static func == (a: Details, b: Details) -> Bool { a.rare == b.rare }
    }

    private mutating func update(_ change: (inout Rare) -> Void) {
        var rare = details?.rare ?? Rare()
        change(&rare)
        details = rare.isEmpty ? nil : Details(rare)
    }

    /// A session-level effect (SET, RESET, DISCARD, PREPARE, DEALLOCATE).
    public var session: SessionEffect? {
        get { details?.rare.session }
        set { update { $0.session = newValue } }
    }
    /// For SQL `EXECUTE name`: the prepared statement's name (routed by what it prepared).
    public var executes: String? {
        get { details?.rare.executes }
        set { update { $0.executes = newValue } }
    }
    /// For SQL `DECLARE name CURSOR`: the cursor name. `FETCH`/`MOVE`/`CLOSE` name it in `cursor` too.
    public var cursor: String? {
        get { details?.rare.cursor }
        set { update { $0.cursor = newValue } }
    }
    /// For a `SET` (or `set_config(...)`) whose value is one simple literal: that value — a string literal's
    /// contents, or a lower-cased word or number (`on`, `serializable`, `42`); the raw value text when it is
    /// a list or expression; nil for `TO DEFAULT`, `FROM CURRENT` and when the value cannot be read.
    /// For `SET SESSION CHARACTERISTICS AS TRANSACTION` it is the isolation level or `on`/`off`.
    public var settingValue: String? {
        get { details?.rare.settingValue }
        set { update { $0.settingValue = newValue } }
    }
    /// For `set_config(name, $n, false)`: n, the bound parameter that holds the value (the session reads
    /// it from the Bind, so that the setting is copied with its value, not with the text `$n`).
    public var settingParameter: Int? {
        get { details?.rare.settingParameter }
        set { update { $0.settingParameter = newValue } }
    }

    public init(target: RouteTarget, command: String, transaction: TransactionControl? = nil,
                session: SessionEffect? = nil, pin: PinReason? = nil, executes: String? = nil,
                cursor: String? = nil, hinted: Bool = false, copyFromStdin: Bool = false,
                changesFunctions: Bool = false, settingValue: String? = nil, callsUnknownFunction: Bool = false,
                asksWriteable: Bool = false) {
        self.target = target
        self.command = command
        self.transaction = transaction
        self.pin = pin
        self.hinted = hinted
        self.copyFromStdin = copyFromStdin
        self.changesFunctions = changesFunctions
        self.callsUnknownFunction = callsUnknownFunction
        self.asksWriteable = asksWriteable
        let rare = Rare(session: session, executes: executes, cursor: cursor, settingValue: settingValue)
        details = rare.isEmpty ? nil : Details(rare)
        hasDetails = details != nil
    }
}

/// The classification of a whole query string (one or more statements separated by `;`).
public struct QueryClass: Sendable, Equatable {
    /// One entry per non-empty statement, in order.
    public var statements: [StatementInfo]
    /// writeable if any statement needs writeable, else main. An empty query string is main.
    public var target: RouteTarget

    public init(statements: [StatementInfo]) {
        self.statements = statements
        self.target = statements.contains { $0.target == .writeable } ? .writeable : .main
    }
}

/// Which functions write, per database: built-in knowledge plus the catalog plus proxy.conf.
public struct FunctionPolicy: Sendable, Equatable {
    /// Lower-cased names (unqualified, and also "schema.name") of user functions whose provolatile is 'v'.
    public var volatileFunctions: Set<String>
    /// Lower-cased names that proxy.conf declares safe to run on main (overrides everything).
    public var readSafe: Set<String>
    /// Lower-cased names that proxy.conf declares writing.
    public var writing: Set<String>
    /// Every function name the catalog has (any schema, unqualified, lower-cased), plus names already
    /// found not to be functions. Empty: unknown names are not looked for.
    public var knownFunctions: Set<String>
    /// Lower-cased names of unlogged tables and sequences: a standby cannot read them ("cannot access
    /// temporary or unlogged relations during recovery"), so a query naming one asks writeable.
    public var unloggedRelations: Set<String>

    public init(volatileFunctions: Set<String> = [], readSafe: Set<String> = [], writing: Set<String> = [],
                knownFunctions: Set<String> = [], unloggedRelations: Set<String> = []) {
        self.volatileFunctions = volatileFunctions
        self.readSafe = readSafe
        self.writing = writing
        self.knownFunctions = knownFunctions
        self.unloggedRelations = unloggedRelations
    }
}

/// The entry point, implemented in Classifier.swift:
///
///     let classifier = Classifier(policy: FunctionPolicy())
///     let qc: QueryClass = classifier.classify("SELECT 1; INSERT ...")
///     let qc2: QueryClass = classifier.classify(utf8: someUnsafeRawBufferPointer)
