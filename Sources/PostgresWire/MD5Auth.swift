/// PostgreSQL's md5 password scheme: the stored secret is "md5" + hex(md5(password + user)); the
/// client answers a 4-byte salt with "md5" + hex(md5(hex(md5(password + user)) + salt)).
public enum MD5Auth {
    /// The stored form of a password: "md5" followed by 32 hex digits.
    public static func storedHash(user: String, password: String) -> String {
        var input = Array(password.utf8)
        input.append(contentsOf: user.utf8)
        return input.withUnsafeBytes { prefixedHex(of: $0) }
    }

    /// Whether a stored secret is an md5 hash.
    public static func isMD5Hash(_ secret: String) -> Bool {
        let utf8 = secret.utf8
        guard utf8.count == 35, secret.hasPrefix("md5") else { return false }
        return utf8.dropFirst(3).allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The client's answer to an md5 challenge, from the plain password.
    public static func response(user: String, password: String, salt: UInt32) -> String {
        response(storedHash: storedHash(user: user, password: password), salt: salt)
    }

    /// The client's answer from an already-hashed secret ("md5..."), so a proxy can log in onward
    /// without the plain password.
    public static func response(storedHash: String, salt: UInt32) -> String {
        withResponse(storedHash: storedHash, salt: salt) { String(decoding: $0, as: UTF8.self) }
    }

    /// The server-side check of a client's answer against the stored hash.
    public static func verify(response: String, storedHash: String, salt: UInt32) -> Bool {
        withResponse(storedHash: storedHash, salt: salt) { expected in
            var answer = response
            return answer.withUTF8 { Crypto.constantTimeEqual(expected, UnsafeRawBufferPointer($0)) }
        }
    }

    /// "md5" + hex(md5(hex part of `storedHash` + salt)), built on the stack and lent to `body`.
    private static func withResponse<T>(storedHash: String, salt: UInt32, _ body: (UnsafeRawBufferPointer) -> T) -> T {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 36 + 35) { buffer in
            let input = buffer.baseAddress!
            var length = 0
            for byte in storedHash.utf8.dropFirst(3).prefix(32) {
                input[length] = byte
                length += 1
            }
            withUnsafeBytes(of: salt.bigEndian) { saltBytes in
                for byte in saltBytes {
                    input[length] = byte
                    length += 1
                }
            }
            let output = input + 36
            writePrefixedHex(of: UnsafeRawBufferPointer(start: input, count: length), into: output)
            return body(UnsafeRawBufferPointer(start: output, count: 35))
        }
    }

    /// "md5" + hex(md5(input)).
    private static func prefixedHex(of input: UnsafeRawBufferPointer) -> String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 35) { output in
            writePrefixedHex(of: input, into: output.baseAddress!)
            return String(decoding: output, as: UTF8.self)
        }
    }

    /// Writes the 35 bytes "md5" + hex(md5(input)) at `output`.
    private static func writePrefixedHex(of input: UnsafeRawBufferPointer, into output: UnsafeMutablePointer<UInt8>) {
        output[0] = UInt8(ascii: "m")
        output[1] = UInt8(ascii: "d")
        output[2] = UInt8(ascii: "5")
        Crypto.md5Hex(input, into: output + 3)
    }

    public static func randomSalt() -> UInt32 {
        let bytes = Crypto.randomBytes(4)
        return bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }
}
