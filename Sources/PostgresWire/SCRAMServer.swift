/// The server side of SCRAM-SHA-256 and, on TLS, SCRAM-SHA-256-PLUS with tls-server-end-point
/// channel binding, as PostgreSQL does them.
///
/// Steps: `receiveClientFirst(_:mechanism:)` gives server-first, `receiveClientFinal(_:)` checks the
/// proof and gives server-final plus the client's ClientKey (recovered as ClientProof XOR
/// ClientSignature), which lets a proxy log in onward as the same user.
public struct SCRAMServer: Sendable {
    public struct Outcome: Equatable, Sendable {
        /// The SASLFinal data to send ("v=...").
        public var serverFinalMessage: [UInt8]
        public var keys: SCRAMKeys
    }

    /// The channel binding type PostgreSQL and libpq use: a hash of the server's certificate.
    public static let channelBindingType = "tls-server-end-point"

    private enum State: Sendable {
        case initial
        /// `expectedBinding`: what the client-final's c= must decode to (gs2 header, then the
        /// channel binding data when it is used).
        case sentFirst(clientFirstBare: String, serverFirst: String, nonce: String, expectedBinding: [UInt8], bound: Bool)
        case done
    }

    private let secret: SCRAMSecret
    private let serverNonce: String
    /// The connection's tls-server-end-point data; nil without TLS. When set, SCRAM-SHA-256-PLUS
    /// is offered and a client that could bind but thinks we cannot is refused (a downgrade).
    private let channelBinding: [UInt8]?
    /// A made-up secret for an unknown user or a user without a SCRAM secret: the exchange runs
    /// as usual and fails at the end, so it is indistinguishable from a wrong password.
    private let alwaysFail: Bool
    private var state = State.initial

    public init(secret: SCRAMSecret, nonce: String? = nil, channelBinding: [UInt8]? = nil) {
        self.secret = secret
        serverNonce = nonce ?? SCRAMAttributes.randomNonce()
        self.channelBinding = channelBinding
        alwaysFail = false
    }

    /// A server that goes through the motions for `user` and then refuses. Its salt is derived from
    /// the user name and a per-process random value, so repeated attempts see the same salt.
    public static func mock(user: String, channelBinding: [UInt8]? = nil) -> SCRAMServer {
        SCRAMServer(mockSecret: SCRAMSecret(iterations: SCRAMSecret.defaultIterations,
                                            salt: Array(Crypto.sha256(mockSaltSeed + Array(user.utf8)).prefix(SCRAMSecret.defaultSaltLength)),
                                            storedKey: Crypto.randomBytes(32), serverKey: Crypto.randomBytes(32)),
                    channelBinding: channelBinding)
    }

    private init(mockSecret: SCRAMSecret, channelBinding: [UInt8]?) {
        secret = mockSecret
        serverNonce = SCRAMAttributes.randomNonce()
        self.channelBinding = channelBinding
        alwaysFail = true
    }

    /// The mechanisms to offer, best first, as PostgreSQL lists them.
    public var mechanisms: [String] {
        channelBinding == nil ? [SCRAMSecret.mechanism] : [SCRAMSecret.mechanismWithChannelBinding, SCRAMSecret.mechanism]
    }

