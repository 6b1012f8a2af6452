import XCTest
@testable import PostgresWire

/// Encoders and decoders, checked against each other and against bytes PostgreSQL 15 sent.
final class MessageCodecTests: XCTestCase {
    func testCapturedParameterStatusKeyDataAndReadyForQuery() throws {
        let status = onlyMessage(hexBytes("53000000327365727665725f76657273696f6e0031352e3138202844656269616e2031352e31382d302b646562313275312900"))
        XCTAssertEqual(status.type, BackendMessageType.parameterStatus)
        XCTAssertEqual(try ParameterStatus.decode(status.payload), ParameterStatus(name: "server_version", value: "15.18 (Debian 15.18-0+deb12u1)"))

        let key = onlyMessage(hexBytes("4b0000000c000024af1206244b"))
        XCTAssertEqual(try BackendKeyData.decode(key.payload), BackendKeyData(processID: 9391, secretKey: 302_392_395))

        let ready = onlyMessage(hexBytes("5a0000000549"))
        XCTAssertEqual(try ReadyForQuery.decode(ready.payload), .idle)
    }

    func testCapturedErrorResponse() throws {
        let message = onlyMessage(hexBytes("450000006953464154414c0056464154414c00433238503031004d70617373776f72642061757468656e7469636174696f6e206661696c656420666f7220757365722022736372616d75736572220046617574682e63004c3333340052617574685f6661696c65640000"))
        XCTAssertEqual(message.type, BackendMessageType.errorResponse)
        let fields = try ErrorFields.decode(message.payload)
        XCTAssertEqual(fields.severity, "FATAL")
        XCTAssertEqual(fields.code, "28P01")
        XCTAssertEqual(fields.message, "password authentication failed for user \"scramuser\"")
        XCTAssertNil(fields.detail)
        XCTAssertEqual(fields.value(of: UInt8(ascii: "R")), "auth_failed")
        XCTAssertEqual(fields.fields.count, 7)
    }

    func testBackendEncodersRoundTrip() throws {
        var bytes: [UInt8] = []
        bytes.writeParameterStatus(name: "TimeZone", value: "Etc/UTC")
        bytes.writeBackendKeyData(processID: 7, secretKey: -9)
        bytes.writeReadyForQuery(.inTransaction)
        bytes.writeCommandComplete(tag: "INSERT 0 1")
        bytes.writeErrorResponse(code: SQLState.readOnlySQLTransaction, message: "cannot execute INSERT in a read-only transaction",
                                 detail: "d", hint: "h")
        bytes.writeNoticeResponse(code: "00000", message: "hello")
        let messages = typedMessages(bytes)
        XCTAssertEqual(messages.map(\.type), Array("SKZCEN".utf8))
        XCTAssertEqual(try ParameterStatus.decode(messages[0].payload), ParameterStatus(name: "TimeZone", value: "Etc/UTC"))
        XCTAssertEqual(try BackendKeyData.decode(messages[1].payload), BackendKeyData(processID: 7, secretKey: -9))
        XCTAssertEqual(try ReadyForQuery.decode(messages[2].payload), .inTransaction)
        XCTAssertEqual(try CommandComplete.decodeTag(messages[3].payload), "INSERT 0 1")
        let error = try ErrorFields.decode(messages[4].payload)
        XCTAssertEqual(error, ErrorFields(severity: "ERROR", code: "25006", message: "cannot execute INSERT in a read-only transaction", detail: "d", hint: "h"))
        XCTAssertEqual(error.fields.map(\.code), Array("SVCMDH".utf8))
        XCTAssertEqual(try ErrorFields.decode(messages[5].payload).severity, "NOTICE")
    }

