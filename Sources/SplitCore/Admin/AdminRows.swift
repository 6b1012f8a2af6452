import SplitConfig
import StatementClassifier

/// One line of SHOW DATABASES.
public struct AdminDatabaseRow: Sendable, Equatable {
    public var name: String
    public var main: String
    public var writeable: String?
    public var databaseRouting: Bool
    public var readYourWrites: String
    public var readFallback: String
    public var maxReplicaLag: String
    public var paused: Bool

    public init(name: String, main: String, writeable: String?, databaseRouting: Bool, readYourWrites: String,
                readFallback: String, maxReplicaLag: String, paused: Bool = false) {
        self.name = name
        self.main = main
        self.writeable = writeable
        self.databaseRouting = databaseRouting
        self.readYourWrites = readYourWrites
        self.readFallback = readFallback
        self.maxReplicaLag = maxReplicaLag
        self.paused = paused
    }

    /// The rows for a configuration (addresses as host:port/dbname, never with a password).
    public static func rows(config: ProxyConfig, paused: Bool = false) -> [AdminDatabaseRow] {
        config.databases.map { database in
            AdminDatabaseRow(name: database.name, main: database.main.label, writeable: database.writeable?.label,
                             databaseRouting: database.databaseRouting, readYourWrites: config.readYourWrites.rawValue,
                             readFallback: config.readFallback.rawValue,
                             maxReplicaLag: config.maxReplicaLag.map(AdminFormat.duration) ?? "off", paused: paused)
        }
    }
}

/// One line of SHOW BACKENDS.
public struct AdminBackendRow: Sendable, Equatable {
    public var database: String
    public var health: BackendHealth
    /// Lag bytes behind writeable (main only).
    public var lagBytes: Int64?
    /// The proxy's connections to it that sessions hold now (idle pooled ones are not counted).
    public var connectionsOpen: Int64

    public init(database: String, health: BackendHealth, lagBytes: Int64?, connectionsOpen: Int64) {
        self.database = database
        self.health = health
        self.lagBytes = lagBytes
        self.connectionsOpen = connectionsOpen
    }

    /// Rows from the monitor's snapshots and the metrics' connection gauges.
    public static func rows(snapshots: [HealthSnapshot], metrics: ProxyMetrics?) -> [AdminBackendRow] {
        snapshots.flatMap { snapshot -> [AdminBackendRow] in
            let database = metrics?.database(snapshot.database)
            var rows = [AdminBackendRow(database: snapshot.database, health: snapshot.main, lagBytes: snapshot.lagBytes,
                                        connectionsOpen: database?.target(.main).backendConnectionsCurrent ?? 0)]
            if let writeable = snapshot.writeable {
                rows.append(AdminBackendRow(database: snapshot.database, health: writeable, lagBytes: nil,
                                            connectionsOpen: database?.target(.writeable).backendConnectionsCurrent ?? 0))
            }
            return rows
        }
    }
}

/// One line of SHOW SESSIONS, gathered by the shell on each session's loop.
public struct AdminSessionRow: Sendable, Equatable {
    public enum State: String, Sendable {
        case login = "login"
        case idle = "idle"
        case active = "active"
        case idleInTransaction = "idle in transaction"
    }

    public var id: Int
    public var clientAddress: String
    public var user: String
    public var database: String
    public var state: State
    public var transactionBackend: BackendRole?
    public var pinned: String?
    public var backendsOpen: [BackendRole]
    /// Seconds since 1970-01-01 UTC.
    public var connectedAt: Int64
    /// Reads go to writeable until main replays this session's last write.
    public var waitingForReplay: Bool

    public init(id: Int, clientAddress: String, user: String, database: String, state: State,
                transactionBackend: BackendRole? = nil, pinned: String? = nil, backendsOpen: [BackendRole] = [],
                connectedAt: Int64, waitingForReplay: Bool = false) {
        self.id = id
        self.clientAddress = clientAddress
        self.user = user
        self.database = database
        self.state = state
        self.transactionBackend = transactionBackend
        self.pinned = pinned
        self.backendsOpen = backendsOpen
        self.connectedAt = connectedAt
        self.waitingForReplay = waitingForReplay
    }

    /// A row from a session's state machine (nil session: still logging in).
    public init(id: Int, clientAddress: String, user: String, database: String, session: Session?, connectedAt: Int64,
                waitingForReplay: Bool = false) {
        let state: State
        if let session {
            state = session.hasUnitsInFlight ? .active : session.transaction != nil ? .idleInTransaction : .idle
        } else {
            state = .login
        }
        self.init(id: id, clientAddress: clientAddress, user: user, database: database, state: state,
                  transactionBackend: session?.transaction, pinned: session?.pinned?.rawValue,
                  backendsOpen: BackendRole.allCases.filter { session?.isOpen($0) ?? false },
                  connectedAt: connectedAt, waitingForReplay: waitingForReplay)
    }
}

/// One line of SHOW STATS: a database × target.
public struct AdminStatsRow: Sendable, Equatable {
    public var database: String
    public var target: BackendRole
    public var statements: Int64
    public var byKind: [UnitKind: Int64]
    public var errors: Int64
    public var bytesIn: Int64
    public var bytesOut: Int64
    public var latency: HistogramSnapshot

