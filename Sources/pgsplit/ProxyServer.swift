import ProxyLocks
import DispatchTransport
import PostgresWire
import Foundation
import SplitConfig
import SplitCore
import StatementClassifier
import Synchronization

/// A client's cancel key, as given in its BackendKeyData.
struct CancelKey: Hashable, Sendable {
    var processID: Int32
    var secretKey: Int32
}

/// The running proxy: listeners, the configuration, the sessions' cancel keys, and each database's
/// function catalog. Shared by all loops; its mutable parts sit behind mutexes that are held only for
/// a dictionary operation.
final class ProxyServer: Sendable {
    let group: EventLoopGroup
    let configPath: String
    private let current: Locked<ProxyConfig>
    private let configGenerationCounter = Atomic<Int>(0)
    /// Serialises reloads (SIGHUP and the admin console may ask at once).
    private let reloading = Locked<Int>(0)  // counts reloads; not Void: ThreadSanitizer misreads zero-sized values

    /// The configuration in force: sessions take it at login and adopt a newer one when idle.
    var config: ProxyConfig { current.withLock { $0 } }
    /// Bumped by every successful reload.
    var configGeneration: Int { configGenerationCounter.load(ordering: .acquiring) }
    private let listeners = Locked<[Listener]>([])
    private let sessions = Locked<[CancelKey: ClientHandler]>([:])
    private let classifiers: Locked<[String: Classifier]>
    /// What main reported at earlier logins (ParameterStatus), by backend, user, database and startup
    /// parameters: a later identical login is answered from it without a backend connection.
    private let knownLogins = Locked<[BackendPool.Key: KnownLogin]>([:])
    /// Per database: names seen before a parenthesis that the catalog does not have.
    private let notFunctionNames = Locked<[String: Set<String>]>([:])
    private let nextSessionID = Atomic<Int>(1)
    /// Client connections open now, logged in or not (max_client_conn).
    private let openClients = Atomic<Int>(0)

    /// A client connection's handler closed.
    func clientClosed() { openClients.wrappingSubtract(1, ordering: .relaxed) }
    private let catalogGenerationCounter = Atomic<Int>(0)
    let metrics: ProxyMetrics
    private let monitorBox = Locked<HealthMonitor?>(nil)
    private let metricsEndpointBox = Locked<MetricsEndpoint?>(nil)
    private let pausedFlag = Atomic<Bool>(false)
    private let shuttingDownFlag = Atomic<Bool>(false)

    /// Health, lag and replay positions of every backend (nil before start).
    var monitor: HealthMonitor? { monitorBox.withLock { $0 } }
    /// PAUSE on the admin console: sessions finish their transactions but start no new ones.
    var isPaused: Bool { pausedFlag.load(ordering: .relaxed) }
    /// SIGTERM / SHUTDOWN: sessions close as soon as they are idle.
    var isShuttingDown: Bool { shuttingDownFlag.load(ordering: .relaxed) }

    /// Idle backend connections, one pool per loop.
    private let pools: [ObjectIdentifier: BackendPool]
    /// Statement templates passed from session to session, one shelf per loop.
    private let shelves: [ObjectIdentifier: TemplateShelf]

    /// Bumped whenever a database's function catalog changes; sessions compare it before each batch.
    var catalogGeneration: Int { catalogGenerationCounter.load(ordering: .acquiring) }

    init(config: ProxyConfig, configPath: String, group: EventLoopGroup, policies: [String: FunctionPolicy]) {
        self.current = Locked(config)
        self.configPath = configPath
        self.metrics = ProxyMetrics(databases: config.databases.map(\.name))
        self.group = group
        var classifiers: [String: Classifier] = [:]
        for database in config.databases {
            classifiers[database.name] = Classifier(policy: policies[database.name] ?? FunctionPolicy())
        }
        self.classifiers = Locked(classifiers)
        var pools: [ObjectIdentifier: BackendPool] = [:]
        for loop in group.loops { pools[ObjectIdentifier(loop)] = BackendPool(loop: loop, settings: config.pool) }
        self.pools = pools
        var shelves: [ObjectIdentifier: TemplateShelf] = [:]
        for loop in group.loops { shelves[ObjectIdentifier(loop)] = TemplateShelf() }
        self.shelves = shelves
    }

    /// The pool of idle backend connections for `loop` (use it only on that loop).
    func pool(for loop: EventLoop) -> BackendPool { pools[ObjectIdentifier(loop)]! }

    /// The statement templates shelf for `loop` (use it only on that loop).
    func templateShelf(for loop: EventLoop) -> TemplateShelf { shelves[ObjectIdentifier(loop)]! }

