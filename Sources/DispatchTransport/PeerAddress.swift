#if canImport(Glibc)
import Glibc
#endif

/// Who is at the other end of a connection, kept in its binary form: it is turned into text only
/// when something logs it, not for every accepted client.
public enum PeerAddress: Sendable, CustomStringConvertible {
    /// The address in network byte order, as in `sockaddr_in`.
    case ipv4(address: in_addr_t, port: UInt16)
    case ipv6(high: UInt64, low: UInt64, port: UInt16)
    /// Already text: a Unix socket path, "unix", or a backend's address as configured.
    case described(String)

    /// Reads an accepted peer's address (IPv4 or IPv6; anything else is "unknown").
    init(_ address: UnsafePointer<sockaddr>) {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            self = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                .ipv4(address: v4.pointee.sin_addr.s_addr, port: UInt16(bigEndian: v4.pointee.sin_port))
            }
        case AF_INET6:
            self = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                let halves = withUnsafeBytes(of: v6.pointee.sin6_addr) { raw in
                    (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                }
                return .ipv6(high: halves.0, low: halves.1, port: UInt16(bigEndian: v6.pointee.sin6_port))
            }
        case AF_UNIX:
            self = .described("unix")
        default:
            self = .described("unknown")
        }
    }

    /// "ip:port", "[ip6]:port", or the text it was given.
    public var description: String {
        switch self {
        case .ipv4(let address, let port):
            var v4 = sockaddr_in()
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_addr.s_addr = address
            v4.sin_port = port.bigEndian
            return withUnsafePointer(to: &v4) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress.describe($0) } }
        case .ipv6(let high, let low, let port):
            var v6 = sockaddr_in6()
            v6.sin6_family = sa_family_t(AF_INET6)
            withUnsafeMutableBytes(of: &v6.sin6_addr) { raw in
                raw.storeBytes(of: high, toByteOffset: 0, as: UInt64.self)
                raw.storeBytes(of: low, toByteOffset: 8, as: UInt64.self)
            }
            v6.sin6_port = port.bigEndian
            return withUnsafePointer(to: &v6) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress.describe($0) } }
        case .described(let text):
            return text
        }
    }
}
