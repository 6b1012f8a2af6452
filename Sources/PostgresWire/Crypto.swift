import CLibSSL
import ProxyLocks

/// The digests, fetched from OpenSSL once. Handing OpenSSL 3 the legacy `EVP_md5()` / `EVP_sha256()`
/// makes it look the implementation up again on every call, which cost more than the hashing of a
/// login. nonisolated(unsafe) is sound: each is written once by the global's thread-safe lazy
/// initialisation and only read after; a fetched EVP_MD is immutable and OpenSSL allows sharing it
/// between threads.
nonisolated(unsafe) private let fetchedMD5: OpaquePointer? = EVP_MD_fetch(nil, "MD5", nil) ?? EVP_md5()
nonisolated(unsafe) private let fetchedSHA256: OpaquePointer? = EVP_MD_fetch(nil, "SHA256", nil) ?? EVP_sha256()

/// Random bytes drawn from OpenSSL 4 KiB at a time and handed out once each: a login needs a few
/// bytes (an md5 salt, a SCRAM nonce), and each RAND_bytes call has a fixed cost larger than that.
private let randomPool = Locked(RandomPool())

private struct RandomPool {
    static let size = 4096
    var bytes = [UInt8](repeating: 0, count: RandomPool.size)
    var next = RandomPool.size

    mutating func take(_ count: Int) -> [UInt8] {
        if count > Self.size { return Crypto.freshRandomBytes(count) }
        if next + count > Self.size {
            bytes = Crypto.freshRandomBytes(Self.size)
            next = 0
        }
        let taken = Array(bytes[next..<next + count])
        // Never hand the same bytes out twice.
        for index in next..<next + count { bytes[index] = 0 }
        next += count
        return taken
    }
}

/// Unpredictable numbers for the proxy's own secrets (cancel keys), from the same pool as salts.
public enum SecureRandom {
    public static func int32() -> Int32 {
        Crypto.randomBytes(4).reduce(0) { $0 << 8 | Int32($1) }
    }
}

/// The few hash primitives authentication needs, on OpenSSL.
enum Crypto {
    static func sha256<Bytes: Collection>(_ data: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        digest(data, fetchedSHA256, length: 32)
    }

    static func md5<Bytes: Collection>(_ data: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        digest(data, fetchedMD5, length: 16)
    }

    /// md5 of `input` as 32 lower-case hex digits written at `hexOut`: no allocation (logins do it
    /// twice each).
    static func md5Hex(_ input: UnsafeRawBufferPointer, into hexOut: UnsafeMutablePointer<UInt8>) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { digest in
            var outputLength: UInt32 = 0
            let ok = EVP_Digest(input.baseAddress, input.count, digest.baseAddress, &outputLength, fetchedMD5, nil)
            precondition(ok == 1 && outputLength == 16, "OpenSSL digest failed")
            for i in 0..<16 {
                hexOut[2 * i] = hexDigit(digest[i] >> 4)
                hexOut[2 * i + 1] = hexDigit(digest[i] & 0x0F)
            }
        }
    }

    @inline(__always) static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? 0x30 + value : 0x61 - 10 + value
    }

    private static func digest<Bytes: Collection>(_ data: Bytes, _ type: OpaquePointer?, length: Int) -> [UInt8]
    where Bytes.Element == UInt8 {
        let input = Array(data)
        var output = [UInt8](repeating: 0, count: length)
        var outputLength: UInt32 = 0
        let ok = input.withUnsafeBytes { inputBytes in
            output.withUnsafeMutableBufferPointer { outputBytes in
                EVP_Digest(inputBytes.baseAddress, inputBytes.count, outputBytes.baseAddress, &outputLength, type, nil)
            }
        }
        precondition(ok == 1 && Int(outputLength) == length, "OpenSSL digest failed")
        return output
    }

    static func hmacSHA256(key: [UInt8], data: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        var outputLength: UInt32 = 0
        let result = key.withUnsafeBytes { keyBytes in
            data.withUnsafeBytes { dataBytes in
                output.withUnsafeMutableBufferPointer { outputBytes in
                    HMAC(fetchedSHA256, keyBytes.baseAddress, Int32(keyBytes.count),
                         dataBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), dataBytes.count,
                         outputBytes.baseAddress, &outputLength)
                }
            }
        }
        precondition(result != nil && outputLength == 32, "OpenSSL HMAC failed")
        return output
    }

    /// PBKDF2-HMAC-SHA-256 with a 32-byte output: SCRAM's Hi().
    static func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        let ok = password.withUnsafeBytes { passwordBytes in
            salt.withUnsafeBytes { saltBytes in
                output.withUnsafeMutableBufferPointer { outputBytes in
                    PKCS5_PBKDF2_HMAC(passwordBytes.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(passwordBytes.count),
                                      saltBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(saltBytes.count),
                                      Int32(iterations), fetchedSHA256, 32, outputBytes.baseAddress)
                }
            }
        }
        precondition(ok == 1, "OpenSSL PBKDF2 failed")
        return output
    }

    /// Cryptographically random bytes (from the pool).
    static func randomBytes(_ count: Int) -> [UInt8] {
        randomPool.withLock { $0.take(count) }
    }

    static func freshRandomBytes(_ count: Int) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: count)
        let ok = output.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        precondition(ok == 1, "OpenSSL RAND_bytes failed")
        return output
    }

    /// Compares without an early exit, so timing does not reveal how much of a proof matched.
    static func constantTimeEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in 0..<a.count { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { a in b.withUnsafeBytes { b in constantTimeEqual(a, b) } }
    }

    static func xor(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        precondition(a.count == b.count)
        return zip(a, b).map { $0 ^ $1 }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(hexDigit(byte >> 4))
            out.append(hexDigit(byte & 0x0F))
        }
        return String(decoding: out, as: UTF8.self)
    }
}
