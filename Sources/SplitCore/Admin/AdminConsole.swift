import PostgresWire
import SplitConfig

/// What the console reads, implemented by the shell (or use `StandardAdminSnapshot`). Called
/// synchronously while answering; gather SHOW SESSIONS rows from the loops before calling.
public protocol AdminSnapshotProvider {
    func adminDatabases() -> [AdminDatabaseRow]
    func adminBackends() -> [AdminBackendRow]
    func adminSessions() -> [AdminSessionRow]
    func adminStats() -> [AdminStatsRow]
    func adminConfig() -> [(key: String, value: String)]
}

/// The provider made of the shell's shared objects plus the session rows it gathered.
public struct StandardAdminSnapshot: AdminSnapshotProvider {
    public var config: ProxyConfigRows
    public var metrics: ProxyMetrics
    public var health: [HealthSnapshot]
    public var sessions: [AdminSessionRow]
    public var paused: Bool

    public init(config: ProxyConfigRows, metrics: ProxyMetrics, health: [HealthSnapshot], sessions: [AdminSessionRow] = [],
                paused: Bool = false) {
        self.config = config
        self.metrics = metrics
        self.health = health
        self.sessions = sessions
        self.paused = paused
    }

    public func adminDatabases() -> [AdminDatabaseRow] { config.databases(paused) }
    public func adminBackends() -> [AdminBackendRow] { AdminBackendRow.rows(snapshots: health, metrics: metrics) }
    public func adminSessions() -> [AdminSessionRow] { sessions.sorted { $0.id < $1.id } }
    public func adminStats() -> [AdminStatsRow] { metrics.statsRows() }
    public func adminConfig() -> [(key: String, value: String)] { config.lines }
}

/// The configuration's part of the console, computed from a `ProxyConfig`.
public struct ProxyConfigRows: Sendable {
    let config: ProxyConfig
    public init(_ config: ProxyConfig) { self.config = config }
    func databases(_ paused: Bool) -> [AdminDatabaseRow] { AdminDatabaseRow.rows(config: config, paused: paused) }
    var lines: [(key: String, value: String)] { AdminConfigLines.lines(config) }
}

/// The admin console: one simple-query text in, the wire answer out (RowDescription, DataRows and
/// CommandComplete per command, or an ErrorResponse), plus an action for the shell. The shell adds
/// ReadyForQuery. Pure: no I/O, no clock except what the provider's rows carry.
public enum AdminConsole {
    /// The commands SHOW HELP lists, in order.
    public static let help: [(command: String, description: String)] = [
        ("SHOW HELP", "this list"),
        ("SHOW DATABASES", "each database: its backends, routing and read settings"),
        ("SHOW BACKENDS", "each backend: up or down, recovery, replica lag, WAL position, connections"),
        ("SHOW SESSIONS", "each client session: state, transaction backend, pin, backends open"),
        ("SHOW STATS", "per database and target: statements by kind, errors, bytes, latency percentiles"),
        ("SHOW CONFIG", "the settings in force (passwords masked)"),
        ("RELOAD", "re-read the configuration file; the old one stays if the new one is refused"),
        ("PAUSE", "hold new statements (running ones finish) until RESUME"),
        ("RESUME", "release what PAUSE held"),
        ("SHUTDOWN", "stop accepting clients, let sessions finish, exit"),
    ]

    /// Answers a whole query string; commands separated by `;` are answered in turn, stopping at
    /// the first error (as PostgreSQL does with a multi-statement query string).
    public static func respond(to query: String, provider: some AdminSnapshotProvider) -> AdminResponse {
        var response = AdminResponse(bytes: [], action: nil, failed: false)
        for command in AdminCommand.parseAll(query) {
            let one = respond(to: command, provider: provider)
            response.bytes += one.bytes
            if let action = one.action { response.action = action }
            if one.failed {
                response.failed = true
                break
            }
        }
        return response
    }

