#if canImport(Glibc)
import Glibc
#endif

/// A reading of the monotonic clock, in nanoseconds: what the per-message paths stamp events with
/// (unit latency, last activity). `ContinuousClock.now` costs a runtime call and every difference
/// 128-bit arithmetic; this is one `clock_gettime` (vDSO, no system call) and integer subtraction.
public struct MonotonicInstant: Comparable, Sendable {
    public let nanoseconds: UInt64

    public init(nanoseconds: UInt64) {
        self.nanoseconds = nanoseconds
    }

    public static var now: MonotonicInstant {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return MonotonicInstant(nanoseconds: UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec))
    }

    /// Whole microseconds from `earlier` to this reading (0 when `earlier` is later).
    @inline(__always)
    public func microseconds(since earlier: MonotonicInstant) -> Int64 {
        nanoseconds > earlier.nanoseconds ? Int64((nanoseconds - earlier.nanoseconds) / 1000) : 0
    }

    public static func < (lhs: MonotonicInstant, rhs: MonotonicInstant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    public static func - (lhs: MonotonicInstant, rhs: MonotonicInstant) -> Duration {
        .nanoseconds(Int64(bitPattern: lhs.nanoseconds &- rhs.nanoseconds))
    }

    public static func + (lhs: MonotonicInstant, rhs: Duration) -> MonotonicInstant {
        let (seconds, attoseconds) = rhs.components
        return MonotonicInstant(nanoseconds: lhs.nanoseconds &+ UInt64(bitPattern: seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000))
    }
}
