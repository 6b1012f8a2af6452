import Foundation
import DispatchTransport
import PostgresWire
import SplitConfig
import SplitCore
import StatementClassifier

/// One client connection, from its startup packet to its last byte: the thin I/O shell around a
/// `Session`. Everything here runs on the client connection's loop, and so do its backends.
///
/// Sendable by confinement: every property is touched only on `loop.queue` — all entry points are
/// transport callbacks on that loop, or closures hopped there with `loop.execute`.
final class ClientHandler: @unchecked Sendable {
    enum Phase {
        case startup
        case authenticating(ClientAuthenticator)
        case connectingMain
        case ready
        /// Logged in to the admin console (database "pgsplit").
        case admin
        case closed
    }

    let server: ProxyServer
    let client: Connection
    let loop: EventLoop
    /// This loop's idle backend connections, and its shelf of statement templates.
    let pool: BackendPool
    let templateShelf: TemplateShelf
    let id: Int
    var config: ProxyConfig
    var configGeneration: Int
    var phase = Phase.startup {
        didSet { if case .ready = phase { isReady = true } else { isReady = false } }
    }
    /// `phase == .ready`, kept as a plain flag: matching the enum on every message copies its payload.
    private(set) var isReady = false

    // Startup-phase input (framed with PostgresWire); after login, `clientInput`.
    var startupBuffer = ByteBuffer(capacity: 256)
    var clientInput = InputBuffer()

    var user = ""
    var databaseName = ""
    var database: DatabaseConfig? { didSet { logins = [nil, nil] } }
    var startupParameters: [(String, String)] = []
    var authResult: ClientAuthSuccess? { didSet { logins = [nil, nil] } }
    /// Each backend's login and pool key, made once: a client that connects for one statement looks
    /// them up three times (the known-login check, the open, the release), and making a key hashes the
    /// whole backend address.
    private var logins: [LoginPlan?] = [nil, nil]
    /// The key this client gets in BackendKeyData, for cancel requests.
    var cancelKey = CancelKey(processID: 0, secretKey: 0)

    var session: Session?
    var recorder: SessionMetricsRecorder?
    /// Read-your-writes: where main must have replayed to before this session reads there again.
    var replayGate = ReadYourWritesGate()
    /// The admin console is answering a query (it may wait for other loops or a reload).
    var adminBusy = false
    var health: HealthBoard?
    /// The health board version the read placement was last computed from (nil: compute again).
    var placementVersion: UInt64?
    let connectedAt = Int64(Date().timeIntervalSince1970)
    /// When the client last sent something or last got a complete answer (idle timeouts).
    var lastActivity = MonotonicInstant.now
    /// The function catalog generation this session's classifier was built from.
    var catalogGeneration = 0
    /// DDL changed functions: the next statement waits for the refreshed catalog.
    var waitingForCatalog = false
    var backends: [BackendConnection?] = [nil, nil]
    var loginTimer: TimerHandle?
    /// What the session said while a ShellOutput carried its requests (see `ShellOutput.closing`).
    var pendingCloseReason = ""
    var pendingLearnNames: [String] = []

    /// Set when the client is over max_client_conn (or the proxy is shutting down): its startup
    /// packet is answered with this FATAL.
    let refusal: String?

    init(server: ProxyServer, client: Connection, id: Int, config: ProxyConfig, refusal: String? = nil) {
        self.refusal = refusal
        self.server = server
        self.client = client
        self.loop = client.loop
        pool = server.pool(for: client.loop)
        templateShelf = server.templateShelf(for: client.loop)
        self.id = id
        self.config = config
        self.configGeneration = server.configGeneration
    }

    // MARK: - Start and startup packet

    func start() {
        server.metrics.clientConnected()
        client.start(onRead: { [self] bytes in clientRead(bytes) },
                     onClose: { [self] _ in clientClosed() })
        client.onWritableAgain = { [self] in
            for backend in backends { backend?.connection.resumeReading() }
        }
        let timeout = Double(config.clientLoginTimeout.components.seconds)
        loginTimer = loop.scheduleTimer(after: max(1, timeout)) { [self] in
            if case .ready = phase { return }
            if case .closed = phase { return }
            fail(code: SQLState.connectionFailure, message: "client did not finish logging in within \(Int(timeout)) s")
        }
    }

    func clientRead(_ bytes: UnsafeRawBufferPointer) {
        let now = MonotonicInstant.now
        lastActivity = now
        // The per-message case, checked without matching `phase` (that copies its payload).
        if isReady {
            pumpClient(now: now, arriving: bytes)
            return
        }
        switch phase {
        case .ready, .closed:  // .ready: taken above
            return
        case .connectingMain:
            clientInput.append(bytes)
        case .admin:
            clientInput.append(bytes)
            serveAdminInput()
        case .startup, .authenticating:
            startupBuffer.append(contentsOf: bytes)
            processStartupBytes()
        }
    }

