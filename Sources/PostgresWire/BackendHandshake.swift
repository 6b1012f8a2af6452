/// What the proxy knows to log in to a backend as a user.
public enum BackendCredential: Sendable {
    case none
    case password(String)
    /// A stored "md5..." hash: enough to answer an md5 challenge, nothing else.
    case md5Hash(String)
    /// Keys learned from the client's own SCRAM login: enough for SCRAM, nothing else.
    case scramKeys(clientKey: [UInt8], serverKey: [UInt8])
}

/// What a finished backend login gives the session.
public struct BackendSessionInfo: Sendable {
    /// ParameterStatus messages in the order received.
    public var parameters: [(String, String)]
    public var keyData: BackendKeyData?
    public var transactionStatus: TransactionStatus

    public func parameter(_ name: String) -> String? { parameters.last { $0.0 == name }?.1 }
}

public enum BackendHandshakeFailure: Equatable, Sendable, CustomStringConvertible {
    /// The backend sent an ErrorResponse.
    case server(ErrorFields)
    /// The proxy gave up: an authentication method it cannot serve, a bad server signature, a
    /// protocol error.
    case proxy(String)

    public var description: String {
        switch self {
        case .server(let fields): fields.description
        case .proxy(let reason): reason
        }
    }
}

public enum BackendHandshakeAction: Sendable {
    /// Send these bytes to the backend, then wait for more.
    case send([UInt8])
    /// Nothing to do until the next message.
    case wait
    /// Logged in and ready for queries.
    case done(BackendSessionInfo)
    case failed(BackendHandshakeFailure)
}

/// libpq's `channel_binding` for a backend login: whether SCRAM binds itself to the TLS channel
/// (SCRAM-SHA-256-PLUS), which proves no one in between holds the server's certificate.
public enum ChannelBindingPolicy: String, Sendable {
    case disable
    /// Bind when the connection is TLS and the server offers it (libpq's default).
    case prefer
    /// Refuse a server that does not authenticate with channel binding.
    case require
}

/// The proxy logging in to a backend: startup, authentication, parameters up to the first
/// ReadyForQuery. Feed it each framed message; it performs no I/O.
public struct BackendHandshake: Sendable {
    private enum State: Sendable {
        case created
        /// Waiting for the first Authentication request.
        case startupSent
        /// Sent a password or md5 answer; waiting for AuthenticationOk.
        case passwordSent
        case saslStarted(SCRAMClient)
        case saslFinalExpected(SCRAMClient)
        /// Authenticated; collecting ParameterStatus and BackendKeyData until ReadyForQuery.
        case authenticated
        case finished
    }

    public let user: String
    public let database: String
    public let parameters: [(String, String)]
    private let credential: BackendCredential
    private var state = State.created
    private var collected: [(String, String)] = []
    private var keyData: BackendKeyData?
    /// Tests replaying a captured conversation fix the SCRAM client nonce.
    var scramNonce: String?
    public let channelBindingPolicy: ChannelBindingPolicy
    /// Whether the connection runs over TLS, and the server certificate's tls-server-end-point data
    /// (nil when its hash is unusable); see `useTLS(endPoint:)`.
    private var onTLS = false
    private var endPoint: [UInt8]?
    /// This login uses SCRAM-SHA-256-PLUS: what `require` insists on.
    private var boundSCRAM = false

    /// `parameters` are extra startup parameters (application_name, options, client_encoding,
    /// ...); "user" and "database" are taken from the arguments.
    public init(user: String, database: String, parameters: [(String, String)] = [], credential: BackendCredential,
                channelBinding: ChannelBindingPolicy = .prefer) {
        self.user = user
        self.database = database
        self.parameters = parameters.filter { $0.0 != "user" && $0.0 != "database" }
        self.credential = credential
        channelBindingPolicy = channelBinding
    }

    /// Tells the login that TLS is up (before `start()`), with the data SCRAM binds to.
    public mutating func useTLS(endPoint: [UInt8]?) {
        onTLS = true
        self.endPoint = endPoint
    }

    /// The StartupMessage to send first.
    public mutating func start() -> [UInt8] {
        state = .startupSent
        var bytes: [UInt8] = []
        bytes.writeStartupMessage(parameters: [("user", user), ("database", database)] + parameters)
        return bytes
    }

    public mutating func received(type: UInt8, payload: ArraySlice<UInt8>) -> BackendHandshakeAction {
        if type == BackendMessageType.errorResponse {
            state = .finished
            guard let fields = try? ErrorFields.decode(payload) else { return fail("malformed ErrorResponse from server") }
            return .failed(.server(fields))
        }
        if type == BackendMessageType.noticeResponse { return .wait }

        switch state {
        case .created, .finished:
            return fail("unexpected message \(Self.describe(type)) from server")
        case .authenticated:
            return receivedAfterAuthentication(type: type, payload: payload)
        case .startupSent, .passwordSent, .saslStarted, .saslFinalExpected:
            guard type == BackendMessageType.authentication else {
                return fail("expected an authentication request from server, got \(Self.describe(type))")
            }
            do {
                return try receivedAuthentication(try AuthenticationRequest.decode(payload))
            } catch {
                return fail("malformed authentication request from server: \(error)")
            }
        }
    }

