/// Receives readiness for one socket, on its loop's queue.
protocol SocketReadinessHandler: AnyObject {
    /// Data, end of stream, or an error is waiting.
    func socketReadable()
    /// The socket accepts more output (or has an error to report on the next send).
    func socketWritable()
}

/// Watches one socket for its loop. The socket's fd belongs to the watcher from creation on:
/// only `closeSocket()` closes it, at the moment no stale registration can fire on a reused fd.
/// All methods are called on the loop's queue.
protocol SocketWatcher: AnyObject {
    /// Throws when the socket cannot be watched (e.g. the kernel's watch limit is reached).
    func setReadInterest(_ wanted: Bool) throws(TransportError)
    func setWriteInterest(_ wanted: Bool) throws(TransportError)
    /// Stops all notifications (none arrive after this returns) and closes the fd.
    func closeSocket()
}
