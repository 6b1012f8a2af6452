import CSocketShim
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// One epoll descriptor per loop, watched by a single DispatchSourceRead: each Dispatch wake-up
/// drains a whole batch of socket events, instead of paying libdispatch's per-event cost
/// (FIONREAD, epoll re-arm, thread hand-off) for every socket.
///
/// Registrations carry a token of fd and generation, so an event still queued for a closed fd is
/// dropped even when the fd number was already reused within the same batch.
final class EpollPoller {
    private let epollFD: Int32
    private let source: DispatchSourceRead
    /// Indexed by fd: the current registration on that fd, if any.
    private var registrations: [EpollWatcher?] = []
    private var generation: UInt32 = 0
    private static let batchSize = 256
    private let tokens = UnsafeMutablePointer<UInt64>.allocate(capacity: EpollPoller.batchSize)
    private let readiness = UnsafeMutablePointer<UInt32>.allocate(capacity: EpollPoller.batchSize)

    init(queue: DispatchQueue) {
        epollFD = pgsplit_epoll_create()
        precondition(epollFD >= 0, "epoll_create1 failed: \(String(cString: strerror(errno)))")
        source = DispatchSource.makeReadSource(fileDescriptor: epollFD, queue: queue)
        // The handler holds the poller until `shutdown()` cancels the source.
        source.setEventHandler { [self] in drain() }
        source.setCancelHandler { [epollFD, tokens, readiness] in
            Glibc.close(epollFD)
            tokens.deallocate()
            readiness.deallocate()
        }
        source.activate()
    }

    /// Releases the epoll descriptor once its source is cancelled. Called when the loop goes away.
    func shutdown() {
        source.cancel()
    }

    func nextToken(fd: Int32) -> UInt64 {
        generation &+= 1
        return UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    /// Sets `watcher`'s interest to `interest` (PGSPLIT_EPOLL_IN / _OUT bits), from `previous`.
    /// A socket with no interest is removed from the set: level-triggered HUP would otherwise
    /// wake the loop forever while reading is paused.
    func update(_ watcher: EpollWatcher, from previous: UInt32, to interest: UInt32) throws(TransportError) {
        let fd = watcher.fd
        let op: Int32
        if previous == 0 && interest != 0 {
            op = 0
            let index = Int(fd)
            if index >= registrations.count {
                registrations.append(contentsOf: repeatElement(nil, count: index + 1 - registrations.count))
            }
            registrations[index] = watcher
        } else if previous != 0 && interest == 0 {
            op = 2
            registrations[Int(fd)] = nil
        } else if previous != interest {
            op = 1
        } else {
            return
        }
        if pgsplit_epoll_update(epollFD, op, fd, interest, watcher.token) != 0, op != 2 {
            let error = TransportError.lastError("epoll_ctl")
            if op == 0 { registrations[Int(fd)] = nil }
            throw error
        }
    }

    private func drain() {
        let count = pgsplit_epoll_poll(epollFD, tokens, readiness, Int32(EpollPoller.batchSize))
        guard count > 0 else { return }
        for i in 0..<Int(count) {
            let token = tokens[i]
            let fd = Int(UInt32(truncatingIfNeeded: token))
            guard fd < registrations.count, let watcher = registrations[fd], watcher.token == token else {
                continue
            }
            watcher.deliver(readiness[i])
        }
    }
}

/// A socket registered with its loop's EpollPoller.
final class EpollWatcher: SocketWatcher {
    let fd: Int32
    let token: UInt64
    private let poller: EpollPoller
    private var handler: SocketReadinessHandler?
    private var interest: UInt32 = 0
    private var closed = false

    init(fd: Int32, poller: EpollPoller, handler: SocketReadinessHandler) {
        self.fd = fd
        self.poller = poller
        self.handler = handler
        token = poller.nextToken(fd: fd)
    }

    func setReadInterest(_ wanted: Bool) throws(TransportError) {
        try setInterest(UInt32(PGSPLIT_EPOLL_IN), wanted)
    }

    func setWriteInterest(_ wanted: Bool) throws(TransportError) {
        try setInterest(UInt32(PGSPLIT_EPOLL_OUT), wanted)
    }

    private func setInterest(_ bit: UInt32, _ wanted: Bool) throws(TransportError) {
        guard !closed else { return }
        let updated = wanted ? interest | bit : interest & ~bit
        try poller.update(self, from: interest, to: updated)
        interest = updated
    }

    func closeSocket() {
        guard !closed else { return }
        try? poller.update(self, from: interest, to: 0)
        interest = 0
        closed = true
        handler = nil
        Glibc.close(fd)
    }

    func deliver(_ bits: UInt32) {
        let failed = bits & UInt32(PGSPLIT_EPOLL_ERR | PGSPLIT_EPOLL_HUP) != 0
        if interest & UInt32(PGSPLIT_EPOLL_IN) != 0, failed || bits & UInt32(PGSPLIT_EPOLL_IN) != 0 {
            handler?.socketReadable()
        }
        // The read handler may have closed the socket or dropped write interest meanwhile.
        if interest & UInt32(PGSPLIT_EPOLL_OUT) != 0, failed || bits & UInt32(PGSPLIT_EPOLL_OUT) != 0 {
            handler?.socketWritable()
        }
    }
}
