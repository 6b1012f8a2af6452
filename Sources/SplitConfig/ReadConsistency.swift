/// When a session's reads may go back to main after it wrote (DESIGN §3, read-your-writes).
public enum ReadYourWrites: String, Sendable, Equatable, CaseIterable {
    /// Reads go to main at once; a read right after a write may not see it yet.
    case off
    /// Reads go to main only once main has replayed past the session's last commit.
    case lsn
}

/// Where reads go when main is too far behind or down.
public enum ReadFallback: String, Sendable, Equatable, CaseIterable {
    case writeable
    case error
}
