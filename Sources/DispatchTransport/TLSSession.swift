import CLibSSL
#if canImport(Glibc)
import Glibc
#endif

/// What the peer showed in a finished TLS handshake.
public struct TLSPeerInfo: Sendable, Equatable {
    /// "TLSv1.3", ...
    public var protocolVersion: String
    public var cipher: String
    /// Whether the peer presented a certificate (it was verified against the CA when one is configured).
    public var presentedCertificate: Bool
    /// The certificate subject's common name; nil without a certificate or CN (or a CN with a NUL byte).
    public var commonName: String?
    /// tls-server-end-point channel binding data (RFC 5929): the hash of the server's certificate —
    /// ours when we are the server, the peer's when we are the client. Nil when the certificate's
    /// signature names no usable hash; SCRAM then runs without channel binding.
    public var channelBinding: [UInt8]?
}

/// One connection's OpenSSL state: the `SSL` object between two memory BIOs. The socket never
/// belongs to OpenSSL; the connection moves ciphertext between the BIOs and the socket itself.
///
/// Not Sendable, and needs not be: it is owned by one `Connection` and used only on that
/// connection's loop queue, like the rest of the connection's state.
final class TLSSession {
    /// The `SSL*`; confined to the owning connection's loop (see the class comment).
    let ssl: OpaquePointer
    /// Ciphertext from the socket, written by the connection, read by OpenSSL.
    let networkIn: OpaquePointer
    /// Ciphertext produced by OpenSSL, read by the connection and sent to the socket.
    let networkOut: OpaquePointer
    /// Keeps the `SSL_CTX` alive for as long as the `SSL` uses it.
    let context: TLSContext
    let serverName: String?
    var handshaking = true
    var completion: ((Result<TLSPeerInfo, TLSError>) -> Void)?
    /// Ciphertext taken from `networkOut` that the socket has not accepted yet.
    let backlog = OutputBuffer()

