extension ProxyConfig {
    /// Combinations that parse but cannot work, each as one line for the operator. Empty when fine.
    /// Startup refuses to run, and reload keeps the old configuration, while this is not empty.
    public func validationProblems() -> [String] {
        var problems: [String] = []
        if authType != .trust, authFile == nil {
            problems.append("auth_type = \(authType.rawValue) needs an auth_file with the users' secrets; set auth_file or use auth_type = trust")
        }
        for database in databases {
            let name = "database \"\(database.name)\""
            if database.databaseRouting, database.writeable != nil {
                problems.append("\(name): a writeable connection cannot be used with database routing (database_routing = on); remove one of them")
            }
            if !database.databaseRouting, !database.routes.isEmpty {
                let routeKeys = database.routes.keys.sorted().map { "route.\($0)" }.joined(separator: ", ")
                problems.append("\(name): \(routeKeys) set but database_routing is off; set database_routing = on or remove the routes")
            }
            let both = Set(database.readSafeFunctions).intersection(database.writingFunctions).sorted()
            if !both.isEmpty {
                problems.append("\(name): \(both.joined(separator: ", ")) listed both in read_safe_functions and in writing_functions; keep one")
            }
        }
        return problems
    }
}
