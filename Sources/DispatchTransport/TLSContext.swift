import ProxyLocks
import CLibSSL
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A TLS protocol version, in OpenSSL's numbering.
public enum TLSVersion: Int32, Sendable, Hashable, Comparable, CaseIterable, CustomStringConvertible {
    case tls1_0 = 0x0301
    case tls1_1 = 0x0302
    case tls1_2 = 0x0303
    case tls1_3 = 0x0304

    public static func < (lhs: TLSVersion, rhs: TLSVersion) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String {
        switch self {
        case .tls1_0: "TLSv1.0"
        case .tls1_1: "TLSv1.1"
        case .tls1_2: "TLSv1.2"
        case .tls1_3: "TLSv1.3"
        }
    }
}

/// How a TLS client checks the server's certificate (libpq's sslmode split into what it verifies).
public enum TLSPeerVerification: Sendable, Hashable {
    /// Encrypt only; any certificate is accepted.
    case none
    /// The chain must lead to a trusted CA (verify-ca).
    case chain
    /// The chain, and the certificate must name the host we connected to (verify-full).
    case chainAndHost
}

/// Everything a TLS context is built from; equal configurations share one context (see `shared`).
public struct TLSConfiguration: Sendable, Hashable {
    public enum Role: Sendable, Hashable {
        case server
        case client
    }

    public var role: Role
    /// PEM certificate (chain) presented to the peer: required for a server, optional for a client.
    public var certificateFile: String?
    public var privateKeyFile: String?
    /// PEM CA bundle: a server uses it to verify client certificates (and asks for one when set);
    /// a client uses it to verify the server.
    public var caFile: String?
    /// Server: a client without a valid certificate is refused during the handshake.
    public var requirePeerCertificate: Bool
    /// Client: what to check of the server's certificate.
    public var verification: TLSPeerVerification
    public var minimumVersion: TLSVersion
    public var maximumVersion: TLSVersion?
    /// OpenSSL cipher list for TLS 1.2 and older; nil keeps OpenSSL's default.
    public var ciphers: String?

    public static func server(certificateFile: String, privateKeyFile: String, caFile: String? = nil,
                              requirePeerCertificate: Bool = false, minimumVersion: TLSVersion = .tls1_2,
                              maximumVersion: TLSVersion? = nil, ciphers: String? = nil) -> TLSConfiguration {
        TLSConfiguration(role: .server, certificateFile: certificateFile, privateKeyFile: privateKeyFile, caFile: caFile,
                         requirePeerCertificate: requirePeerCertificate, verification: .none,
                         minimumVersion: minimumVersion, maximumVersion: maximumVersion, ciphers: ciphers)
    }

    public static func client(caFile: String? = nil, certificateFile: String? = nil, privateKeyFile: String? = nil,
                              verification: TLSPeerVerification = .none, minimumVersion: TLSVersion = .tls1_2,
                              maximumVersion: TLSVersion? = nil, ciphers: String? = nil) -> TLSConfiguration {
        TLSConfiguration(role: .client, certificateFile: certificateFile, privateKeyFile: privateKeyFile, caFile: caFile,
                         requirePeerCertificate: false, verification: verification,
                         minimumVersion: minimumVersion, maximumVersion: maximumVersion, ciphers: ciphers)
    }
}

/// Why a TLS context could not be built or a handshake failed.
public struct TLSError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    /// `what` plus OpenSSL's queued reasons (the queue is emptied).
    static func openSSL(_ what: String) -> TLSError {
        let reasons = drainOpenSSLErrors()
        return TLSError(reasons.isEmpty ? what : "\(what): \(reasons)")
    }
}

