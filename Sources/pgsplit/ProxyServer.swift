import DispatchTransport
import Foundation
import SplitConfig
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
    let config: ProxyConfig
    private let listeners = Mutex<[Listener]>([])
    private let sessions = Mutex<[CancelKey: ClientHandler]>([:])
    private let classifiers: Mutex<[String: Classifier]>
    private let nextSessionID = Atomic<Int>(1)
    private let catalogGenerationCounter = Atomic<Int>(0)
    /// Idle backend connections, one pool per loop.
    private let pools: [ObjectIdentifier: BackendPool]

    /// Bumped whenever a database's function catalog changes; sessions compare it before each batch.
    var catalogGeneration: Int { catalogGenerationCounter.load(ordering: .acquiring) }

    init(config: ProxyConfig, group: EventLoopGroup, policies: [String: FunctionPolicy]) {
        self.config = config
        self.group = group
        var classifiers: [String: Classifier] = [:]
        for database in config.databases {
            classifiers[database.name] = Classifier(policy: policies[database.name] ?? FunctionPolicy())
        }
        self.classifiers = Mutex(classifiers)
        var pools: [ObjectIdentifier: BackendPool] = [:]
        for loop in group.loops { pools[ObjectIdentifier(loop)] = BackendPool(loop: loop, settings: config.pool) }
        self.pools = pools
    }

    /// The pool of idle backend connections for `loop` (use it only on that loop).
    func pool(for loop: EventLoop) -> BackendPool { pools[ObjectIdentifier(loop)]! }

    func start() throws {
        var opened: [Listener] = []
        for address in config.listen {
            let host = address.listensOnAllInterfaces ? "0.0.0.0" : address.host
            let listener = try Listener(host: host, port: address.port, group: group)
            listener.start { [self] connection in accept(connection) }
            Log.info("listening on \(address)")
            opened.append(listener)
        }
        listeners.withLock { $0 = opened }
    }

    private func accept(_ connection: Connection) {
        let id = nextSessionID.wrappingAdd(1, ordering: .relaxed).oldValue
        let count = sessions.withLock { $0.count }
        if count >= config.maxClientConnections {
            var out = [UInt8]()
            let message = "sorry, too many clients already (max_client_conn = \(config.maxClientConnections))"
            out.append(UInt8(ascii: "E"))
            var body: [UInt8] = []
            for (code, value) in [("S", "FATAL"), ("V", "FATAL"), ("C", "53300"), ("M", message)] {
                body.append(Character(code).asciiValue!); body.append(contentsOf: value.utf8); body.append(0)
            }
            body.append(0)
            let len = UInt32(body.count + 4)
            out.append(contentsOf: [UInt8(len >> 24), UInt8((len >> 16) & 0xff), UInt8((len >> 8) & 0xff), UInt8(len & 0xff)])
            out.append(contentsOf: body)
            connection.start(onRead: { _ in }, onClose: { _ in })
            connection.write(out)
            connection.closeAfterFlush()
            return
        }
        let handler = ClientHandler(server: self, client: connection, id: id, config: config)
        handler.start()
    }

    // MARK: Sessions and cancel keys

    func register(_ handler: ClientHandler) -> CancelKey {
        sessions.withLock { sessions in
            // The process id is the session number; the secret is random, so keys cannot be guessed.
            let processID = Int32(truncatingIfNeeded: handler.id & 0x7fff_ffff)
            while true {
                let key = CancelKey(processID: processID, secretKey: Int32.random(in: Int32.min...Int32.max))
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

    /// DDL may have created or changed functions: reload that database's catalog, then call `done`
    /// (from any thread).
    func refreshFunctions(database: String, done: @escaping @Sendable () -> Void) {
        guard let db = config.database(named: database) else { return done() }
        FunctionCatalog.load(database: db, config: config, on: group.next()) { [self] policy in
            if let policy {
                classifiers.withLock { $0[database] = Classifier(policy: policy) }
                catalogGenerationCounter.wrappingAdd(1, ordering: .releasing)
            }
            done()
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
    }
}
