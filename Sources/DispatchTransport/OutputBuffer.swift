/// Bytes accepted by `Connection.write` that the kernel has not taken yet. Contiguous, so one
/// `send` can flush many gathered messages; memory is kept between uses and freed when a large
/// burst has drained.
final class OutputBuffer {
    private var storage: UnsafeMutableRawPointer?
    private var capacity = 0
    private var start = 0
    private var end = 0

    /// Memory above this is released once the buffer is empty again.
    private static let retainedCapacity = 1 << 20
    private static let minimumCapacity = 16 * 1024

    deinit {
        storage?.deallocate()
    }

    var count: Int { end - start }
    var isEmpty: Bool { end == start }

    /// The pending bytes, oldest first. Valid until the next mutation.
    var pending: UnsafeRawBufferPointer {
        guard let storage else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: storage + start, count: end - start)
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        if capacity - end < bytes.count {
            makeRoom(for: bytes.count)
        }
        (storage! + end).copyMemory(from: source, byteCount: bytes.count)
        end += bytes.count
    }

    /// Appends up to `maximum` bytes written in place by `fill`, which returns how many it wrote.
    func append(upTo maximum: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Int) {
        if capacity - end < maximum {
            makeRoom(for: maximum)
        }
        let written = fill(UnsafeMutableRawBufferPointer(start: storage! + end, count: maximum))
        end += min(max(0, written), maximum)
    }

    /// Drops the first `byteCount` pending bytes (they were sent).
    func consume(_ byteCount: Int) {
        start += byteCount
        if start == end {
            removeAll()
        }
    }

    func removeAll() {
        start = 0
        end = 0
        if capacity > OutputBuffer.retainedCapacity {
            storage?.deallocate()
            storage = nil
            capacity = 0
        }
    }

    private func makeRoom(for extra: Int) {
        let used = end - start
        if let storage, used + extra <= capacity {
            // Enough space overall: slide the pending bytes to the front.
            storage.copyMemory(from: storage + start, byteCount: used)
        } else {
            var newCapacity = max(capacity * 2, OutputBuffer.minimumCapacity)
            while newCapacity < used + extra { newCapacity *= 2 }
            let grown = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
            if let storage {
                grown.copyMemory(from: storage + start, byteCount: used)
                storage.deallocate()
            }
            storage = grown
            capacity = newCapacity
        }
        start = 0
        end = used
    }
}
