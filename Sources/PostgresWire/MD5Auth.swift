/// PostgreSQL's md5 password scheme: the stored secret is "md5" + hex(md5(password + user)); the
/// client answers a 4-byte salt with "md5" + hex(md5(hex(md5(password + user)) + salt)).
public enum MD5Auth {
    /// The stored form of a password: "md5" followed by 32 hex digits.
    public static func storedHash(user: String, password: String) -> String {
        "md5" + Crypto.hex(Crypto.md5(Array(password.utf8) + Array(user.utf8)))
    }

    /// Whether a stored secret is an md5 hash.
    public static func isMD5Hash(_ secret: String) -> Bool {
        let bytes = Array(secret.utf8)
        guard bytes.count == 35, secret.hasPrefix("md5") else { return false }
        return bytes[3...].allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The client's answer to an md5 challenge, from the plain password.
    public static func response(user: String, password: String, salt: UInt32) -> String {
        response(storedHash: storedHash(user: user, password: password), salt: salt)
    }

    /// The client's answer from an already-hashed secret ("md5..."), so a proxy can log in onward
    /// without the plain password.
    public static func response(storedHash: String, salt: UInt32) -> String {
        let hexPart = Array(storedHash.utf8.dropFirst(3))
        let saltBytes: [UInt8] = [UInt8(truncatingIfNeeded: salt >> 24), UInt8(truncatingIfNeeded: salt >> 16),
                                  UInt8(truncatingIfNeeded: salt >> 8), UInt8(truncatingIfNeeded: salt)]
        return "md5" + Crypto.hex(Crypto.md5(hexPart + saltBytes))
    }

    /// The server-side check of a client's answer against the stored hash.
    public static func verify(response: String, storedHash: String, salt: UInt32) -> Bool {
        let expected = Array(self.response(storedHash: storedHash, salt: salt).utf8)
        return Crypto.constantTimeEqual(expected, Array(response.utf8))
    }

    public static func randomSalt() -> UInt32 {
        let bytes = Crypto.randomBytes(4)
        return bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }
}
