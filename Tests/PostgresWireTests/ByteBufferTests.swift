import XCTest
@testable import PostgresWire

final class ByteBufferTests: XCTestCase {
    func testIntegersAreBigEndian() {
        var buffer = ByteBuffer()
        buffer.writeInteger(Int32(0x01020304))
        buffer.writeInteger(UInt16(0xA0B0))
        buffer.writeInteger(Int32(-1))
        XCTAssertEqual(buffer.readableArray, [1, 2, 3, 4, 0xA0, 0xB0, 0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertEqual(buffer.readInteger(as: Int32.self), 0x01020304)
        XCTAssertEqual(buffer.readInteger(as: UInt16.self), 0xA0B0)
        XCTAssertEqual(buffer.readInteger(as: Int32.self), -1)
        XCTAssertNil(buffer.readInteger(as: Int32.self))
    }

    func testCStrings() {
        var buffer = ByteBuffer()
        buffer.writeCString("héllo")
        buffer.writeCString("")
        buffer.writeString("x")
        XCTAssertEqual(buffer.readCString(), "héllo")
        XCTAssertEqual(buffer.readCString(), "")
        XCTAssertNil(buffer.readCString(), "no terminator")
        XCTAssertEqual(buffer.readableBytes, 1)
    }

    func testSetIntegerPatchesInPlace() {
        var buffer = ByteBuffer()
        buffer.writeInteger(Int32(0))
        buffer.writeByte(9)
        buffer.setInteger(Int32(5), at: 0)
        XCTAssertEqual(buffer.readableArray, [0, 0, 0, 5, 9])
    }

    func testAppendRawBytesAndCompact() {
        var buffer = ByteBuffer(capacity: 16)
        let input: [UInt8] = Array(0..<10)
        input.withUnsafeBytes { buffer.append(contentsOf: $0) }
        buffer.moveReaderIndex(forwardBy: 6)
        XCTAssertEqual(buffer.readerIndex, 6)
        buffer.compact()
        XCTAssertEqual(buffer.readerIndex, 0)
        XCTAssertEqual(buffer.readableArray, [6, 7, 8, 9])
        XCTAssertEqual(buffer.capacity, 16, "compaction keeps the storage")
    }

    func testReadingEverythingResetsIndices() {
        var buffer = ByteBuffer(bytes: [1, 2, 3])
        buffer.moveReaderIndex(forwardBy: 3)
        XCTAssertEqual(buffer.readerIndex, 0)
        XCTAssertEqual(buffer.writerIndex, 0)
        XCTAssertTrue(buffer.isEmpty)
    }

    func testWarmBufferDoesNotGrow() {
        var buffer = ByteBuffer(capacity: 256)
        var message: [UInt8] = []
        message.writeQuery("SELECT 1")
        for _ in 0..<1000 {
            message.withUnsafeBytes { buffer.append(contentsOf: $0) }
            guard case .message(_, let payload) = buffer.frameMessage(maxMessageSize: 1024) else {
                return XCTFail("expected a message")
            }
            buffer.moveReaderIndex(to: payload.upperBound)
        }
        XCTAssertEqual(buffer.capacity, 256)
    }

    func testWriteWithUnsafeMutableBytes() {
        var buffer = ByteBuffer()
        let written = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 100) { raw in
            XCTAssertGreaterThanOrEqual(raw.count, 100)
            raw[0] = 42
            raw[1] = 43
            return 2
        }
        XCTAssertEqual(written, 2)
        XCTAssertEqual(buffer.readableArray, [42, 43])
    }

    func testGrowsBeyondInitialCapacity() {
        var buffer = ByteBuffer(capacity: 4)
        buffer.append(contentsOf: Array(repeating: UInt8(7), count: 1000))
        XCTAssertEqual(buffer.readableBytes, 1000)
        XCTAssertTrue(buffer.readableView.allSatisfy { $0 == 7 })
    }
}
