import CDispatch
import CSocketShim
import Dispatch
import ProxyLocks
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One epoll descriptor per loop, so that one wake-up serves a whole batch of socket events.
///
/// Two ways to learn that the descriptor has events (`EpollWaking`):
/// - `.dispatchSource`: a DispatchSourceRead on the epoll descriptor. Every wake-up then costs
///   libdispatch's event thread a wake-up, a hand-off to a worker thread, and a second event-thread
///   wake-up to re-arm the source (three context switches per batch).
/// - `.waiterThread`: a thread of the loop's own blocks in `epoll_wait` and hands each batch to the
///   loop's serial queue with `dispatch_sync_f`. When the queue is idle, Dispatch runs the batch right
///   on the waiter thread: one wake-up per batch, as in a plain epoll loop, while the queue still
///   serialises the batch with every other block of the loop (timers). The queue is never blocked:
///   the waiting happens outside it. Work for the loop from other threads (`EventLoop.execute`) is
///   posted to the waiter thread through an eventfd in the same epoll set and runs in its batch;
///   work the loop defers to itself runs at the end of the current batch.
///
/// Registrations carry a token of fd and generation, so an event still queued for a closed fd is
/// dropped even when the fd number was already reused within the same batch.
final class EpollPoller {
    private let epollFD: Int32
    private let queue: DispatchQueue
    /// The C queue under `queue`, when the Swift overlay lets us see it: `queue.sync` wraps each
    /// batch's closure in a heap-allocated block (about 650 instructions per batch, a tenth of a
    /// simple query's cost); `dispatch_sync_f` with a context pointer allocates nothing. Nil (and
    /// `queue.sync` used) should an overlay keep it elsewhere.
    private let cQueue: dispatch_queue_t?
    /// How many events the batch being handed to the queue holds (set by the waiter thread just
    /// before `dispatch_sync_f`, read inside it: the same thread, in order).
    private var pendingCount: Int32 = 0
    /// Indexed by fd: the current registration on that fd, if any, held by one retain taken at
    /// registration and given back at removal. Kept unmanaged so that handing an event to its watcher
    /// costs no reference counting (a retain and a release per event otherwise, two events per query).
    /// Touched only on `queue`.
    private var registrations: [Unmanaged<EpollWatcher>?] = []
    /// True while `deliver` hands out events: watchers removed meanwhile, and the handlers of sockets
    /// closed meanwhile, are kept in `retired` until it ends, so that none is freed while one of its
    /// methods (or its handler's) still runs.
    private var delivering = false
    private var retired: [AnyObject] = []
    private var generation: UInt32 = 0
    private static let batchSize = 256
    private let tokens = UnsafeMutablePointer<UInt64>.allocate(capacity: EpollPoller.batchSize)
    private let readiness = UnsafeMutablePointer<UInt32>.allocate(capacity: EpollPoller.batchSize)
    private let waking: Waking
    /// Set by `shutdown()` before it signals the waiter thread's eventfd.
    private let stopping = Atomic<Bool>(false)
    /// True while the waiter thread runs a batch on the queue (touched only on `queue`).
    private var inBatch = false
    /// Work the loop deferred to itself during the current batch (`EventLoop.execute` from the loop):
    /// run at the batch's end, still inside its `queue.sync`. A `queue.async` instead would wake a
    /// Dispatch worker thread for it while the waiter thread goes back to epoll_wait.
    private var deferred: [@Sendable () -> Void] = []
    /// Rounds of deferred work run at the end of one batch; work deferred after that goes through
    /// `queue.async`, so a task that keeps deferring itself cannot hold the loop.
    private static let deferredRounds = 4

    private enum Waking {
        case dispatchSource(DispatchSourceRead)
        /// `wakeFD` is an eventfd in the epoll set that `shutdown()` and `post` signal.
        case waiterThread(wakeFD: Int32)
    }

    /// The token of the waiter thread's eventfd. A socket's token never equals it: its low half is
    /// the fd, and no fd is UInt32.max.
    private static let wakeToken = UInt64.max

    /// Work other threads handed to this loop (`post`), run by the waiter thread in its next batch.
    /// A `queue.async` instead wakes a Dispatch worker thread, which then runs the loop's queue while
    /// the waiter thread, woken for the same client's first bytes, waits for it: two more threads
    /// and futex calls for every client the listener's loop hands to another loop.
    private let inbox = Locked<[@Sendable () -> Void]>([])
    /// Set by `deliver` when the batch holds the eventfd's event.
    private var woken = false

