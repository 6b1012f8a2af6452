/// A growable byte buffer with separate read and write positions.
///
/// Bytes in `readerIndex..<writerIndex` are readable; `storage` beyond `writerIndex` is spare
/// capacity. Once the buffer has grown to its working size, appending, framing and `compact()`
/// reuse the same storage, so a session's input buffer does not allocate per message.
public struct ByteBuffer: Sendable {
    /// The backing bytes. Only `readerIndex..<writerIndex` is meaningful; slicing it (`storage[range]`)
    /// gives a payload view without copying.
    public private(set) var storage: [UInt8]
    public private(set) var readerIndex: Int = 0
    public private(set) var writerIndex: Int = 0

    public init(capacity: Int = 0) {
        storage = [UInt8](repeating: 0, count: capacity)
    }

    public init<Bytes: Sequence>(bytes: Bytes) where Bytes.Element == UInt8 {
        storage = Array(bytes)
        writerIndex = storage.count
    }

    public var readableBytes: Int { writerIndex - readerIndex }
    public var writableBytes: Int { storage.count - writerIndex }
    public var capacity: Int { storage.count }
    public var isEmpty: Bool { readerIndex == writerIndex }

    /// The readable bytes as a slice of `storage` (no copy).
    public var readableView: ArraySlice<UInt8> { storage[readerIndex..<writerIndex] }

    /// The readable bytes copied into a new array.
    public var readableArray: [UInt8] { Array(storage[readerIndex..<writerIndex]) }

    // MARK: Capacity

    /// Makes sure at least `count` bytes can be written without growing again.
    public mutating func reserveWritableBytes(_ count: Int) {
        guard writableBytes < count else { return }
        let needed = writerIndex + count
        var newCapacity = Swift.max(storage.count, 64)
        while newCapacity < needed { newCapacity *= 2 }
        storage.append(contentsOf: repeatElement(0, count: newCapacity - storage.count))
    }

    /// Moves the unread bytes to the front so the consumed prefix can be reused.
    public mutating func compact() {
        guard readerIndex > 0 else { return }
        let unread = readableBytes
        if unread > 0 {
            let from = readerIndex
            storage.withUnsafeMutableBytes { raw in
                let base = raw.baseAddress!
                (base).copyMemory(from: base + from, byteCount: unread)
            }
        }
        readerIndex = 0
        writerIndex = unread
    }

    /// Forgets all bytes but keeps the capacity.
    public mutating func clear() {
        readerIndex = 0
        writerIndex = 0
    }

    // MARK: Moving the indices

    public mutating func moveReaderIndex(forwardBy count: Int) {
        precondition(count >= 0 && count <= readableBytes, "reader index beyond writer index")
        readerIndex += count
        if readerIndex == writerIndex { clear() }
    }

    public mutating func moveReaderIndex(to index: Int) {
        precondition(index >= readerIndex && index <= writerIndex, "reader index out of range")
        readerIndex = index
        if readerIndex == writerIndex { clear() }
    }

    // MARK: Writing

    /// Lets `body` write straight into spare capacity (e.g. a socket `read`); it returns how many
    /// bytes it wrote.
    @discardableResult
    public mutating func writeWithUnsafeMutableBytes(
        minimumWritableBytes: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> Int
    ) rethrows -> Int {
        reserveWritableBytes(minimumWritableBytes)
        let start = writerIndex
        let written = try storage.withUnsafeMutableBytes { raw in
            try body(UnsafeMutableRawBufferPointer(rebasing: raw[start...]))
        }
        precondition(written >= 0 && written <= storage.count - start, "wrote outside the buffer")
        writerIndex += written
        return written
    }

