/// How an EventLoop learns that its sockets are ready. Both give callers identical behaviour;
/// they differ only in how many Dispatch events are spent per socket event.
public enum IOStrategy: Sendable {
    /// One DispatchSourceRead per socket, plus a DispatchSourceWrite only while output is pending.
    case dispatchSourcePerSocket
    /// One DispatchSourceRead per loop on an epoll descriptor, drained in a batch per wake-up.
    case epollPerLoop

    /// The strategy used when none is named.
    public static let `default`: IOStrategy = .epollPerLoop
}
