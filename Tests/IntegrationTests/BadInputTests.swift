import Foundation
import XCTest

/// Garbage and oversized messages get an ErrorResponse with SQLSTATE 08P01 and a closed
/// connection; everyone else is still served.
final class BadInputTests: ProxyTestCase {
    private func assertProtocolViolation(_ client: RawClient, file: StaticString = #filePath, line: UInt = #line) {
        let bytes = client.read(timeout: 30) // until the proxy closes
        let messages = RawWire.parse(bytes).messages
        let errors = messages.filter { $0.typeChar == "E" }
        XCTAssertFalse(errors.isEmpty, "expected an ErrorResponse, got \(messages) (\(bytes.count) bytes)", file: file, line: line)
        XCTAssertEqual(errors.last?.fields["C"], "08P01", "\(errors)", file: file, line: line)
        XCTAssertTrue(client.closedByPeer, "the proxy should close the connection", file: file, line: line)
    }

    private func assertStillServing(_ proxy: ProxyProcess, file: StaticString = #filePath, line: UInt = #line) throws {
        let conn = try proxy.connect()
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[replica]], file: file, line: line)
    }

    func testGarbageInsteadOfAStartupPacket() throws {
        let proxy = try startProxy()
        let client = try RawClient(port: proxy.port)
        client.send(Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
        assertProtocolViolation(client)
        try assertStillServing(proxy)
    }

    func testOversizedStartupLength() throws {
        let proxy = try startProxy()
        let client = try RawClient(port: proxy.port)
        client.send(RawWire.int32(0x7FFF_FFF0) + RawWire.int32(196_608) + Array(repeating: 0x41, count: 64))
        assertProtocolViolation(client)
        try assertStillServing(proxy)
    }

    func testOversizedMessageAfterLogin() throws {
        let proxy = try startProxy()
        let client = try RawClient(port: proxy.port)
        client.send(RawWire.startup([("user", "app_rw"), ("database", "app")]))
        let login = client.readMessages(until: "Z")
        XCTAssertTrue(login.contains { $0.typeChar == "Z" }, "login should finish: \(login)")
        client.send([UInt8(ascii: "Q")] + RawWire.int32(0x7FFF_FFF0) + Array("SELECT 1".utf8))
        assertProtocolViolation(client)
        try assertStillServing(proxy)
    }

    func testInvalidLengthAfterLogin() throws {
        let proxy = try startProxy()
        let client = try RawClient(port: proxy.port)
        client.send(RawWire.startup([("user", "app_rw"), ("database", "app")]))
        _ = client.readMessages(until: "Z")
        // A length below 4 cannot be.
        client.send([UInt8(ascii: "Q")] + RawWire.int32(2) + Array("junk".utf8))
        assertProtocolViolation(client)
        try assertStillServing(proxy)
    }

    func testRawClientQueryWorks() throws {
        // The raw client itself speaks enough protocol for a real query.
        let proxy = try startProxy()
        let client = try RawClient(port: proxy.port)
        client.send(RawWire.startup([("user", "app_rw"), ("database", "app")]))
        _ = client.readMessages(until: "Z")
        client.send(RawWire.query("SELECT inet_server_port()::text"))
        let messages = client.readMessages(until: "Z")
        let row = messages.first { $0.typeChar == "D" }
        XCTAssertNotNil(row, "\(messages)")
        if let body = row?.body, body.count > 6 {
            XCTAssertEqual(String(decoding: body[6...], as: UTF8.self), replica)
        }
        client.send(RawWire.terminate)
    }
}