    func start() throws {
        let config = self.config
        var opened: [Listener] = []
        for address in config.listen {
            let host = address.listensOnAllInterfaces ? "0.0.0.0" : address.host
            let listener = try Listener(host: host, port: address.port, group: group, reusePort: config.reusePort)
            listener.start { [self] connection in accept(connection) }
            Log.info("listening on \(address)")
            opened.append(listener)
        }
        listeners.withLock { $0 = opened }
        let monitor = HealthMonitor(config: config, group: group, metrics: metrics)
        monitor.start()
        monitorBox.withLock { $0 = monitor }
        scheduleIdleSweep()
        if let address = config.operations.metricsListen {
            let endpoint = try MetricsEndpoint(address: address, group: group, metrics: metrics)
            endpoint.start()
            metricsEndpointBox.withLock { $0 = endpoint }
            Log.info("metrics on http://\(address)/metrics")
        }
    }

    private func accept(_ connection: Connection) {
        let config = self.config
        let id = nextSessionID.wrappingAdd(1, ordering: .relaxed).oldValue
        // Every open client connection counts, logged in or not: a flood of silent sockets must not
        // get past max_client_conn. Over the limit a client still gets its SSLRequest answered and
        // then 53300 at its startup packet, as PostgreSQL does; far over it, the socket is just closed.
        let open = openClients.wrappingAdd(1, ordering: .relaxed).newValue
        if open > 2 * config.maxClientConnections + 100 {
            openClients.wrappingSubtract(1, ordering: .relaxed)
            metrics.clientRefused()
            connection.close()
            return
        }
        var refusal: String?
        if isShuttingDown {
            refusal = "the pgsplit server is shutting down"
        } else if open > config.maxClientConnections {
            refusal = "sorry, too many clients already (max_client_conn = \(config.maxClientConnections))"
        }
        if refusal != nil { metrics.clientRefused() }
        let handler = ClientHandler(server: self, client: connection, id: id, config: config, refusal: refusal)
        handler.start()
    }

    // MARK: Sessions and cancel keys

    func register(_ handler: ClientHandler) -> CancelKey {
        sessions.withLock { sessions in
            // The process id is the session number; the secret is random, so keys cannot be guessed.
            let processID = Int32(truncatingIfNeeded: handler.id & 0x7fff_ffff)
            while true {
                let key = CancelKey(processID: processID, secretKey: SecureRandom.int32())
                if sessions[key] == nil {
                    sessions[key] = handler
                    return key
                }
            }
        }
    }

    func unregister(_ handler: ClientHandler) {
        let key = handler.cancelKey
        sessions.withLock { sessions in
            if sessions[key] === handler { sessions[key] = nil }
        }
    }

    var sessionCount: Int { sessions.withLock { $0.count } }

    func cancel(_ key: CancelKey) {
        guard let handler = sessions.withLock({ $0[key] }) else { return }
        handler.loop.execute { handler.cancelRunningStatement() }
    }

    // MARK: Function catalog

    func classifier(for database: String) -> Classifier {
        classifiers.withLock { $0[database] } ?? Classifier(policy: FunctionPolicy())
    }

    /// DDL may have created or changed functions, or a statement called names the catalog did not
    /// know (`learning`): reload that database's catalog, then call `done` (from any thread). Names
    /// still unknown afterwards are remembered as not being functions (column-list aliases and the
    /// like), so they never cause another lookup.
    func refreshFunctions(database: String, learning names: [String] = [], done: @escaping @Sendable () -> Void) {
        let config = self.config
        guard let db = config.database(named: database) else { return done() }
        FunctionCatalog.load(database: db, config: config, on: group.next()) { [self] policy in
            classifiers.withLock { classifiers in
                var fresh = policy ?? classifiers[database]?.policy ?? FunctionPolicy()
                let notFunctions = notFunctionNames.withLock { table in
                    for name in names where !fresh.knownFunctions.contains(name) && (table[database]?.count ?? 0) < 50_000 {
                        table[database, default: []].insert(name)
                    }
                    return table[database] ?? []
                }
                if !fresh.knownFunctions.isEmpty { fresh.knownFunctions.formUnion(notFunctions) }
                classifiers[database] = Classifier(policy: fresh)
            }
            catalogGenerationCounter.wrappingAdd(1, ordering: .releasing)
            done()
        }
    }

    // MARK: Logins

    /// SCRAM secrets derived from plain auth_file passwords, by user and password.
    private let derivedSCRAMSecrets = Locked<[String: String]>([:])

    /// The SCRAM secret for a plain auth_file password, derived (4,096 PBKDF2 rounds) at its first
    /// login only. A changed password is a new entry; a reload forgets them all.
    func derivedSCRAMSecret(user: String, password: String) -> String {
        let key = user + "\u{0}" + password
        if let known = derivedSCRAMSecrets.withLock({ $0[key] }) { return known }
        let derived = SCRAMSecret.make(password: password).stringValue
        derivedSCRAMSecrets.withLock { secrets in
            if secrets.count >= 10_000 { secrets.removeAll() }
            secrets[key] = derived
        }
        return derived
    }