    func processStartupBytes() {
        while true {
            switch phase {
            case .startup:
                switch startupBuffer.frameStartupPacket() {
                case .needMore:
                    return
                case .invalid(let why):
                    fail(code: SQLState.protocolViolation, message: why)
                    return
                case .message(_, let payload):
                    let packet: StartupPacket
                    do {
                        packet = try StartupPacket.decode(startupBuffer.storage[payload])
                    } catch {
                        fail(code: error.sqlState, message: error.message)
                        return
                    }
                    startupBuffer.moveReaderIndex(to: payload.upperBound)
                    handleStartupPacket(packet)
                }
            case .authenticating(var authenticator):
                switch startupBuffer.frameMessage(maxMessageSize: 65536) {
                case .needMore:
                    return
                case .invalid(let why):
                    fail(code: SQLState.protocolViolation, message: why)
                    return
                case .message(let type, let payload):
                    guard type == UInt8(ascii: "p") else {
                        fail(code: SQLState.protocolViolation,
                             message: "expected a password message, got message type \"\(Character(UnicodeScalar(type)))\"")
                        return
                    }
                    let action = authenticator.received(type: type, payload: startupBuffer.storage[payload])
                    startupBuffer.moveReaderIndex(to: payload.upperBound)
                    phase = .authenticating(authenticator)
                    handleAuthAction(action)
                }
            case .connectingMain, .ready, .admin:
                // Bytes sent ahead of our ReadyForQuery: keep them for the session.
                let rest = startupBuffer.readableArray
                startupBuffer.clear()
                rest.withUnsafeBytes { clientInput.append($0) }
                return
            case .closed:
                return
            }
        }
    }

    func handleStartupPacket(_ packet: StartupPacket) {
        switch packet {
        case .sslRequest:
            // `S` and a TLS handshake when client_tls_* offers TLS, else `N` (see BackendLink.swift).
            answerSSLRequest()
        case .gssEncRequest:
            // No GSS encryption: the client goes on in the clear (or gives up, per its gssencmode).
            client.write([UInt8(ascii: "N")])
        case .cancel(let pid, let key):
            server.cancel(CancelKey(processID: pid, secretKey: key))
            close()
        case .startup(let version, let parameters):
            if let refusal {
                fail(code: refusal.hasPrefix("sorry") ? SQLState.tooManyConnections : SQLState.adminShutdown,
                     message: refusal)
                return
            }
            user = StartupPacket.parameter("user", in: parameters) ?? ""
            databaseName = StartupPacket.parameter("database", in: parameters) ?? user
            if let replication = StartupPacket.parameter("replication", in: parameters),
               !["false", "off", "no", "0"].contains(replication.lowercased()) {
                // A walsender speaks its own commands (IDENTIFY_SYSTEM, START_REPLICATION) that no
                // statement routing applies to: say so at login instead of failing on the first one.
                fail(code: SQLState.featureNotSupported, message: "pgsplit does not proxy replication connections",
                     hint: "Connect pg_basebackup, pg_receivewal, pg_recvlogical and subscriptions to the primary directly.")
                return
            }
            // Protocol extensions (`_pq_.` options) are not passed on: a backend would answer them with
            // NegotiateProtocolVersion, which is the proxy's to send to its client.
            startupParameters = parameters.filter {
                !["user", "database", "replication"].contains($0.0) && !$0.0.hasPrefix("_pq_.")
            }
            let extensions = parameters.map(\.0).filter { $0.hasPrefix("_pq_.") }
            if version & 0xFFFF != 0 || !extensions.isEmpty {
                // Asked for a newer 3.x or for extensions: say what is served (3.0, none of them), or
                // the client would take its request as granted.
                var out = ByteBuffer(capacity: 64)
                out.writeNegotiateProtocolVersion(newestVersion: StartupCode.protocolVersion3, unrecognized: extensions)
                client.write(out.readableArray)
            }
            if let refusal = tlsLoginRefusal() {
                // TLS required but not used, or auth_type = cert and no matching certificate.
                Log.info("session \(id): login refused for user \"\(user)\" from \(client.remoteAddress): \(refusal.message)")
                fail(code: SQLState.invalidAuthorizationSpecification, message: refusal.message, hint: refusal.hint)
                return
            }
            if databaseName == AdminConsoleSession.databaseName {
                startAdminLogin()
                return
            }
            guard let database = config.database(named: databaseName) else {
                fail(code: SQLState.invalidCatalogName, message: "database \"\(databaseName)\" does not exist",
                     hint: "pgsplit serves: \(config.databases.map(\.name).joined(separator: ", ")).")
                return
            }
            self.database = database
            let method: ClientAuthMethod
            switch config.authType {
            case .trust: method = .trust
            case .md5: method = .md5
            case .password: method = .password
            case .cert: method = .trust // the certificate was checked by tlsLoginRefusal()
            default: method = .scramSHA256
            }
            var authenticator = ClientAuthenticator(method: method, user: user,
                                                    storedSecret: loginSecret(for: method),
                                                    channelBinding: client.tlsPeer?.channelBinding)
            let action = authenticator.start()
            phase = .authenticating(authenticator)
            handleAuthAction(action)
        }
    }

