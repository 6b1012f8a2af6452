import Dispatch
import DispatchTransport
import PostgresWire
import SplitConfig

/// Who the proxy logs in to a backend as.
struct BackendLogin: Sendable {
    var address: BackendAddress
    var user: String
    var database: String
    var credential: BackendCredential
    /// Startup parameters passed on from the client (application_name, options, ...).
    var parameters: [(String, String)]
}

/// Opens a backend connection and logs in. The completion runs once, on `loop`, with the open
/// connection and what the backend reported, or a one-line reason. `timeout` bounds the whole open —
/// connect, TLS, startup and authentication, every attempt of `sslmode=prefer` / `allow` — as libpq's
/// connect_timeout does: a server that accepts the connection and then never answers (stopped,
/// paused, behind a black hole) fails the open instead of holding it forever.
enum BackendConnector {
    struct Opened {
        var connection: Connection
        var info: BackendSessionInfo
        /// Bytes that arrived after the login's ReadyForQuery (normally none).
        var leftover: [UInt8]
    }

    enum Failure: Error {
        case unreachable(String)
        case refused(BackendHandshakeFailure)

        var description: String {
            switch self {
            case .unreachable(let why): why
            case .refused(let failure): failure.description
            }
        }
    }

    static func open(_ login: BackendLogin, on loop: EventLoop, timeout: Double,
                     completion reportOutcome: @escaping (Result<Opened, Failure>) -> Void) {
        let tls = BackendTLS(login.address)
        let deadline = OpenDeadline(label: login.address.label, timeout: timeout, on: loop) {
            reportOutcome($0.mapError { $0.unwrapped })
        }
        switch tls.mode {
        case .allow:
            // libpq's allow: in the clear first; TLS only when the server refuses that.
            attempt(login, tls: tls, encrypt: false, within: deadline) { result in
                if case .failure(.refused(.server)) = result {
                    attempt(login, tls: tls, encrypt: true, within: deadline, completion: deadline.finish)
                } else {
                    deadline.finish(result)
                }
            }
        case .prefer:
            // libpq's prefer: TLS when the server offers it; in the clear when the handshake fails.
            attempt(login, tls: tls, encrypt: true, within: deadline) { result in
                if case .failure(let failure) = result, failure.isTLSFailure {
                    attempt(login, tls: tls, encrypt: false, within: deadline, completion: deadline.finish)
                } else {
                    deadline.finish(result)
                }
            }
        default:
            attempt(login, tls: tls, encrypt: tls.mode != .disable, within: deadline, completion: deadline.finish)
        }
    }

    /// One attempt: connect, negotiate TLS when `encrypt` (SSLRequest first), then log in. Starts
    /// nothing once the deadline has passed; its completion is not called then.
    private static func attempt(_ login: BackendLogin, tls: BackendTLS, encrypt: Bool, within deadline: OpenDeadline,
                                completion: @escaping (Result<Opened, Failure>) -> Void) {
        guard !deadline.isFinished else { return }
        let host = login.address.hostaddr ?? login.address.host
        Connection.connect(host: host, port: login.address.port, on: deadline.loop, timeout: deadline.remaining) { result in
            switch result {
            case .failure(let error):
                guard !deadline.isFinished else { return }
                completion(.failure(.unreachable("cannot connect to \(login.address.label): \(error)")))
            case .success(let connection):
                guard deadline.watch(connection) else { return }
                let driver = HandshakeDriver(connection: connection, login: login) { result in
                    // Past the deadline the connection was closed and the open answered already.
                    guard !deadline.isFinished else { return }
                    completion(result)
                }
                // libpq never uses TLS over a Unix socket.
                if encrypt && !login.address.isUnixSocket {
                    SSLNegotiation(connection: connection, tls: tls, label: login.address.label, driver: driver).start()
                } else {
                    driver.start()
                }
            }
        }
    }
}

/// The deadline of one `BackendConnector.open`, and its completion: whichever comes first — the
/// login's outcome or the deadline — is reported, exactly once (both run on `loop`, so nothing
/// can interleave). At the deadline the connection in use is closed: its handshake's callbacks
/// then find the open finished and report nothing.
///
/// Confined to `loop`: created in `open` (which runs there) and touched only by the transport's
/// callbacks and the timer, all of which run there.
private final class OpenDeadline {
    let loop: EventLoop
    private let label: String
    private let timeout: Double
    private let expires: DispatchTime
    private var completion: ((Result<BackendConnector.Opened, BackendConnector.Failure>) -> Void)?
    private var timer: TimerHandle?
    /// The connection the current attempt logs in on.
    private var connection: Connection?

