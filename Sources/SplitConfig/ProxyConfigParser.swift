extension ProxyConfig {
    /// Parses proxy.conf text; `fileName` is used only in error messages. The auth file is not read:
    /// `authFile` stays as written and `userlist` is nil (see `load(path:)`).
    public static func parse(text: String, fileName: String) throws -> ProxyConfig {
        try ProxyConfigParser(fileName: fileName).parse(text: text).config
    }
}

/// The parse result plus where things were said, for messages about later steps.
struct ParsedProxyConfig {
    let config: ProxyConfig
    let authFileLine: Int?
}

/// Gives meaning to the sections of an IniDocument.
struct ProxyConfigParser {
    let fileName: String

    static let generalKeys = [
        "listen", "auth_type", "auth_file", "admin_users", "max_client_conn", "max_message_size",
        "client_login_timeout", "connect_timeout", "log_routing", "workers", "so_reuseport",
        "read_your_writes", "max_replica_lag", "read_fallback",
        "server_reset_query", "server_idle_timeout", "server_lifetime", "server_pool_size",
    ] + operationsKeys + clientTLSKeys
    static let databaseKeys = [
        "main", "writeable", "database_routing", "read_safe_functions", "writing_functions", "route.USER",
    ]

    private static let booleanChoices = "on, off, true, false, yes, no, 1 or 0"
    private static let durationChoices = "a duration such as 500ms, 10s, 5min, 1h or 1d"
    private static let sizeChoices = "a size in bytes, or with a unit such as 64kB, 16MB or 1GB"

    func parse(text: String) throws -> ParsedProxyConfig {
        let document = try IniDocument.parse(text: text, fileName: fileName)
        var general: IniSection?
        var databaseSections: [(name: String, section: IniSection)] = []

        for section in document.sections {
            let words = section.header.split(separator: " ")
            let kind = words.first?.lowercased() ?? ""
            if kind == "pgsplit", words.count == 1 {
                if let first = general {
                    throw ConfigError(file: fileName, line: section.line,
                                      reason: "[pgsplit] appears twice (first on line \(first.line))")
                }
                general = section
            } else if kind == "database" {
                guard words.count == 2 else {
                    throw ConfigError(file: fileName, line: section.line,
                                      reason: "a database section is written [database NAME], with one name without spaces; got [\(section.header)]")
                }
                let name = String(words[1])
                if let first = databaseSections.first(where: { $0.name == name }) {
                    throw ConfigError(file: fileName, line: section.line, section: section.header,
                                      reason: "database \"\(name)\" is defined twice (first on line \(first.section.line))")
                }
                databaseSections.append((name, section))
            } else {
                throw ConfigError(file: fileName, line: section.line,
                                  reason: "unknown section [\(section.header)]; expected [pgsplit] or [database NAME]")
            }
        }

        guard !databaseSections.isEmpty else {
            throw ConfigError(file: fileName, line: nil, reason: "no [database NAME] section; define at least one database")
        }
        let databases = try databaseSections.map { try parseDatabase(name: $0.name, section: $0.section) }
        return try parseGeneral(general ?? IniSection(header: "pgsplit", line: 0, entries: []), databases: databases)
    }

