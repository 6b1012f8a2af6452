import CSocketShim
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// A listening socket. Each accepted socket becomes a `Connection` on `group.next()`'s loop and
/// is handed to `onAccept` on that loop.
///
/// The socket is watched by the group's first loop like any other socket, so accepting costs no
/// Dispatch event of its own, and a client assigned to that same loop starts without a hop.
///
/// Sendable by confinement: the accept state is touched only on `acceptLoop`'s queue;
/// everything else is immutable after init.
public final class Listener: @unchecked Sendable, SocketReadinessHandler {
    /// The port actually bound (useful after binding port 0); for Unix sockets the port given.
    public let boundPort: Int
    /// "ip:port", "[ip6]:port" or the Unix socket path.
    public let localAddress: String

    private let fd: Int32
    private let group: EventLoopGroup
    /// The loop that watches the listening socket and accepts.
    private let acceptLoop: EventLoop
    private let unixPath: String?
    private var watcher: SocketWatcher?
    private var backingOff = false
    private var closed = false
    private var onAccept: (@Sendable (Connection) -> Void)?

    /// Pause after the process ran out of descriptors, so the accept loop does not spin.
    private static let descriptorExhaustionBackoff = 0.1

    /// Binds and listens on `host`:`port`.
    ///
    /// `host`: an IPv4 or IPv6 literal, "*" (every address, IPv6 and IPv4), "0.0.0.0", a name
    /// resolved now (startup, not the hot path), or a directory starting with "/" for a Unix
    /// socket `<dir>/.s.PGSQL.<port>` (a stale socket file there is replaced).
    public init(host: String, port: Int, group: EventLoopGroup, reusePort: Bool = false,
                backlog: Int32 = 1024) throws(TransportError) {
        self.group = group
        acceptLoop = group.loops[0]
        let candidates: [SocketAddress]
        if SocketAddress.isUnixDirectory(host) {
            candidates = [try SocketAddress.unixSocket(directory: host, port: port)]
        } else if host == "*" || host.isEmpty {
            candidates = [SocketAddress.numeric(host: "::", port: port)!,
                          SocketAddress.numeric(host: "0.0.0.0", port: port)!]
        } else if let numeric = SocketAddress.numeric(host: host, port: port) {
            candidates = [numeric]
        } else {
            candidates = try SocketAddress.resolve(host: host, port: port)
        }
        var lastError = TransportError.invalidAddress(host)
        for address in candidates {
            do {
                let fd = try Listener.bindSocket(address, reusePort: reusePort, backlog: backlog)
                self.fd = fd
                self.unixPath = address.unixPath
                self.boundPort = address.isUnix ? port : Listener.localPort(of: fd)
                self.localAddress = address.isUnix ? address.description : Listener.localDescription(of: fd)
                return
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    private static func bindSocket(_ address: SocketAddress, reusePort: Bool, backlog: Int32) throws(TransportError) -> Int32 {
        let fd = try SocketOptions.makeStreamSocket(family: address.family)
        if address.isUnix {
            unlink(address.description)
        } else {
            _ = SocketOptions.set(fd, level: SOL_SOCKET, option: SO_REUSEADDR, to: 1)
            if reusePort {
                _ = SocketOptions.set(fd, level: SOL_SOCKET, option: SO_REUSEPORT, to: 1)
            }
            if address.family == AF_INET6 {
                // "::" serves IPv4 too, whatever the system default.
                _ = SocketOptions.set(fd, level: Int32(IPPROTO_IPV6), option: IPV6_V6ONLY, to: 0)
            }
        }
        if address.withSockaddr({ bind(fd, $0, $1) }) != 0 {
            let error = TransportError.lastError("bind \(address)")
            Glibc.close(fd)
            throw error
        }
        if listen(fd, backlog) != 0 {
            let error = TransportError.lastError("listen \(address)")
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    private static func withLocalAddress<R>(of fd: Int32, _ body: (UnsafePointer<sockaddr>) -> R) -> R {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                _ = getsockname(fd, address, &length)
                return body(address)
            }
        }
    }

    private static func localPort(of fd: Int32) -> Int {
        withLocalAddress(of: fd) { address in
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            case AF_INET6:
                return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            default:
                return 0
            }
        }
    }

    private static func localDescription(of fd: Int32) -> String {
        withLocalAddress(of: fd) { SocketAddress.describe($0) }
    }

    /// Starts accepting. `onAccept` runs on the accepted connection's loop; the connection is not
    /// reading yet (set its handlers, then `startReading()`).
    public func start(onAccept: @escaping @Sendable (Connection) -> Void) {
        acceptLoop.execute { [self] in
            guard !closed, watcher == nil else { return }
            self.onAccept = onAccept
            let watcher = acceptLoop.makeWatcher(fd: fd, handler: self)
            self.watcher = watcher
            do {
                try watcher.setReadInterest(true)
            } catch {
                // Only a kernel watch limit fails here; retry after the back-off.
                backOff()
            }
        }
    }

    /// Stops accepting and closes the socket (idempotent, from any thread). Connections already
    /// accepted are unaffected.
    public func close() {
        acceptLoop.execute { [self] in
            guard !closed else { return }
            closed = true
            onAccept = nil
            if let watcher {
                // The watcher owns the fd from its creation on.
                watcher.closeSocket()
                self.watcher = nil
            } else {
                Glibc.close(fd)
            }
            if let unixPath { unlink(unixPath) }
        }
    }

    func socketReadable() {
        acceptPending()
    }

    func socketWritable() {}

    /// Accepts everything pending, then waits for the next wake-up.
    private func acceptPending() {
        guard !closed, let onAccept else { return }
        while true {
            var storage = sockaddr_storage()
            var length = UInt32(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutableBytes(of: &storage) { pgsplit_accept4_peer(fd, $0.baseAddress, &length) }
            if client < 0 {
                switch errno {
                case EINTR, ECONNABORTED, EPROTO:
                    continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    backOff()
                    return
                default:
                    // EAGAIN: drained. Anything else is not worth spinning on either.
                    return
                }
            }
            let peer: PeerAddress
            if unixPath != nil {
                peer = .described("unix")
            } else {
                SocketOptions.disableNagle(client)
                peer = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { PeerAddress($0) } }
            }
            let loop = group.next()
            let connection = Connection(fd: client, loop: loop, peer: peer)
            if loop === acceptLoop {
                onAccept(connection)
            } else {
                loop.execute { onAccept(connection) }
            }
        }
    }

    /// Stops watching for a while after the process ran out of descriptors, so accept does not spin.
    private func backOff() {
        guard let watcher, !backingOff else { return }
        backingOff = true
        try? watcher.setReadInterest(false)
        acceptLoop.scheduleTimer(after: Listener.descriptorExhaustionBackoff) { [self] in
            backingOff = false
            guard !closed, let watcher = self.watcher else { return }
            do {
                try watcher.setReadInterest(true)
            } catch {
                backOff()
            }
        }
    }
}
