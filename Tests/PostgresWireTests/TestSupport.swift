@testable import PostgresWire

/// Bytes from a hex string (whitespace ignored), for captured conversations.
func hexBytes(_ text: String) -> [UInt8] {
    let digits = Array(text.utf8).filter { $0 != 0x20 && $0 != 0x0A }
    precondition(digits.count % 2 == 0)
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
}

/// Splits a byte stream of typed messages into (type, payload) pairs.
func typedMessages(_ bytes: [UInt8]) -> [(type: UInt8, payload: ArraySlice<UInt8>)] {
    var result: [(UInt8, ArraySlice<UInt8>)] = []
    var offset = 0
    while case .message(let type, let payload) = MessageFraming.frame(bytes, from: offset, to: bytes.count, maxMessageSize: 1 << 20) {
        result.append((type, bytes[payload]))
        offset = payload.upperBound
    }
    precondition(offset == bytes.count, "trailing bytes")
    return result
}

/// The single message in `bytes`.
func onlyMessage(_ bytes: [UInt8]) -> (type: UInt8, payload: ArraySlice<UInt8>) {
    let messages = typedMessages(bytes)
    precondition(messages.count == 1)
    return messages[0]
}
