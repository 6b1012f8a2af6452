import XCTest
@testable import PostgresWire

final class FramingTests: XCTestCase {
    func testFramesConsecutiveMessages() {
        var bytes: [UInt8] = []
        bytes.writeQuery("SELECT 1")
        bytes.writeSync()
        guard case .message(let type, let payload) = MessageFraming.frame(bytes, from: 0, to: bytes.count, maxMessageSize: 1000) else {
            return XCTFail()
        }
        XCTAssertEqual(type, UInt8(ascii: "Q"))
        XCTAssertEqual(try QueryMessage.decodeText(bytes[payload]), "SELECT 1")
        XCTAssertEqual(MessageFraming.frame(bytes, from: payload.upperBound, to: bytes.count, maxMessageSize: 1000),
                       .message(type: UInt8(ascii: "S"), payload: bytes.count..<bytes.count))
    }

    func testEveryPrefixNeedsMore() {
        var bytes: [UInt8] = []
        bytes.writeParse(statementName: "s1", query: "SELECT $1", parameterTypes: [23])
        for cut in 0..<bytes.count {
            XCTAssertEqual(MessageFraming.frame(bytes, from: 0, to: cut, maxMessageSize: 1000), .needMore, "cut at \(cut)")
        }
        XCTAssertEqual(MessageFraming.frame(bytes, from: 0, to: bytes.count, maxMessageSize: 1000),
                       .message(type: UInt8(ascii: "P"), payload: 5..<bytes.count))
    }

    func testSplitDeliveryThroughByteBuffer() {
        var stream: [UInt8] = []
        for index in 0..<20 { stream.writeQuery("SELECT \(index)") }
        stream.writeTerminate()
        // Deliver in awkward chunk sizes and collect what comes out.
        for chunk in [1, 2, 3, 7, 13, 64] {
            var buffer = ByteBuffer(capacity: 32)
            var texts: [String] = []
            var sawTerminate = false
            var offset = 0
            while offset < stream.count {
                let end = min(offset + chunk, stream.count)
                stream[offset..<end].withUnsafeBytes { buffer.append(contentsOf: $0) }
                offset = end
                while case .message(let type, let payload) = buffer.frameMessage(maxMessageSize: 1 << 16) {
                    if type == FrontendMessageType.query {
                        texts.append(try! QueryMessage.decodeText(buffer.storage[payload]))
                    } else if type == FrontendMessageType.terminate {
                        sawTerminate = true
                    }
                    buffer.moveReaderIndex(to: payload.upperBound)
                }
                buffer.compact()
            }
            XCTAssertEqual(texts, (0..<20).map { "SELECT \($0)" }, "chunk \(chunk)")
            XCTAssertTrue(sawTerminate)
            XCTAssertTrue(buffer.isEmpty)
        }
    }

    func testInvalidLengthsAreRejectedFromTheHeaderAlone() {
        // Length below 4, negative, and huge: decided with just 5 bytes present.
        XCTAssertEqual(MessageFraming.frame([0x51, 0, 0, 0, 3], from: 0, to: 5, maxMessageSize: 1000),
                       .invalid("invalid message length 3"))
        XCTAssertEqual(MessageFraming.frame([0x51, 0xFF, 0xFF, 0xFF, 0xFF], from: 0, to: 5, maxMessageSize: 1000),
                       .invalid("invalid message length -1"))
        guard case .invalid = MessageFraming.frame([0x51, 0x7F, 0xFF, 0xFF, 0xFF], from: 0, to: 5, maxMessageSize: 1 << 30) else {
            return XCTFail("2 GB message must be refused")
        }
        guard case .invalid = MessageFraming.frame([0x51, 0, 0, 0x03, 0xE9], from: 0, to: 5, maxMessageSize: 1000) else {
            return XCTFail("1001 > 1000")
        }
        XCTAssertEqual(MessageFraming.frame([0x51, 0, 0, 0x03, 0xE8], from: 0, to: 5, maxMessageSize: 1000), .needMore)
    }

    func testFramingFromOffset() {
        let bytes: [UInt8] = [9, 9, 0x53, 0, 0, 0, 4, 9]
        XCTAssertEqual(MessageFraming.frame(bytes, from: 2, to: 7, maxMessageSize: 100),
                       .message(type: 0x53, payload: 7..<7))
    }

    func testStartupPacketFraming() {
        var bytes: [UInt8] = []
        bytes.writeStartupMessage(parameters: [("user", "alice")])
        for cut in 0..<bytes.count {
            XCTAssertEqual(MessageFraming.frameStartup(bytes, from: 0, to: cut), .needMore)
        }
        XCTAssertEqual(MessageFraming.frameStartup(bytes, from: 0, to: bytes.count), .message(type: 0, payload: 4..<bytes.count))
        XCTAssertEqual(MessageFraming.frameStartup([0, 0, 0, 7], from: 0, to: 4), .invalid("invalid length of startup packet"))
        XCTAssertEqual(MessageFraming.frameStartup([0, 0, 0x27, 0x11], from: 0, to: 4), .invalid("invalid length of startup packet"))
        XCTAssertEqual(MessageFraming.frameStartup([0xFF, 0, 0, 0], from: 0, to: 4), .invalid("invalid length of startup packet"))
        XCTAssertEqual(MessageFraming.frameStartup([0, 0, 0x27, 0x10], from: 0, to: 4), .needMore, "10000 is allowed")
    }

    func testGarbageNeverCrashes() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let count = Int.random(in: 0..<40, using: &generator)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            var offset = 0
            while case .message(let type, let payload) = MessageFraming.frame(bytes, from: offset, to: bytes.count, maxMessageSize: 64) {
                _ = try? ErrorFields.decode(bytes[payload])
                _ = try? AuthenticationRequest.decode(bytes[payload])
                _ = try? ParseMessage.decode(bytes[payload])
                _ = try? SASLInitialResponse.decode(bytes[payload])
                _ = type
                offset = payload.upperBound
            }
            _ = MessageFraming.frameStartup(bytes, from: 0, to: bytes.count)
            _ = try? StartupPacket.decode(bytes[...])
        }
    }
}