    func handleAuthAction(_ action: ClientAuthAction) {
        switch action {
        case .send(let bytes):
            client.write(bytes)
        case .failed(let error, let bytes):
            Log.info("session \(id): login refused for user \"\(user)\" from \(client.remoteAddress): \(error.message)")
            client.write(bytes)
            close()
        case .authenticated(let success, let bytes):
            authResult = success
            client.write(bytes)
            if databaseName == AdminConsoleSession.databaseName {
                finishAdminLogin()
                return
            }
            // A login like one seen before is answered from what main reported then: the backend
            // connection is opened (or taken from the pool) only when the client sends a statement,
            // so idle clients hold no backend connection.
            if let main = loginPlan(for: .main), let known = server.knownLogin(main.key) {
                finishLogin(greeting: known.greeting(hasWriteable: database?.writeable != nil), mainIsOpen: false)
                pumpClient()
                return
            }
            phase = .connectingMain
            if loginSkipsMain {
                // The health check already found main down: waiting for it to fail (up to
                // connect_timeout on a server that no longer answers) would only delay the client.
                Log.info("session \(id): logging in through the writeable backend while main is down")
                openBackend(.writeable)
                return
            }
            openBackend(.main)
        }
    }

    /// Whether a login goes straight to writeable: main was found down by its last check, a writeable
    /// backend exists and reads may fall back to it.
    private var loginSkipsMain: Bool {
        guard database?.writeable != nil, config.readFallback == .writeable,
              let board = server.monitor?.board(for: databaseName) else { return false }
        return board.snapshot.main.state == .down
    }

    // MARK: - Backends

    /// Where and as whom a backend connection logs in.
    func login(for role: BackendRole) -> BackendLogin? {
        guard let database else { return nil }
        let address: BackendAddress
        switch role {
        case .main:
            address = database.databaseRouting ? database.backend(forRoutedUser: user) : database.main
        case .writeable:
            guard let writeable = database.writeable else { return nil }
            address = writeable
        }
        let backendUser = address.user ?? user
        let credential: BackendCredential
        if let password = address.password {
            credential = .password(password)
        } else if address.user != nil {
            credential = .none
        } else {
            // The client's own user: a known password works with every server method; SCRAM keys
            // learned from the client only match a backend that stores the same SCRAM secret.
            switch config.userlist?[user] {
            case .plain(let password)?:
                credential = .password(password)
            case .md5(let hash)?:
                credential = authResult?.cleartextPassword.map { .password($0) } ?? .md5Hash("md5" + hash)
            default:
                if let plain = authResult?.cleartextPassword {
                    credential = .password(plain)
                } else if let keys = authResult?.scramKeys {
                    credential = .scramKeys(clientKey: keys.clientKey, serverKey: keys.serverKey)
                } else {
                    credential = .none
                }
            }
        }
        return BackendLogin(address: address, user: backendUser, database: address.dbname ?? databaseName,
                            credential: credential, parameters: startupParameters)
    }

    /// `login(for:)` and its pool key, remembered until the database or the client's credentials change.
    func loginPlan(for role: BackendRole) -> LoginPlan? {
        if let known = logins[role.rawValue] { return known }
        guard let login = login(for: role) else { return nil }
        let made = LoginPlan(login: login, key: BackendPool.Key(login))
        logins[role.rawValue] = made
        return made
    }

    func openBackend(_ role: BackendRole) {
        guard let plan = loginPlan(for: role) else {
            backendOpenFailed(role, reason: "no \(role) backend is configured")
            return
        }
        if let pooled = pool.take(plan.key) {
            backendOpened(role, BackendConnector.Opened(connection: pooled.connection, info: pooled.info, leftover: []),
                          plan: plan, createdAt: pooled.createdAt)
            return
        }
        let timeout = Double(config.connectTimeout.components.seconds) + Double(config.connectTimeout.components.attoseconds) / 1e18
        BackendConnector.open(plan.login, on: loop, timeout: max(timeout, 0.1)) { [self] result in
            switch result {
            case .failure(let failure):
                backendOpenFailed(role, reason: "\(role) backend \(plan.login.address.label): \(failure.description)",
                                  serverError: { if case .refused(.server(let f)) = failure { return f } else { return nil } }(),
                                  unreachable: { if case .unreachable = failure { return true } else { return false } }())
            case .success(let opened):
                backendOpened(role, opened, plan: plan)
            }
        }
    }