    private mutating func receivedAuthentication(_ request: AuthenticationRequest) throws(WireDecodingError) -> BackendHandshakeAction {
        switch (request, state) {
        case (.ok, .startupSent), (.ok, .passwordSent):
            if channelBindingPolicy == .require, !boundSCRAM {
                return fail("channel binding required, but server authenticated client without channel binding")
            }
            state = .authenticated
            return .wait

        case (.cleartextPassword, .startupSent) where channelBindingPolicy == .require,
             (.md5Password, .startupSent) where channelBindingPolicy == .require:
            return fail("channel binding required but not supported by server's authentication request")

        case (.cleartextPassword, .startupSent):
            guard case .password(let password) = credential else {
                return fail("server asked for a cleartext password but \(credentialKnown)")
            }
            state = .passwordSent
            var bytes: [UInt8] = []
            bytes.writePasswordMessage(password)
            return .send(bytes)

        case (.md5Password(let salt), .startupSent):
            let answer: String
            switch credential {
            case .password(let password): answer = MD5Auth.response(user: user, password: password, salt: salt)
            case .md5Hash(let hash): answer = MD5Auth.response(storedHash: hash, salt: salt)
            default: return fail("server asked for md5 but \(credentialKnown)")
            }
            state = .passwordSent
            var bytes: [UInt8] = []
            bytes.writePasswordMessage(answer)
            return .send(bytes)

        case (.sasl(let mechanisms), .startupSent):
            let binding: SCRAMClient.ChannelBinding
            switch channelBindingPolicy {
            case .disable:
                binding = .notSupported
            case .prefer, .require:
                if onTLS, let endPoint, mechanisms.contains(SCRAMSecret.mechanismWithChannelBinding) {
                    binding = .tlsServerEndPoint(endPoint)
                } else if channelBindingPolicy == .require {
                    return fail(onTLS ? "channel binding is required, but server did not offer an authentication method that supports channel binding"
                                      : "channel binding is required, but the connection to the server does not use TLS")
                } else {
                    binding = onTLS && endPoint != nil ? .supportedButNotOffered : .notSupported
                }
            }
            if case .tlsServerEndPoint = binding { boundSCRAM = true }
            guard boundSCRAM || mechanisms.contains(SCRAMSecret.mechanism) else {
                return fail("server offered SASL mechanisms \(mechanisms.joined(separator: ", ")), none supported")
            }
            var client: SCRAMClient
            switch credential {
            case .password(let password): client = SCRAMClient(password: password, nonce: scramNonce, channelBinding: binding)
            case .scramKeys(let clientKey, let serverKey):
                client = SCRAMClient(clientKey: clientKey, serverKey: serverKey, nonce: scramNonce, channelBinding: binding)
            default: return fail("server asked for SCRAM-SHA-256 but \(credentialKnown)")
            }
            let first = client.clientFirstMessage()
            state = .saslStarted(client)
            var bytes: [UInt8] = []
            bytes.writeSASLInitialResponse(mechanism: client.mechanism, data: first)
            return .send(bytes)

        case (.saslContinue(let data), .saslStarted(var client)):
            do {
                let final = try client.receiveServerFirst(data)
                state = .saslFinalExpected(client)
                var bytes: [UInt8] = []
                bytes.writeSASLResponse(data: final)
                return .send(bytes)
            } catch {
                return fail("SCRAM authentication with server failed: \(error)")
            }

        case (.saslFinal(let data), .saslFinalExpected(var client)):
            do {
                try client.verifyServerFinal(data)
                state = .passwordSent
                return .wait
            } catch {
                return fail("SCRAM authentication with server failed: \(error)")
            }

        case (.ok, _), (.cleartextPassword, _), (.md5Password, _), (.sasl, _), (.saslContinue, _), (.saslFinal, _):
            return fail("unexpected authentication request \(request.code) from server")

        default:
            return fail("unsupported authentication method \(request.code) (\(AuthenticationRequest.methodName(request.code)))")
        }
    }

    private mutating func receivedAfterAuthentication(type: UInt8, payload: ArraySlice<UInt8>) -> BackendHandshakeAction {
        do {
            switch type {
            case BackendMessageType.parameterStatus:
                let status = try ParameterStatus.decode(payload)
                collected.append((status.name, status.value))
                return .wait
            case BackendMessageType.backendKeyData:
                keyData = try BackendKeyData.decode(payload)
                return .wait
            case BackendMessageType.negotiateProtocolVersion:
                // Sent when the server lacks a requested minor version or "_pq_." option; we ask
                // for neither, so it is informational.
                return .wait
            case BackendMessageType.readyForQuery:
                let status = try ReadyForQuery.decode(payload)
                state = .finished
                return .done(BackendSessionInfo(parameters: collected, keyData: keyData, transactionStatus: status))
            default:
                return fail("unexpected message \(Self.describe(type)) from server during startup")
            }
        } catch {
            return fail("malformed \(Self.describe(type)) from server: \(error)")
        }
    }

    private var credentialKnown: String {
        switch credential {
        case .none: "no password is known"
        case .password: "a password is known"
        case .md5Hash: "only an md5 hash is known"
        case .scramKeys: "only SCRAM keys are known"
        }
    }

    private mutating func fail(_ reason: String) -> BackendHandshakeAction {
        state = .finished
        return .failed(.proxy(reason))
    }

    private static func describe(_ type: UInt8) -> String {
        (0x20...0x7E).contains(type) ? "'\(Character(Unicode.Scalar(type)))'" : "type \(type)"
    }
}