    /// Consumes client-first (the SASLInitialResponse data) sent with `mechanism` (one of
    /// `mechanisms`), returns server-first.
    public mutating func receiveClientFirst<Bytes: Collection>(_ data: Bytes, mechanism: String = SCRAMSecret.mechanism)
    throws(SCRAMError) -> [UInt8] where Bytes.Element == UInt8 {
        guard case .initial = state else { throw .unexpectedMessage }
        let binds = mechanism == SCRAMSecret.mechanismWithChannelBinding
        let text = String(decoding: data, as: UTF8.self)
        let parts = text.split(separator: ",", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .malformed("client-first-message is incomplete") }
        var expectedBinding = Array("\(parts[0]),\(parts[1]),".utf8)
        switch parts[0] {
        case "n", "y":
            if binds {
                throw .malformed("The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data.")
            }
            if parts[0] == "y", channelBinding != nil {
                // The client could bind and believes we cannot: someone between us removed PLUS.
                throw .bindingNegotiation("The client supports SCRAM channel binding but thinks the server does not.  However, this server does support channel binding.")
            }
        case let flag where flag.hasPrefix("p="):
            guard binds, let channelBinding else {
                throw .malformed("The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data.")
            }
            guard flag.dropFirst(2) == Self.channelBindingType else {
                throw .unsupportedBindingType(String(flag.dropFirst(2)))
            }
            expectedBinding += channelBinding
        default: throw .malformed("unexpected channel-binding flag \"\(parts[0])\"")
        }
        guard parts[1].isEmpty else {
            throw .unsupported("client uses authorization identity, but it is not supported")
        }
        let clientFirstBare = parts[2]
        guard let attributes = SCRAMAttributes.parse(clientFirstBare), attributes.count >= 2 else {
            throw .malformed("client-first-message attributes")
        }
        if attributes[0].name == "m" { throw .unsupported("client requires an unsupported SCRAM extension") }
        // PostgreSQL ignores the user name here: the startup packet's user is the one that counts.
        guard attributes[0].name == "n", attributes[1].name == "r" else {
            throw .malformed("client-first-message must be n=,r=")
        }
        let clientNonce = attributes[1].value
        guard SCRAMAttributes.isValidNonce(clientNonce) else { throw .malformed("invalid client nonce") }

        let nonce = String(clientNonce) + serverNonce
        let serverFirst = "r=\(nonce),s=\(Base64.encode(secret.salt)),i=\(secret.iterations)"
        state = .sentFirst(clientFirstBare: String(clientFirstBare), serverFirst: serverFirst, nonce: nonce,
                           expectedBinding: expectedBinding, bound: binds)
        return Array(serverFirst.utf8)
    }

    /// Consumes client-final (the SASLResponse data). Throws `.invalidProof` on a wrong password.
    public mutating func receiveClientFinal<Bytes: Collection>(_ data: Bytes) throws(SCRAMError) -> Outcome
    where Bytes.Element == UInt8 {
        guard case .sentFirst(let clientFirstBare, let serverFirst, let nonce, let expectedBinding, let bound) = state else {
            throw .unexpectedMessage
        }
        let text = String(decoding: data, as: UTF8.self)
        // The proof is the last attribute; everything before its comma is signed.
        guard let lastComma = text.lastIndex(of: ","), text[lastComma...].hasPrefix(",p=") else {
            throw .malformed("client-final-message has no proof")
        }
        let withoutProof = text[..<lastComma]
        guard let attributes = SCRAMAttributes.parse(withoutProof), attributes.count >= 2,
              attributes[0].name == "c", attributes[1].name == "r" else {
            throw .malformed("client-final-message must start with c=,r=")
        }
        guard let binding = Base64.decode(attributes[0].value), binding == expectedBinding else {
            // With binding, other data means the client saw another certificate: someone in between.
            throw bound ? .bindingCheckFailed : .malformed("unexpected channel binding data")
        }
        guard attributes[1].value == nonce else { throw .malformed("nonce does not match") }
        guard let proof = Base64.decode(text[text.index(lastComma, offsetBy: 3)...]), proof.count == 32 else {
            throw .malformed("invalid client proof")
        }

        let authMessage = Array("\(clientFirstBare),\(serverFirst),\(withoutProof)".utf8)
        let clientSignature = Crypto.hmacSHA256(key: secret.storedKey, data: authMessage)
        let clientKey = Crypto.xor(proof, clientSignature)
        state = .done
        guard !alwaysFail, Crypto.constantTimeEqual(Crypto.sha256(clientKey), secret.storedKey) else {
            throw .invalidProof
        }
        let serverSignature = Crypto.hmacSHA256(key: secret.serverKey, data: authMessage)
        return Outcome(serverFinalMessage: Array("v=\(Base64.encode(serverSignature))".utf8),
                       keys: SCRAMKeys(clientKey: clientKey, serverKey: secret.serverKey))
    }
}

/// Seeds mock salts; random per process so salts of unknown users cannot be predicted.
private let mockSaltSeed: [UInt8] = Crypto.randomBytes(32)
