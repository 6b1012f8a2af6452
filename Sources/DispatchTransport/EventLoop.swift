import Dispatch

/// Tags each loop's queue so `inEventLoop` can tell which loop the current code runs on.
/// Written once at loop creation, read-only afterwards.
private let eventLoopKey = DispatchSpecificKey<ObjectIdentifier>()

/// One serial DispatchQueue and everything confined to it: the sockets assigned to it, their
/// readiness watching, and one read buffer shared by all of them.
///
/// Sendable by confinement: the mutable state (`readBuffer`'s contents, `poller`, `timers`) is touched
/// only on `queue`; the entry points that touch it assert so in debug builds.
public final class EventLoop: @unchecked Sendable {
    /// Every callback of this loop's connections and timers runs on this queue.
    public let queue: DispatchQueue
    public let ioStrategy: IOStrategy

    /// Bytes read per `read` call; one buffer per loop, reused by every connection on it.
    static let readBufferSize = 64 * 1024
    let readBuffer: UnsafeMutableRawBufferPointer
    /// Made with the loop (for the epoll strategies) and never changed, so any thread may post to it.
    private let poller: EpollPoller?
    /// This loop's timers (touched only on `queue`).
    let timers: LoopTimers

    public init(label: String = "pgsplit.loop", ioStrategy: IOStrategy = .default) {
        queue = DispatchQueue(label: label)
        self.ioStrategy = ioStrategy
        readBuffer = .allocate(byteCount: EventLoop.readBufferSize, alignment: 16)
        timers = LoopTimers(queue: queue)
        switch ioStrategy {
        case .dispatchSourcePerSocket: poller = nil
        case .epollPerLoop: poller = EpollPoller(queue: queue, waking: .dispatchSource)
        case .epollWaiterPerLoop: poller = EpollPoller(queue: queue, waking: .waiterThread)
        }
        queue.setSpecific(key: eventLoopKey, value: ObjectIdentifier(self))
    }

    deinit {
        // No connection is left (each holds its loop), so nothing reads the buffer or the poller.
        poller?.shutdown()
        readBuffer.deallocate()
    }

    /// True when the calling code runs on this loop's queue.
    public var inEventLoop: Bool {
        DispatchQueue.getSpecific(key: eventLoopKey) == ObjectIdentifier(self)
    }

    /// Debug-build check that the caller runs on this loop.
    @inlinable
    public func assertInEventLoop(file: StaticString = #fileID, line: UInt = #line) {
        assert(inEventLoop, "not on this EventLoop's queue", file: file, line: line)
    }

    /// Always-on check that the caller runs on this loop.
    public func preconditionInEventLoop(file: StaticString = #fileID, line: UInt = #line) {
        precondition(inEventLoop, "not on this EventLoop's queue", file: file, line: line)
    }

    /// Runs `work` on this loop, later (never inline, even when called from the loop). Called from
    /// the loop while its waiter thread runs a batch, the work runs at the end of that batch; from
    /// elsewhere, the waiter thread runs it in its next batch.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        if inEventLoop {
            if let poller, poller.deferToBatchEnd(work) { return }
        } else if let poller, poller.post(work) {
            return
        }
        queue.async(execute: work)
    }

    /// Runs `body` once on this loop after `seconds`, unless cancelled first.
    /// Call on this loop; `body` need not be Sendable because it never leaves the loop.
    @discardableResult
    public func scheduleTimer(after seconds: Double, _ body: @escaping () -> Void) -> TimerHandle {
        assertInEventLoop()
        return TimerHandle(loop: self, id: timers.schedule(after: seconds, body))
    }

    /// Starts watching `fd` for `handler` with this loop's I/O strategy. Call on this loop.
    func makeWatcher(fd: Int32, handler: SocketReadinessHandler) -> SocketWatcher {
        assertInEventLoop()
        switch ioStrategy {
        case .dispatchSourcePerSocket:
            return DispatchSourceWatcher(fd: fd, queue: queue, handler: handler)
        case .epollPerLoop, .epollWaiterPerLoop:
            return EpollWatcher(fd: fd, poller: poller!, handler: handler)
        }
    }
}
