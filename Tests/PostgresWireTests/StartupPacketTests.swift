import XCTest
@testable import PostgresWire

final class StartupPacketTests: XCTestCase {
    /// What psql 15 sent with "user=alice dbname=app application_name=psql sslmode=disable".
    let psqlStartup = hexBytes("00000037000300007573657200616c69636500646174616261736500617070006170706c69636174696f6e5f6e616d65007073716c0000")

    func decode(_ bytes: [UInt8]) throws(StartupPacket.Failure) -> StartupPacket {
        guard case .message(_, let payload) = MessageFraming.frameStartup(bytes, from: 0, to: bytes.count) else {
            fatalError("not framed")
        }
        return try StartupPacket.decode(bytes[payload])
    }

    func testCapturedPsqlStartup() throws {
        guard case .startup(let version, let parameters) = try decode(psqlStartup) else { return XCTFail() }
        XCTAssertEqual(version, 196_608)
        XCTAssertEqual(parameters.map { "\($0.0)=\($0.1)" }, ["user=alice", "database=app", "application_name=psql"])
        XCTAssertEqual(StartupPacket.parameter("database", in: parameters), "app")
    }

    func testEncoderMatchesPsql() {
        var bytes: [UInt8] = []
        bytes.writeStartupMessage(parameters: [("user", "alice"), ("database", "app"), ("application_name", "psql")])
        XCTAssertEqual(bytes, psqlStartup)
    }

    func testCapturedSSLRequest() throws {
        let captured = hexBytes("0000000804d2162f")
        guard case .sslRequest = try decode(captured) else { return XCTFail() }
        var bytes: [UInt8] = []
        bytes.writeSSLRequest()
        XCTAssertEqual(bytes, captured)
    }

    func testGSSEncRequestAndCancel() throws {
        guard case .gssEncRequest = try decode([0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x30]) else { return XCTFail() }
        var bytes: [UInt8] = []
        bytes.writeCancelRequest(processID: 1234, secretKey: -5)
        guard case .cancel(let pid, let key) = try decode(bytes) else { return XCTFail() }
        XCTAssertEqual(pid, 1234)
        XCTAssertEqual(key, -5)
    }

    func testDatabaseDefaultsToUser() throws {
        var bytes: [UInt8] = []
        bytes.writeStartupMessage(parameters: [("user", "bob")])
        guard case .startup(_, let parameters) = try decode(bytes) else { return XCTFail() }
        XCTAssertEqual(StartupPacket.parameter("database", in: parameters), "bob")
        XCTAssertNil(StartupPacket.parameter("options", in: parameters))
    }

    func testMissingUserIsRefused() {
        var bytes: [UInt8] = []
        bytes.writeStartupMessage(parameters: [("database", "app")])
        XCTAssertThrowsError(try decode(bytes)) { error in
            let failure = error as! StartupPacket.Failure
            XCTAssertEqual(failure.sqlState, "28000")
            XCTAssertEqual(failure.message, "no PostgreSQL user name specified in startup packet")
        }
    }

    func testOldProtocolIsRefused() {
        var bytes: [UInt8] = []
        bytes.writeStartupMessage(parameters: [("user", "bob")], protocolVersion: 2 << 16)
        XCTAssertThrowsError(try decode(bytes)) { error in
            let failure = error as! StartupPacket.Failure
            XCTAssertEqual(failure.sqlState, "0A000")
            XCTAssertEqual(failure.message, "unsupported frontend protocol 2.0: server supports 3.0 to 3.0")
            XCTAssertEqual(failure.errorFields.severity, "FATAL")
        }
    }

    func testNewerMinorVersionIsReported() throws {
        var bytes: [UInt8] = []
        bytes.writeStartupMessage(parameters: [("user", "bob")], protocolVersion: 3 << 16 | 2)
        guard case .startup(let version, _) = try decode(bytes) else { return XCTFail() }
        XCTAssertEqual(version, 196_610)
    }

    func testMissingTerminatorIsRefused() {
        var bytes = psqlStartup
        bytes.removeLast()
        bytes[3] -= 1
        XCTAssertThrowsError(try decode(bytes)) { error in
            XCTAssertEqual((error as! StartupPacket.Failure).sqlState, "08P01")
        }
    }
}
