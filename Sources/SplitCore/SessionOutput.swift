/// What a session asks of the I/O shell. The session is a pure state machine; the shell implements
/// this (the tests implement it with a recorder). Calls are made synchronously from the session's
/// methods, so implementations must not call back into the session.
public protocol SessionOutput {
    /// Send bytes to a backend that is open.
    mutating func sendToBackend(_ role: BackendRole, _ bytes: UnsafeRawBufferPointer)
    /// Send bytes to the client.
    mutating func sendToClient(_ bytes: UnsafeRawBufferPointer)
    /// Open (connect and authenticate) a backend; answer with `backendOpened` or `backendOpenFailed`.
    mutating func openBackend(_ role: BackendRole)
    /// Close the client connection once its pending output is sent, and with it the backends.
    mutating func closeSession(reason: String)
    /// A client unit was sent to `role` (for logs, statistics and latency). `sql` is the query text,
    /// or the batch's bytes for the extended protocol.
    mutating func unitStarted(_ role: BackendRole, why: RoutingReason, sql: UnsafeRawBufferPointer)
    /// The oldest client unit got its ReadyForQuery. `wroteOnWriteable` is true when it may have
    /// committed a write (it ran on writeable and left no transaction open): read-your-writes waits
    /// for main to replay past that point.
    mutating func unitFinished(_ role: BackendRole, failed: Bool, wroteOnWriteable: Bool)
    /// DDL that may have changed function volatility ran: refresh the function catalog.
    mutating func functionsMayHaveChanged()
    /// A statement calls functions the catalog does not know: refresh it (learning `names`), then call
    /// `clientInput` again; the statement waits meanwhile.
    mutating func functionCatalogNeeded(names: [String])
}

/// Why a unit went where it went (for logs and the admin console).
public enum RoutingReason: String, Sendable {
    case read = "read"
    case write = "write"
    case transaction = "inside a transaction"
    case readOnlyTransaction = "read-only transaction"
    case pinned = "session pinned"
    case noWriteable = "no writeable backend"
    case hint = "routing hint"
    case sessionDefault = "session default (read-only / serializable)"
    case copyData = "COPY data"
    case functionCall = "fast-path function call"
    case fallback = "main unavailable, lagging or behind this session's writes"
    case holdCursorOnMain = "WITH HOLD cursor declared on main"
    case mainRefused = "main refused the read (a standby or main's user cannot run it)"
}
