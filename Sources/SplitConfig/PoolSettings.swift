/// How backend connections are kept for reuse after their client leaves (PgBouncer's server_* keys).
public struct PoolSettings: Sendable, Equatable {
    /// Run on a backend connection before it is handed to another client; empty = reuse as is.
    public var resetQuery = "DISCARD ALL"
    /// An idle pooled connection is closed after this long.
    public var idleTimeout = Duration.seconds(600)
    /// A connection is not reused once it is this old.
    public var lifetime = Duration.seconds(3600)
    /// Idle connections kept per backend, user, database and event loop; 0 turns reuse off.
    public var size = 20

    public init() {}
}
