#if canImport(Glibc)
import Glibc
#endif

/// Process-wide settings the transport relies on.
public enum Transport {
    /// Writing to a socket the peer has closed must fail with EPIPE, not kill the process.
    /// Sends also pass MSG_NOSIGNAL; this covers any other write path (and libraries such as TLS).
    public static func ignoreSIGPIPE() {
        signal(SIGPIPE, SIG_IGN)
    }
}