    func backendOpened(_ role: BackendRole, _ opened: BackendConnector.Opened, plan: LoginPlan,
                       createdAt: ContinuousClock.Instant = .now) {
        if case .closed = phase {
            pool.release(opened.connection, key: plan.key, info: opened.info, createdAt: createdAt)
            return
        }
        let metrics = server.metrics.database(databaseName).target(role)
        let backend = BackendConnection(role: role, connection: opened.connection, info: opened.info,
                                        plan: plan, createdAt: createdAt, metrics: metrics)
        metrics.backendConnectionOpened()
        backends[role.rawValue] = backend
        opened.connection.start(onRead: { [self] bytes in backendRead(role, bytes) },
                                onClose: { [self] error in backendClosed(role, error) })
        if case .connectingMain = phase {
            let known = KnownLogin(info: opened.info, hasWriteable: database?.writeable != nil)
            if role == .main {
                server.rememberLogin(backend.poolKey, known)
                finishLogin(greeting: known.greeting)
            } else {
                // Main was unreachable (see backendOpenFailed): writeable's greeting, not remembered
                // as main's.
                finishLogin(greeting: known.greeting, mainIsOpen: false)
            }
        } else {
            session?.backendOpened(role)
            session?.setBackendProcessID(backend.keyData?.processID ?? 0, for: role)
        }
        if !opened.leftover.isEmpty {
            opened.leftover.withUnsafeBytes { backendRead(role, $0) }
        }
        pumpClient()
    }

    /// `unreachable`: no server answered in time (as opposed to one refusing the login).
    func backendOpenFailed(_ role: BackendRole, reason: String, serverError: ErrorFields? = nil, unreachable: Bool = false) {
        server.metrics.database(databaseName).target(role).backendConnectionFailed()
        Log.warning("session \(id): cannot open \(reason)")
        if case .connectingMain = phase, role == .main, unreachable, database?.writeable != nil,
           config.readFallback == .writeable {
            // Reads may fall back to writeable while main is down, so the login may too: the client
            // is greeted with writeable's parameters, and its reads return to main once it is back.
            Log.info("session \(id): logging in through the writeable backend while main is unreachable")
            openBackend(.writeable)
            return
        }
        if case .connectingMain = phase {
            // The client cannot log in without main: answer as PostgreSQL would, with the server's
            // own error when it gave one.
            if let serverError {
                var out = ByteBuffer()
                var fields = serverError
                if fields.severity != "FATAL" { fields = ErrorFields(severity: "FATAL", code: fields.code, message: fields.message, detail: fields.detail, hint: fields.hint) }
                out.writeErrorResponse(fields)
                client.write(out.readableArray)
                close()
            } else {
                fail(code: SQLState.connectionFailure, message: "pgsplit cannot reach the \(reason)")
            }
            return
        }
        var out = ByteBuffer()
        if let serverError {
            out.writeErrorResponse(severity: "ERROR", code: serverError.code,
                                   message: "the \(role) backend refused the connection: \(serverError.message)",
                                   detail: nil, hint: serverError.hint)
        } else {
            out.writeErrorResponse(severity: "ERROR", code: SQLState.connectionFailure,
                                   message: "pgsplit cannot reach the \(reason)",
                                   detail: nil, hint: "Check that the \(role) backend is running, then retry.")
        }
        session?.backendOpenFailed(role, error: out.readableArray)
        pumpClient()
    }

    /// The ParameterStatus messages a client gets for what main reported at login.
    static func greeting(for info: BackendSessionInfo, hasWriteable: Bool) -> [UInt8] {
        var out = ByteBuffer(capacity: 512)
        for (name, value) in info.parameters {
            // The client's session can write when a writeable backend exists, even though main is a
            // standby: say so, or libpq's target_session_attrs=read-write and pgJDBC's
            // targetServerType=primary would refuse the connection.
            let reported = hasWriteable && (name == "in_hot_standby" || name == "default_transaction_read_only") ? "off" : value
            out.writeParameterStatus(name: name, value: reported)
        }
        return out.readableArray
    }