    func testCapturedAuthenticationRequests() throws {
        XCTAssertEqual(try AuthenticationRequest.decode(onlyMessage(hexBytes("520000000800000000")).payload), .ok)
        XCTAssertEqual(try AuthenticationRequest.decode(onlyMessage(hexBytes("520000000800000003")).payload), .cleartextPassword)
        XCTAssertEqual(try AuthenticationRequest.decode(onlyMessage(hexBytes("520000000c00000005558029b9")).payload), .md5Password(salt: 0x5580_29B9))
        XCTAssertEqual(try AuthenticationRequest.decode(onlyMessage(hexBytes("52000000170000000a534352414d2d5348412d3235360000")).payload),
                       .sasl(mechanisms: ["SCRAM-SHA-256"]))
        XCTAssertEqual(try AuthenticationRequest.decode([0, 0, 0, 7]), .gss)
        XCTAssertEqual(try AuthenticationRequest.decode([0, 0, 0, 42, 1]).code, 42)
        XCTAssertThrowsError(try AuthenticationRequest.decode([0, 0, 0, 5, 1]))
    }

    func testAuthenticationEncodersRoundTrip() throws {
        var bytes: [UInt8] = []
        bytes.writeAuthenticationOk()
        bytes.writeAuthenticationCleartextPassword()
        bytes.writeAuthenticationMD5Password(salt: 0xDEAD_BEEF)
        bytes.writeAuthenticationSASL(mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
        bytes.writeAuthenticationSASLContinue(data: Array("r=abc".utf8))
        bytes.writeAuthenticationSASLFinal(data: Array("v=xyz".utf8))
        let decoded = try typedMessages(bytes).map { message throws(WireDecodingError) in try AuthenticationRequest.decode(message.payload) }
        XCTAssertEqual(decoded, [.ok, .cleartextPassword, .md5Password(salt: 0xDEAD_BEEF),
                                 .sasl(mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]),
                                 .saslContinue(data: Array("r=abc".utf8)[...]), .saslFinal(data: Array("v=xyz".utf8)[...])])
        XCTAssertEqual(Array(bytes.prefix(9)), hexBytes("520000000800000000"))
    }

    func testEmptyAndSimpleBackendMessages() {
        var bytes: [UInt8] = []
        bytes.writeEmptyQueryResponse()
        bytes.writeParseComplete()
        bytes.writeBindComplete()
        bytes.writeCloseComplete()
        bytes.writeNoData()
        XCTAssertEqual(bytes, hexBytes("4900000004 3100000004 3200000004 3300000004 6e00000004"))
    }

    func testRowDescriptionAndDataRow() throws {
        var bytes: [UInt8] = []
        bytes.writeRowDescription(textColumns: ["a"])
        bytes.writeDataRow(["xy", nil, ""])
        XCTAssertEqual(bytes, hexBytes("""
            54 0000001a 0001 6100 00000000 0000 00000019 ffff ffffffff 0000
            44 00000014 0003 00000002 7879 ffffffff 00000000
            """))
    }

    func testFrontendEncodersRoundTrip() throws {
        var bytes: [UInt8] = []
        bytes.writeQuery("SELECT 1; SELECT 2")
        bytes.writeParse(statementName: "s1", query: "SELECT $1::int, $2", parameterTypes: [23, 0])
        bytes.writeDescribe(.statement, name: "s1")
        bytes.writeClose(.portal, name: "")
        bytes.writeExecute(portalName: "p", maxRows: 10)
        bytes.writeSync()
        bytes.writeFlush()
        bytes.writeTerminate()
        bytes.writePasswordMessage("md5abc")
        bytes.writeSASLInitialResponse(mechanism: "SCRAM-SHA-256", data: Array("n,,n=,r=x".utf8))
        bytes.writeSASLInitialResponse(mechanism: "SCRAM-SHA-256", data: [UInt8]?.none)
        bytes.writeSASLResponse(data: Array("c=biws".utf8))
        let messages = typedMessages(bytes)
        XCTAssertEqual(messages.map(\.type), Array("QPDCESHXpppp".utf8))
        XCTAssertEqual(try QueryMessage.decodeText(messages[0].payload), "SELECT 1; SELECT 2")
        XCTAssertEqual(try ParseMessage.decode(messages[1].payload), ParseMessage(statementName: "s1", query: "SELECT $1::int, $2", parameterTypes: [23, 0]))
        XCTAssertEqual(try DescribeMessage.decode(messages[2].payload), TargetedMessage(kind: .statement, name: "s1"))
        XCTAssertEqual(try CloseMessage.decode(messages[3].payload), TargetedMessage(kind: .portal, name: ""))
        XCTAssertEqual(try ExecuteMessage.decode(messages[4].payload), ExecuteMessage(portalName: "p", maxRows: 10))
        XCTAssertEqual(messages[5].payload.count + messages[6].payload.count + messages[7].payload.count, 0)
        XCTAssertEqual(try PasswordMessage.decode(messages[8].payload), "md5abc")
        XCTAssertEqual(try SASLInitialResponse.decode(messages[9].payload), SASLInitialResponse(mechanism: "SCRAM-SHA-256", data: Array("n,,n=,r=x".utf8)))
        XCTAssertEqual(try SASLInitialResponse.decode(messages[10].payload), SASLInitialResponse(mechanism: "SCRAM-SHA-256", data: nil))
        XCTAssertEqual(SASLResponse.decode(messages[11].payload), Array("c=biws".utf8))
    }

