import DispatchTransport
import SplitConfig
import StatementClassifier

/// Which user functions are volatile and which relations are unlogged, read from the catalog of the
/// writeable backend (or main).
enum FunctionCatalog {
    /// Every function, and whether it is a user function that is VOLATILE (built-in volatile ones such
    /// as random() are read-safe; the built-ins that write are known to the classifier itself), kind
    /// 'f'; and every unlogged table and sequence, kind 'u' (a standby cannot read them).
    static let query = """
        SELECT DISTINCT 'f', n.nspname, p.proname, p.provolatile = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
        FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
        WHERE n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
        UNION ALL \
        SELECT 'u', n.nspname, c.relname, true \
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
        WHERE c.relpersistence = 'u' AND c.relkind IN ('r', 'p', 'S', 'm')
        """

    /// Words that precede a parenthesis in SQL without being functions.
    static let grammarWords: Set<String> = [
        "in", "exists", "any", "some", "all", "values", "as", "over", "filter", "using", "on", "coalesce",
        "nullif", "greatest", "least", "cast", "extract", "overlay", "position", "substring", "trim", "row",
        "array", "lateral", "within", "grouping", "not", "and", "or", "from", "where", "select", "join",
        "set", "tablesample", "rows", "groups", "range", "partition", "interval", "decimal", "numeric",
        "varchar", "char", "character", "time", "timestamp", "float", "bit", "varying", "precision", "dec",
        "int", "integer", "smallint", "bigint", "returning", "when", "then", "else", "case", "into", "by",
        "having", "limit", "offset", "fetch", "window", "is", "like", "ilike", "between", "for", "of",
        "only", "with", "recursive", "materialized", "cycle", "search", "normalize", "collation", "xmlelement",
        "xmlforest", "xmlparse", "xmlpi", "xmlroot", "xmlserialize", "xmlexists", "xmlattributes", "xmltable",
        "json", "json_object", "json_array", "json_scalar", "json_serialize", "columns", "ordinality",
        "union", "intersect", "except", "distinct", "table", "to", "default", "current_date", "current_time",
        "current_timestamp", "localtime", "localtimestamp", "do", "nulls", "first", "last", "asc", "desc",
        "update", "delete", "insert", "merge", "analyze", "explain", "verbose", "format", "escape", "similar",
    ]

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
        var unlogged = Set<String>()
        var known = grammarWords
        for row in rows {
            guard row.count == 4, let schema = row[1], let name = row[2] else { continue }
            if row[0] == "u" {
                unlogged.insert(name.lowercased())
                continue
            }
            known.insert(name.lowercased())
            guard row[3] == "t" else { continue }
            volatile.insert(name.lowercased())
            volatile.insert(schema.lowercased() + "." + name.lowercased())
        }
        // Without a catalog (no service login), unknown names cannot be looked up: leave it off.
        return FunctionPolicy(volatileFunctions: volatile,
                              readSafe: Set(database.readSafeFunctions.map { $0.lowercased() }),
                              writing: Set(database.writingFunctions.map { $0.lowercased() }),
                              knownFunctions: rows.isEmpty ? [] : known, unloggedRelations: unlogged)
    }
}