    init(queue: DispatchQueue, waking mode: EpollWaking) {
        epollFD = pgsplit_epoll_create()
        precondition(epollFD >= 0, "epoll_create1 failed: \(String(cString: strerror(errno)))")
        self.queue = queue
        cQueue = Mirror(reflecting: queue).children.first(where: { $0.label == "__wrapped" })?.value as? dispatch_queue_t
        switch mode {
        case .dispatchSource:
            let source = DispatchSource.makeReadSource(fileDescriptor: epollFD, queue: queue)
            waking = .dispatchSource(source)
            // The handler holds the poller until `shutdown()` cancels the source.
            source.setEventHandler { [self] in
                let count = pgsplit_epoll_poll(epollFD, tokens, readiness, Int32(EpollPoller.batchSize))
                deliver(count)
            }
            source.setCancelHandler { [self] in releaseDescriptors() }
            source.activate()
        case .waiterThread:
            let wakeFD = pgsplit_eventfd_create()
            precondition(wakeFD >= 0, "eventfd failed: \(String(cString: strerror(errno)))")
            precondition(pgsplit_epoll_update(epollFD, 0, wakeFD, UInt32(PGSPLIT_EPOLL_IN), EpollPoller.wakeToken) == 0,
                         "epoll_ctl failed: \(String(cString: strerror(errno)))")
            waking = .waiterThread(wakeFD: wakeFD)
            // The waiter thread holds the poller until it stops.
            let context = Unmanaged.passRetained(self).toOpaque()
            let started = pgsplit_thread_start("pgsplit.epoll", { context in
                Unmanaged<EpollPoller>.fromOpaque(context!).takeRetainedValue().waitForEvents()
            }, context)
            precondition(started == 0, "cannot start the epoll waiter thread: \(String(cString: strerror(started)))")
        }
    }

    /// Releases the epoll descriptor once nothing waits on it any more. Called when the loop goes away.
    func shutdown() {
        switch waking {
        case .dispatchSource(let source):
            source.cancel()
        case .waiterThread(let wakeFD):
            stopping.store(true, ordering: .releasing)
            _ = pgsplit_eventfd_signal(wakeFD)
        }
    }

    /// The waiter thread's body: wait, then run the batch on the loop's queue; until `shutdown()`.
    private func waitForEvents() {
        while true {
            let count = pgsplit_epoll_wait(epollFD, tokens, readiness, Int32(EpollPoller.batchSize), -1)
            if stopping.load(ordering: .acquiring) { break }
            // epoll_wait fails only on a bad descriptor or buffer (EINTR is retried): a bug, not a state.
            precondition(count >= 0, "epoll_wait failed: \(String(cString: strerror(errno)))")
            // Waiting for the queue here, not on it: the batch runs once the loop's current block ends.
            if let cQueue {
                pendingCount = count
                dispatch_sync_f(cQueue, Unmanaged.passUnretained(self).toOpaque()) { context in
                    Unmanaged<EpollPoller>.fromOpaque(context!).takeUnretainedValue().runBatch()
                }
            } else {
                queue.sync {
                    pendingCount = count
                    runBatch()
                }
            }
        }
        releaseDescriptors()
    }

    /// One batch, on the queue: its events, the work posted from other threads, then the work the
    /// loop deferred to the batch's end.
    private func runBatch() {
        inBatch = true
        deliver(pendingCount)
        if woken {
            woken = false
            runPosted()
        }
        runDeferred()
        inBatch = false
    }

    /// Hands `work` to the waiter thread from any thread; false when this poller has no waiter
    /// thread (the caller then uses `queue.async`).
    func post(_ work: @escaping @Sendable () -> Void) -> Bool {
        guard case .waiterThread(let wakeFD) = waking else { return false }
        let wasEmpty = inbox.withLock { posted in
            posted.append(work)
            return posted.count == 1
        }
        // One signal per empty-to-waiting change: the waiter takes everything posted until it runs.
        if wasEmpty { _ = pgsplit_eventfd_signal(wakeFD) }
        return true
    }

    private func runPosted() {
        guard case .waiterThread(let wakeFD) = waking else { return }
        // Reset the eventfd before taking the work: a post after this point signals it again.
        _ = pgsplit_eventfd_drain(wakeFD)
        let work = inbox.withLock { posted in
            let taken = posted
            posted.removeAll(keepingCapacity: true)
            return taken
        }
        for item in work { item() }
    }

    /// Takes `work` to run at the end of the current batch, when one is running (call on the
    /// queue); false when the caller must schedule it some other way.
    func deferToBatchEnd(_ work: @escaping @Sendable () -> Void) -> Bool {
        guard inBatch else { return false }
        deferred.append(work)
        return true
    }

    private func runDeferred() {
        var rounds = 0
        while !deferred.isEmpty {
            let batch = deferred
            deferred.removeAll(keepingCapacity: true)
            rounds += 1
            if rounds > Self.deferredRounds {
                // The queue runs each after the batch, as `queue.async` always did.
                for work in batch { queue.async(execute: work) }
                continue
            }
            for work in batch { work() }
        }
    }