    /// Main is open (or known, or unreachable and writeable open instead): tell the client what the
    /// backend reported, give it our own key, and start the session.
    func finishLogin(greeting: [UInt8], mainIsOpen: Bool = true) {
        loginTimer?.cancel()
        loginTimer = nil
        // What only the login needed goes: an idle client keeps nothing it will not use (a backend
        // opened later makes its login plan again; one open now holds its own).
        logins = [nil, nil]
        if startupBuffer.readableBytes == 0 { startupBuffer = ByteBuffer(capacity: 0) }
        let hasWriteable = database?.writeable != nil
        let defaults = TransactionDefaults(startupParameters: startupParameters)
        var out = ByteBuffer(capacity: greeting.count + 64)
        greeting.withUnsafeBytes { out.append(contentsOf: $0) }
        if hasWriteable && defaults.readOnly {
            // The greeting says "off" for a session that can write; this client made its own read-only
            // (options=-c default_transaction_read_only=on). The later report of a name wins.
            out.writeParameterStatus(name: "default_transaction_read_only", value: "on")
        }
        cancelKey = server.register(self)
        out.writeBackendKeyData(processID: cancelKey.processID, secretKey: cancelKey.secretKey)
        out.writeReadyForQuery(.idle)
        client.write(out.readableArray)
        catalogGeneration = server.catalogGeneration
        recorder = SessionMetricsRecorder(database: server.metrics.database(databaseName))
        health = server.monitor?.board(for: databaseName)
        session = Session(settings: SessionSettings(hasWriteable: hasWriteable, maxMessageSize: config.maxMessageSize,
                                                    logRouting: config.logRouting),
                          classifier: server.classifier(for: databaseName), mainIsOpen: mainIsOpen,
                          defaults: defaults)
        if let templates = templateShelf.templates(database: databaseName, generation: catalogGeneration) {
            session!.adoptTemplates(templates)
        }
        session!.clientProcessID = cancelKey.processID
        if let main = backends[BackendRole.main.rawValue] {
            session!.setBackendProcessID(main.keyData?.processID ?? 0, for: .main)
        }
        if let writeable = backends[BackendRole.writeable.rawValue] {
            // Logged in through writeable (main was unreachable): the session starts with it open.
            session!.backendOpened(.writeable)
            session!.setBackendProcessID(writeable.keyData?.processID ?? 0, for: .writeable)
        }
        phase = .ready
    }

    // MARK: - Reload

    /// A reload happened: an idle session moves to the new backends (a transaction in progress, or a
    /// session pinned to its writeable connection, finishes where it started and moves later).
    func adoptNewConfiguration() {
        guard let current = session, current.isIdle, current.pinned == nil, !current.isOpeningBackend else { return }
        let fresh = server.config
        configGeneration = server.configGeneration
        // A reload starts a new monitor: follow its board (the old one is no longer updated). A
        // commit still waiting to be replayed waits for the new board's next writeable poll instead.
        health = server.monitor?.board(for: databaseName)
        placementVersion = nil
        if replayGate.isWaiting, let health { replayGate.wrote(health) }
        guard let newDatabase = fresh.database(named: databaseName), let oldDatabase = database else { return }
        config = fresh
        database = newDatabase
        let oldMain = oldDatabase.databaseRouting ? oldDatabase.backend(forRoutedUser: user) : oldDatabase.main
        let newMain = newDatabase.databaseRouting ? newDatabase.backend(forRoutedUser: user) : newDatabase.main
        var forget: [BackendRole] = []
        if oldMain != newMain { forget.append(.main) }
        if oldDatabase.writeable != newDatabase.writeable { forget.append(.writeable) }
        guard !forget.isEmpty || (oldDatabase.writeable == nil) != (newDatabase.writeable == nil) else { return }
        for role in forget {
            guard let backend = backends[role.rawValue] else { continue }
            backends[role.rawValue] = nil
            backend.metrics.backendConnectionClosed()
            pool.release(backend.connection, key: backend.poolKey, info: backend.info, createdAt: backend.createdAt)
        }
        session!.reconfigure(hasWriteable: newDatabase.writeable != nil, forget: forget)
        Log.info("session \(id): moved to the reloaded configuration")
    }

    // MARK: - Moving bytes

