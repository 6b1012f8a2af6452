/// Somewhere encoders can append protocol bytes: a `ByteBuffer` or a `[UInt8]`.
///
/// Encoders write a message's length as a placeholder and patch it at the end, so a message is
/// encoded in one pass with no temporary array.
public protocol WireOutput {
    /// The index the next byte will be written at.
    var wireEndIndex: Int { get }
    mutating func wireAppend(_ byte: UInt8)
    mutating func wireAppend(_ bytes: UnsafeRawBufferPointer)
    /// Overwrites four bytes at `index`, big-endian.
    mutating func wireSetInt32(_ value: Int32, at index: Int)
}

extension ByteBuffer: WireOutput {
    public var wireEndIndex: Int { writerIndex }
    public mutating func wireAppend(_ byte: UInt8) { writeByte(byte) }
    public mutating func wireAppend(_ bytes: UnsafeRawBufferPointer) { append(contentsOf: bytes) }
    public mutating func wireSetInt32(_ value: Int32, at index: Int) { setInteger(value, at: index) }
}

extension Array: WireOutput where Element == UInt8 {
    public var wireEndIndex: Int { count }
    public mutating func wireAppend(_ byte: UInt8) { append(byte) }
    public mutating func wireAppend(_ bytes: UnsafeRawBufferPointer) {
        append(contentsOf: bytes.bindMemory(to: UInt8.self))
    }
    public mutating func wireSetInt32(_ value: Int32, at index: Int) {
        let bits = UInt32(bitPattern: value)
        self[index] = UInt8(truncatingIfNeeded: bits >> 24)
        self[index + 1] = UInt8(truncatingIfNeeded: bits >> 16)
        self[index + 2] = UInt8(truncatingIfNeeded: bits >> 8)
        self[index + 3] = UInt8(truncatingIfNeeded: bits)
    }
}

extension WireOutput {
    @inline(__always)
    mutating func putInt32(_ value: Int32) {
        let bits = UInt32(bitPattern: value)
        wireAppend(UInt8(truncatingIfNeeded: bits >> 24))
        wireAppend(UInt8(truncatingIfNeeded: bits >> 16))
        wireAppend(UInt8(truncatingIfNeeded: bits >> 8))
        wireAppend(UInt8(truncatingIfNeeded: bits))
    }

    @inline(__always)
    mutating func putInt16(_ value: Int16) {
        let bits = UInt16(bitPattern: value)
        wireAppend(UInt8(truncatingIfNeeded: bits >> 8))
        wireAppend(UInt8(truncatingIfNeeded: bits))
    }

    mutating func putString(_ string: String) {
        var string = string
        string.withUTF8 { wireAppend(UnsafeRawBufferPointer($0)) }
    }

    mutating func putCString(_ string: String) {
        putString(string)
        wireAppend(0)
    }

    mutating func putBytes<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let done: Void? = bytes.withContiguousStorageIfAvailable { wireAppend(UnsafeRawBufferPointer($0)) }
        if done == nil { for byte in bytes { wireAppend(byte) } }
    }

    /// Writes the type byte and a length placeholder; returns where the length goes.
    mutating func beginMessage(_ type: UInt8) -> Int {
        wireAppend(type)
        let lengthIndex = wireEndIndex
        putInt32(0)
        return lengthIndex
    }

    /// Begins a message without a type byte (startup, SSLRequest, CancelRequest).
    mutating func beginUntypedMessage() -> Int {
        let lengthIndex = wireEndIndex
        putInt32(0)
        return lengthIndex
    }

    /// Patches the length: it counts itself and everything after it.
    mutating func endMessage(_ lengthIndex: Int) {
        wireSetInt32(Int32(wireEndIndex - lengthIndex), at: lengthIndex)
    }

    /// A message that is only a type byte and a length of 4.
    mutating func writeEmptyMessage(_ type: UInt8) {
        wireAppend(type)
        putInt32(4)
    }
}
