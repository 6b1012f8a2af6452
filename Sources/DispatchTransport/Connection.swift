#if canImport(Glibc)
import Glibc
#endif

/// One non-blocking stream socket (TCP or Unix) on one EventLoop.
///
/// Every method and property must be used on `loop`'s queue, and every callback runs there.
/// Callbacks are never invoked re-entrantly from a method you call: a failure found inside
/// `write`, `close` or `endBatch` is reported through `onClose` later, as a separate event.
///
/// A connection stays alive (and its socket open) until it is closed — by `close()`, by the peer,
/// or by an error — even when the caller drops its reference. On closing it drops its handlers,
/// so handlers may capture connections strongly (e.g. a relay's two sides capturing each other).
///
/// Sendable by confinement: all mutable state is touched only on `loop.queue`; the public entry
/// points assert that in debug builds.
public final class Connection: @unchecked Sendable {
    public let loop: EventLoop
    /// The peer, for logs: "ip:port", "[ip6]:port", or the Unix socket path / "unix".
    public let remoteAddress: String

    /// Called with each chunk read. The bytes live in a buffer shared by the loop and are valid
    /// only during the call: copy what must be kept.
    public var onRead: ((UnsafeRawBufferPointer) -> Void)?
    /// Called exactly once when the connection closes: nil for a local `close()` /
    /// `closeAfterFlush()`, `.endOfStream` when the peer closed, another error otherwise.
    public var onClose: ((TransportError?) -> Void)?
    /// Called when pending output fell to the low-water mark after having passed the high-water
    /// mark: the moment to resume producing (e.g. reading from the other side of a relay).
    public var onWritableAgain: (() -> Void)?

    /// Pending output above which `isAboveHighWater` turns true.
    public var highWaterMark = 256 * 1024
    /// Pending output at or below which `onWritableAgain` fires (after the high-water mark was passed).
    public var lowWaterMark = 64 * 1024

    public private(set) var isClosed = false
    public private(set) var isAboveHighWater = false
    public var pendingOutputBytes: Int { output.count }
    public var isReadingPaused: Bool { readingPaused }

    let fd: Int32
    private var watcher: SocketWatcher?
    private let output = OutputBuffer()
    private var readingStarted = false
    private var readingPaused = false
    private var writeInterest = false
    private var batchDepth = 0
    private var closeWhenFlushed = false
    private var pendingCloseError: TransportError?
    private var connectAttempt: ConnectAttempt?

    /// Reads per wake-up before yielding the loop to other sockets (fairness under a flood).
    private static let maxReadsPerWakeup = 16

    init(fd: Int32, loop: EventLoop, remoteAddress: String) {
        self.fd = fd
        self.loop = loop
        self.remoteAddress = remoteAddress
    }

    deinit {
        // Only a connection that never registered with its loop can get here open.
        if !isClosed {
            Glibc.close(fd)
        }
    }

    // MARK: Reading

    /// Sets the handlers and starts reading.
    public func start(onRead: @escaping (UnsafeRawBufferPointer) -> Void,
                      onClose: @escaping (TransportError?) -> Void) {
        self.onRead = onRead
        self.onClose = onClose
        startReading()
    }

    /// Starts delivering reads to `onRead` (idempotent). Set the handlers first.
    public func startReading() {
        loop.assertInEventLoop()
        guard !isClosed, !readingStarted else { return }
        readingStarted = true
        if !readingPaused {
            updateReadInterest(true)
        }
    }

    /// Stops reading (idempotent); the kernel buffers, then the peer is flow-controlled by TCP.
    public func pauseReading() {
        loop.assertInEventLoop()
        guard !readingPaused else { return }
        readingPaused = true
        if readingStarted && !isClosed {
            updateReadInterest(false)
        }
    }

    /// Undoes `pauseReading()` (idempotent).
    public func resumeReading() {
        loop.assertInEventLoop()
        guard readingPaused else { return }
        readingPaused = false
        if readingStarted && !isClosed && !closeWhenFlushed {
            updateReadInterest(true)
        }
    }

    // MARK: Writing

