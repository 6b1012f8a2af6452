/// The two backends a session may use.
public enum BackendRole: Int, Sendable, Equatable, CaseIterable, CustomStringConvertible {
    /// Usually a streaming replica, reached with a read-only user.
    case main = 0
    /// Usually the primary, reached with a user that may write.
    case writeable = 1

    public var other: BackendRole { self == .main ? .writeable : .main }
    public var description: String { self == .main ? "main" : "writeable" }
}