    init(label: String, timeout: Double, on loop: EventLoop,
         completion: @escaping (Result<BackendConnector.Opened, BackendConnector.Failure>) -> Void) {
        self.loop = loop
        self.label = label
        self.timeout = timeout
        self.completion = completion
        expires = DispatchTime.now() + timeout
        timer = loop.scheduleTimer(after: timeout) { [self] in
            timer = nil
            expired()
        }
    }

    var isFinished: Bool { completion == nil }

    /// Seconds left (at least a millisecond, so a late attempt fails fast rather than never).
    var remaining: Double {
        let now = DispatchTime.now().uptimeNanoseconds
        let end = expires.uptimeNanoseconds
        return end > now ? max(Double(end - now) / 1e9, 0.001) : 0.001
    }

    /// An attempt connected: the deadline closes `connection` if the login is still running then.
    /// False (and the connection closed) when the deadline has already passed.
    func watch(_ connection: Connection) -> Bool {
        guard !isFinished else {
            connection.close()
            return false
        }
        self.connection = connection
        return true
    }

    func finish(_ result: Result<BackendConnector.Opened, BackendConnector.Failure>) {
        guard let done = completion else {
            if case .success(let opened) = result { opened.connection.close() }
            return
        }
        completion = nil
        timer?.cancel()
        timer = nil
        connection = nil
        done(result)
    }

    private func expired() {
        let abandoned = connection
        // Finished first: closing the connection makes its handshake report a failure, which must
        // find the open already answered (and start no `prefer` / `allow` retry).
        finish(.failure(.unreachable("timed out logging in to \(label) after \(Self.seconds(timeout)) s")))
        abandoned?.close()
    }

    private static func seconds(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String((value * 10).rounded() / 10)
    }
}

extension BackendConnector.Failure {
    /// A TLS failure that `prefer` may answer by retrying in the clear.
    static func tlsFailed(_ why: String) -> Self { .unreachable(BackendTLS.failurePrefix + why) }

    /// Whether this failure is a failed TLS negotiation (see `tlsFailed`).
    var isTLSFailure: Bool {
        if case .unreachable(let why) = self { return why.hasPrefix(BackendTLS.failurePrefix) }
        return false
    }

    /// The failure as reported, without the internal marker.
    var unwrapped: Self {
        if case .unreachable(let why) = self, why.hasPrefix(BackendTLS.failurePrefix) {
            return .unreachable(String(why.dropFirst(BackendTLS.failurePrefix.count)))
        }
        return self
    }
}

/// TLS towards one backend, from the libpq keys of its connection string: `sslmode` (default
/// prefer, as libpq), `sslrootcert`, `sslcert`, `sslkey`.
struct BackendTLS {
    enum Mode: String {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    let mode: Mode
    let configuration: TLSConfiguration
    /// The name checked against the certificate (verify-full) and sent as SNI: `host`, never `hostaddr`.
    let serverName: String

    static let failurePrefix = "\u{1}tls:"

    init(_ address: BackendAddress) {
        func value(_ key: String) -> String? {
            address.parameters.last(where: { $0.key == key })?.value.nilIfEmpty
        }
        mode = address.sslmode.flatMap(Mode.init(rawValue:)) ?? .prefer
        let rootCertificate = value("sslrootcert")
        let verification: TLSPeerVerification
        switch mode {
        case .verifyFull: verification = .chainAndHost
        case .verifyCA: verification = .chain
        // As libpq: with a root certificate at hand, the weaker modes verify the chain too.
        default: verification = rootCertificate == nil ? .none : .chain
        }
        configuration = .client(caFile: rootCertificate, certificateFile: value("sslcert"), privateKeyFile: value("sslkey"),
                                verification: verification)
        serverName = address.host
    }

    /// Whether a backend that declines TLS is refused.
    var required: Bool { mode == .require || mode == .verifyCA || mode == .verifyFull }
}

private extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}

/// Sends SSLRequest and acts on the one-byte answer: `S` runs the TLS handshake, `N` goes on in the
/// clear unless TLS is required. Then hands the connection to the login. Confined to the loop.
private final class SSLNegotiation {
    let connection: Connection
    let tls: BackendTLS
    let label: String
    let driver: HandshakeDriver
    var answered = false

