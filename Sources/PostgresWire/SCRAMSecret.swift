import ProxyLocks

/// Why a SCRAM exchange stopped.
public enum SCRAMError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The peer's message does not follow RFC 5802.
    case malformed(String)
    /// The client asked for something we do not do (channel binding, authzid, extensions).
    case unsupported(String)
    /// The client's proof does not match the secret: wrong password (or unknown user).
    case invalidProof
    /// The server's signature does not match: it does not know the password.
    case serverSignatureMismatch
    /// The server answered with "e=...".
    case serverError(String)
    /// A message arrived in the wrong step.
    case unexpectedMessage
    /// The client could bind to the channel but was told it cannot: a downgrade between the two.
    case bindingNegotiation(String)
    /// The channel binding data differs from the connection's: the client saw another certificate.
    case bindingCheckFailed
    /// The client asked for a channel binding type other than tls-server-end-point.
    case unsupportedBindingType(String)

    public var description: String {
        switch self {
        case .malformed(let detail): "malformed SCRAM message: \(detail)"
        case .unsupported(let detail): detail
        case .invalidProof: "invalid SCRAM client proof"
        case .serverSignatureMismatch: "incorrect server signature"
        case .serverError(let detail): "SCRAM error from server: \(detail)"
        case .unexpectedMessage: "unexpected SCRAM message"
        case .bindingNegotiation(let detail): "SCRAM channel binding negotiation error: \(detail)"
        case .bindingCheckFailed: "SCRAM channel binding check failed"
        case .unsupportedBindingType(let type): "unsupported SCRAM channel-binding type \"\(type)\""
        }
    }
}

/// A SCRAM-SHA-256 secret as PostgreSQL stores it:
/// `SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>`.
public struct SCRAMSecret: Equatable, Sendable {
    public static let mechanism = "SCRAM-SHA-256"
    /// SCRAM with channel binding, offered on TLS connections.
    public static let mechanismWithChannelBinding = "SCRAM-SHA-256-PLUS"
    public static let defaultIterations = 4096
    /// Above this a secret or a server's challenge is refused: PBKDF2 runs on an event loop.
    public static let maximumIterations = 1_000_000
    public static let defaultSaltLength = 16

    public var iterations: Int
    public var salt: [UInt8]
    public var storedKey: [UInt8]
    public var serverKey: [UInt8]

    public init(iterations: Int, salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8]) {
        self.iterations = iterations
        self.salt = salt
        self.storedKey = storedKey
        self.serverKey = serverKey
    }

    /// Parses the stored form; nil when the string is not a SCRAM-SHA-256 secret.
    public init?(parsing text: String) {
        // Most secrets in an auth file are not SCRAM: say no before splitting anything.
        guard text.utf8.starts(with: Self.mechanism.utf8) else { return nil }
        let parts = text.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == Self.mechanism else { return nil }
        let saltPart = parts[1].split(separator: ":", omittingEmptySubsequences: false)
        let keysPart = parts[2].split(separator: ":", omittingEmptySubsequences: false)
        guard saltPart.count == 2, keysPart.count == 2,
              let iterations = Int(saltPart[0]), iterations > 0, iterations <= Self.maximumIterations,
              let salt = Base64.decode(saltPart[1]), !salt.isEmpty,
              let storedKey = Base64.decode(keysPart[0]), storedKey.count == 32,
              let serverKey = Base64.decode(keysPart[1]), serverKey.count == 32 else { return nil }
        self.init(iterations: iterations, salt: salt, storedKey: storedKey, serverKey: serverKey)
    }

    /// Makes a secret from a plain password with a random salt. The password is used as UTF-8
    /// without SASLprep, which matches PostgreSQL for ASCII passwords.
    public static func make(password: String, salt: [UInt8]? = nil,
                            iterations: Int = defaultIterations) -> SCRAMSecret {
        let salt = salt ?? Crypto.randomBytes(defaultSaltLength)
        let keys = SCRAMKeys(password: password, salt: salt, iterations: iterations)
        return SCRAMSecret(iterations: iterations, salt: salt, storedKey: Crypto.sha256(keys.clientKey),
                           serverKey: keys.serverKey)
    }

    public var stringValue: String {
        "\(Self.mechanism)$\(iterations):\(Base64.encode(salt))$\(Base64.encode(storedKey)):\(Base64.encode(serverKey))"
    }

    /// Whether `password` is the one this secret was made from.
    public func matches(password: String) -> Bool {
        let keys = SCRAMKeys(password: password, salt: salt, iterations: iterations)
        return Crypto.constantTimeEqual(Crypto.sha256(keys.clientKey), storedKey)
            && Crypto.constantTimeEqual(keys.serverKey, serverKey)
    }
}