    private func parseGeneral(_ section: IniSection, databases: [DatabaseConfig]) throws -> ParsedProxyConfig {
        var entries = try SectionEntries(section: section, fileName: fileName)
        typealias Defaults = ProxyConfig.Defaults

        var listen = Defaults.listen
        if let entry = entries.take("listen") {
            let parts = SettingValueParsing.list(entry.value)
            guard !parts.isEmpty else { throw entries.error(entry, "has no value; expected host:port, [ipv6]:port or *:port") }
            listen = try parts.map { part in
                guard let address = ListenAddress.parse(part) else {
                    throw entries.error(entry, "expected host:port, [ipv6]:port or *:port, got \"\(part)\"")
                }
                return address
            }
        }
        let authType = try entries.take("auth_type").map {
            try entries.value($0, expected: Self.choices(AuthType.allCases.map(\.rawValue)), AuthType.init(rawValue:))
        } ?? Defaults.authType
        let authFileEntry = entries.take("auth_file")
        let authFile = authFileEntry.flatMap { $0.value.isEmpty ? nil : $0.value }
        let adminUsers = entries.take("admin_users").map { SettingValueParsing.list($0.value) } ?? []
        let maxClientConnections = try entries.take("max_client_conn").map {
            try entries.value($0, expected: "a whole number of at least 1") { SettingValueParsing.integer($0, atLeast: 1) }
        } ?? Defaults.maxClientConnections
        let maxMessageSize = try entries.take("max_message_size").map { entry in
            let bytes = try entries.value(entry, expected: Self.sizeChoices, SettingValueParsing.byteSize)
            // The protocol's length field is a signed 32-bit integer.
            guard (1...Int(Int32.max)).contains(bytes) else {
                throw entries.error(entry, "must be between 1 byte and 2GB - 1 (the protocol's limit), got \"\(entry.value)\"")
            }
            return bytes
        } ?? Defaults.maxMessageSize
        let clientLoginTimeout = try entries.take("client_login_timeout").map {
            try entries.value($0, expected: Self.durationChoices, SettingValueParsing.duration)
        } ?? Defaults.clientLoginTimeout
        let connectTimeout = try entries.take("connect_timeout").map { entry in
            let duration = try entries.value(entry, expected: Self.durationChoices, SettingValueParsing.duration)
            guard duration > .zero else { throw entries.error(entry, "must be longer than zero") }
            return duration
        } ?? Defaults.connectTimeout
        let logRouting = try entries.take("log_routing").map {
            try entries.value($0, expected: Self.booleanChoices, SettingValueParsing.boolean)
        } ?? Defaults.logRouting
        let workers = try entries.take("workers").map {
            try entries.value($0, expected: "a whole number; 0 means one per two cores") { SettingValueParsing.integer($0, atLeast: 0, atMost: 1024) }
        } ?? Defaults.workers
        let reusePort = try entries.take("so_reuseport").map {
            try entries.value($0, expected: Self.booleanChoices, SettingValueParsing.boolean)
        } ?? Defaults.reusePort
        let readYourWrites = try entries.take("read_your_writes").map {
            try entries.value($0, expected: Self.choices(ReadYourWrites.allCases.map(\.rawValue)), ReadYourWrites.init(rawValue:))
        } ?? Defaults.readYourWrites
        let maxReplicaLag: Duration? = try entries.take("max_replica_lag").flatMap { entry in
            if entry.value.lowercased() == "off" { return nil }
            return try entries.value(entry, expected: "off or " + Self.durationChoices, SettingValueParsing.duration)
        }
        let readFallback = try entries.take("read_fallback").map {
            try entries.value($0, expected: Self.choices(ReadFallback.allCases.map(\.rawValue)), ReadFallback.init(rawValue:))
        } ?? Defaults.readFallback
        var pool = PoolSettings()
        if let entry = entries.take("server_reset_query") { pool.resetQuery = entry.value }
        if let entry = entries.take("server_idle_timeout") {
            pool.idleTimeout = try entries.value(entry, expected: Self.durationChoices, SettingValueParsing.duration)
        }
        if let entry = entries.take("server_lifetime") {
            pool.lifetime = try entries.value(entry, expected: Self.durationChoices, SettingValueParsing.duration)
        }
        if let entry = entries.take("server_pool_size") {
            pool.size = try entries.value(entry, expected: "a whole number; 0 turns reuse off") {
                SettingValueParsing.integer($0, atLeast: 0, atMost: 100_000)
            }
        }
        let operations = try parseOperations(&entries)
        let clientTLS = try parseClientTLS(&entries)
        try entries.rejectUnknownKeys(known: Self.generalKeys)

        var config = ProxyConfig(
            listen: listen, authType: authType, authFile: authFile, userlist: nil, adminUsers: adminUsers,
            maxClientConnections: maxClientConnections, maxMessageSize: maxMessageSize,
            clientLoginTimeout: clientLoginTimeout, connectTimeout: connectTimeout, logRouting: logRouting,
            workers: workers, reusePort: reusePort, readYourWrites: readYourWrites, maxReplicaLag: maxReplicaLag,
            readFallback: readFallback, databases: databases)
        config.pool = pool
        config.operations = operations
        config.clientTLS = clientTLS
        return ParsedProxyConfig(config: config, authFileLine: authFile == nil ? nil : authFileEntry?.line)
    }

    private func parseDatabase(name: String, section: IniSection) throws -> DatabaseConfig {
        var entries = try SectionEntries(section: section, fileName: fileName)

        guard let mainEntry = entries.take("main") else {
            throw ConfigError(file: fileName, line: section.line, section: section.header, key: "main",
                              reason: "missing; every database needs a main connection string")
        }
        guard !mainEntry.value.isEmpty else { throw entries.error(mainEntry, "has no value; expected a connection string") }
        let main = try address(mainEntry, inheritingFrom: nil, entries: entries)

        let writeable = try entries.take("writeable").flatMap { entry in
            // An empty value says "no writeable backend", which is handy when toggling it by reload.
            entry.value.isEmpty ? nil : try address(entry, inheritingFrom: main, entries: entries)
        }
        let databaseRouting = try entries.take("database_routing").map {
            try entries.value($0, expected: Self.booleanChoices, SettingValueParsing.boolean)
        } ?? false
        let readSafeFunctions = try entries.take("read_safe_functions").map { try functionNames($0, entries: entries) } ?? []
        let writingFunctions = try entries.take("writing_functions").map { try functionNames($0, entries: entries) } ?? []

        var routes: [String: BackendAddress] = [:]
        for entry in entries.take(keysWithPrefix: "route.") {
            let user = String(entry.key.dropFirst("route.".count))
            guard !user.isEmpty else { throw entries.error(entry, "needs a user name: route.USER = connection string") }
            guard !entry.value.isEmpty else { throw entries.error(entry, "has no value; expected a connection string") }
            routes[user] = try address(entry, inheritingFrom: main, entries: entries)
        }
        try entries.rejectUnknownKeys(known: Self.databaseKeys)

        return DatabaseConfig(
            name: name, main: main, writeable: writeable, databaseRouting: databaseRouting, routes: routes,
            readSafeFunctions: readSafeFunctions, writingFunctions: writingFunctions)
    }

    private func address(_ entry: IniEntry, inheritingFrom base: BackendAddress?, entries: SectionEntries) throws -> BackendAddress {
        do {
            return try BackendAddress(connectionString: entry.value, inheritingFrom: base)
        } catch {
            throw entries.error(entry, error.reason)
        }
    }

    private func functionNames(_ entry: IniEntry, entries: SectionEntries) throws -> [String] {
        try SettingValueParsing.list(entry.value).map { text in
            guard let name = SettingValueParsing.functionName(text) else {
                throw entries.error(entry, "\"\(text)\" is not a function name (name or schema.name)")
            }
            return name
        }
    }

    private static func choices(_ names: [String]) -> String {
        "one of " + names.joined(separator: ", ")
    }
}