    init(context: TLSContext, serverName: String?) throws(TLSError) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.context) else { throw TLSError.openSSL("cannot create a TLS session") }
        guard let input = BIO_new(BIO_s_mem()), let output = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw TLSError.openSSL("cannot create TLS buffers")
        }
        // Reading an empty memory BIO means "no data yet", never end of stream.
        _ = BIO_ctrl(input, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, nil)
        _ = BIO_ctrl(output, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, nil)
        SSL_set_bio(ssl, input, output) // the SSL owns both BIOs from here on
        self.ssl = ssl
        self.networkIn = input
        self.networkOut = output
        self.context = context
        self.serverName = serverName

        switch context.configuration.role {
        case .server:
            SSL_set_accept_state(ssl)
        case .client:
            SSL_set_connect_state(ssl)
            if let serverName, !serverName.isEmpty {
                let isAddress = Self.isIPAddress(serverName)
                if !isAddress {
                    // SNI, as libpq sends it; never for an IP address (RFC 6066).
                    _ = serverName.withCString { name in
                        SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), UnsafeMutableRawPointer(mutating: name))
                    }
                }
                if context.configuration.verification == .chainAndHost {
                    // OpenSSL checks the name during verification (X509_check_host / the IP SANs).
                    let ok: Int32
                    if isAddress {
                        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName)
                    } else {
                        X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl), UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
                        ok = SSL_set1_host(ssl, serverName)
                    }
                    if ok != 1 {
                        SSL_free(ssl)
                        throw TLSError.openSSL("cannot check the server certificate against \"\(serverName)\"")
                    }
                }
            } else if context.configuration.verification == .chainAndHost {
                SSL_free(ssl)
                throw TLSError("checking the server's host name needs a host name")
            }
        }
    }

    deinit {
        SSL_free(ssl)
    }

    /// Whether OpenSSL holds input not yet handed out (decrypted bytes or whole records).
    var hasBufferedInput: Bool {
        SSL_pending(ssl) > 0 || BIO_ctrl_pending(networkIn) > 0
    }

    /// Ciphertext waiting for the socket (in OpenSSL or in the backlog).
    var pendingCiphertext: Int {
        backlog.count + Int(BIO_ctrl_pending(networkOut))
    }

    /// Moves what OpenSSL produced into the backlog.
    func collectOutput() {
        while BIO_ctrl_pending(networkOut) > 0 {
            backlog.append(upTo: 16 * 1024) { space in
                Int(max(0, BIO_read(networkOut, space.baseAddress, Int32(space.count))))
            }
        }
    }

    /// Hands ciphertext read from the socket to OpenSSL (a memory BIO takes all of it).
    func feed(_ bytes: UnsafeRawBufferPointer) {
        _ = BIO_write(networkIn, bytes.baseAddress, Int32(bytes.count))
    }

    enum HandshakeStep {
        case finished
        case needInput
        case failed(TLSError)
    }

    func stepHandshake() -> HandshakeStep {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        collectOutput()
        if result == 1 {
            handshaking = false
            return .finished
        }
        let code = SSL_get_error(ssl, result)
        if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE {
            return .needInput
        }
        return .failed(handshakeError(code))
    }

    private func handshakeError(_ code: Int32) -> TLSError {
        let verify = SSL_get_verify_result(ssl)
        let queued = drainOpenSSLErrors()
        if verify != Int(X509_V_OK) {
            let reason = String(cString: X509_verify_cert_error_string(verify))
            if verify == Int(X509_V_ERR_HOSTNAME_MISMATCH) || verify == Int(X509_V_ERR_IP_ADDRESS_MISMATCH) {
                return TLSError("TLS handshake failed: the server certificate does not match host name \"\(serverName ?? "")\" (\(reason))")
            }
            let whose = context.configuration.role == .client ? "server" : "client"
            return TLSError("TLS handshake failed: the \(whose) certificate could not be verified: \(reason)")
        }
        if code == SSL_ERROR_SYSCALL && queued.isEmpty {
            return TLSError("TLS handshake failed: the peer closed the connection")
        }
        return TLSError("TLS handshake failed" + (queued.isEmpty ? "" : ": \(queued)"))
    }

    /// What the finished handshake established.
    func peerInfo() -> TLSPeerInfo {
        let version = SSL_get_version(ssl).map { String(cString: $0) } ?? "unknown"
        let cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)).map { String(cString: $0) } ?? "unknown"
        var info = TLSPeerInfo(protocolVersion: version, cipher: cipher, presentedCertificate: false, commonName: nil,
                               channelBinding: context.serverEndPoint)
        if let certificate = SSL_get1_peer_certificate(ssl) {
            defer { X509_free(certificate) }
            info.presentedCertificate = true
            info.commonName = Self.commonName(certificate)
            if context.configuration.role == .client { info.channelBinding = tlsServerEndPoint(of: certificate) }
        }
        return info
    }

    private static func commonName(_ certificate: OpaquePointer) -> String? {
        guard let subject = X509_get_subject_name(certificate) else { return nil }
        let index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1)
        guard index >= 0, let entry = X509_NAME_get_entry(subject, index),
              let data = X509_NAME_ENTRY_get_data(entry), let bytes = ASN1_STRING_get0_data(data) else { return nil }
        let length = Int(ASN1_STRING_length(data))
        let buffer = UnsafeBufferPointer(start: bytes, count: length)
        // A NUL inside the name would let "admin\0.evil" pass as "admin": refuse such names.
        guard !buffer.contains(0) else { return nil }
        return String(decoding: buffer, as: UTF8.self)
    }

    static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}

extension TLSSession {
    var role: TLSConfiguration.Role { context.configuration.role }

    /// Encrypts `bytes` into the output BIO; returns how many plaintext bytes were taken (0 on failure).
    func write(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard bytes.count > 0 else { return 0 }
        ERR_clear_error()
        let written = SSL_write(ssl, bytes.baseAddress, Int32(bytes.count))
        collectOutput()
        return Int(max(0, written))
    }

    enum ReadResult {
        case data(Int)
        case needInput
        case closed
        case failed(String)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        ERR_clear_error()
        let count = SSL_read(ssl, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))
        if count > 0 { return .data(Int(count)) }
        switch SSL_get_error(ssl, count) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            collectOutput()
            return .needInput
        case SSL_ERROR_ZERO_RETURN:
            return .closed
        default:
            let reasons = drainOpenSSLErrors()
            return .failed("TLS error" + (reasons.isEmpty ? "" : ": \(reasons)"))
        }
    }

    /// Queues a close_notify alert.
    func shutdown() {
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        collectOutput()
        ERR_clear_error()
    }
}