    public mutating func append(contentsOf bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        reserveWritableBytes(bytes.count)
        let start = writerIndex
        storage.withUnsafeMutableBytes { raw in
            (raw.baseAddress! + start).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
        writerIndex += bytes.count
    }

    public mutating func append<Bytes: Collection>(contentsOf bytes: Bytes) where Bytes.Element == UInt8 {
        let done: Void? = bytes.withContiguousStorageIfAvailable { append(contentsOf: UnsafeRawBufferPointer($0)) }
        guard done == nil else { return }
        reserveWritableBytes(bytes.count)
        var index = writerIndex
        for byte in bytes {
            storage[index] = byte
            index += 1
        }
        writerIndex = index
    }

    public mutating func writeByte(_ byte: UInt8) {
        reserveWritableBytes(1)
        storage[writerIndex] = byte
        writerIndex += 1
    }

    /// Writes `value` big-endian (network order).
    public mutating func writeInteger<T: FixedWidthInteger>(_ value: T) {
        let size = MemoryLayout<T>.size
        reserveWritableBytes(size)
        setInteger(value, at: writerIndex)
        writerIndex += size
    }

    /// Overwrites `T.size` bytes at an absolute index below `writerIndex + size` (big-endian).
    public mutating func setInteger<T: FixedWidthInteger>(_ value: T, at index: Int) {
        let size = MemoryLayout<T>.size
        precondition(index >= 0 && index + size <= storage.count, "setInteger out of range")
        var bigEndian = value.bigEndian
        withUnsafeBytes(of: &bigEndian) { source in
            storage.withUnsafeMutableBytes { raw in
                (raw.baseAddress! + index).copyMemory(from: source.baseAddress!, byteCount: size)
            }
        }
    }

    /// Writes the string's UTF-8 bytes followed by a zero byte.
    public mutating func writeCString(_ string: String) {
        var string = string
        string.withUTF8 { append(contentsOf: UnsafeRawBufferPointer($0)) }
        writeByte(0)
    }

    public mutating func writeString(_ string: String) {
        var string = string
        string.withUTF8 { append(contentsOf: UnsafeRawBufferPointer($0)) }
    }

    // MARK: Reading

    /// Reads a big-endian integer at an absolute index, or nil when it would pass `writerIndex`.
    public func getInteger<T: FixedWidthInteger>(at index: Int, as: T.Type = T.self) -> T? {
        guard index >= 0, index + MemoryLayout<T>.size <= writerIndex else { return nil }
        return storage.readBigEndian(at: index)
    }

    public mutating func readInteger<T: FixedWidthInteger>(as: T.Type = T.self) -> T? {
        guard let value: T = getInteger(at: readerIndex) else { return nil }
        moveReaderIndex(forwardBy: MemoryLayout<T>.size)
        return value
    }

    /// Reads a zero-terminated string at an absolute index: the string and the index after its
    /// terminator, or nil when no terminator comes before `writerIndex`.
    public func getCString(at index: Int) -> (string: String, next: Int)? {
        guard index >= 0, index <= writerIndex,
              let end = storage[index..<writerIndex].firstIndex(of: 0) else { return nil }
        return (String(decoding: storage[index..<end], as: UTF8.self), end + 1)
    }

    public mutating func readCString() -> String? {
        guard let (string, next) = getCString(at: readerIndex) else { return nil }
        moveReaderIndex(to: next)
        return string
    }

    /// Reads `count` bytes into a new array.
    public mutating func readBytes(_ count: Int) -> [UInt8]? {
        guard count >= 0, count <= readableBytes else { return nil }
        let bytes = Array(storage[readerIndex..<readerIndex + count])
        moveReaderIndex(forwardBy: count)
        return bytes
    }
}

extension Array where Element == UInt8 {
    /// Big-endian integer at `index`; the caller has checked the bounds.
    @usableFromInline @inline(__always)
    func readBigEndian<T: FixedWidthInteger>(at index: Int) -> T {
        var value = T.zero
        Swift.withUnsafeMutableBytes(of: &value) { destination in
            self.withUnsafeBytes { source in
                destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[index..<index + MemoryLayout<T>.size]))
            }
        }
        return T(bigEndian: value)
    }
}