    func knownLogin(_ key: BackendPool.Key) -> KnownLogin? { knownLogins.withLock { $0[key] } }

    func rememberLogin(_ key: BackendPool.Key, _ login: KnownLogin) {
        knownLogins.withLock { logins in
            if logins.count >= 10_000 { logins.removeAll() }
            logins[key] = login
        }
    }

    // MARK: Reload

    /// Re-reads the configuration file and checks it exactly as at start. On success the new
    /// configuration is in force for new statements; on failure the running one stays. Blocks the
    /// calling thread: never call it on a loop.
    func reload() -> Result<String, ReloadFailure> {
        reloading.withLock { count in
            count += 1
            let fresh: ProxyConfig
            do {
                fresh = try ProxyConfig.load(path: configPath)
            } catch {
                return .failure(ReloadFailure(reason: "\(error)"))
            }
            let outcome = StartupChecks.run(config: fresh, group: group)
            for warning in outcome.warnings { Log.warning(warning) }
            if let refusal = outcome.refusals.first {
                return .failure(ReloadFailure(reason: refusal))
            }
            if fresh.listen != config.listen || fresh.reusePort != config.reusePort {
                Log.warning("reload: listen addresses and so_reuseport change only at restart")
            }
            classifiers.withLock { classifiers in
                for database in fresh.databases {
                    classifiers[database.name] = Classifier(policy: outcome.policies[database.name] ?? FunctionPolicy())
                }
            }
            current.withLock { $0 = fresh }
            knownLogins.withLock { $0.removeAll() }
            derivedSCRAMSecrets.withLock { $0.removeAll() }
            let monitor = HealthMonitor(config: fresh, group: group, metrics: metrics)
            monitor.start()
            let old = monitorBox.withLock { box in
                let old = box
                box = monitor
                return old
            }
            old?.stop()
            catalogGenerationCounter.wrappingAdd(1, ordering: .releasing)
            configGenerationCounter.wrappingAdd(1, ordering: .releasing)
            let summary = fresh.databases.map { db in
                "\(db.name): main \(db.main.label), " + (db.writeable.map { "writeable \($0.label)" } ?? "no writeable")
            }.joined(separator: "; ")
            return .success(summary)
        }
    }

    /// Once a second, sessions idle past client_idle_timeout / idle_transaction_timeout are closed.
    private func scheduleIdleSweep() {
        let loop = group.loops[0]
        loop.execute { [self] in
            _ = loop.scheduleTimer(after: 1) { [self] in
                let settings = config.operations
                if settings.clientIdleTimeout > .zero || settings.idleTransactionTimeout > .zero {
                    let now = MonotonicInstant.now
                    forEachHandler { $0.closeIfIdleTooLong(now: now) }
                }
                if !isShuttingDown { scheduleIdleSweep() }
            }
        }
    }

    // MARK: Pause, resume, shutdown

    func pause() { pausedFlag.store(true, ordering: .relaxed) }

    func resume() {
        pausedFlag.store(false, ordering: .relaxed)
        forEachHandler { $0.pumpClient() }
    }

    /// Stops accepting; every session closes once it is idle (a transaction in progress finishes).
    func beginShutdown() {
        shuttingDownFlag.store(true, ordering: .relaxed)
        stopListening()
        forEachHandler { $0.closeIfIdleForShutdown() }
    }

    /// Runs `body` on each logged-in session, on its own loop.
    func forEachHandler(_ body: @escaping @Sendable (ClientHandler) -> Void) {
        let handlers = sessions.withLock { Array($0.values) }
        for handler in handlers { handler.loop.execute { body(handler) } }
    }

    /// SHOW SESSIONS: one row per session, each built on its own loop; `done` runs once with all.
    func collectSessionRows(_ done: @escaping @Sendable ([AdminSessionRow]) -> Void) {
        let handlers = sessions.withLock { Array($0.values) }
        let collected = Locked<(rows: [AdminSessionRow], left: Int)>(([], handlers.count))
        if handlers.isEmpty { return done([]) }
        for handler in handlers {
            handler.loop.execute {
                let row = handler.adminRow()
                let finished: [AdminSessionRow]? = collected.withLock { state in
                    if let row { state.rows.append(row) }
                    state.left -= 1
                    return state.left == 0 ? state.rows : nil
                }
                if let finished { done(finished) }
            }
        }
    }

    // MARK: Shutdown

    func stopListening() {
        let current = listeners.withLock { listeners in
            let current = listeners
            listeners.removeAll()
            return current
        }
        for listener in current { listener.close() }
        metricsEndpointBox.withLock { $0?.close(); $0 = nil }
    }
}

struct ReloadFailure: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}
