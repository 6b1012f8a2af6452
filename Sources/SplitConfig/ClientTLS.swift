/// How clients may or must use TLS to reach the proxy (`client_tls_sslmode`, PgBouncer's names).
public enum ClientTLSMode: String, Sendable, Equatable, CaseIterable {
    /// TLS is never offered: an SSLRequest is answered `N`.
    case disable
    /// TLS when the client asks for it (and a certificate is configured).
    case allow
    /// The same as `allow` on the proxy's side: the client decides.
    case prefer
    /// Clients must use TLS.
    case require
    /// Clients must use TLS and present a certificate signed by `client_tls_ca_file`.
    case verifyCA = "verify-ca"
    /// As `verify-ca`; for `auth_type = cert` the certificate's CN must match the user.
    case verifyFull = "verify-full"

    /// Whether a client that does not use TLS is refused.
    public var requiresTLS: Bool { self == .require || self == .verifyCA || self == .verifyFull }

    /// Whether a client must present a verified certificate.
    public var requiresClientCertificate: Bool { self == .verifyCA || self == .verifyFull }
}

/// A TLS protocol version as written in `client_tls_protocols`.
public enum TLSProtocolVersion: String, Sendable, Equatable, Comparable, CaseIterable {
    case tlsv1_0 = "tlsv1.0"
    case tlsv1_1 = "tlsv1.1"
    case tlsv1_2 = "tlsv1.2"
    case tlsv1_3 = "tlsv1.3"

    public static func < (lhs: Self, rhs: Self) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// `secure` / `default` (TLS 1.2 and 1.3), `all` / `legacy` (every version), or a list such as
    /// `tlsv1.2,tlsv1.3` (commas or spaces). Nil when a word is unknown.
    static func parseList(_ text: String) -> [TLSProtocolVersion]? {
        var versions = Set<TLSProtocolVersion>()
        let words = text.lowercased().split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" || $0 == ":" })
        guard !words.isEmpty else { return nil }
        for word in words {
            switch word {
            case "secure", "default": versions.formUnion([.tlsv1_2, .tlsv1_3])
            case "all", "legacy": versions.formUnion(allCases)
            case "tlsv1", "tlsv1.0": versions.insert(.tlsv1_0)
            default:
                guard let version = TLSProtocolVersion(rawValue: String(word)) else { return nil }
                versions.insert(version)
            }
        }
        return versions.sorted()
    }
}

/// The `client_tls_*` keys: TLS between clients and the proxy.
public struct ClientTLSSettings: Sendable, Equatable {
    public var mode: ClientTLSMode
    /// The proxy's certificate (chain) and key, PEM. Paths are resolved against the config file's folder.
    public var certificateFile: String?
    public var keyFile: String?
    /// CAs whose client certificates are accepted (verify-ca, verify-full, auth_type = cert).
    public var caFile: String?
    /// Allowed versions, lowest first; never empty.
    public var protocols: [TLSProtocolVersion]
    /// An OpenSSL cipher list, or `default`.
    public var ciphers: String

    public static let defaultProtocols: [TLSProtocolVersion] = [.tlsv1_2, .tlsv1_3]

    public init(mode: ClientTLSMode = .disable, certificateFile: String? = nil, keyFile: String? = nil,
                caFile: String? = nil, protocols: [TLSProtocolVersion] = ClientTLSSettings.defaultProtocols,
                ciphers: String = "default") {
        self.mode = mode
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.caFile = caFile
        self.protocols = protocols
        self.ciphers = ciphers
    }

    /// Whether an SSLRequest is answered `S` (TLS enabled and a certificate configured).
    public var offersTLS: Bool { mode != .disable && certificateFile != nil && keyFile != nil }
}

extension ProxyConfigParser {
    static let clientTLSKeys = [
        "client_tls_sslmode", "client_tls_cert_file", "client_tls_key_file", "client_tls_ca_file",
        "client_tls_protocols", "client_tls_ciphers",
    ]

    /// Takes the `client_tls_*` keys out of the [pgsplit] section.
    func parseClientTLS(_ entries: inout SectionEntries) throws -> ClientTLSSettings {
        var tls = ClientTLSSettings()
        if let entry = entries.take("client_tls_sslmode") {
            tls.mode = try entries.value(entry, expected: "one of " + ClientTLSMode.allCases.map(\.rawValue).joined(separator: ", "),
                                         ClientTLSMode.init(rawValue:))
        }
        tls.certificateFile = entries.take("client_tls_cert_file").flatMap { $0.value.isEmpty ? nil : $0.value }
        tls.keyFile = entries.take("client_tls_key_file").flatMap { $0.value.isEmpty ? nil : $0.value }
        tls.caFile = entries.take("client_tls_ca_file").flatMap { $0.value.isEmpty ? nil : $0.value }
        if let entry = entries.take("client_tls_protocols") {
            tls.protocols = try entries.value(entry, expected: "secure, all, or a list of tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3",
                                              TLSProtocolVersion.parseList)
        }
        if let entry = entries.take("client_tls_ciphers"), !entry.value.isEmpty {
            tls.ciphers = entry.value
        }
        return tls
    }
}
