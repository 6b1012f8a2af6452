/// What the bytes at a position hold.
public enum FrameResult: Equatable, Sendable {
    /// A whole message; `payload` indexes the bytes after the length field. A startup packet has
    /// `type` 0.
    case message(type: UInt8, payload: Range<Int>)
    /// Not enough bytes yet.
    case needMore
    /// The length is impossible; the connection should be dropped. Nothing was allocated for it.
    case invalid(String)
}

public enum MessageFraming {
    /// PostgreSQL refuses startup packets longer than this (MAX_STARTUP_PACKET_LENGTH).
    public static let maxStartupPacketLength = 10_000

    /// Frames a typed message (type byte, Int32 length counting itself, payload) at `offset`,
    /// looking no further than `end`. `maxMessageSize` bounds the length field.
    ///
    /// The length is checked as soon as its four bytes are present, so an absurd length is
    /// rejected before any byte of the body arrives.
    @inlinable
    public static func frame(_ bytes: [UInt8], from offset: Int, to end: Int, maxMessageSize: Int) -> FrameResult {
        guard end - offset >= 5 else { return .needMore }
        let length: Int32 = bytes.readBigEndian(at: offset + 1)
        if length < 4 { return .invalid("invalid message length \(length)") }
        if Int(length) > maxMessageSize {
            return .invalid("message length \(length) exceeds the limit of \(maxMessageSize)")
        }
        let total = 1 + Int(length)
        guard end - offset >= total else { return .needMore }
        return .message(type: bytes[offset], payload: (offset + 5)..<(offset + total))
    }

    /// `frame` over bytes the caller lends (a read buffer), from `offset` to the buffer's end.
    @inlinable
    public static func frame(_ bytes: UnsafeRawBufferPointer, from offset: Int, maxMessageSize: Int) -> FrameResult {
        guard bytes.count - offset >= 5 else { return .needMore }
        let length = Int32(bitPattern: UInt32(bytes[offset + 1]) << 24 | UInt32(bytes[offset + 2]) << 16
                           | UInt32(bytes[offset + 3]) << 8 | UInt32(bytes[offset + 4]))
        if length < 4 { return .invalid("invalid message length \(length)") }
        if Int(length) > maxMessageSize {
            return .invalid("message length \(length) exceeds the limit of \(maxMessageSize)")
        }
        let total = 1 + Int(length)
        guard bytes.count - offset >= total else { return .needMore }
        return .message(type: bytes[offset], payload: (offset + 5)..<(offset + total))
    }

    /// Frames an untyped startup-phase packet (Int32 length counting itself, payload): startup
    /// message, SSLRequest, GSSENCRequest or CancelRequest.
    @inlinable
    public static func frameStartup(_ bytes: [UInt8], from offset: Int, to end: Int) -> FrameResult {
        guard end - offset >= 4 else { return .needMore }
        let length: Int32 = bytes.readBigEndian(at: offset)
        if length < 8 || Int(length) > maxStartupPacketLength {
            return .invalid("invalid length of startup packet")
        }
        guard end - offset >= Int(length) else { return .needMore }
        return .message(type: 0, payload: (offset + 4)..<(offset + Int(length)))
    }
}

extension ByteBuffer {
    /// Frames the typed message at `readerIndex`. The payload range indexes `storage`; after
    /// handling it, `moveReaderIndex(to: payload.upperBound)`.
    @inlinable
    public func frameMessage(maxMessageSize: Int) -> FrameResult {
        MessageFraming.frame(storage, from: readerIndex, to: writerIndex, maxMessageSize: maxMessageSize)
    }

    /// Frames the untyped startup packet at `readerIndex`.
    @inlinable
    public func frameStartupPacket() -> FrameResult {
        MessageFraming.frameStartup(storage, from: readerIndex, to: writerIndex)
    }
}