/// ClientKey and ServerKey: what a password turns into for one salt and iteration count.
/// Knowing them is enough to log in with SCRAM as that user, so they are as secret as the password.
public struct SCRAMKeys: Equatable, Sendable {
    public var clientKey: [UInt8]
    public var serverKey: [UInt8]

    public init(clientKey: [UInt8], serverKey: [UInt8]) {
        self.clientKey = clientKey
        self.serverKey = serverKey
    }

    public init(password: String, salt: [UInt8], iterations: Int) {
        let salted = Crypto.pbkdf2SHA256(password: Array(password.utf8), salt: salt, iterations: iterations)
        clientKey = Crypto.hmacSHA256(key: salted, data: Array("Client Key".utf8))
        serverKey = Crypto.hmacSHA256(key: salted, data: Array("Server Key".utf8))
    }
}

extension SCRAMKeys {
    /// The keys for a password the proxy holds itself (a backend's configured password, or the
    /// client's auth_file password passed on to a backend), remembered per salt and iteration count.
    /// A server keeps one salt per role, so every backend connection a pool opens for that role would
    /// otherwise repeat the same PBKDF2 — 4,096 HMAC rounds by default, milliseconds of CPU on the
    /// event loop per connection. Only for passwords the configuration vouches for (a client's
    /// cleartext password reaches here only after it matched its auth_file entry): an unchecked one
    /// would let a client fill the cache, or time it.
    public static func remembered(password: String, salt: [UInt8], iterations: Int) -> SCRAMKeys {
        let key = DerivationKey(password: password, salt: salt, iterations: iterations)
        if let known = derived.withLock({ $0[key] }) { return known }
        let made = SCRAMKeys(password: password, salt: salt, iterations: iterations)
        derived.withLock { derived in
            if derived.count >= rememberedLimit { derived.removeAll() }
            derived[key] = made
        }
        return made
    }

    private struct DerivationKey: Hashable {
        var password: String
        var salt: [UInt8]
        var iterations: Int
    }

    /// Bounded: one entry per backend role and password in use is what the proxy needs.
    private static let rememberedLimit = 1_024
    private static let derived = Locked<[DerivationKey: SCRAMKeys]>([:])
}

/// Splitting SCRAM messages into their "x=value" attributes.
enum SCRAMAttributes {
    /// The attributes of a message in order; nil if any part is not "letter=value".
    static func parse(_ text: Substring) -> [(name: Character, value: Substring)]? {
        var result: [(Character, Substring)] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard part.count >= 2, let name = part.first, name.isLetter, name.isASCII,
                  part[part.index(after: part.startIndex)] == "=" else { return nil }
            result.append((name, part.dropFirst(2)))
        }
        return result
    }

    /// A nonce is printable ASCII other than ','.
    static func isValidNonce(_ nonce: Substring) -> Bool {
        !nonce.isEmpty && nonce.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E && $0 != UInt8(ascii: ",") }
    }

    static func randomNonce() -> String { Base64.encode(Crypto.randomBytes(18)) }
}
