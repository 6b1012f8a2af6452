import Dispatch
import Foundation
import PostgresWire
import SplitConfig
import SplitCore

/// The admin console: a client that logs in to the virtual database "pgsplit" as one of
/// `admin_users` gets SHOW ... result sets and the RELOAD / PAUSE / RESUME / SHUTDOWN commands.
enum AdminConsoleSession {
    static let databaseName = "pgsplit"
}

extension ClientHandler {
    func startAdminLogin() {
        guard config.adminUsers.contains(user) else {
            fail(code: SQLState.invalidAuthorizationSpecification,
                 message: "user \"\(user)\" may not use the pgsplit admin console",
                 hint: "List the user in admin_users in proxy.conf.")
            return
        }
        let method: ClientAuthMethod
        switch config.authType {
        case .trust, .cert: method = .trust
        case .md5: method = .md5
        case .password: method = .password
        default: method = .scramSHA256
        }
        var authenticator = ClientAuthenticator(method: method, user: user, storedSecret: loginSecret(for: method),
                                                channelBinding: client.tlsPeer?.channelBinding)
        let action = authenticator.start()
        phase = .authenticating(authenticator)
        handleAuthAction(action)
    }

    func finishAdminLogin() {
        loginTimer?.cancel()
        loginTimer = nil
        var out = ByteBuffer(capacity: 256)
        for (name, value) in [("server_version", "15.0 (pgsplit admin console)"), ("server_encoding", "UTF8"),
                              ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"), ("integer_datetimes", "on"),
                              ("standard_conforming_strings", "on"), ("application_name", "")] {
            out.writeParameterStatus(name: name, value: value)
        }
        // Registered like any session, so shutdown reaches it; its key cancels nothing.
        cancelKey = server.register(self)
        out.writeBackendKeyData(processID: cancelKey.processID, secretKey: cancelKey.secretKey)
        out.writeReadyForQuery(.idle)
        client.write(out.readableArray)
        phase = .admin
        Log.info("session \(id): admin console login by \"\(user)\" from \(client.remoteAddress)")
        serveAdminInput()
    }

    /// Answers complete simple queries; the extended protocol is refused once per batch.
    func serveAdminInput() {
        guard case .admin = phase, !adminBusy else { return }
        while !adminBusy, case .admin = phase {
            let next: (type: UInt8, body: [UInt8], length: Int)? = clientInput.withUnreadBytes { bytes in
                guard bytes.count >= 5 else { return nil }
                let length = Int(UInt32(bytes[1]) << 24 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 8 | UInt32(bytes[4]))
                guard length >= 4, length <= 1 << 20 else { return (0, [], -1) }
                guard bytes.count >= 1 + length else { return nil }
                return (bytes[0], Array(bytes[5..<(1 + length)]), 1 + length)
            }
            guard let message = next else { return }
            guard message.length > 0 else {
                fail(code: SQLState.protocolViolation, message: "invalid message length")
                return
            }
            clientInput.consume(message.length)
            switch message.type {
            case UInt8(ascii: "Q"):
                let text = String(decoding: message.body.prefix { $0 != 0 }, as: UTF8.self)
                answerAdmin(text)
            case UInt8(ascii: "X"):
                close()
                return
            case UInt8(ascii: "S"):
                var out = ByteBuffer(capacity: 128)
                out.writeErrorResponse(severity: "ERROR", code: SQLState.featureNotSupported,
                                       message: "the pgsplit admin console speaks the simple query protocol only",
                                       detail: nil, hint: "Use psql, or a driver's simple-query mode.")
                out.writeReadyForQuery(.idle)
                client.write(out.readableArray)
            default:
                continue  // the rest of an extended batch: answered once, at its Sync
            }
        }
    }

    func answerAdmin(_ text: String) {
        let commands = AdminCommand.parseAll(text)
        let needsSessions = commands.contains { $0.needsSessions }
        let respond: @Sendable ([AdminSessionRow]) -> Void = { [self] rows in
            loop.execute { [self] in
                let provider = StandardAdminSnapshot(config: ProxyConfigRows(server.config), metrics: server.metrics,
                                                     health: server.monitor?.snapshots ?? [], sessions: rows,
                                                     paused: server.isPaused)
                let response = AdminConsole.respond(to: text, provider: provider)
                carryOut(response)
            }
        }
        adminBusy = true
        if needsSessions { server.collectSessionRows(respond) } else { respond([]) }
    }

    private func carryOut(_ response: AdminResponse) {
        let finish: @Sendable ([UInt8]) -> Void = { [self] bytes in
            loop.execute { [self] in
                var out = ByteBuffer(capacity: bytes.count + 6)
                out.append(contentsOf: bytes)
                out.writeReadyForQuery(.idle)
                client.write(out.readableArray)
                adminBusy = false
                serveAdminInput()
            }
        }
        switch response.action {
        case .reload?:
            let server = self.server
            // Reloading connects to the backends and waits: never on a loop.
            DispatchQueue.global().async {
                switch server.reload() {
                case .success(let summary):
                    Log.info("admin console: configuration reloaded: \(summary)")
                    finish(response.bytes)
                case .failure(let failure):
                    Log.error("admin console: reload refused, the running configuration stays in force: \(failure)")
                    var out = ByteBuffer(capacity: 256)
                    out.writeErrorResponse(severity: "ERROR", code: "55000",
                                           message: "reload refused; the running configuration stays in force: \(failure)",
                                           detail: nil, hint: "Fix proxy.conf and run RELOAD again.")
                    finish(out.readableArray)
                }
            }
        case .pause?:
            server.pause()
            finish(response.bytes)
        case .resume?:
            server.resume()
            finish(response.bytes)
        case .shutdown?:
            finish(response.bytes)
            // The main thread runs the graceful shutdown, as for SIGTERM.
            kill(getpid(), SIGTERM)
        case nil:
            finish(response.bytes)
        }
    }
}