    init(connection: Connection, tls: BackendTLS, label: String, driver: HandshakeDriver) {
        self.connection = connection
        self.tls = tls
        self.label = label
        self.driver = driver
    }

    func start() {
        connection.start(onRead: { [self] bytes in received(bytes) },
                         onClose: { [self] error in
                             guard !answered else { return }
                             answered = true
                             driver.fail(.tlsFailed("\(label) closed the connection after SSLRequest\(error.map { ": \($0)" } ?? "")"))
                         })
        var out = ByteBuffer(capacity: 8)
        out.writeSSLRequest()
        connection.write(out.readableArray)
    }

    func received(_ bytes: UnsafeRawBufferPointer) {
        guard !answered, let answer = bytes.first else { return }
        answered = true
        connection.onRead = nil
        connection.onClose = nil
        switch answer {
        case UInt8(ascii: "S"):
            guard bytes.count == 1 else {
                // Bytes after S were sent in the clear before encryption: someone is in the middle.
                connection.close()
                driver.fail(.unreachable("\(label): received unencrypted data after the SSL response"))
                return
            }
            let context: TLSContext
            do {
                context = try TLSContext.shared(tls.configuration)
            } catch {
                connection.close()
                driver.fail(.unreachable("\(label): TLS (sslmode=\(tls.mode.rawValue)): \(error)"))
                return
            }
            let driver = self.driver
            let label = self.label
            let mode = tls.mode
            // Until the handshake ends the connection has no reader but the TLS layer.
            connection.start(onRead: { _ in }, onClose: { _ in })
            connection.startTLS(context: context, serverName: tls.serverName) { result in
                switch result {
                case .success:
                    driver.start()
                case .failure(let error):
                    driver.fail(.tlsFailed("\(label) (sslmode=\(mode.rawValue)): \(error)"))
                }
            }
        case UInt8(ascii: "N"):
            if tls.required {
                connection.close()
                driver.fail(.unreachable("\(label): the server does not support SSL, but sslmode=\(tls.mode.rawValue) requires it"))
            } else {
                driver.start()
            }
        default:
            // An 'E' from a server that predates SSLRequest, or garbage.
            connection.close()
            driver.fail(.tlsFailed("\(label): unexpected answer to SSLRequest (\(answer))"))
        }
    }
}

/// Runs a BackendHandshake over a connection. Confined to the connection's loop.
final class HandshakeDriver {
    let connection: Connection
    var handshake: BackendHandshake
    var buffer = ByteBuffer(capacity: 1024)
    var completion: ((Result<BackendConnector.Opened, BackendConnector.Failure>) -> Void)?
    let label: String

    init(connection: Connection, login: BackendLogin,
         completion: @escaping (Result<BackendConnector.Opened, BackendConnector.Failure>) -> Void) {
        self.connection = connection
        self.label = login.address.label
        self.handshake = BackendHandshake(user: login.user, database: login.database, parameters: login.parameters,
                                          credential: login.credential,
                                          channelBinding: login.address.channelBinding.flatMap(ChannelBindingPolicy.init(rawValue:)) ?? .prefer)
        self.completion = completion
    }

    func start() {
        // The driver keeps itself alive through the connection's handlers until it finishes.
        connection.start(onRead: { [self] bytes in received(bytes) },
                         onClose: { [self] error in
                             finish(.failure(.unreachable("\(label) closed the connection during login\(error.map { ": \($0)" } ?? "")")))
                         })
        if let tls = connection.tlsPeer { handshake.useTLS(endPoint: tls.channelBinding) }
        connection.write(handshake.start())
    }

    func received(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(contentsOf: bytes)
        while completion != nil {
            switch buffer.frameMessage(maxMessageSize: 1 << 24) {
            case .needMore:
                buffer.compact()
                return
            case .invalid(let why):
                connection.close()
                finish(.failure(.refused(.proxy("\(label): \(why)"))))
                return
            case .message(let type, let payload):
                let action = handshake.received(type: type, payload: buffer.storage[payload])
                buffer.moveReaderIndex(to: payload.upperBound)
                switch action {
                case .send(let out):
                    connection.write(out)
                case .wait:
                    break
                case .done(let info):
                    let leftover = buffer.readableArray
                    let opened = BackendConnector.Opened(connection: connection, info: info, leftover: leftover)
                    connection.onRead = nil
                    connection.onClose = nil
                    let done = completion
                    completion = nil
                    done?(.success(opened))
                    return
                case .failed(let failure):
                    connection.close()
                    finish(.failure(.refused(failure)))
                    return
                }
            }
        }
    }

