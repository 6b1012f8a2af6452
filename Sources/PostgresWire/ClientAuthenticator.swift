/// How the proxy authenticates clients (auth_type).
public enum ClientAuthMethod: Sendable {
    case trust
    case md5
    case scramSHA256
    /// Cleartext password.
    case password
}

/// What a successful client login leaves the proxy for logging in onward.
public struct ClientAuthSuccess: Equatable, Sendable {
    /// ClientKey and ServerKey when SCRAM was used.
    public var scramKeys: SCRAMKeys?
    /// The password when the client sent it in clear text.
    public var cleartextPassword: String?
}

public enum ClientAuthAction: Sendable {
    /// Send these bytes to the client and wait for its next message.
    case send([UInt8])
    /// Logged in. `send` holds the final SASL message, if any, and AuthenticationOk; the proxy
    /// follows it with ParameterStatus, BackendKeyData and ReadyForQuery.
    case authenticated(ClientAuthSuccess, send: [UInt8])
    /// Refused. `send` is the ErrorResponse for `error`; close the connection after it.
    case failed(ErrorFields, send: [UInt8])
}

/// The proxy authenticating a client against its userlist, answering as PostgreSQL would.
///
/// The stored secret may be nil (unknown user), a plain password, an "md5..." hash or a
/// "SCRAM-SHA-256$..." secret. PostgreSQL's rules: the md5 method with a SCRAM secret uses SCRAM;
/// the SCRAM method with an md5 secret fails; a plain password works with every method. An unknown
/// user gets exactly the answer a wrong password gets, after a fake SCRAM exchange where SCRAM
/// would be used.
public struct ClientAuthenticator: Sendable {
    private enum Plan: Sendable {
        case trust
        case cleartext(secret: String?)
        case md5(storedHash: String, salt: UInt32)
        case scram(SCRAMServer, started: Bool)
        case finished
    }

    public let user: String
    private var plan: Plan

    /// `channelBinding`: the TLS connection's tls-server-end-point data (nil without TLS); with it,
    /// SCRAM-SHA-256-PLUS is offered as PostgreSQL offers it.
    public init(method: ClientAuthMethod, user: String, storedSecret: String?, channelBinding: [UInt8]? = nil) {
        self.user = user
        let scramSecret = storedSecret.flatMap(SCRAMSecret.init(parsing:))
        let isMD5 = storedSecret.map(MD5Auth.isMD5Hash) ?? false
        switch method {
        case .trust:
            plan = .trust
        case .password:
            plan = .cleartext(secret: storedSecret)
        case .md5:
            if let storedSecret, scramSecret == nil {
                let hash = isMD5 ? storedSecret : MD5Auth.storedHash(user: user, password: storedSecret)
                plan = .md5(storedHash: hash, salt: MD5Auth.randomSalt())
            } else {
                // A SCRAM secret, or an unknown user (PostgreSQL then fakes its default, SCRAM).
                plan = .scram(scramSecret.map { SCRAMServer(secret: $0, channelBinding: channelBinding) }
                                  ?? .mock(user: user, channelBinding: channelBinding), started: false)
            }
        case .scramSHA256:
            if let scramSecret {
                plan = .scram(SCRAMServer(secret: scramSecret, channelBinding: channelBinding), started: false)
            } else if let storedSecret, !isMD5 {
                plan = .scram(SCRAMServer(secret: .make(password: storedSecret), channelBinding: channelBinding), started: false)
            } else {
                plan = .scram(.mock(user: user, channelBinding: channelBinding), started: false)
            }
        }
    }

    /// The first thing to send after the startup packet.
    public mutating func start() -> ClientAuthAction {
        var bytes: [UInt8] = []
        switch plan {
        case .trust:
            plan = .finished
            bytes.writeAuthenticationOk()
            return .authenticated(ClientAuthSuccess(), send: bytes)
        case .cleartext:
            bytes.writeAuthenticationCleartextPassword()
        case .md5(_, let salt):
            bytes.writeAuthenticationMD5Password(salt: salt)
        case .scram(let server, _):
            bytes.writeAuthenticationSASL(mechanisms: server.mechanisms)
        case .finished:
            return protocolViolation("authentication already finished")
        }
        return .send(bytes)
    }

