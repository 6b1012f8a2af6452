/// Session-level state (SET, RESET, DISCARD, SQL PREPARE / DEALLOCATE) that must hold on every backend
/// of a session. Entries are versioned: a backend remembers the version it has applied, and anything
/// newer is replayed to it before its next statement. Superseded entries are dropped, so the history
/// stays as small as the session's state, not as long as its life.
public struct SessionHistory: Sendable {
    public struct Entry: Sendable, Equatable {
        /// What the entry replaces when a newer one arrives: "set:search_path", "prepare:foo".
        public var key: String
        public var sql: String
        public var version: UInt64
    }

    public private(set) var entries: [Entry] = []
    public private(set) var version: UInt64 = 0

    public static let resetAllKey = "reset-all"
    public static let deallocateAllKey = "deallocate-all"

    public init() {}

    /// Records a statement that succeeded (and, inside a transaction, committed).
    public mutating func record(key: String, sql: String) {
        version += 1
        if key == Self.resetAllKey {
            // RESET ALL / DISCARD ALL undo everything before them; keep only themselves so a backend
            // with older state is reset too.
            entries.removeAll()
        } else if key == Self.deallocateAllKey {
            entries.removeAll { $0.key.hasPrefix("prepare:") || $0.key == key }
        } else {
            entries.removeAll { $0.key == key }
        }
        entries.append(Entry(key: key, sql: sql, version: version))
    }

    /// The statements a backend that has applied up to `applied` still needs, in order.
    public func pending(after applied: UInt64) -> [Entry] {
        guard applied < version else { return [] }
        return entries.filter { $0.version > applied }
    }
}