/// Empties this thread's OpenSSL error queue into one line.
func drainOpenSSLErrors() -> String {
    var reasons: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        if let text = ERR_reason_error_string(code) {
            reasons.append(String(cString: text))
        } else {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            reasons.append(String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
    }
    return reasons.joined(separator: "; ")
}

/// The tls-server-end-point channel binding data of a certificate (RFC 5929), or nil when its
/// signature algorithm names no usable hash.
func tlsServerEndPoint(of certificate: OpaquePointer?) -> [UInt8]? {
    guard let certificate else { return nil }
    var hash = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
    let length = Int(pgsplit_certificate_end_point_hash(certificate, &hash))
    return length > 0 ? Array(hash.prefix(length)) : nil
}

/// An OpenSSL `SSL_CTX`: certificates, CA, protocol range and ciphers, shared by many connections.
///
/// Sendable: the `SSL_CTX` is fully configured in `init` and never changed afterwards; OpenSSL
/// allows `SSL_new` on one configured context from any number of threads at once.
public final class TLSContext: @unchecked Sendable {
    /// The `SSL_CTX*`; immutable after init (see the class comment).
    let context: OpaquePointer
    public let configuration: TLSConfiguration
    /// A server's tls-server-end-point channel binding data: the same for every connection, so
    /// hashed once. Nil for a client context, or when the certificate's hash is unusable.
    public let serverEndPoint: [UInt8]?

    public init(_ configuration: TLSConfiguration) throws(TLSError) {
        self.configuration = configuration
        ERR_clear_error()
        let method = configuration.role == .server ? TLS_server_method() : TLS_client_method()
        guard let context = SSL_CTX_new(method) else { throw TLSError.openSSL("cannot create a TLS context") }
        self.context = context

        if SSL_CTX_ctrl(context, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(configuration.minimumVersion.rawValue), nil) != 1 {
            throw TLSError.openSSL("cannot set the lowest TLS version to \(configuration.minimumVersion)")
        }
        if let maximum = configuration.maximumVersion,
           SSL_CTX_ctrl(context, SSL_CTRL_SET_MAX_PROTO_VERSION, Int(maximum.rawValue), nil) != 1 {
            throw TLSError.openSSL("cannot set the highest TLS version to \(maximum)")
        }
        if let ciphers = configuration.ciphers, !ciphers.isEmpty, ciphers != "default" {
            let list = ciphers == "fast" ? "HIGH:!aNULL" : ciphers == "normal" || ciphers == "secure" ? "HIGH:!aNULL:!MD5:!3DES" : ciphers
            if SSL_CTX_set_cipher_list(context, list) != 1 {
                throw TLSError.openSSL("the cipher list \"\(ciphers)\" names no usable cipher")
            }
        }
        // No renegotiation from the peer, no compression (CRIME); memory BIOs never move buffers.
        // SSL_OP_NO_COMPRESSION (bit 17) and SSL_OP_NO_RENEGOTIATION (bit 30): macros Swift does not import.
        _ = SSL_CTX_set_options(context, UInt64(1) << 17 | UInt64(1) << 30)
        _ = SSL_CTX_ctrl(context, SSL_CTRL_MODE,
                         Int(SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE), nil)

        if let certificate = configuration.certificateFile {
            if SSL_CTX_use_certificate_chain_file(context, certificate) != 1 {
                throw TLSError.openSSL("cannot load the certificate \"\(certificate)\"")
            }
            let key = configuration.privateKeyFile ?? certificate
            if SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) != 1 {
                let failure = TLSError.openSSL("cannot load the private key \"\(key)\"")
                if failure.message.contains("key values mismatch") {
                    throw TLSError("the private key \"\(key)\" does not match the certificate \"\(certificate)\"")
                }
                throw failure
            }
            if SSL_CTX_check_private_key(context) != 1 {
                throw TLSError.openSSL("the private key \"\(key)\" does not match the certificate \"\(certificate)\"")
            }
        } else if configuration.role == .server {
            throw TLSError("a TLS server needs a certificate and a private key")
        }

        if let ca = configuration.caFile {
            if SSL_CTX_load_verify_locations(context, ca, nil) != 1 {
                throw TLSError.openSSL("cannot load the CA file \"\(ca)\"")
            }
            if configuration.role == .server {
                // Tell clients which CAs we accept, so they pick a matching certificate.
                if let names = SSL_load_client_CA_file(ca) {
                    SSL_CTX_set_client_CA_list(context, names)
                }
            }
        }
        switch configuration.role {
        case .server:
            if configuration.caFile != nil {
                // Ask for a certificate; a presented one must verify. Whether one is needed at all
                // is decided by `requirePeerCertificate` (or later, by the caller, e.g. cert auth).
                var mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE
                if configuration.requirePeerCertificate { mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT }
                SSL_CTX_set_verify(context, mode, nil)
            } else if configuration.requirePeerCertificate {
                throw TLSError("verifying client certificates needs a CA file")
            }
            // Sessions are not resumed across connections: nothing to share between processes.
            _ = SSL_CTX_ctrl(context, SSL_CTRL_SET_SESS_CACHE_MODE, Int(SSL_SESS_CACHE_OFF), nil)
            _ = SSL_CTX_set_num_tickets(context, 0)
        case .client:
            if configuration.verification != .none {
                guard configuration.caFile != nil else {
                    throw TLSError("verifying the server's certificate needs a root certificate file (sslrootcert)")
                }
                SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
            } else {
                SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
            }
        }
        serverEndPoint = configuration.role == .server ? tlsServerEndPoint(of: SSL_CTX_get0_certificate(context)) : nil
        ERR_clear_error()
    }

    deinit {
        SSL_CTX_free(context)
    }

    // MARK: Shared contexts

    private struct CacheKey: Hashable {
        var configuration: TLSConfiguration
        /// Modification times of the files, so a replaced certificate makes a new context.
        var stamps: [Int]
    }

    private static let cache = Locked<[CacheKey: TLSContext]>([:])

    /// The context for `configuration`, built once and reused while its files stay unchanged.
    public static func shared(_ configuration: TLSConfiguration) throws(TLSError) -> TLSContext {
        let files = [configuration.certificateFile, configuration.privateKeyFile, configuration.caFile]
        let key = CacheKey(configuration: configuration, stamps: files.map { $0.map(modificationStamp) ?? 0 })
        if let existing = cache.withLock({ $0[key] }) { return existing }
        let created = try TLSContext(configuration)
        return cache.withLock { entries in
            // Drop contexts of older versions of the same files.
            entries = entries.filter { $0.key.configuration != configuration }
            entries[key] = created
            return created
        }
    }

    private static func modificationStamp(_ path: String) -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { return -1 }
        return Int(info.st_mtim.tv_sec) &* 1_000_000_000 &+ Int(info.st_mtim.tv_nsec) &+ Int(info.st_size) &* 31
    }
}