    /// Consumes a client message during authentication (normally 'p').
    public mutating func received(type: UInt8, payload: ArraySlice<UInt8>) -> ClientAuthAction {
        guard type == FrontendMessageType.password else {
            if case .scram = plan { return protocolViolation("expected SASL response, got message type \(type)") }
            return protocolViolation("expected password response, got message type \(type)")
        }
        switch plan {
        case .trust, .finished:
            return protocolViolation("unexpected password message")

        case .cleartext(let secret):
            plan = .finished
            guard let password = try? PasswordMessage.decode(payload) else {
                return protocolViolation("invalid password packet size")
            }
            guard !password.isEmpty, let secret, Self.password(password, matches: secret, user: user) else {
                return passwordFailed()
            }
            var bytes: [UInt8] = []
            bytes.writeAuthenticationOk()
            return .authenticated(ClientAuthSuccess(cleartextPassword: password), send: bytes)

        case .md5(let storedHash, let salt):
            plan = .finished
            guard let answer = try? PasswordMessage.decode(payload) else {
                return protocolViolation("invalid password packet size")
            }
            guard MD5Auth.verify(response: answer, storedHash: storedHash, salt: salt) else { return passwordFailed() }
            var bytes: [UInt8] = []
            bytes.writeAuthenticationOk()
            return .authenticated(ClientAuthSuccess(), send: bytes)

        case .scram(var server, let started):
            plan = .finished
            do {
                var bytes: [UInt8] = []
                if !started {
                    let initial: SASLInitialResponse
                    do { initial = try SASLInitialResponse.decode(payload) } catch {
                        return protocolViolation("malformed SASL message")
                    }
                    guard server.mechanisms.contains(initial.mechanism) else {
                        return protocolViolation("client selected an invalid SASL authentication mechanism")
                    }
                    guard let data = initial.data else { return scramMalformed("client-first-message is missing") }
                    bytes.writeAuthenticationSASLContinue(data: try server.receiveClientFirst(data, mechanism: initial.mechanism))
                    plan = .scram(server, started: true)
                    return .send(bytes)
                }
                let outcome = try server.receiveClientFinal(payload)
                bytes.writeAuthenticationSASLFinal(data: outcome.serverFinalMessage)
                bytes.writeAuthenticationOk()
                return .authenticated(ClientAuthSuccess(scramKeys: outcome.keys), send: bytes)
            } catch .invalidProof {
                return passwordFailed()
            } catch .malformed(let detail) {
                return scramMalformed(detail)
            } catch .bindingNegotiation(let detail) {
                // PostgreSQL's codes: a refused downgrade or another certificate is an authorization
                // failure (28000); an unknown binding type is a protocol violation.
                return fail(ErrorFields(severity: "FATAL", code: SQLState.invalidAuthorizationSpecification,
                                        message: "SCRAM channel binding negotiation error", detail: detail))
            } catch .bindingCheckFailed {
                return fail(ErrorFields(severity: "FATAL", code: SQLState.invalidAuthorizationSpecification,
                                        message: "SCRAM channel binding check failed"))
            } catch .unsupportedBindingType(let type) {
                return protocolViolation("unsupported SCRAM channel-binding type \"\(type)\"")
            } catch .unsupported(let detail) {
                return fail(ErrorFields(severity: "FATAL", code: SQLState.featureNotSupported, message: detail))
            } catch {
                return protocolViolation("\(error)")
            }
        }
    }

    /// Checks a cleartext password against any kind of stored secret.
    static func password(_ password: String, matches secret: String, user: String) -> Bool {
        if let scram = SCRAMSecret(parsing: secret) { return scram.matches(password: password) }
        if MD5Auth.isMD5Hash(secret) {
            return Crypto.constantTimeEqual(Array(MD5Auth.storedHash(user: user, password: password).utf8), Array(secret.utf8))
        }
        return Crypto.constantTimeEqual(Array(password.utf8), Array(secret.utf8))
    }

    /// PostgreSQL's answer for a wrong password and for an unknown user alike.
    private mutating func passwordFailed() -> ClientAuthAction {
        fail(ErrorFields(severity: "FATAL", code: SQLState.invalidPassword,
                         message: "password authentication failed for user \"\(user)\""))
    }

    private mutating func scramMalformed(_ detail: String) -> ClientAuthAction {
        fail(ErrorFields(severity: "FATAL", code: SQLState.protocolViolation, message: "malformed SCRAM message",
                         detail: detail))
    }

    private mutating func protocolViolation(_ message: String) -> ClientAuthAction {
        fail(ErrorFields(severity: "FATAL", code: SQLState.protocolViolation, message: message))
    }

    private mutating func fail(_ error: ErrorFields) -> ClientAuthAction {
        plan = .finished
        var bytes: [UInt8] = []
        bytes.writeErrorResponse(error)
        return .failed(error, send: bytes)
    }
}