    /// Routes what the client sent as far as the session allows. `now` is the time of the event
    /// that led here (one clock read per event, shared by the metrics of every unit it moves).
    /// Hands the client's input to the session. `arriving`: bytes just read, taken straight from the
    /// read buffer when nothing older waits; only what the session leaves is copied into `clientInput`.
    func pumpClient(now: MonotonicInstant = .now, arriving: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        var fresh = arriving
        if !fresh.isEmpty && !clientInput.isEmpty {
            clientInput.append(fresh)
            fresh = UnsafeRawBufferPointer(start: nil, count: 0)
        }
        // A read main refused waits for writeable with no client input (Session+MainRefusals.swift).
        guard isReady, !clientInput.isEmpty || !fresh.isEmpty || session?.retryPending == true, session != nil,
              !waitingForCatalog else {
            if !fresh.isEmpty { clientInput.append(fresh) }
            return
        }
        if server.configGeneration != configGeneration { adoptNewConfiguration() }
        if server.isPaused && session!.isIdle {
            if !fresh.isEmpty { clientInput.append(fresh) }
            return
        }
        updateReadPlacement()
        let generation = server.catalogGeneration
        if generation != catalogGeneration {
            catalogGeneration = generation
            session!.classifier = server.classifier(for: databaseName)
        }
        var out = ShellOutput(handler: self, now: now)
        if fresh.isEmpty {
            let consumed = clientInput.withUnreadBytes { bytes in session!.clientInput(bytes, &out) }
            clientInput.consume(consumed)
        } else {
            let consumed = session!.clientInput(fresh, &out)
            if consumed < fresh.count { clientInput.append(UnsafeRawBufferPointer(rebasing: fresh[consumed...])) }
        }
        out.flush()
        if server.isShuttingDown { closeIfIdleForShutdown() }
        // A client that pipelines far ahead of its answers waits until they drain; one large message
        // still arriving is read on (max_message_size bounds it).
        if clientInput.count > 4 << 20 && bufferedClientMessagesAreComplete { client.pauseReading() } else { client.resumeReading() }
    }

    /// True when no message in the buffered client input is still arriving (so it waits for the
    /// session, not for more bytes). Walked only when more than 4 MB are buffered.
    var bufferedClientMessagesAreComplete: Bool {
        clientInput.withUnreadBytes { bytes in
            var offset = 0
            while bytes.count - offset >= 5 {
                let length = Int(UInt32(bytes[offset + 1]) << 24 | UInt32(bytes[offset + 2]) << 16
                                 | UInt32(bytes[offset + 3]) << 8 | UInt32(bytes[offset + 4]))
                if bytes.count - offset < 1 + length { return false }
                offset += 1 + length
            }
            return offset == bytes.count
        }
    }

    func backendRead(_ role: BackendRole, _ bytes: UnsafeRawBufferPointer) {
        guard isReady, let backend = backends[role.rawValue] else { return }
        backend.countBytesToClient(bytes.count)
        let now = MonotonicInstant.now
        var out = ShellOutput(handler: self, now: now)
        client.beginBatch()
        if backend.input.isEmpty {
            // Fast path: forward straight from the transport's buffer, keep only a partial tail.
            let consumed = session!.backendInput(role, bytes, &out)
            if consumed < bytes.count {
                backend.input.append(UnsafeRawBufferPointer(rebasing: bytes[consumed...]))
            }
        } else {
            backend.input.append(bytes)
            let consumed = backend.input.withUnreadBytes { session!.backendInput(role, $0, &out) }
            backend.input.consume(consumed)
        }
        client.endBatch()
        out.flush()
        if client.isAboveHighWater { backend.connection.pauseReading() }
        pumpClient(now: now)
        if server.isShuttingDown && clientInput.isEmpty { closeIfIdleForShutdown() }
    }

    func backendClosed(_ role: BackendRole, _ error: TransportError?) {
        guard let backend = backends[role.rawValue] else { return }
        backends[role.rawValue] = nil
        backend.metrics.backendConnectionClosed()
        guard case .ready = phase else { return }
        Log.info("session \(id): \(role) backend closed\(error.map { ": \($0)" } ?? "")")
        var out = ShellOutput(handler: self, now: .now)
        session?.backendClosed(role, &out)
        out.flush()
        pumpClient()
    }

    // MARK: - Cancel

    /// Forwards a cancel request to the backend running this client's statement, with its key.
    func cancelRunningStatement() {
        guard let role = session?.activeBackend, let backend = backends[role.rawValue],
              let key = backend.keyData else { return }
        let address = backend.address
        Connection.connect(host: address.hostaddr ?? address.host, port: address.port, on: loop, timeout: 5) { result in
            guard case .success(let connection) = result else { return }
            var out = ByteBuffer(capacity: 16)
            out.writeCancelRequest(processID: key.processID, secretKey: key.secretKey)
            connection.start(onRead: { _ in }, onClose: { _ in })
            connection.write(out.readableArray)
            connection.closeAfterFlush()
        }
    }

    // MARK: - Ending

    func fail(code: String, message: String, hint: String? = nil) {
        var out = ByteBuffer()
        out.writeErrorResponse(severity: "FATAL", code: code, message: message, detail: nil, hint: hint)
        client.write(out.readableArray)
        close()
    }