    func testBindNamesLeaveTheRest() throws {
        // Bind: portal "", statement "s1", 0 formats, 1 parameter "42", 1 result format (text).
        let payload = hexBytes("00 733100 0000 0001 00000002 3432 0001 0000")
        XCTAssertEqual(try BindNames.decode(payload[...]), BindNames(portalName: "", statementName: "s1"))
    }

    func testMalformedPayloadsThrow() {
        XCTAssertThrowsError(try QueryMessage.decodeText(Array("no terminator".utf8)[...]))
        XCTAssertThrowsError(try QueryMessage.decodeText([0x41, 0, 0x42]), "trailing bytes")
        XCTAssertThrowsError(try ParseMessage.decode([0x00, 0x00, 0xFF, 0xFF]), "negative count")
        XCTAssertThrowsError(try ParseMessage.decode([0x00, 0x00, 0x00, 0x02, 0, 0, 0, 23]), "missing type")
        XCTAssertThrowsError(try DescribeMessage.decode([0x58, 0x00]), "bad kind")
        XCTAssertThrowsError(try ReadyForQuery.decode([0x58]))
        XCTAssertThrowsError(try SASLInitialResponse.decode(hexBytes("5800 00000005 41")[...]), "short data")
        XCTAssertThrowsError(try ExecuteMessage.decode([0x00, 0, 0]))
        XCTAssertThrowsError(try ErrorFields.decode([0x53, 0x41]))
    }

    func testDecodersWorkOnSlicesNotStartingAtZero() throws {
        var buffer = ByteBuffer()
        buffer.writeQuery("SELECT 'x'")
        buffer.writeParse(statementName: "", query: "SELECT 2")
        var payloads: [ArraySlice<UInt8>] = []
        while case .message(_, let payload) = buffer.frameMessage(maxMessageSize: 100) {
            payloads.append(buffer.storage[payload])
            buffer.moveReaderIndex(to: payload.upperBound)
        }
        XCTAssertEqual(try ParseMessage.decode(payloads[1]).query, "SELECT 2")
    }

    func testEncodingIntoByteBufferMatchesArray() {
        var array: [UInt8] = []
        var buffer = ByteBuffer(capacity: 8)
        array.writeParse(statementName: "x", query: "SELECT 1", parameterTypes: [25])
        buffer.writeParse(statementName: "x", query: "SELECT 1", parameterTypes: [25])
        array.writeDataRow(["a", nil])
        buffer.writeDataRow(["a", nil])
        XCTAssertEqual(buffer.readableArray, array)
    }

    func testSQLStateConstants() {
        XCTAssertEqual(SQLState.protocolViolation, "08P01")
        XCTAssertEqual(SQLState.invalidPassword, "28P01")
        XCTAssertEqual(SQLState.sqlServerRejectedEstablishmentOfSQLConnection, "08004")
        XCTAssertEqual(SQLState.systemError, "58000")
    }
}
