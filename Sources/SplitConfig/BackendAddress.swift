/// Where and as whom the proxy connects to one backend, from a libpq connection string.
///
/// Missing `user`/`password` mean "the client's own": the proxy then logs in as the connecting user
/// with that user's secret from auth_file (the PgBouncer convention). Missing `dbname` means the
/// database name the client asked for.
public struct BackendAddress: Sendable, Hashable, CustomStringConvertible {
    /// Every pair as written (after inheritance), in order; the typed properties below are views of it.
    public let parameters: [ConnectionParameter]

    /// Host name or IP; a value starting with `/` is a Unix socket directory. Default `localhost`.
    public let host: String
    /// An IP address to connect to instead of resolving `host`.
    public let hostaddr: String?
    public let port: Int
    public let dbname: String?
    public let user: String?
    public let password: String?
    public let sslmode: String?
    /// libpq's channel_binding: disable, prefer (when nil) or require.
    public let channelBinding: String?

    /// `parameters.hashValue`, computed once: the pool looks addresses up at every login, and the
    /// typed properties are views of `parameters`, so these two decide equality alone.
    private let parametersHash: Int

    public static func == (lhs: BackendAddress, rhs: BackendAddress) -> Bool {
        lhs.parametersHash == rhs.parametersHash && lhs.parameters == rhs.parameters
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(parametersHash)
    }

    public static let defaultHost = "localhost"
    public static let defaultPort = 5432
    static let sslModes: Set<String> = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
    static let channelBindingModes: Set<String> = ["disable", "prefer", "require"]

    /// Builds the address from pairs, checking the values libpq would reject.
    public init(parameters: [ConnectionParameter]) throws(ConnectionStringProblem) {
        func value(_ key: String) -> String? { parameters.first(where: { $0.key == key })?.value }

        if let host = value("host"), host.contains(",") {
            throw ConnectionStringProblem("several hosts in \"host\" are not supported; name one backend")
        }
        var port = Self.defaultPort
        if let portText = value("port") {
            guard let number = Int(portText), (1...65535).contains(number) else {
                throw ConnectionStringProblem("port must be a number from 1 to 65535, got \"\(portText)\"")
            }
            port = number
        }
        if let sslmode = value("sslmode"), !Self.sslModes.contains(sslmode) {
            throw ConnectionStringProblem(
                "sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full, got \"\(sslmode)\"")
        }
        if let binding = value("channel_binding") {
            guard Self.channelBindingModes.contains(binding) else {
                throw ConnectionStringProblem("channel_binding must be one of disable, prefer, require, got \"\(binding)\"")
            }
            if binding == "require", value("sslmode") == "disable" {
                throw ConnectionStringProblem("channel_binding=require needs TLS, but sslmode=disable turns it off")
            }
        }
        if let timeout = value("connect_timeout"), Int(timeout) == nil {
            throw ConnectionStringProblem("connect_timeout must be a whole number of seconds, got \"\(timeout)\"")
        }
        self.parameters = parameters
        self.parametersHash = parameters.hashValue
        self.host = value("host").flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultHost
        self.hostaddr = value("hostaddr").flatMap { $0.isEmpty ? nil : $0 }
        self.port = port
        self.dbname = value("dbname").flatMap { $0.isEmpty ? nil : $0 }
        self.user = value("user").flatMap { $0.isEmpty ? nil : $0 }
        self.password = value("password")
        self.sslmode = value("sslmode")
        self.channelBinding = value("channel_binding")
    }

    /// Parses a connection string. With `base`, keys it does not set are taken from `base`, except
    /// that credentials and endpoints are never mixed (see `inheriting`).
    public init(connectionString: String, inheritingFrom base: BackendAddress? = nil) throws(ConnectionStringProblem) {
        let own: [ConnectionParameter]
        switch ConnectionString.parse(connectionString) {
        case .success(let parameters): own = parameters
        case .failure(let problem): throw problem
        }
        try self.init(parameters: base.map { Self.inheriting(own, from: $0.parameters) } ?? own)
    }

    /// Fills in keys from `base` that `own` leaves out.
    ///
    /// Some keys only make sense together, so setting one drops the base's partners: a new `user`
    /// must not log in with the base user's password; a new `host` must not be overridden by the
    /// base's `hostaddr`; a new client certificate must not be paired with the base's key.
    static func inheriting(_ own: [ConnectionParameter], from base: [ConnectionParameter]) -> [ConnectionParameter] {
        let ownKeys = Set(own.map(\.key))
        var dropped: Set<String> = []
        if ownKeys.contains("user") { dropped.insert("password") }
        if !ownKeys.isDisjoint(with: ["host", "hostaddr"]) { dropped.formUnion(["host", "hostaddr"]) }
        if !ownKeys.isDisjoint(with: ["sslcert", "sslkey"]) { dropped.formUnion(["sslcert", "sslkey", "sslpassword"]) }

        var merged = base.filter { !dropped.contains($0.key) || ownKeys.contains($0.key) }
        for parameter in own {
            if let index = merged.firstIndex(where: { $0.key == parameter.key }) {
                merged[index] = parameter
            } else {
                merged.append(parameter)
            }
        }
        return merged
    }

    /// Whether the proxy logs in as the connecting client (no `user=` given).
    public var usesClientCredentials: Bool { user == nil }

    /// Whether `host` names a Unix socket directory.
    public var isUnixSocket: Bool { hostaddr == nil && host.hasPrefix("/") }

    /// Back to a connection string, for logs and the admin console; the password shows as `***`.
    public func rendered(maskingPassword: Bool = true) -> String {
        parameters.map { parameter in
            let value = maskingPassword && parameter.key == "password" ? "***" : ConnectionString.quoted(parameter.value)
            return "\(parameter.key)=\(value)"
        }.joined(separator: " ")
    }

    /// A short name for messages: `127.0.0.1:15432/app`, `[::1]:5432`, `/var/run/postgresql:5432/app`.
    public var label: String {
        let shownHost = parameters.contains(where: { $0.key == "host" }) ? host : (hostaddr ?? host)
        let endpoint = shownHost.contains(":") ? "[\(shownHost)]:\(port)" : "\(shownHost):\(port)"
        return dbname.map { "\(endpoint)/\($0)" } ?? endpoint
    }

    public var description: String { rendered(maskingPassword: true) }
}

extension BackendAddress {
    /// A convenience for code and tests that build addresses directly.
    public init(host: String = defaultHost, port: Int = defaultPort, dbname: String? = nil,
                user: String? = nil, password: String? = nil) {
        var parameters = [ConnectionParameter(key: "host", value: host), ConnectionParameter(key: "port", value: String(port))]
        if let dbname { parameters.append(ConnectionParameter(key: "dbname", value: dbname)) }
        if let user { parameters.append(ConnectionParameter(key: "user", value: user)) }
        if let password { parameters.append(ConnectionParameter(key: "password", value: password)) }
        // The values above are valid by construction.
        try! self.init(parameters: parameters)
    }
}