    /// Answers one parsed command.
    public static func respond(to command: AdminCommand, provider: some AdminSnapshotProvider) -> AdminResponse {
        var out: [UInt8] = []
        switch command {
        case .empty:
            out.writeEmptyQueryResponse()
            return AdminResponse(bytes: out, action: nil, failed: false)
        case .unknown(let text):
            out.writeErrorResponse(severity: "ERROR", code: SQLState.syntaxError,
                                   message: "unknown admin command: \(text.count > 200 ? String(text.prefix(200)) + "..." : text)",
                                   hint: "This is the pgsplit admin console. SHOW HELP lists its commands.")
            return AdminResponse(bytes: out, action: nil, failed: true)
        case .reload: return done("RELOAD", .reload)
        case .pause: return done("PAUSE", .pause)
        case .resume: return done("RESUME", .resume)
        case .shutdown: return done("SHUTDOWN", .shutdown)
        case .show(let topic):
            let table = table(topic, provider)
            out.writeRowDescription(textColumns: table.columns)
            for row in table.rows { out.writeDataRow(row) }
            out.writeCommandComplete(tag: "SHOW")
            return AdminResponse(bytes: out, action: nil, failed: false)
        }
    }

    private static func done(_ tag: String, _ action: AdminAction) -> AdminResponse {
        var out: [UInt8] = []
        out.writeCommandComplete(tag: tag)
        return AdminResponse(bytes: out, action: action, failed: false)
    }

    /// The columns and rows of a SHOW (exposed for tests and for other renderings).
    public static func table(_ topic: AdminCommand.ShowTopic, _ provider: some AdminSnapshotProvider)
        -> (columns: [String], rows: [[String?]]) {
        switch topic {
        case .help:
            return (["command", "description"], help.map { [$0.command, $0.description] })
        case .databases:
            return (["name", "main", "writeable", "database_routing", "read_your_writes", "read_fallback",
                     "max_replica_lag", "paused"],
                    provider.adminDatabases().map { row in
                        [row.name, row.main, row.writeable, onOff(row.databaseRouting), row.readYourWrites,
                         row.readFallback, row.maxReplicaLag, onOff(row.paused)]
                    })
        case .backends:
            return (["database", "role", "address", "state", "in_recovery", "lag_bytes", "lag_seconds", "wal_position",
                     "connections", "last_error"],
                    provider.adminBackends().map { row in
                        let health = row.health
                        // A promoted main is up but serves no reads: say so where operators look.
                        let state = health.leftRecovery && health.state == .up ? "left recovery" : health.state.rawValue
                        return [row.database, health.role.description, health.address, state,
                                health.inRecovery.map(onOff), row.lagBytes.map { String($0) },
                                health.replayDelay.map { AdminFormat.fixed($0, decimals: 3) },
                                health.position?.description, String(row.connectionsOpen), health.lastError]
                    })
        case .sessions:
            return (["id", "client", "user", "database", "state", "transaction_backend", "pinned", "backends_open",
                     "waiting_for_replay", "connected_since"],
                    provider.adminSessions().map { row in
                        [String(row.id), row.clientAddress, row.user, row.database, row.state.rawValue,
                         row.transactionBackend?.description, row.pinned,
                         row.backendsOpen.map(\.description).joined(separator: ","),
                         onOff(row.waitingForReplay), AdminFormat.timestamp(unixSeconds: row.connectedAt)]
                    })
        case .stats:
            return (["database", "target", "statements", "reads", "writes", "in_transaction", "other", "errors",
                     "bytes_in", "bytes_out", "avg_us", "p50_us", "p95_us", "p99_us"],
                    provider.adminStats().map { row in
                        let latency = row.latency
                        let count = latency.count
                        return [row.database, row.target.description, String(row.statements),
                                String(row.byKind[.read] ?? 0), String(row.byKind[.write] ?? 0),
                                String(row.byKind[.transaction] ?? 0), String(row.byKind[.other] ?? 0),
                                String(row.errors), String(row.bytesIn), String(row.bytesOut),
                                count > 0 ? String(latency.sumMicroseconds / count) : nil,
                                latency.percentile(0.50).map { String($0) },
                                latency.percentile(0.95).map { String($0) },
                                latency.percentile(0.99).map { String($0) }]
                    })
        case .config:
            return (["key", "value"], provider.adminConfig().map { [$0.key, $0.value] })
        }
    }

    private static func onOff(_ value: Bool) -> String { value ? "on" : "off" }
}