    /// Ends the attempt before the login started (TLS negotiation failed).
    func fail(_ failure: BackendConnector.Failure) {
        finish(.failure(failure))
    }

    func finish(_ result: Result<BackendConnector.Opened, BackendConnector.Failure>) {
        guard let done = completion else { return }
        completion = nil
        connection.onRead = nil
        connection.onClose = nil
        done(result)
    }
}

// MARK: - TLS on the client side (SSLRequest, client_tls_sslmode, auth_type = cert)

/// The proxy's own TLS server context, from the `client_tls_*` keys.
enum ClientTLS {
    static func configuration(_ settings: ClientTLSSettings) -> TLSConfiguration? {
        guard settings.offersTLS, let certificate = settings.certificateFile, let key = settings.keyFile else { return nil }
        let versions = settings.protocols.map(\.transportVersion)
        return .server(certificateFile: certificate, privateKeyFile: key, caFile: settings.caFile,
                       requirePeerCertificate: settings.mode.requiresClientCertificate,
                       minimumVersion: versions.min() ?? .tls1_2, maximumVersion: versions.max(),
                       ciphers: settings.ciphers)
    }

    /// The shared context, or why it cannot be built (a startup check should call this too).
    static func context(_ settings: ClientTLSSettings) -> Result<TLSContext, TLSError>? {
        guard let configuration = configuration(settings) else { return nil }
        do {
            return .success(try TLSContext.shared(configuration))
        } catch {
            return .failure(error)
        }
    }
}

extension TLSProtocolVersion {
    var transportVersion: TLSVersion {
        switch self {
        case .tlsv1_0: .tls1_0
        case .tlsv1_1: .tls1_1
        case .tlsv1_2: .tls1_2
        case .tlsv1_3: .tls1_3
        }
    }
}

extension ClientHandler {
    /// Answers an SSLRequest: `S` and the handshake when TLS is offered, else `N`.
    func answerSSLRequest() {
        guard startupBuffer.readableBytes == 0 else {
            // Bytes sent after SSLRequest but before the handshake would be read as if they were encrypted.
            fail(code: SQLState.protocolViolation, message: "received unencrypted data after SSL request")
            return
        }
        guard !client.isTLS, let context = ClientTLS.context(config.clientTLS) else {
            client.write([UInt8(ascii: "N")])
            return
        }
        switch context {
        case .failure(let error):
            Log.warning("session \(id): TLS is configured but unusable, answering N: \(error)")
            client.write([UInt8(ascii: "N")])
        case .success(let context):
            client.write([UInt8(ascii: "S")])
            client.startTLS(context: context) { [self] result in
                if case .failure(let error) = result {
                    Log.info("session \(id): TLS handshake with \(client.remoteAddress) failed: \(error)")
                    close()
                }
            }
        }
    }

    /// Why this login is refused before authentication (TLS required / client certificate), if it is:
    /// FATAL 28000 as PostgreSQL answers a pg_hba.conf mismatch.
    func tlsLoginRefusal() -> (message: String, hint: String)? {
        let settings = config.clientTLS
        if (settings.mode.requiresTLS || config.authType == .cert) && !client.isTLS {
            var host = client.remoteAddress // "ip:port", "[ip6]:port" or a socket path: show the host only
            if host.hasPrefix("["), let end = host.firstIndex(of: "]") {
                host = String(host[host.index(after: host.startIndex)..<end])
            } else if host.filter({ $0 == ":" }).count == 1, let colon = host.lastIndex(of: ":") {
                host = String(host[..<colon])
            }
            let who = "host \"\(host)\", user \"\(user)\", database \"\(databaseName)\""
            return ("pgsplit requires TLS: connection from \(who) is not encrypted (SSL off)",
                    "Connect with sslmode=require or stronger (verify-full with the proxy's CA certificate is best).")
        }
        if config.authType == .cert {
            guard let peer = client.tlsPeer, peer.presentedCertificate else {
                return ("connection requires a valid client certificate",
                        "auth_type = cert: connect with sslcert and sslkey, a certificate whose common name is the user name.")
            }
            if peer.commonName != user {
                return ("certificate authentication failed for user \"\(user)\"",
                        "The client certificate's common name is \"\(peer.commonName ?? "")\"; it must equal the user name.")
            }
        }
        return nil
    }
}
