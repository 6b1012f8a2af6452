import XCTest
@testable import PostgresWire

final class BackendHandshakeTests: XCTestCase {
    /// Replays a conversation: "C" lines are what we must send, "S" lines what the server sent.
    /// Returns the last action.
    @discardableResult
    func replay(_ handshake: inout BackendHandshake, _ script: [(String, String)], file: StaticString = #filePath, line: UInt = #line) -> BackendHandshakeAction? {
        var pendingOutput: [UInt8]? = handshake.start()
        var last: BackendHandshakeAction?
        for (direction, hex) in script {
            let bytes = hexBytes(hex)
            if direction == "C" {
                XCTAssertEqual(pendingOutput, bytes, "client bytes differ", file: file, line: line)
                pendingOutput = nil
            } else {
                let message = onlyMessage(bytes)
                last = handshake.received(type: message.type, payload: message.payload)
                if case .send(let output) = last { pendingOutput = output }
            }
        }
        return last
    }

    let afterAuthentication: [(String, String)] = [
        ("S", "520000000800000000"),
        ("S", "530000001b6170706c69636174696f6e5f6e616d650070726f626500"),
        ("S", "5300000019636c69656e745f656e636f64696e67005554463800"),
        ("S", "53000000327365727665725f76657273696f6e0031352e3138202844656269616e2031352e31382d302b646562313275312900"),
        ("S", "4e00000019535741524e494e47004d736f6d657468696e670000"), // a notice, to be ignored
        ("S", "4b0000000c000024af1206244b"),
        ("S", "5a0000000549"),
    ]

    func assertDone(_ action: BackendHandshakeAction?, file: StaticString = #filePath, line: UInt = #line) {
        guard case .done(let info) = action else { return XCTFail("not done: \(String(describing: action))", file: file, line: line) }
        XCTAssertEqual(info.parameters.map(\.0), ["application_name", "client_encoding", "server_version"], file: file, line: line)
        XCTAssertEqual(info.parameter("server_version"), "15.18 (Debian 15.18-0+deb12u1)", file: file, line: line)
        XCTAssertEqual(info.keyData, BackendKeyData(processID: 9391, secretKey: 302_392_395), file: file, line: line)
        XCTAssertEqual(info.transactionStatus, .idle, file: file, line: line)
    }

    /// Captured from PostgreSQL 15 (scram-sha-256 in pg_hba.conf), with our client nonce fixed.
    func testCapturedSCRAMLogin() {
        var handshake = BackendHandshake(user: "scramuser", database: "postgres", parameters: [("application_name", "probe")],
                                         credential: .password("secret1"))
        handshake.scramNonce = "fixedClientNonce0123"
        let action = replay(&handshake, [
            ("C", "00000041000300007573657200736372616d7573657200646174616261736500706f737467726573006170706c69636174696f6e5f6e616d650070726f62650000"),
            ("S", "52000000170000000a534352414d2d5348412d3235360000"),
            ("C", "7000000032534352414d2d5348412d323536000000001c6e2c2c6e3d2c723d6669786564436c69656e744e6f6e636530313233"),
            ("S", "52000000580000000b723d6669786564436c69656e744e6f6e6365303132333947544c5a594736613546674e7359476b504c4a5a6d78302c733d4466796c784a53376b5a6d2b503331656b6132796a413d3d2c693d34303936"),
            ("C", "7000000068633d626977732c723d6669786564436c69656e744e6f6e6365303132333947544c5a594736613546674e7359476b504c4a5a6d78302c703d74683376364f776776417262365453374a434556655761467841793339574e4868564277426957785856493d"),
            ("S", "52000000360000000c763d6859785638766e427663397a53304a355a6b5a5873465546624d4956465a58636e45707861346b6c6772453d"),
        ] + afterAuthentication)
        assertDone(action)
    }

    func testCapturedSCRAMLoginWithKeys() throws {
        let secret = try XCTUnwrap(SCRAMSecret(parsing: "SCRAM-SHA-256$4096:DfylxJS7kZm+P31eka2yjA==$ZgdbswtZSSr+J8w+nzHbiKkEM6X6o7Pt0e1SxFMZErI=:uiohkqr1AI2ZTwpAHHhB8auB6uaNxpPD0C7kY7oCGI8="))
        let keys = SCRAMKeys(password: "secret1", salt: secret.salt, iterations: 4096)
        var handshake = BackendHandshake(user: "scramuser", database: "postgres", parameters: [("application_name", "probe")],
                                         credential: .scramKeys(clientKey: keys.clientKey, serverKey: keys.serverKey))
        handshake.scramNonce = "fixedClientNonce0123"
        var script = afterAuthentication
        script.insert(contentsOf: [
            ("S", "52000000170000000a534352414d2d5348412d3235360000"),
            ("S", "52000000580000000b723d6669786564436c69656e744e6f6e6365303132333947544c5a594736613546674e7359476b504c4a5a6d78302c733d4466796c784a53376b5a6d2b503331656b6132796a413d3d2c693d34303936"),
            ("C", "7000000068633d626977732c723d6669786564436c69656e744e6f6e6365303132333947544c5a594736613546674e7359476b504c4a5a6d78302c703d74683376364f776776417262365453374a434556655761467841793339574e4868564277426957785856493d"),
            ("S", "52000000360000000c763d6859785638766e427663397a53304a355a6b5a5873465546624d4956465a58636e45707861346b6c6772453d"),
        ], at: 0)
        assertDone(replay(&handshake, script))
    }