    private func releaseDescriptors() {
        if case .waiterThread(let wakeFD) = waking { Glibc.close(wakeFD) }
        Glibc.close(epollFD)
        tokens.deallocate()
        readiness.deallocate()
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
            unregister(index)
            registrations[index] = .passRetained(watcher)
        } else if previous != 0 && interest == 0 {
            op = 2
            unregister(Int(fd))
        } else if previous != interest {
            op = 1
        } else {
            return
        }
        if pgsplit_epoll_update(epollFD, op, fd, interest, watcher.token) != 0, op != 2 {
            let error = TransportError.lastError("epoll_ctl")
            if op == 0 { unregister(Int(fd)) }
            throw error
        }
    }

    /// Drops the registration on `index`, if any (see `retired`).
    private func unregister(_ index: Int) {
        guard index < registrations.count, let registered = registrations[index] else { return }
        registrations[index] = nil
        if delivering {
            retired.append(registered.takeRetainedValue())
        } else {
            registered.release()
        }
    }

    /// Drops `watcher`'s registration without telling epoll: the caller closes its descriptor next.
    func forget(_ watcher: EpollWatcher) {
        let index = Int(watcher.fd)
        guard index < registrations.count, let registered = registrations[index],
              registered.toOpaque() == Unmanaged.passUnretained(watcher).toOpaque() else { return }
        unregister(index)
    }

    /// Keeps `object` alive until the events being delivered are all handed out (see `retired`).
    func retireAfterDelivery(_ object: AnyObject) {
        if delivering { retired.append(object) }
    }

    /// Hands the first `count` gathered events to their watchers. Runs on the loop's queue.
    private func deliver(_ count: Int32) {
        guard count > 0 else { return }
        delivering = true
        for i in 0..<Int(count) {
            let token = tokens[i]
            if token == EpollPoller.wakeToken {
                woken = true
                continue
            }
            let fd = Int(UInt32(truncatingIfNeeded: token))
            guard fd < registrations.count, let registered = registrations[fd] else { continue }
            // Safe without a retain: `registrations` holds the watcher, and should the handler remove
            // it, `retired` holds it until this loop ends.
            registered._withUnsafeGuaranteedRef { watcher in
                if watcher.token == token { watcher.deliver(readiness[i]) }
            }
        }
        delivering = false
        if !retired.isEmpty { retired.removeAll(keepingCapacity: true) }
    }

    deinit {
        for registered in registrations { registered?.release() }
    }
}

/// A socket registered with its loop's EpollPoller.
final class EpollWatcher: SocketWatcher {
    let fd: Int32
    let token: UInt64
    private let poller: EpollPoller
    /// Holds the handler until the socket closes (the handler's reference cycle with its watcher is
    /// broken there).
    private var handler: SocketReadinessHandler?
    /// The same handler when it is a Connection (every socket but a listener's), called without
    /// reference counting — a call through the protocol retains and releases it around each event.
    /// Safe: `handler` holds it while the socket is open, and a handler let go during a delivery is
    /// kept by the poller until the delivery ends (`closeSocket`). Nothing calls it after the socket
    /// closes: `interest` is zero by then.
    private let connection: Unmanaged<Connection>?
    private var interest: UInt32 = 0
    private var closed = false

    init(fd: Int32, poller: EpollPoller, handler: SocketReadinessHandler) {
        self.fd = fd
        self.poller = poller
        self.handler = handler
        connection = (handler as? Connection).map { Unmanaged.passUnretained($0) }
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
        // No EPOLL_CTL_DEL: closing the descriptor takes it out of the epoll set (nothing else holds
        // it), one system call fewer per connection. Its registration goes here.
        if interest != 0 { poller.forget(self) }
        interest = 0
        closed = true
        if let handler { poller.retireAfterDelivery(handler) }
        handler = nil
        Glibc.close(fd)
    }

    func deliver(_ bits: UInt32) {
        let failed = bits & UInt32(PGSPLIT_EPOLL_ERR | PGSPLIT_EPOLL_HUP) != 0
        if interest & UInt32(PGSPLIT_EPOLL_IN) != 0, failed || bits & UInt32(PGSPLIT_EPOLL_IN) != 0 {
            if let connection { connection._withUnsafeGuaranteedRef { $0.socketReadable() } } else { handler?.socketReadable() }
        }
        // The read handler may have closed the socket or dropped write interest meanwhile.
        if interest & UInt32(PGSPLIT_EPOLL_OUT) != 0, failed || bits & UInt32(PGSPLIT_EPOLL_OUT) != 0 {
            if let connection { connection._withUnsafeGuaranteedRef { $0.socketWritable() } } else { handler?.socketWritable() }
        }
    }
}
