/// How clients prove who they are to the proxy.
public enum AuthType: String, Sendable, Equatable, CaseIterable {
    case scramSHA256 = "scram-sha-256"
    case md5
    /// Clear-text password over the wire; only sensible with TLS.
    case password
    /// No password at all; for local demos and tests.
    case trust
    /// A TLS client certificate whose common name equals the user name; no password.
    case cert
}
