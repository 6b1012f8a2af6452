import Synchronization

/// A fixed number of 64-bit atomic counters in one allocation. Every operation is lock-free and
/// safe from any thread; `relaxed` ordering is enough for statistics.
public final class AtomicCounters: @unchecked Sendable {
    // Sendable: the storage is only ever touched through `Atomic`, and never reallocated.
    public let count: Int
    private let storage: UnsafeMutablePointer<Atomic<Int64>>

    public init(count: Int) {
        precondition(count > 0)
        self.count = count
        storage = UnsafeMutablePointer<Atomic<Int64>>.allocate(capacity: count)
        for index in 0..<count { (storage + index).initialize(to: Atomic<Int64>(0)) }
    }

    deinit {
        storage.deinitialize(count: count)
        storage.deallocate()
    }

    @inline(__always)
    public func add(_ index: Int, _ amount: Int64 = 1) {
        precondition(index >= 0 && index < count)
        storage[index].wrappingAdd(amount, ordering: .relaxed)
    }

    @inline(__always)
    public func store(_ index: Int, _ value: Int64) {
        precondition(index >= 0 && index < count)
        storage[index].store(value, ordering: .relaxed)
    }

    @inline(__always)
    public func load(_ index: Int) -> Int64 {
        precondition(index >= 0 && index < count)
        return storage[index].load(ordering: .relaxed)
    }
}
