#if canImport(Glibc)
import Glibc
#endif

/// A value behind a pthread mutex, for the few pieces of state shared between event loops.
///
/// Used instead of the standard library's `Mutex` because that one is built on raw futexes, which
/// ThreadSanitizer cannot see: every access through it was reported as a race, hiding real ones.
///
/// `@unchecked Sendable` is sound: `value` is only touched inside `withLock`, between
/// `pthread_mutex_lock` and `pthread_mutex_unlock` on the mutex this object owns, so no two threads
/// ever access it at once; the mutex lives in its own stable allocation for the object's lifetime.
public final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
