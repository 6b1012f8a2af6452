/// The whole configuration: an immutable snapshot, swapped as a unit on reload.
public struct ProxyConfig: Sendable, Equatable {
    /// Addresses accepting clients.
    public let listen: [ListenAddress]
    public let authType: AuthType
    /// The userlist path; after `load(path:)` it is resolved against the config file's folder.
    public internal(set) var authFile: String?
    /// The userlist's contents; filled by `load(path:)`, nil from `parse(text:fileName:)`.
    public internal(set) var userlist: Userlist?
    /// Users allowed on the admin console.
    public let adminUsers: [String]
    public let maxClientConnections: Int
    /// The largest protocol message accepted from a client, in bytes.
    public let maxMessageSize: Int
    /// How long a client may take to finish logging in; zero means no limit.
    public let clientLoginTimeout: Duration
    /// How long connecting to and logging in to a backend may take (TLS and authentication included).
    public let connectTimeout: Duration
    /// Whether each statement's routing decision is logged.
    public let logRouting: Bool
    /// Event loops; 0 means one per two cores (see `workerCount(processorCount:)`).
    public let workers: Int
    /// Listen with SO_REUSEPORT, so that several pgsplit processes can share the same address.
    public let reusePort: Bool
    public let readYourWrites: ReadYourWrites
    /// The replay delay beyond which main is considered too far behind; nil means no limit.
    public let maxReplicaLag: Duration?
    public let readFallback: ReadFallback
    /// In the order of the file.
    public let databases: [DatabaseConfig]
    /// Reuse of backend connections between clients (server_* keys).
    public internal(set) var pool = PoolSettings()
    /// Metrics endpoint, log format, shutdown timeout, health checks.
    public internal(set) var operations = OperationsSettings()
    /// TLS between clients and the proxy (`client_tls_*`).
    public internal(set) var clientTLS = ClientTLSSettings()

    public enum Defaults {
        public static let listen = [ListenAddress(host: "127.0.0.1", port: 6432)]
        public static let authType = AuthType.scramSHA256
        public static let maxClientConnections = 10000
        /// One below 1 GB, like PostgreSQL's own limit on a message.
        public static let maxMessageSize = 1_073_741_823
        public static let clientLoginTimeout = Duration.seconds(60)
        public static let connectTimeout = Duration.seconds(5)
        public static let logRouting = false
        public static let workers = 0
        public static let reusePort = false
        public static let readYourWrites = ReadYourWrites.lsn
        public static let readFallback = ReadFallback.writeable
    }

    public init(
        listen: [ListenAddress] = Defaults.listen,
        authType: AuthType = Defaults.authType,
        authFile: String? = nil,
        userlist: Userlist? = nil,
        adminUsers: [String] = [],
        maxClientConnections: Int = Defaults.maxClientConnections,
        maxMessageSize: Int = Defaults.maxMessageSize,
        clientLoginTimeout: Duration = Defaults.clientLoginTimeout,
        connectTimeout: Duration = Defaults.connectTimeout,
        logRouting: Bool = Defaults.logRouting,
        workers: Int = Defaults.workers,
        reusePort: Bool = Defaults.reusePort,
        readYourWrites: ReadYourWrites = Defaults.readYourWrites,
        maxReplicaLag: Duration? = nil,
        readFallback: ReadFallback = Defaults.readFallback,
        databases: [DatabaseConfig]
    ) {
        self.listen = listen
        self.authType = authType
        self.authFile = authFile
        self.userlist = userlist
        self.adminUsers = adminUsers
        self.maxClientConnections = maxClientConnections
        self.maxMessageSize = maxMessageSize
        self.clientLoginTimeout = clientLoginTimeout
        self.connectTimeout = connectTimeout
        self.logRouting = logRouting
        self.workers = workers
        self.reusePort = reusePort
        self.readYourWrites = readYourWrites
        self.maxReplicaLag = maxReplicaLag
        self.readFallback = readFallback
        self.databases = databases
    }

    public func database(named name: String) -> DatabaseConfig? {
        databases.first(where: { $0.name == name })
    }

    /// The number of event loops to run on a machine with `processorCount` cores.
    ///
    /// By default one per two cores: a loop's thread spends most of its time in the kernel's socket
    /// calls, beside the clients and often the database on the same cores. Each extra loop blocks
    /// and wakes on its own share of the events; on two cores, two loops measured about 10 % more
    /// CPU per transaction than one, for no more throughput.
    public func workerCount(processorCount: Int) -> Int {
        workers > 0 ? workers : max(1, processorCount / 2)
    }

    /// A copy with the auth file path and its contents replaced (used when loading from disk).
    func with(authFile: String?, userlist: Userlist?) -> ProxyConfig {
        var copy = self
        copy.authFile = authFile
        copy.userlist = userlist
        return copy
    }
}
