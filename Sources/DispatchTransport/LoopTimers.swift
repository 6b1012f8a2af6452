import Dispatch

/// Every timer of one loop on a single DispatchSourceTimer, armed for the earliest deadline.
///
/// A Dispatch timer per client (a login timeout for each connection) cost libdispatch's event
/// thread a wake-up to register it and another to cancel it. Here scheduling is a heap push and
/// cancelling a dictionary removal; the Dispatch timer is re-armed only when the earliest deadline
/// moves earlier, or after it fires. Cancelled entries leave the heap lazily (when they come to the
/// top, or in a compaction once they outnumber the live ones).
///
/// Touched only on the loop's queue.
final class LoopTimers {
    private struct Entry {
        var deadline: UInt64
        var id: UInt64
    }

    private let source: DispatchSourceTimer
    /// A binary min-heap on `deadline`.
    private var heap: [Entry] = []
    /// The bodies of the timers still pending, by id.
    private var bodies: [UInt64: () -> Void] = [:]
    private var nextID: UInt64 = 0
    /// The deadline the Dispatch timer is armed for; UInt64.max when disarmed.
    private var armedFor = UInt64.max

    init(queue: DispatchQueue) {
        source = DispatchSource.makeTimerSource(queue: queue)
        source.setEventHandler { [weak self] in self?.fire() }
        source.schedule(deadline: .distantFuture)
        source.activate()
    }

    deinit {
        source.cancel()
    }

    /// Runs `body` once, `seconds` from now; returns the id that cancels it.
    func schedule(after seconds: Double, _ body: @escaping () -> Void) -> UInt64 {
        let delay = UInt64(max(0, min(seconds, 1e9)) * 1e9)
        let deadline = DispatchTime.now().uptimeNanoseconds &+ delay
        let id = nextID
        nextID &+= 1
        bodies[id] = body
        push(Entry(deadline: deadline, id: id))
        if deadline < armedFor { arm(deadline) }
        if heap.count > 64 && heap.count > 2 * bodies.count { compact() }
        return id
    }

    /// Forgets timer `id`; its body will not run (a no-op once it ran).
    func cancel(_ id: UInt64) {
        bodies.removeValue(forKey: id)
    }

    private func fire() {
        armedFor = .max
        let now = DispatchTime.now().uptimeNanoseconds
        while let top = heap.first, top.deadline <= now {
            popTop()
            // A body may schedule or cancel timers: the heap is re-read on every turn.
            if let body = bodies.removeValue(forKey: top.id) { body() }
        }
        while let top = heap.first, bodies[top.id] == nil { popTop() }
        if let top = heap.first, top.deadline < armedFor { arm(top.deadline) }
    }

    private func arm(_ deadline: UInt64) {
        armedFor = deadline
        source.schedule(deadline: DispatchTime(uptimeNanoseconds: deadline))
    }

    private func compact() {
        heap.removeAll(where: { bodies[$0.id] == nil })
        heap.sort { $0.deadline < $1.deadline } // a sorted array is a valid min-heap
    }

    private func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].deadline < heap[parent].deadline else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private func popTop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { break }
            let right = left + 1
            let smaller = right < heap.count && heap[right].deadline < heap[left].deadline ? right : left
            guard heap[smaller].deadline < heap[parent].deadline else { break }
            heap.swapAt(smaller, parent)
            parent = smaller
        }
    }
}
