import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A fixed set of EventLoops, one per core by default; `next()` hands them out round-robin.
public final class EventLoopGroup: Sendable {
    public let loops: [EventLoop]
    private let cursor = Atomic<Int>(0)

    public init(loopCount: Int = EventLoopGroup.coreCount, ioStrategy: IOStrategy = .default) {
        precondition(loopCount > 0, "an EventLoopGroup needs at least one loop")
        loops = (0..<loopCount).map { EventLoop(label: "pgsplit.loop.\($0)", ioStrategy: ioStrategy) }
    }

    /// The loop for the next new connection. Safe from any thread.
    public func next() -> EventLoop {
        let ticket = cursor.wrappingAdd(1, ordering: .relaxed).oldValue
        return loops[Int(UInt(bitPattern: ticket) % UInt(loops.count))]
    }

    /// Online processors, at least 1.
    public static var coreCount: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}
