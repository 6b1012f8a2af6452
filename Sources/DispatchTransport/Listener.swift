import CSocketShim
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// A listening address. Each accepted socket becomes a `Connection` on one of `group`'s loops and
/// is handed to `onAccept` on that loop.
///
/// A TCP address served by several loops gets one listening socket per loop, all bound with
/// SO_REUSEPORT: the kernel spreads incoming connections over them, and each loop accepts on its
/// own socket and keeps the clients it accepts. A single socket on one loop would hand every other
/// client to another loop's thread, waking it once more per connection. Unless `reusePort` asks
/// to share the port with other processes, a plain bind is tried first, so a port held by anyone
/// else still fails as it would without SO_REUSEPORT. A Unix socket (no SO_REUSEPORT) or a
/// one-loop group gets one socket, watched by the first loop, which deals clients round-robin.
public final class Listener: Sendable {
    /// The port actually bound (useful after binding port 0); for Unix sockets the port given.
    public let boundPort: Int
    /// "ip:port", "[ip6]:port" or the Unix socket path.
    public let localAddress: String

    private let acceptors: [Acceptor]
    private let unixPath: String?

    /// Binds and listens on `host`:`port`.
    ///
    /// `host`: an IPv4 or IPv6 literal, "*" (every address, IPv6 and IPv4), "0.0.0.0", a name
    /// resolved now (startup, not the hot path), or a directory starting with "/" for a Unix
    /// socket `<dir>/.s.PGSQL.<port>` (a stale socket file there is replaced).
    public init(host: String, port: Int, group: EventLoopGroup, reusePort: Bool = false,
                backlog: Int32 = 1024) throws(TransportError) {
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
                let fds = try Listener.bindSockets(address, count: address.isUnix ? 1 : group.loops.count,
                                                   reusePort: reusePort, backlog: backlog)
                if fds.count == 1 {
                    acceptors = [Acceptor(fd: fds[0], loop: group.loops[0], dealingTo: group, isUnix: address.isUnix)]
                } else {
                    acceptors = zip(fds, group.loops).map { Acceptor(fd: $0, loop: $1, dealingTo: nil, isUnix: false) }
                }
                self.unixPath = address.unixPath
                self.boundPort = address.isUnix ? port : Listener.localPort(of: fds[0])
                self.localAddress = address.isUnix ? address.description : Listener.localDescription(of: fds[0])
                return
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// `count` listening sockets on `address` (one unless TCP with several loops), on one port.
    private static func bindSockets(_ address: SocketAddress, count: Int, reusePort: Bool,
                                    backlog: Int32) throws(TransportError) -> [Int32] {
        guard count > 1 else { return [try bindSocket(address, reusePort: reusePort, backlog: backlog)] }
        if !reusePort, address.port != 0 {
            // SO_REUSEPORT on our sockets must not let them join sockets someone else holds.
            try probe(address)
        }
        var fds: [Int32] = []
        do {
            let first = try bindSocket(address, reusePort: true, backlog: backlog)
            fds.append(first)
            let bound = address.withPort(localPort(of: first))
            for _ in 1..<count {
                fds.append(try bindSocket(bound, reusePort: true, backlog: backlog))
            }
        } catch {
            for fd in fds { Glibc.close(fd) }
            throw error
        }
        return fds
    }

    /// Fails as a plain bind would when `address` is taken, then lets it go again.
    private static func probe(_ address: SocketAddress) throws(TransportError) {
        Glibc.close(try boundSocket(address, reusePort: false))
    }

    private static func bindSocket(_ address: SocketAddress, reusePort: Bool, backlog: Int32) throws(TransportError) -> Int32 {
        let fd = try boundSocket(address, reusePort: reusePort)
        if listen(fd, backlog) != 0 {
            let error = TransportError.lastError("listen \(address)")
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// A stream socket bound to `address`, not yet listening.
    private static func boundSocket(_ address: SocketAddress, reusePort: Bool) throws(TransportError) -> Int32 {
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
        for acceptor in acceptors { acceptor.loop.execute { acceptor.start(onAccept) } }
    }

    /// Stops accepting and closes the sockets (idempotent, from any thread). Connections already
    /// accepted are unaffected.
    public func close() {
        let unixPath = self.unixPath
        for acceptor in acceptors {
            acceptor.loop.execute {
                acceptor.close()
                if let unixPath { unlink(unixPath) }
            }
        }
    }
}

/// One listening socket and the loop that watches it.
///
/// Sendable by confinement: `watcher`, `backingOff`, `closed` and `onAccept` are touched only on
/// `loop`'s queue (`start`, `close` and the readiness callbacks run there); the rest is immutable.
private final class Acceptor: @unchecked Sendable, SocketReadinessHandler {
    let loop: EventLoop
    private let fd: Int32
    /// Deals accepted clients over this group's loops; nil keeps them on `loop`.
    private let dealer: EventLoopGroup?
    private let isUnix: Bool
    private var watcher: SocketWatcher?
    private var backingOff = false
    private var closed = false
    private var onAccept: (@Sendable (Connection) -> Void)?

    /// Pause after the process ran out of descriptors, so the accept loop does not spin.
    private static let descriptorExhaustionBackoff = 0.1

    init(fd: Int32, loop: EventLoop, dealingTo dealer: EventLoopGroup?, isUnix: Bool) {
        self.fd = fd
        self.loop = loop
        self.dealer = dealer?.loops.count == 1 ? nil : dealer
        self.isUnix = isUnix
    }

    func start(_ onAccept: @escaping @Sendable (Connection) -> Void) {
        guard !closed, watcher == nil else { return }
        self.onAccept = onAccept
        let watcher = loop.makeWatcher(fd: fd, handler: self)
        self.watcher = watcher
        do {
            try watcher.setReadInterest(true)
        } catch {
            // Only a kernel watch limit fails here; retry after the back-off.
            backOff()
        }
    }

    func close() {
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
            if isUnix {
                peer = .described("unix")
            } else {
                SocketOptions.disableNagle(client)
                peer = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { PeerAddress($0) } }
            }
            let target = dealer?.next() ?? loop
            let connection = Connection(fd: client, loop: target, peer: peer)
            if target === loop {
                onAccept(connection)
            } else {
                target.execute { onAccept(connection) }
            }
        }
    }

    /// Stops watching for a while after the process ran out of descriptors, so accept does not spin.
    private func backOff() {
        guard let watcher, !backingOff else { return }
        backingOff = true
        try? watcher.setReadInterest(false)
        loop.scheduleTimer(after: Acceptor.descriptorExhaustionBackoff) { [self] in
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
