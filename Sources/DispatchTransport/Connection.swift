#if canImport(Glibc)
import CSocketShim
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
    /// The peer, kept binary until logged.
    public let peer: PeerAddress
    /// The peer, for logs: "ip:port", "[ip6]:port", or the Unix socket path / "unix".
    public var remoteAddress: String { peer.description }

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
    public var pendingOutputBytes: Int { output.count + (tls?.pendingCiphertext ?? 0) }
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
    /// Set by `startTLS`; nil keeps every byte path a plain socket call.
    private var tls: TLSSession?
    /// What the TLS handshake established; nil while the connection is not (yet) encrypted.
    public private(set) var tlsPeer: TLSPeerInfo?
    /// Whether the connection runs TLS (handshake finished).
    public var isTLS: Bool { tlsPeer != nil }

    /// Plaintext writes wait in `output` (connect or TLS handshake in progress).
    private var outputHeld: Bool {
        connectAttempt != nil || (tls?.handshaking ?? false)
    }

    /// Reads per wake-up before yielding the loop to other sockets (fairness under a flood).
    private static let maxReadsPerWakeup = 16

    init(fd: Int32, loop: EventLoop, peer: PeerAddress) {
        self.fd = fd
        self.loop = loop
        self.peer = peer
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
            scheduleBufferedTLSInput()
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
            scheduleBufferedTLSInput()
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
        if batchDepth > 0 || !output.isEmpty || outputHeld || (tls?.backlog.isEmpty == false) {
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
        if let tls, !tls.backlog.isEmpty {
            // The socket took the plaintext's ciphertext only in part: send the rest when writable.
            updateWriteInterest(true)
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
        if batchDepth == 0 && !isClosed && !writeInterest && !outputHeld {
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
        if batchDepth == 0 && !writeInterest && !outputHeld {
            // Usually sends everything and closes: closing takes the socket out of the epoll set, so
            // read interest is dropped only when output remains (one system call fewer per client).
            flush(fromCaller: true)
        }
        if !isClosed && readingStarted && !readingPaused {
            updateReadInterest(false)
        }
    }

    // MARK: Internals

    /// Marks the connection closed, releases the socket and the handlers, and reports `error`.
    func closeNow(_ error: TransportError?, notifyLater: Bool) {
        guard !isClosed else { return }
        if error == nil, let tls, !tls.handshaking {
            // A polite end: close_notify, sent if the socket takes it at once.
            tls.shutdown()
            _ = sendCiphertext(tls)
        }
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
        if let tls {
            self.tls = nil
            if let completion = tls.completion {
                tls.completion = nil
                completion(.failure(TLSError(error.map { "\($0)" } ?? "the connection was closed during the TLS handshake")))
            }
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
        if let tls {
            switch sendCiphertext(tls) {
            case .failed(let error):
                closeNow(error, notifyLater: fromCaller)
                return
            case .wouldBlock:
                updateWriteInterest(true)
                noteOutputDrained(fromCaller: fromCaller)
                return
            case .sent:
                if tls.handshaking {
                    updateWriteInterest(false)
                    return
                }
            }
        }
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
        if let tls, !tls.backlog.isEmpty {
            updateWriteInterest(true)
            noteOutputDrained(fromCaller: fromCaller)
            return
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
        if let tls { return transmitTLS(tls, bytes) }
        while true {
            let count = pgsplit_send(fd, bytes.baseAddress, UInt(bytes.count))
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
        if let tls { return receiveTLS(tls, into: buffer) }
        while true {
            let count = pgsplit_recv(fd, buffer.baseAddress, UInt(buffer.count))
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
        if !isClosed && batchDepth == 0 && !output.isEmpty && !outputHeld {
            flush(fromCaller: false)
        }
    }
}

extension Connection: SocketReadinessHandler {
    func socketReadable() {
        let buffer = loop.readBuffer
        var reads = 0
        while !isClosed && ((readingStarted && !readingPaused && !closeWhenFlushed) || (tls?.handshaking ?? false)) {
            switch receive(into: buffer) {
            case .received(let count):
                onRead?(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                reads += 1
                if tls == nil {
                    // A short read drained the socket: skip the read that would only say EAGAIN.
                    if count < buffer.count || reads >= Connection.maxReadsPerWakeup { return }
                } else if reads >= Connection.maxReadsPerWakeup {
                    // Records already taken off the socket raise no new readiness event.
                    scheduleBufferedTLSInput()
                    return
                }
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

// MARK: - TLS

extension Connection {
    /// Starts TLS on this connection: as a server when `context` is a server context (after
    /// answering a PostgreSQL SSLRequest with `S`), as a client otherwise (after the server's `S`).
    /// `serverName` (client only) is sent as SNI and, with `.chainAndHost` verification, must match
    /// the server's certificate.
    ///
    /// Call on `loop`, with nothing received beyond the last plaintext byte (the caller checks
    /// that no plaintext followed the `S` / SSLRequest). The handshake runs on the loop over memory
    /// BIOs; writes made meanwhile wait, and go out encrypted afterwards. `completion` runs once, on
    /// the loop, never inside this call: `.success` with what the peer showed, from which point
    /// `onRead` gets plaintext and `write` takes plaintext; `.failure` when the handshake failed,
    /// after which the connection closes (`onClose` follows with `.tls`).
    public func startTLS(context: TLSContext, serverName: String? = nil,
                         completion: @escaping (Result<TLSPeerInfo, TLSError>) -> Void) {
        loop.assertInEventLoop()
        guard !isClosed else {
            let later = LoopConfined(completion)
            loop.execute { later.value(.failure(TLSError("the connection is closed"))) }
            return
        }
        guard tls == nil else {
            let later = LoopConfined(completion)
            loop.execute { later.value(.failure(TLSError("TLS was already started on this connection"))) }
            return
        }
        let session: TLSSession
        do {
            session = try TLSSession(context: context, serverName: serverName)
        } catch {
            let later = LoopConfined(completion)
            loop.execute { later.value(.failure(error)) }
            closeNow(.tls(error.message), notifyLater: true)
            return
        }
        // Plaintext still queued (e.g. the `S` itself) goes out ahead of any ciphertext.
        if !output.isEmpty {
            session.backlog.append(output.pending)
            output.removeAll()
        }
        session.completion = completion
        tls = session
        if case .failed(let error) = session.role == .client ? session.stepHandshake() : .needInput {
            closeNow(.tls(error.message), notifyLater: true)
            return
        }
        // The handshake needs the peer's bytes even when the owner is not reading yet.
        updateReadInterest(true)
        flush(fromCaller: true)
    }

    /// Sends the TLS layer's ciphertext backlog.
    fileprivate enum CiphertextResult {
        case sent
        case wouldBlock
        case failed(TransportError)
    }

    fileprivate func sendCiphertext(_ tls: TLSSession) -> CiphertextResult {
        tls.collectOutput()
        while !tls.backlog.isEmpty {
            let pending = tls.backlog.pending
            let count = pgsplit_send(fd, pending.baseAddress, UInt(pending.count))
            if count >= 0 {
                tls.backlog.consume(count)
                continue
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .failed(.lastError("send"))
            }
        }
        return .sent
    }

    fileprivate func transmitTLS(_ tls: TLSSession, _ bytes: UnsafeRawBufferPointer) -> TransmitResult {
        switch sendCiphertext(tls) {
        case .failed(let error): return .failed(error)
        case .wouldBlock: return .wouldBlock
        case .sent: break
        }
        // Encrypt at most 256 KiB at a time, so that unsent ciphertext stays bounded.
        let chunk = min(bytes.count, 256 * 1024)
        let written = tls.write(UnsafeRawBufferPointer(rebasing: bytes[..<chunk]))
        guard written > 0 else {
            return .failed(.tls("TLS write failed: \(drainOpenSSLErrors())"))
        }
        if case .failed(let error) = sendCiphertext(tls) { return .failed(error) }
        return .sent(written)
    }

    fileprivate func receiveTLS(_ tls: TLSSession, into buffer: UnsafeMutableRawBufferPointer) -> ReceiveResult {
        while true {
            if tls.handshaking {
                switch tls.stepHandshake() {
                case .finished:
                    if case .failed(let error) = sendCiphertext(tls) { return .failed(error) }
                    handshakeFinished(tls)
                    // The completion may have closed us or stopped reading; the caller's loop rechecks.
                    if isClosed || !readingStarted || readingPaused || closeWhenFlushed { return .wouldBlock }
                    continue
                case .failed(let error):
                    _ = sendCiphertext(tls) // the alert, if the socket takes it
                    return .failed(.tls(error.message))
                case .needInput:
                    if case .failed(let error) = sendCiphertext(tls) { return .failed(error) }
                    if !tls.backlog.isEmpty { updateWriteInterest(true) }
                }
            } else {
                switch tls.read(into: buffer) {
                case .data(let count):
                    if !tls.backlog.isEmpty || tls.pendingCiphertext > 0 {
                        // Reading can produce output (key updates): send it along.
                        if case .failed(let error) = sendCiphertext(tls) { return .failed(error) }
                        if !tls.backlog.isEmpty { updateWriteInterest(true) }
                    }
                    return .received(count)
                case .closed:
                    return .endOfStream
                case .failed(let why):
                    return .failed(.tls(why))
                case .needInput:
                    break
                }
            }
            // OpenSSL needs more ciphertext: take it from the socket.
            let count = pgsplit_recv(fd, buffer.baseAddress, UInt(buffer.count))
            if count > 0 {
                tls.feed(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                continue
            }
            if count == 0 {
                if tls.handshaking {
                    return .failed(.tls("TLS handshake failed: the peer closed the connection"))
                }
                return .endOfStream
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .failed(.lastError("recv"))
            }
        }
    }

    private func handshakeFinished(_ tls: TLSSession) {
        tlsPeer = tls.peerInfo()
        if !readingStarted || readingPaused {
            updateReadInterest(false)
        }
        if let completion = tls.completion {
            tls.completion = nil
            completion(.success(tlsPeer!))
        }
        // Writes made during the handshake were held: encrypt and send them now.
        if !isClosed && batchDepth == 0 && !writeInterest && (!output.isEmpty || closeWhenFlushed) {
            flush(fromCaller: false)
        }
    }

    /// Decrypted or undecrypted input inside OpenSSL raises no socket event: look again soon.
    fileprivate func scheduleBufferedTLSInput() {
        guard let tls, !tls.handshaking, tls.hasBufferedInput else { return }
        loop.execute { [self] in
            if !isClosed { socketReadable() }
        }
    }
}

/// Carries a loop-bound value (e.g. a non-Sendable callback) through `EventLoop.execute`.
/// Sendable by confinement: created on a loop and unwrapped only on that same loop.
final class LoopConfined<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
