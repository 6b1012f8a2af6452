/// The client side of SCRAM-SHA-256 as PostgreSQL speaks it, with an empty user name (the server
/// takes the user from the startup packet), and with tls-server-end-point channel binding
/// (SCRAM-SHA-256-PLUS) when the caller asks for it.
///
/// Steps: `clientFirstMessage()`, then `receiveServerFirst(_:)` gives client-final, then
/// `verifyServerFinal(_:)` checks that the server knew the secret too.
public struct SCRAMClient: Sendable {
    private enum Credential: Sendable {
        case password(String)
        case keys(SCRAMKeys)
    }

    private enum State: Sendable {
        case initial
        case sentFirst
        case sentFinal(expectedServerSignature: [UInt8])
        case done
    }

    /// What the gs2 header says about channel binding.
    public enum ChannelBinding: Sendable, Equatable {
        /// "n": no TLS, or binding switched off.
        case notSupported
        /// "y": on TLS, but the server did not offer SCRAM-SHA-256-PLUS (a server on TLS that
        /// offers it would see a downgrade and refuse).
        case supportedButNotOffered
        /// "p=tls-server-end-point" with the server certificate's hash: SCRAM-SHA-256-PLUS.
        case tlsServerEndPoint([UInt8])
    }

    private let credential: Credential
    private let clientNonce: String
    private var state = State.initial
    private let gs2Header: String
    /// The c= attribute's content: the gs2 header, then the binding data when bound.
    private let bindingInput: [UInt8]

    /// The SASL mechanism name to send with the first message.
    public let mechanism: String

    /// The keys used (known after the server-first message when starting from a password).
    public private(set) var keys: SCRAMKeys?

    public init(password: String, nonce: String? = nil, channelBinding: ChannelBinding = .notSupported) {
        credential = .password(password)
        clientNonce = nonce ?? SCRAMAttributes.randomNonce()
        (gs2Header, bindingInput, mechanism) = Self.binding(channelBinding)
    }

    /// Authenticates with keys learned elsewhere (e.g. from a client's SCRAM login through the
    /// proxy). They only work if the server's secret uses the salt and iterations they came from.
    public init(clientKey: [UInt8], serverKey: [UInt8], nonce: String? = nil, channelBinding: ChannelBinding = .notSupported) {
        credential = .keys(SCRAMKeys(clientKey: clientKey, serverKey: serverKey))
        keys = SCRAMKeys(clientKey: clientKey, serverKey: serverKey)
        clientNonce = nonce ?? SCRAMAttributes.randomNonce()
        (gs2Header, bindingInput, mechanism) = Self.binding(channelBinding)
    }

    private static func binding(_ binding: ChannelBinding) -> (header: String, input: [UInt8], mechanism: String) {
        switch binding {
        case .notSupported: return ("n,,", Array("n,,".utf8), SCRAMSecret.mechanism)
        case .supportedButNotOffered: return ("y,,", Array("y,,".utf8), SCRAMSecret.mechanism)
        case .tlsServerEndPoint(let data):
            let header = "p=\(SCRAMServer.channelBindingType),,"
            return (header, Array(header.utf8) + data, SCRAMSecret.mechanismWithChannelBinding)
        }
    }

    private var clientFirstBare: String { "n=,r=\(clientNonce)" }

    /// The data of the SASLInitialResponse.
    public mutating func clientFirstMessage() -> [UInt8] {
        state = .sentFirst
        return Array((gs2Header + clientFirstBare).utf8)
    }

    /// Consumes server-first (SASLContinue data) and returns client-final (SASLResponse data).
    public mutating func receiveServerFirst<Bytes: Collection>(_ data: Bytes) throws(SCRAMError) -> [UInt8]
    where Bytes.Element == UInt8 {
        guard case .sentFirst = state else { throw .unexpectedMessage }
        let serverFirst = String(decoding: data, as: UTF8.self)
        guard let attributes = SCRAMAttributes.parse(serverFirst[...]), attributes.count >= 3,
              attributes[0].name == "r", attributes[1].name == "s", attributes[2].name == "i" else {
            if serverFirst.hasPrefix("m=") { throw .unsupported("server requires an unsupported SCRAM extension") }
            throw .malformed("server-first-message is not r=,s=,i=")
        }
        let nonce = attributes[0].value
        guard nonce.count > clientNonce.count, nonce.hasPrefix(clientNonce),
              SCRAMAttributes.isValidNonce(nonce) else {
            throw .malformed("server nonce does not extend the client nonce")
        }
        guard let salt = Base64.decode(attributes[1].value), !salt.isEmpty else { throw .malformed("invalid salt") }
        guard let iterations = Int(attributes[2].value), iterations > 0 else {
            throw .malformed("invalid iteration count")
        }
        // Each iteration is an HMAC on the proxy's event loop: a hostile or broken server must not
        // stall it for minutes (PostgreSQL's default is 4096).
        guard iterations <= SCRAMSecret.maximumIterations else {
            throw .unsupported("server asks for \(iterations) SCRAM iterations; pgsplit accepts at most \(SCRAMSecret.maximumIterations)")
        }

        let keys: SCRAMKeys
        switch credential {
        case .password(let password): keys = SCRAMKeys.remembered(password: password, salt: salt, iterations: iterations)
        case .keys(let known): keys = known
        }
        self.keys = keys

        let channelBinding = Base64.encode(bindingInput)
        let finalWithoutProof = "c=\(channelBinding),r=\(nonce)"
        let authMessage = Array("\(clientFirstBare),\(serverFirst),\(finalWithoutProof)".utf8)
        let storedKey = Crypto.sha256(keys.clientKey)
        let clientSignature = Crypto.hmacSHA256(key: storedKey, data: authMessage)
        let proof = Crypto.xor(keys.clientKey, clientSignature)
        state = .sentFinal(expectedServerSignature: Crypto.hmacSHA256(key: keys.serverKey, data: authMessage))
        return Array("\(finalWithoutProof),p=\(Base64.encode(proof))".utf8)
    }

    /// Checks server-final (SASLFinal data). Throws unless the server proved it knows the secret.
    public mutating func verifyServerFinal<Bytes: Collection>(_ data: Bytes) throws(SCRAMError) where Bytes.Element == UInt8 {
        guard case .sentFinal(let expected) = state else { throw .unexpectedMessage }
        let serverFinal = String(decoding: data, as: UTF8.self)
        guard let attributes = SCRAMAttributes.parse(serverFinal[...]), let first = attributes.first else {
            throw .malformed("server-final-message")
        }
        if first.name == "e" { throw .serverError(String(first.value)) }
        guard first.name == "v", let signature = Base64.decode(first.value) else {
            throw .malformed("server-final-message has no verifier")
        }
        guard Crypto.constantTimeEqual(signature, expected) else { throw .serverSignatureMismatch }
        state = .done
    }
}
