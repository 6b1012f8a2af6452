#if canImport(Glibc)
import Glibc
#endif

/// Why a connection closed or could not be opened.
public enum TransportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The peer closed its side (read returned 0).
    case endOfStream
    /// A system call failed; `errno` is the raw error number.
    case io(operation: String, errno: Int32)
    /// The connect (including name resolution) did not finish in time.
    case timedOut
    /// A host name could not be resolved.
    case resolutionFailed(host: String, reason: String)
    /// The host / port / path given cannot be used as a socket address.
    case invalidAddress(String)
    /// The TLS layer failed: a handshake that did not succeed, or a broken record.
    case tls(String)

    public var description: String {
        switch self {
        case .endOfStream:
            return "connection closed by peer"
        case .io(let operation, let code):
            return "\(operation): \(String(cString: strerror(code)))"
        case .timedOut:
            return "timed out"
        case .resolutionFailed(let host, let reason):
            return "could not resolve \"\(host)\": \(reason)"
        case .invalidAddress(let text):
            return "invalid address: \(text)"
        case .tls(let text):
            return text
        }
    }

    /// The current `errno` wrapped for `operation`.
    static func lastError(_ operation: String) -> TransportError {
        .io(operation: operation, errno: errno)
    }
}
