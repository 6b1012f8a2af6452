import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Readiness through one DispatchSourceRead per socket and a DispatchSourceWrite that is resumed
/// only while output is pending.
///
/// libdispatch traps handled here: a suspended source is resumed before it is cancelled (a
/// suspended source never runs its cancel handler, and releasing it crashes), and the fd is closed
/// only once every source's cancel handler has run (libdispatch keys registrations by fd number).
final class DispatchSourceWatcher: SocketWatcher {
    private let fd: Int32
    private let queue: DispatchQueue
    private var handler: SocketReadinessHandler?
    private var readSource: DispatchSourceRead?
    private var readResumed = false
    private var writeSource: DispatchSourceWrite?
    private var writeResumed = false
    private var liveSources = 0
    private var closing = false

    init(fd: Int32, queue: DispatchQueue, handler: SocketReadinessHandler) {
        self.fd = fd
        self.queue = queue
        self.handler = handler
    }

    func setReadInterest(_ wanted: Bool) throws(TransportError) {
        guard !closing else { return }
        if wanted {
            if let source = readSource {
                if !readResumed { source.resume(); readResumed = true }
            } else {
                let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
                source.setEventHandler { [self] in handler?.socketReadable() }
                source.setCancelHandler { [self] in sourceCancelled() }
                liveSources += 1
                readSource = source
                readResumed = true
                source.activate()
            }
        } else if let source = readSource, readResumed {
            source.suspend()
            readResumed = false
        }
    }

    func setWriteInterest(_ wanted: Bool) throws(TransportError) {
        guard !closing else { return }
        if wanted {
            if let source = writeSource {
                if !writeResumed { source.resume(); writeResumed = true }
            } else {
                let source = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
                source.setEventHandler { [self] in handler?.socketWritable() }
                source.setCancelHandler { [self] in sourceCancelled() }
                liveSources += 1
                writeSource = source
                writeResumed = true
                source.activate()
            }
        } else if let source = writeSource, writeResumed {
            source.suspend()
            writeResumed = false
        }
    }

    func closeSocket() {
        guard !closing else { return }
        closing = true
        handler = nil
        if liveSources == 0 {
            Glibc.close(fd)
            return
        }
        if let source = readSource {
            if !readResumed { source.resume(); readResumed = true }
            source.cancel()
        }
        if let source = writeSource {
            if !writeResumed { source.resume(); writeResumed = true }
            source.cancel()
        }
    }

    private func sourceCancelled() {
        liveSources -= 1
        if liveSources == 0 {
            readSource = nil
            writeSource = nil
            Glibc.close(fd)
        }
    }
}
