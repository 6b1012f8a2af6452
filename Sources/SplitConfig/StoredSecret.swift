import Foundation

/// A user's secret as kept in auth_file: what the proxy checks a client's login against and, for
/// backends without their own `user=`, what it logs in with.
public enum StoredSecret: Sendable, Equatable {
    /// The password itself.
    case plain(String)
    /// PostgreSQL's md5 form, `md5` + md5(password + user); holds the 32 lower-case hex digits.
    case md5(String)
    /// A SCRAM-SHA-256 verifier, as in `pg_authid.rolpassword`.
    case scramSHA256(ScramVerifier)

    /// Classifies a secret the way PostgreSQL does: `md5` + 32 hex digits, or `SCRAM-SHA-256$...`,
    /// anything else being a plain password. Nil for a malformed SCRAM verifier.
    public static func classify(_ text: String) -> StoredSecret? {
        if text.hasPrefix("SCRAM-SHA-256$") {
            return ScramVerifier(text).map { .scramSHA256($0) }
        }
        let hexDigits = text.dropFirst(3)
        if text.hasPrefix("md5"), hexDigits.count == 32, hexDigits.allSatisfy(\.isHexDigit) {
            return .md5(hexDigits.lowercased())
        }
        return .plain(text)
    }
}

/// The parts of `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 decoded).
public struct ScramVerifier: Sendable, Equatable {
    public let iterations: Int
    public let salt: [UInt8]
    public let storedKey: [UInt8]
    public let serverKey: [UInt8]
    /// The verifier as written.
    public let text: String

    public init?(_ text: String) {
        guard text.hasPrefix("SCRAM-SHA-256$") else { return nil }
        let body = text.dropFirst("SCRAM-SHA-256$".count)
        let halves = body.split(separator: "$", omittingEmptySubsequences: false)
        guard halves.count == 2 else { return nil }
        let saltPart = halves[0].split(separator: ":", omittingEmptySubsequences: false)
        let keyPart = halves[1].split(separator: ":", omittingEmptySubsequences: false)
        guard saltPart.count == 2, keyPart.count == 2,
              let iterations = Int(saltPart[0]), iterations > 0,
              let salt = Data(base64Encoded: String(saltPart[1])), !salt.isEmpty,
              let storedKey = Data(base64Encoded: String(keyPart[0])), storedKey.count == 32,
              let serverKey = Data(base64Encoded: String(keyPart[1])), serverKey.count == 32
        else { return nil }
        self.iterations = iterations
        self.salt = Array(salt)
        self.storedKey = Array(storedKey)
        self.serverKey = Array(serverKey)
        self.text = text
    }
}