    /// Closes the client (after its pending output) and the backends.
    func close() {
        if case .closed = phase { return }
        phase = .closed
        server.clientClosed()
        server.metrics.clientDisconnected()
        loginTimer?.cancel()
        loginTimer = nil
        server.unregister(self)
        client.closeAfterFlush()
        // A backend with nothing in flight and no transaction open goes back to the pool (reset
        // there); any other is closed, so the server rolls back whatever the client left — and so is
        // one whose session defined a custom setting, which no reset undefines.
        let reusable = session.map { !$0.hasUnitsInFlight && $0.transaction == nil && !$0.definedCustomSettings } ?? false
        for backend in backends {
            guard let backend else { continue }
            backend.metrics.backendConnectionClosed()
            if reusable && backend.input.isEmpty {
                pool.release(backend.connection, key: backend.poolKey, info: backend.info,
                             createdAt: backend.createdAt)
            } else {
                backend.connection.onRead = nil
                backend.connection.onClose = nil
                backend.connection.write([UInt8(ascii: "X"), 0, 0, 0, 4])
                backend.connection.closeAfterFlush()
            }
        }
        backends = [nil, nil]
        if let templates = session?.templatesToPassOn {
            templateShelf.keep(templates, database: databaseName, generation: catalogGeneration)
        }
        session = nil
    }

    func clientClosed() {
        close()
    }
}

/// What a main backend reported at login, kept so that the next client logging in the same way is
/// answered without opening a backend connection — with its ParameterStatus messages encoded once.
struct KnownLogin: Sendable {
    let info: BackendSessionInfo
    /// Whether `greeting` was made for a database with a writeable backend.
    let hasWriteable: Bool
    let greeting: [UInt8]

    init(info: BackendSessionInfo, hasWriteable: Bool) {
        self.info = info
        self.hasWriteable = hasWriteable
        greeting = ClientHandler.greeting(for: info, hasWriteable: hasWriteable)
    }

    /// The greeting for a database with (or without) a writeable backend: the stored one when it was
    /// made for the same case (two databases may share a main backend and differ in this).
    func greeting(hasWriteable wanted: Bool) -> [UInt8] {
        wanted == hasWriteable ? greeting : ClientHandler.greeting(for: info, hasWriteable: wanted)
    }
}

/// A backend connection of a session.
/// A backend login and its pool key, made once per client and role and shared by reference.
final class LoginPlan {
    let login: BackendLogin
    let key: BackendPool.Key

    init(login: BackendLogin, key: BackendPool.Key) {
        self.login = login
        self.key = key
    }
}

final class BackendConnection {
    let role: BackendRole
    let connection: Connection
    let info: BackendSessionInfo
    /// Where and as whom it logged in, and the pool it goes back to when the client leaves.
    let plan: LoginPlan
    let createdAt: ContinuousClock.Instant
    /// Its target's counters, at hand for the per-message byte counts.
    let metrics: TargetMetrics
    var input = InputBuffer()

    var keyData: BackendKeyData? { info.keyData }
    var address: BackendAddress { plan.login.address }
    var poolKey: BackendPool.Key { plan.key }

    init(role: BackendRole, connection: Connection, info: BackendSessionInfo, plan: LoginPlan,
         createdAt: ContinuousClock.Instant, metrics: TargetMetrics) {
        self.role = role
        self.metrics = metrics
        self.connection = connection
        self.info = info
        self.plan = plan
        self.createdAt = createdAt
    }

    /// Client bytes to this backend. A method: inside it the `let` references need no retain of
    /// their own (the caller's holds `self`); read from outside, each one cost one.
    func countBytesToClient(_ count: Int) {
        metrics.bytesToClient(count)
    }

    func forward(_ bytes: UnsafeRawBufferPointer) {
        metrics.bytesFromClient(bytes.count)
        connection.write(bytes)
    }
}

/// The session's requests, carried out on the handler's connections. Sends are gathered into one
/// write per connection per event where the transport allows.
struct ShellOutput: SessionOutput {
    /// The handler, without reference counting: a ShellOutput lives only inside a call on its handler
    /// (which holds the handler alive) and is never stored, so the reference cannot dangle. Calls go
    /// through `_withUnsafeGuaranteedRef`: through a plain or `unowned(unsafe)` reference, each call
    /// into the handler retained and released it (four times per query). `flush` takes a strong copy
    /// before escaping it.
    let handlerRef: Unmanaged<ClientHandler>
    /// Backends to open once the session's method returns, in the order asked (no array: a
    /// ShellOutput is made for every event, and destroying an array costs a call each time).
    var firstOpen: BackendRole?
    var secondOpen: BackendRole?
    /// The session asked to close (why: `ClientHandler.pendingCloseReason`), or for the function
    /// catalog (names to learn: `ClientHandler.pendingLearnNames`). The texts wait in the handler,
    /// so that a ShellOutput holds no reference and destroying one costs nothing.
    var closing = false
    var refreshFunctions = false
    /// When the event being handled happened: the metrics' clock for the units it starts and ends.
    let now: MonotonicInstant

