/// One client-visible database and the backends behind it.
public struct DatabaseConfig: Sendable, Equatable {
    /// The name clients put in `dbname`.
    public let name: String
    /// Where reads go; usually a streaming replica.
    public let main: BackendAddress
    /// Where writes go; usually the primary. Nil: everything goes to main.
    public let writeable: BackendAddress?
    /// Whether clients are sent to a per-user backend (`route.USER`).
    public let databaseRouting: Bool
    /// Per-user backends, keyed by client user name; used only with `databaseRouting`.
    public let routes: [String: BackendAddress]
    /// Volatile functions the operator declares safe to run on main (catalog spelling, maybe schema-qualified).
    public let readSafeFunctions: [String]
    /// Functions the operator declares as writing, though the catalog does not say so.
    public let writingFunctions: [String]

    public init(name: String, main: BackendAddress, writeable: BackendAddress? = nil, databaseRouting: Bool = false,
                routes: [String: BackendAddress] = [:], readSafeFunctions: [String] = [], writingFunctions: [String] = []) {
        self.name = name
        self.main = main
        self.writeable = writeable
        self.databaseRouting = databaseRouting
        self.routes = routes
        self.readSafeFunctions = readSafeFunctions
        self.writingFunctions = writingFunctions
    }

    /// The backend for a client user under database routing; a user without a route uses main.
    public func backend(forRoutedUser user: String) -> BackendAddress {
        guard databaseRouting else { return main }
        return routes[user] ?? main
    }
}