    func testForgedServerFinalFails() {
        var handshake = BackendHandshake(user: "scramuser", database: "postgres", credential: .password("secret1"))
        handshake.scramNonce = "fixedClientNonce0123"
        let action = replay(&handshake, [
            ("S", "52000000170000000a534352414d2d5348412d3235360000"),
            ("S", "52000000580000000b723d6669786564436c69656e744e6f6e6365303132333947544c5a594736613546674e7359476b504c4a5a6d78302c733d4466796c784a53376b5a6d2b503331656b6132796a413d3d2c693d34303936"),
            ("S", "52000000360000000c763d4159785638766e427663397a53304a355a6b5a5873465546624d4956465a58636e45707861346b6c6772453d"),
        ])
        guard case .failed(.proxy(let reason)) = action else { return XCTFail() }
        XCTAssertTrue(reason.contains("incorrect server signature"), reason)
    }

    func testCapturedWrongPasswordIsServerError() {
        var handshake = BackendHandshake(user: "scramuser", database: "postgres", credential: .password("wrong"))
        let action = replay(&handshake, [
            ("S", "52000000170000000a534352414d2d5348412d3235360000"),
            ("S", "450000006953464154414c0056464154414c00433238503031004d70617373776f72642061757468656e7469636174696f6e206661696c656420666f7220757365722022736372616d75736572220046617574682e63004c3333340052617574685f6661696c65640000"),
        ])
        guard case .failed(.server(let fields)) = action else { return XCTFail() }
        XCTAssertEqual(fields.code, "28P01")
    }

    /// Captured md5 login as md5user/secret2, salt 558029b9.
    func testCapturedMD5Login() {
        var handshake = BackendHandshake(user: "md5user", database: "postgres", parameters: [("application_name", "probe")],
                                         credential: .password("secret2"))
        assertDone(replay(&handshake, [
            ("C", "0000003f0003000075736572006d64357573657200646174616261736500706f737467726573006170706c69636174696f6e5f6e616d650070726f62650000"),
            ("S", "520000000c00000005558029b9"),
            ("C", "70000000286d6435643639306139666639326235633535646435356264316333343265366138656600"),
        ] + afterAuthentication))

        var withHash = BackendHandshake(user: "md5user", database: "postgres", credential: .md5Hash("md5e11d1b13fa0872a3ba4f053d8eff8e93"))
        assertDone(replay(&withHash, [
            ("S", "520000000c0000000568fbc182"),
            ("C", "70000000286d6435353431386434646461396163636466386137373666353831633535643664313900"),
        ] + afterAuthentication))
    }

    func testCapturedCleartextAndTrustLogins() {
        var cleartext = BackendHandshake(user: "clearuser", database: "postgres", credential: .password("secret3"))
        assertDone(replay(&cleartext, [("S", "520000000800000003"), ("C", "700000000c7365637265743300")] + afterAuthentication))
        var trust = BackendHandshake(user: "postgres", database: "postgres", credential: .none)
        assertDone(replay(&trust, afterAuthentication))
    }

    func testCredentialThatCannotAnswer() {
        let cases: [(BackendCredential, String, String)] = [
            (.scramKeys(clientKey: [], serverKey: []), "520000000c00000005558029b9", "server asked for md5 but only SCRAM keys are known"),
            (.md5Hash("md5e11d1b13fa0872a3ba4f053d8eff8e93"), "52000000170000000a534352414d2d5348412d3235360000",
             "server asked for SCRAM-SHA-256 but only an md5 hash is known"),
            (.md5Hash("md5e11d1b13fa0872a3ba4f053d8eff8e93"), "520000000800000003",
             "server asked for a cleartext password but only an md5 hash is known"),
            (.none, "520000000800000003", "server asked for a cleartext password but no password is known"),
            (.password("x"), "520000000800000007", "unsupported authentication method 7 (GSS)"),
            (.password("x"), "520000000800000009", "unsupported authentication method 9 (SSPI)"),
            (.password("x"), "520000001c0000000a534352414d2d5348412d3235362d504c55530000",
             "server offered SASL mechanisms SCRAM-SHA-256-PLUS, none supported"),
        ]
        for (credential, request, expected) in cases {
            var handshake = BackendHandshake(user: "u", database: "d", credential: credential)
            XCTAssertEqual(replay(&handshake, [("S", request)]).map { "\($0)" }, "failed(\(expected))")
        }
    }

    func testProtocolErrors() {
        var handshake = BackendHandshake(user: "u", database: "d", credential: .none)
        _ = handshake.start()
        guard case .failed(.proxy) = handshake.received(type: UInt8(ascii: "Z"), payload: [0x49]) else {
            return XCTFail("ReadyForQuery before authentication")
        }
        var second = BackendHandshake(user: "u", database: "d", credential: .none)
        _ = second.start()
        guard case .failed(.proxy) = second.received(type: BackendMessageType.authentication, payload: [0, 0]) else {
            return XCTFail("truncated authentication")
        }
        var third = BackendHandshake(user: "u", database: "d", credential: .password("p"))
        XCTAssertNotNil(replay(&third, [("S", "520000000800000003")]))
        guard case .failed(.proxy) = third.received(type: BackendMessageType.authentication, payload: [0, 0, 0, 3]) else {
            return XCTFail("a second password request")
        }
    }

    func testStartupParameters() {
        var handshake = BackendHandshake(user: "u", database: "d",
                                         parameters: [("user", "ignored"), ("options", "-c search_path=x"), ("client_encoding", "UTF8")],
                                         credential: .none)
        let bytes = handshake.start()
        guard case .message(_, let payload) = MessageFraming.frameStartup(bytes, from: 0, to: bytes.count),
              case .startup(_, let parameters) = try? StartupPacket.decode(bytes[payload]) else { return XCTFail() }
        XCTAssertEqual(parameters.map { "\($0.0)=\($0.1)" }, ["user=u", "database=d", "options=-c search_path=x", "client_encoding=UTF8"])
    }
}
