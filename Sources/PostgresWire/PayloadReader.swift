/// A message payload could not be decoded; the peer broke the protocol (SQLSTATE 08P01).
public struct WireDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A cursor over one message's payload. Every read checks the bounds, so a short or malformed
/// payload becomes a `WireDecodingError` rather than a crash.
public struct PayloadReader {
    public let bytes: ArraySlice<UInt8>
    public private(set) var position: Int

    public init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        position = bytes.startIndex
    }

    public var remaining: Int { bytes.endIndex - position }
    public var isAtEnd: Bool { position == bytes.endIndex }

    public mutating func readInt32() throws(WireDecodingError) -> Int32 {
        guard remaining >= 4 else { throw WireDecodingError("message too short") }
        var bits: UInt32 = 0
        for index in position..<position + 4 { bits = bits << 8 | UInt32(bytes[index]) }
        position += 4
        return Int32(bitPattern: bits)
    }

    public mutating func readInt16() throws(WireDecodingError) -> Int16 {
        guard remaining >= 2 else { throw WireDecodingError("message too short") }
        let bits = UInt16(bytes[position]) << 8 | UInt16(bytes[position + 1])
        position += 2
        return Int16(bitPattern: bits)
    }

    public mutating func readByte() throws(WireDecodingError) -> UInt8 {
        guard remaining >= 1 else { throw WireDecodingError("message too short") }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func readCString() throws(WireDecodingError) -> String {
        guard let end = bytes[position...].firstIndex(of: 0) else {
            throw WireDecodingError("string is not terminated")
        }
        defer { position = end + 1 }
        return String(decoding: bytes[position..<end], as: UTF8.self)
    }

    public mutating func readBytes(_ count: Int) throws(WireDecodingError) -> ArraySlice<UInt8> {
        guard count >= 0, remaining >= count else { throw WireDecodingError("message too short") }
        defer { position += count }
        return bytes[position..<position + count]
    }

    public mutating func readRest() -> ArraySlice<UInt8> {
        defer { position = bytes.endIndex }
        return bytes[position...]
    }

    /// Messages must be consumed exactly; trailing bytes mean a malformed message.
    public func expectEnd() throws(WireDecodingError) {
        guard isAtEnd else { throw WireDecodingError("message has \(remaining) unexpected trailing bytes") }
    }
}
