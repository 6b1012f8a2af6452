import DispatchTransport
import SplitConfig
import StatementClassifier

/// Which user functions are volatile, read from the catalog of the writeable backend (or main).
enum FunctionCatalog {
    static let query = """
        SELECT n.nspname, p.proname FROM pg_catalog.pg_proc p \
        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
        WHERE p.provolatile = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
        AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
        """

    /// Loads the catalog with the backend's own credentials; nil when it cannot (no service user).
    static func load(database: DatabaseConfig, config: ProxyConfig, on loop: EventLoop,
                     completion: @escaping @Sendable (FunctionPolicy?) -> Void) {
        let address = database.writeable ?? database.main
        guard let login = StartupChecks.serviceLogin(address, database: database, config: config) else {
            loop.execute { completion(policy(database: database, rows: [])) }
            return
        }
        loop.execute {
            BackendQueryRunner.run(query, login: login, on: loop, timeout: 10) { result in
                switch result {
                case .success(let result):
                    completion(policy(database: database, rows: result.rows))
                case .failure(let failure):
                    Log.warning("database \"\(database.name)\": cannot read the function catalog: \(failure.description)")
                    completion(nil)
                }
            }
        }
    }

    static func policy(database: DatabaseConfig, rows: [[String?]]) -> FunctionPolicy {
        var volatile = Set<String>()
        for row in rows {
            guard row.count == 2, let schema = row[0], let name = row[1] else { continue }
            volatile.insert(name.lowercased())
            volatile.insert(schema.lowercased() + "." + name.lowercased())
        }
        return FunctionPolicy(volatileFunctions: volatile,
                              readSafe: Set(database.readSafeFunctions.map { $0.lowercased() }),
                              writing: Set(database.writingFunctions.map { $0.lowercased() }))
    }
}