    public func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Sends `bytes` now as far as the kernel takes them; the rest waits in the output buffer and
    /// goes out when the socket is writable again. Ignored once closed or closing.
    public func write(_ bytes: UnsafeRawBufferPointer) {
        loop.assertInEventLoop()
        guard !isClosed, !closeWhenFlushed, bytes.count > 0 else { return }
        if batchDepth > 0 || !output.isEmpty || connectAttempt != nil {
            output.append(bytes)
            noteOutputGrew()
            return
        }
        var offset = 0
        while offset < bytes.count {
            let remaining = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            switch transmit(remaining) {
            case .sent(let count):
                offset += count
            case .wouldBlock:
                output.append(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
                noteOutputGrew()
                updateWriteInterest(true)
                return
            case .failed(let error):
                closeNow(error, notifyLater: true)
                return
            }
        }
    }

    /// Gathers the writes until the matching `endBatch()` into one send. Nests.
    public func beginBatch() {
        loop.assertInEventLoop()
        batchDepth += 1
    }

    /// Ends a batch; the outermost end sends what was gathered.
    public func endBatch() {
        loop.assertInEventLoop()
        precondition(batchDepth > 0, "endBatch() without beginBatch()")
        batchDepth -= 1
        if batchDepth == 0 && !isClosed && !writeInterest && connectAttempt == nil {
            flush(fromCaller: true)
        }
    }

    // MARK: Closing

    /// Closes at once, dropping unsent output (idempotent). `onClose(nil)` follows as a separate event.
    public func close() {
        loop.assertInEventLoop()
        closeNow(nil, notifyLater: true)
    }

    /// Stops reading, sends the pending output, then closes (e.g. after a final ErrorResponse).
    /// Later writes are ignored.
    public func closeAfterFlush() {
        loop.assertInEventLoop()
        guard !isClosed, !closeWhenFlushed else { return }
        closeWhenFlushed = true
        if readingStarted && !readingPaused {
            updateReadInterest(false)
        }
        if batchDepth == 0 && !writeInterest && connectAttempt == nil {
            flush(fromCaller: true)
        }
    }

    // MARK: Internals

    /// Marks the connection closed, releases the socket and the handlers, and reports `error`.
    func closeNow(_ error: TransportError?, notifyLater: Bool) {
        guard !isClosed else { return }
        isClosed = true
        output.removeAll()
        if let watcher {
            watcher.closeSocket()
            // The watcher held this connection until now; dropping it breaks the cycle.
            self.watcher = nil
        } else {
            Glibc.close(fd)
        }
        if let attempt = connectAttempt {
            connectAttempt = nil
            attempt.socketFailed(self, error ?? .io(operation: "connect", errno: ECONNABORTED))
        }
        onRead = nil
        onWritableAgain = nil
        if notifyLater {
            pendingCloseError = error
            loop.execute { self.deliverClose() }
        } else {
            pendingCloseError = error
            deliverClose()
        }
    }

    private func deliverClose() {
        let handler = onClose
        onClose = nil
        handler?(pendingCloseError)
    }

    private func ensureWatcher() throws(TransportError) -> SocketWatcher {
        if let watcher { return watcher }
        let created = loop.makeWatcher(fd: fd, handler: self)
        watcher = created
        return created
    }

    private func updateReadInterest(_ wanted: Bool) {
        do {
            try ensureWatcher().setReadInterest(wanted)
        } catch {
            closeNow(error, notifyLater: true)
        }
    }

    private func updateWriteInterest(_ wanted: Bool) {
        guard wanted != writeInterest else { return }
        do {
            try ensureWatcher().setWriteInterest(wanted)
            writeInterest = wanted
        } catch {
            closeNow(error, notifyLater: true)
        }
    }

    private func noteOutputGrew() {
        if !isAboveHighWater && output.count > highWaterMark {
            isAboveHighWater = true
        }
    }

    /// Sends pending output until done or the kernel is full.
    private func flush(fromCaller: Bool) {
        while !output.isEmpty {
            switch transmit(output.pending) {
            case .sent(let count):
                output.consume(count)
            case .wouldBlock:
                updateWriteInterest(true)
                noteOutputDrained(fromCaller: fromCaller)
                return
            case .failed(let error):
                closeNow(error, notifyLater: fromCaller)
                return
            }
        }
        updateWriteInterest(false)
        if closeWhenFlushed {
            closeNow(nil, notifyLater: fromCaller)
            return
        }
        noteOutputDrained(fromCaller: fromCaller)
    }

    private func noteOutputDrained(fromCaller: Bool) {
        guard isAboveHighWater, output.count <= lowWaterMark, !isClosed else { return }
        isAboveHighWater = false
        if fromCaller {
            loop.execute { self.onWritableAgain?() }
        } else {
            onWritableAgain?()
        }
    }

    // MARK: Byte movement — the only two calls that touch the socket's data (a TLS layer wraps these).

    enum TransmitResult {
        case sent(Int)
        case wouldBlock
        case failed(TransportError)
    }

    private func transmit(_ bytes: UnsafeRawBufferPointer) -> TransmitResult {
        while true {
            let count = send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if count >= 0 { return .sent(count) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .failed(.lastError("send"))
            }
        }
    }

    enum ReceiveResult {
        case received(Int)
        case endOfStream
        case wouldBlock
        case failed(TransportError)
    }

    private func receive(into buffer: UnsafeMutableRawBufferPointer) -> ReceiveResult {
        while true {
            let count = recv(fd, buffer.baseAddress, buffer.count, 0)
            if count > 0 { return .received(count) }
            if count == 0 { return .endOfStream }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .failed(.lastError("recv"))
            }
        }
    }

    // MARK: Connecting

    func beginConnecting(_ attempt: ConnectAttempt) {
        connectAttempt = attempt
        updateWriteInterest(true)
    }

    private func finishConnecting() {
        guard let attempt = connectAttempt else { return }
        let code = SocketOptions.pendingError(fd)
        if code != 0 {
            closeNow(.io(operation: "connect", errno: code), notifyLater: false)
            return
        }
        connectAttempt = nil
        updateWriteInterest(false)
        attempt.socketConnected(self)
        // Anything written between connect and now was buffered.
        if !isClosed && batchDepth == 0 && !output.isEmpty {
            flush(fromCaller: false)
        }
    }
}

extension Connection: SocketReadinessHandler {
    func socketReadable() {
        let buffer = loop.readBuffer
        var reads = 0
        while !isClosed && readingStarted && !readingPaused && !closeWhenFlushed {
            switch receive(into: buffer) {
            case .received(let count):
                onRead?(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                reads += 1
                // A short read drained the socket: skip the read that would only say EAGAIN.
                if count < buffer.count || reads >= Connection.maxReadsPerWakeup { return }
            case .wouldBlock:
                return
            case .endOfStream:
                closeNow(.endOfStream, notifyLater: false)
                return
            case .failed(let error):
                closeNow(error, notifyLater: false)
                return
            }
        }
    }

    func socketWritable() {
        guard !isClosed else { return }
        if connectAttempt != nil {
            finishConnecting()
        } else {
            flush(fromCaller: false)
        }
    }
}
