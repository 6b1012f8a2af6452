/// A one-shot timer on an EventLoop; `cancel()` stops it if it has not fired yet.
public struct TimerHandle: Sendable {
    let loop: EventLoop
    let id: UInt64

    /// Stops the timer; after a cancel made on the loop, its body will not run. From another
    /// thread the cancel takes effect on the loop, later.
    public func cancel() {
        if loop.inEventLoop {
            loop.timers.cancel(id)
        } else {
            loop.execute { [loop, id] in loop.timers.cancel(id) }
        }
    }
}