    public init(database: String, target: BackendRole, statements: Int64, byKind: [UnitKind: Int64], errors: Int64,
                bytesIn: Int64, bytesOut: Int64, latency: HistogramSnapshot) {
        self.database = database
        self.target = target
        self.statements = statements
        self.byKind = byKind
        self.errors = errors
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.latency = latency
    }
}

extension ProxyMetrics {
    /// SHOW STATS, every database × target seen so far.
    public func statsRows() -> [AdminStatsRow] {
        databases.flatMap { database in
            BackendRole.allCases.map { role in
                let target = database.target(role)
                var byKind: [UnitKind: Int64] = [:]
                for kind in UnitKind.allCases { byKind[kind] = target.units(kind: kind) }
                return AdminStatsRow(database: database.name, target: role, statements: target.units, byKind: byKind,
                                     errors: target.errors, bytesIn: target.bytesFromClients, bytesOut: target.bytesToClients,
                                     latency: target.latency.snapshot())
            }
        }
    }
}

/// SHOW CONFIG: every setting in force, passwords masked.
public enum AdminConfigLines {
    public static func lines(_ config: ProxyConfig) -> [(key: String, value: String)] {
        var lines: [(key: String, value: String)] = [
            ("listen", config.listen.map(\.description).joined(separator: ", ")),
            ("auth_type", config.authType.rawValue),
            ("auth_file", config.authFile ?? ""),
            ("admin_users", config.adminUsers.joined(separator: ", ")),
            ("max_client_conn", String(config.maxClientConnections)),
            ("max_message_size", String(config.maxMessageSize)),
            ("client_login_timeout", AdminFormat.duration(config.clientLoginTimeout)),
            ("connect_timeout", AdminFormat.duration(config.connectTimeout)),
            ("log_routing", config.logRouting ? "on" : "off"),
            ("workers", String(config.workers)),
            ("read_your_writes", config.readYourWrites.rawValue),
            ("max_replica_lag", config.maxReplicaLag.map(AdminFormat.duration) ?? "off"),
            ("read_fallback", config.readFallback.rawValue),
            ("server_reset_query", config.pool.resetQuery),
            ("server_idle_timeout", AdminFormat.duration(config.pool.idleTimeout)),
            ("server_lifetime", AdminFormat.duration(config.pool.lifetime)),
            ("server_pool_size", String(config.pool.size)),
            ("metrics_listen", config.operations.metricsListen?.description ?? "off"),
            ("log_format", config.operations.logFormat.rawValue),
            ("shutdown_timeout", AdminFormat.duration(config.operations.shutdownTimeout)),
            ("health_check_period", AdminFormat.duration(config.operations.healthCheckPeriod)),
        ]
        for database in config.databases {
            let prefix = "database.\(database.name)."
            lines.append((prefix + "main", database.main.rendered(maskingPassword: true)))
            lines.append((prefix + "writeable", database.writeable?.rendered(maskingPassword: true) ?? ""))
            lines.append((prefix + "database_routing", database.databaseRouting ? "on" : "off"))
            if !database.readSafeFunctions.isEmpty {
                lines.append((prefix + "read_safe_functions", database.readSafeFunctions.joined(separator: ", ")))
            }
            if !database.writingFunctions.isEmpty {
                lines.append((prefix + "writing_functions", database.writingFunctions.joined(separator: ", ")))
            }
            for (user, address) in database.routes.sorted(by: { $0.key < $1.key }) {
                lines.append((prefix + "route.\(user)", address.rendered(maskingPassword: true)))
            }
        }
        return lines
    }
}

/// Text forms shared by the console's columns.
public enum AdminFormat {
    /// 1500ms -> "1.5s", 90s -> "90s", 250ms -> "250ms".
    public static func duration(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        return fixed(Double(milliseconds) / 1000, decimals: 3) + "s"
    }

    /// A decimal with at most `decimals` digits after the point, trailing zeros removed.
    public static func fixed(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return String(value) }
        var scale: Double = 1
        for _ in 0..<decimals { scale *= 10 }
        let scaled = Int64((abs(value) * scale).rounded())
        let unit = Int64(scale)
        var text = (value < 0 && scaled != 0 ? "-" : "") + String(scaled / unit)
        var fraction = String(scaled % unit)
        if decimals > 0 && fraction != "0" {
            fraction = String(repeating: "0", count: decimals - fraction.count) + fraction
            while fraction.hasSuffix("0") { fraction.removeLast() }
            text += "." + fraction
        }
        return text
    }

    /// Seconds since the epoch as "2024-05-01 12:34:56 UTC" (proleptic Gregorian).
    public static func timestamp(unixSeconds: Int64) -> String {
        let days = unixSeconds >= 0 ? unixSeconds / 86400 : (unixSeconds - 86399) / 86400
        let secondOfDay = unixSeconds - days * 86400
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(year)-\(two(month))-\(two(day)) \(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60)) UTC"
    }
}
