/// How an EventLoop learns that its sockets are ready. All give callers identical behaviour;
/// they differ only in how many thread wake-ups and Dispatch events are spent per socket event.
public enum IOStrategy: Sendable {
    /// One DispatchSourceRead per socket, plus a DispatchSourceWrite only while output is pending.
    case dispatchSourcePerSocket
    /// One DispatchSourceRead per loop on an epoll descriptor, drained in a batch per wake-up.
    case epollPerLoop
    /// One epoll descriptor per loop, waited on by a thread of the loop's own that runs each batch
    /// on the loop's queue with `dispatch_sync_f`, and the work posted to the loop with it (see
    /// `EpollPoller`).
    case epollWaiterPerLoop

    /// The strategy used when none is named.
    public static let `default`: IOStrategy = .epollWaiterPerLoop
}

/// How an EpollPoller learns that its epoll descriptor has events.
enum EpollWaking {
    case dispatchSource
    case waiterThread
}