    init(handler: ClientHandler, now: MonotonicInstant) {
        handlerRef = .passUnretained(handler)
        self.now = now
    }

    var handler: ClientHandler { handlerRef.takeUnretainedValue() }

    mutating func sendToBackend(_ role: BackendRole, _ bytes: UnsafeRawBufferPointer) {
        handlerRef._withUnsafeGuaranteedRef { $0.forwardToBackend(role, bytes) }
    }

    mutating func sendToClient(_ bytes: UnsafeRawBufferPointer) {
        handlerRef._withUnsafeGuaranteedRef { $0.client.write(bytes) }
    }

    mutating func openBackend(_ role: BackendRole) {
        if firstOpen == nil { firstOpen = role } else if firstOpen != role && secondOpen == nil { secondOpen = role }
    }

    mutating func closeSession(reason: String) {
        closing = true
        handler.pendingCloseReason = reason
    }

    mutating func unitStarted(_ role: BackendRole, why: RoutingReason, sql: UnsafeRawBufferPointer) {
        let now = self.now
        handlerRef._withUnsafeGuaranteedRef { $0.unitStarted(role, why: why, sql: sql, at: now) }
    }

    mutating func unitFinished(_ role: BackendRole, failed: Bool, wroteOnWriteable: Bool) {
        let now = self.now
        handlerRef._withUnsafeGuaranteedRef { $0.unitFinished(role, failed: failed, wroteOnWriteable: wroteOnWriteable, at: now) }
    }

    mutating func functionsMayHaveChanged() {
        refreshFunctions = true
    }

    mutating func functionCatalogNeeded(names: [String]) {
        refreshFunctions = true
        handler.pendingLearnNames += names
    }

    /// Carries out what had to wait until the session's method returned.
    func flush() {
        if refreshFunctions {
            let handler = self.handler
            handler.waitingForCatalog = true
            let names = handler.pendingLearnNames
            handler.pendingLearnNames = []
            handler.server.refreshFunctions(database: handler.databaseName, learning: names) {
                handler.loop.execute {
                    handler.waitingForCatalog = false
                    handler.pumpClient()
                }
            }
        }
        if closing {
            Log.debug("session \(handler.id): closing: \(handler.pendingCloseReason)")
            handler.close()
            return
        }
        if let firstOpen { handler.openBackend(firstOpen) }
        if let secondOpen { handler.openBackend(secondOpen) }
    }
}

extension ClientHandler {
    // What the session asks of its shell for every unit, as methods: inside them `self` needs no
    // reference counting, and neither do its `let` references.

    func forwardToBackend(_ role: BackendRole, _ bytes: UnsafeRawBufferPointer) {
        backends[role.rawValue]?.forward(bytes)
    }

    func unitStarted(_ role: BackendRole, why: RoutingReason, sql: UnsafeRawBufferPointer, at now: MonotonicInstant) {
        recorder?.unitStarted(role, why: why, at: now)
        guard config.logRouting else { return }
        let text = sql.isEmpty ? "(a statement prepared earlier)" : String(decoding: sql.prefix(200), as: UTF8.self)
        Log.info("session \(id): \(role) (\(why.rawValue)): \(text)")
    }

    func unitFinished(_ role: BackendRole, failed: Bool, wroteOnWriteable: Bool, at now: MonotonicInstant) {
        recorder?.unitFinished(role, failed: failed, at: now)
        lastActivity = now
        if wroteOnWriteable, config.readYourWrites == .lsn, let health {
            replayGate.wrote(health)
            placementVersion = nil
        }
    }
}

extension ClientHandler {
    /// The user's auth_file secret as the authenticator reads it. A plain password meets SCRAM as a
    /// secret derived once per user and password (as PostgreSQL derives it once, when the password
    /// is set), not with 4,096 PBKDF2 rounds at every login.
    func loginSecret(for method: ClientAuthMethod) -> String? {
        guard let secret = config.userlist?[user] else { return nil }
        if case .scramSHA256 = method, case .plain(let password) = secret {
            return server.derivedSCRAMSecret(user: user, password: password)
        }
        return secretText(secret)
    }
}

/// The userlist secret as the authenticator reads it.
func secretText(_ secret: StoredSecret) -> String {
    switch secret {
    case .plain(let password): password
    case .md5(let hex): "md5" + hex
    case .scramSHA256(let verifier): verifier.text
    }
}
