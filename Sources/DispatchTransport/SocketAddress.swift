#if canImport(Glibc)
import Glibc
#endif

/// A socket address (IPv4, IPv6 or Unix path) as raw sockaddr bytes, ready for bind/connect.
struct SocketAddress: Sendable, CustomStringConvertible {
    let family: Int32
    private let bytes: [UInt8]
    let description: String

    init(family: Int32, bytes: [UInt8], description: String) {
        self.family = family
        self.bytes = bytes
        self.description = description
    }

    func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        bytes.withUnsafeBytes { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
        }
    }

    var isUnix: Bool { family == AF_UNIX }

    /// The port of an IPv4 or IPv6 address (0 for a Unix path).
    var port: Int {
        guard !isUnix, bytes.count >= 4 else { return 0 }
        // sin_port and sin6_port sit at the same offset, in network order.
        return Int(bytes[2]) << 8 | Int(bytes[3])
    }

    /// The same IPv4 or IPv6 address with another port.
    func withPort(_ port: Int) -> SocketAddress {
        guard !isUnix, bytes.count >= 4 else { return self }
        var changed = bytes
        changed[2] = UInt8(truncatingIfNeeded: port >> 8)
        changed[3] = UInt8(truncatingIfNeeded: port)
        let described = changed.withUnsafeBytes { SocketAddress.describe($0.baseAddress!.assumingMemoryBound(to: sockaddr.self)) }
        return SocketAddress(family: family, bytes: changed, description: described)
    }

    /// The PostgreSQL convention: a host starting with "/" names a socket directory, and the
    /// socket is `<dir>/.s.PGSQL.<port>`.
    static func isUnixDirectory(_ host: String) -> Bool { host.hasPrefix("/") }

    static func unixSocket(directory: String, port: Int) throws(TransportError) -> SocketAddress {
        let trimmed = directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        let path = "\(trimmed == "/" ? "" : trimmed)/.s.PGSQL.\(port)"
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else { throw .invalidAddress("Unix socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        let length = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + pathBytes.count + 1
        let bytes = withUnsafeBytes(of: &address) { Array($0.prefix(length)) }
        return SocketAddress(family: AF_UNIX, bytes: bytes, description: path)
    }

    /// The path of a Unix socket address.
    var unixPath: String? { isUnix ? description : nil }

    /// An IPv4 or IPv6 literal (brackets allowed around IPv6), or nil when `host` is a name.
    static func numeric(host: String, port: Int) -> SocketAddress? {
        var literal = host
        if literal.hasPrefix("["), literal.hasSuffix("]") {
            literal = String(literal.dropFirst().dropLast())
        }
        var v4 = sockaddr_in()
        if inet_pton(AF_INET, literal, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
            return SocketAddress(family: AF_INET, bytes: withUnsafeBytes(of: &v4) { Array($0) },
                                 description: "\(literal):\(port)")
        }
        var v6 = sockaddr_in6()
        if inet_pton(AF_INET6, literal, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
            return SocketAddress(family: AF_INET6, bytes: withUnsafeBytes(of: &v6) { Array($0) },
                                 description: "[\(literal)]:\(port)")
        }
        return nil
    }

    /// Resolves a host name with getaddrinfo. Blocks: call it off the loops.
    static func resolve(host: String, port: Int) throws(TransportError) -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0 else {
            throw .resolutionFailed(host: host, reason: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }
        var result: [SocketAddress] = []
        var entry = list
        while let info = entry?.pointee {
            entry = info.ai_next
            guard let address = info.ai_addr, info.ai_family == AF_INET || info.ai_family == AF_INET6 else { continue }
            let raw = UnsafeRawBufferPointer(start: address, count: Int(info.ai_addrlen))
            let candidate = SocketAddress(family: info.ai_family, bytes: Array(raw),
                                          description: SocketAddress.describe(address))
            if !result.contains(where: { $0.bytes == candidate.bytes }) {
                result.append(candidate)
            }
        }
        guard !result.isEmpty else { throw .resolutionFailed(host: host, reason: "no IPv4 or IPv6 address") }
        return result
    }

    /// "host:port", "[v6]:port" or the Unix path, for logs.
    static func describe(_ address: UnsafePointer<sockaddr>) -> String {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
                var ip = v4.pointee.sin_addr
                inet_ntop(AF_INET, &ip, &text, socklen_t(text.count))
                return "\(text.nulTerminatedString):\(UInt16(bigEndian: v4.pointee.sin_port))"
            }
        case AF_INET6:
            return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
                var ip = v6.pointee.sin6_addr
                inet_ntop(AF_INET6, &ip, &text, socklen_t(text.count))
                return "[\(text.nulTerminatedString)]:\(UInt16(bigEndian: v6.pointee.sin6_port))"
            }
        case AF_UNIX:
            return "unix"
        default:
            return "unknown"
        }
    }
}

extension Array where Element == CChar {
    /// The text before the first NUL, as UTF-8.
    fileprivate var nulTerminatedString: String {
        String(decoding: prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
