import Dispatch

/// A one-shot timer on an EventLoop; `cancel()` stops it if it has not fired yet.
public final class TimerHandle: @unchecked Sendable {
    // Sendable: `source` is a let, and DispatchSource.cancel is thread-safe.
    private let source: DispatchSourceTimer

    init(queue: DispatchQueue, after seconds: Double, _ body: @escaping () -> Void) {
        let source = DispatchSource.makeTimerSource(queue: queue)
        self.source = source
        source.schedule(deadline: .now() + max(0, seconds))
        // The handler keeps the source alive until it fires or is cancelled; cancelling releases
        // the handler and so breaks the cycle.
        source.setEventHandler {
            source.cancel()
            body()
        }
        source.activate()
    }

    /// Stops the timer; after a cancel made on the loop, `body` will not run.
    public func cancel() {
        source.cancel()
    }
}
