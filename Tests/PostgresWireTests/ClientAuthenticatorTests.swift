import XCTest
@testable import PostgresWire

final class ClientAuthenticatorTests: XCTestCase {
    let scramSecret = SCRAMSecret.make(password: "pw", iterations: 64).stringValue
    let md5Secret = MD5Auth.storedHash(user: "alice", password: "pw")

    enum Outcome: Equatable {
        case authenticated(ClientAuthSuccess)
        case failed(code: String, message: String)
    }

    /// Plays a client that answers whatever the authenticator asks, with `password`.
    func login(_ method: ClientAuthMethod, secret: String?, password: String, user: String = "alice",
               file: StaticString = #filePath, line: UInt = #line) -> (Outcome, askedFor: Int32?) {
        var authenticator = ClientAuthenticator(method: method, user: user, storedSecret: secret)
        var action = authenticator.start()
        var askedFor: Int32?
        var scram = SCRAMClient(password: password)
        for _ in 0..<4 {
            switch action {
            case .authenticated(let success, let bytes):
                let messages = typedMessages(bytes)
                XCTAssertEqual(try? AuthenticationRequest.decode(messages.last!.payload), .ok, file: file, line: line)
                if askedFor == 10 {
                    guard case .saslFinal(let data)? = try? AuthenticationRequest.decode(messages[0].payload) else {
                        XCTFail("no SASLFinal", file: file, line: line)
                        break
                    }
                    XCTAssertNoThrow(try scram.verifyServerFinal(data), file: file, line: line)
                }
                return (.authenticated(success), askedFor)
            case .failed(let error, let bytes):
                XCTAssertEqual(try? ErrorFields.decode(onlyMessage(bytes).payload), error, file: file, line: line)
                XCTAssertEqual(error.severity, "FATAL", file: file, line: line)
                return (.failed(code: error.code, message: error.message), askedFor)
            case .send(let bytes):
                var reply: [UInt8] = []
                let request = try! AuthenticationRequest.decode(onlyMessage(bytes).payload)
                switch request {
                case .cleartextPassword:
                    askedFor = 3
                    reply.writePasswordMessage(password)
                case .md5Password(let salt):
                    askedFor = 5
                    reply.writePasswordMessage(MD5Auth.response(user: user, password: password, salt: salt))
                case .sasl(let mechanisms):
                    askedFor = 10
                    XCTAssertEqual(mechanisms, ["SCRAM-SHA-256"], file: file, line: line)
                    reply.writeSASLInitialResponse(mechanism: "SCRAM-SHA-256", data: scram.clientFirstMessage())
                case .saslContinue(let data):
                    reply.writeSASLResponse(data: try! scram.receiveServerFirst(data))
                default:
                    XCTFail("unexpected request \(request)", file: file, line: line)
                }
                let message = onlyMessage(reply)
                action = authenticator.received(type: message.type, payload: message.payload)
            }
        }
        XCTFail("did not finish", file: file, line: line)
        return (.failed(code: "", message: ""), askedFor)
    }

    let refused = Outcome.failed(code: "28P01", message: "password authentication failed for user \"alice\"")

    func testTrust() {
        let (outcome, asked) = login(.trust, secret: nil, password: "")
        XCTAssertEqual(outcome, .authenticated(ClientAuthSuccess()))
        XCTAssertNil(asked)
    }

    func testSCRAMWithSCRAMSecretGivesKeys() throws {
        let (outcome, asked) = login(.scramSHA256, secret: scramSecret, password: "pw")
        XCTAssertEqual(asked, 10)
        guard case .authenticated(let success) = outcome, let keys = success.scramKeys else { return XCTFail("\(outcome)") }
        let secret = try XCTUnwrap(SCRAMSecret(parsing: scramSecret))
        XCTAssertEqual(keys, SCRAMKeys(password: "pw", salt: secret.salt, iterations: secret.iterations))
        XCTAssertNil(success.cleartextPassword)
    }

    func testSCRAMWithPlainSecret() {
        let (outcome, asked) = login(.scramSHA256, secret: "pw", password: "pw")
        XCTAssertEqual(asked, 10)
        guard case .authenticated(let success) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertNotNil(success.scramKeys)
        XCTAssertEqual(login(.scramSHA256, secret: "pw", password: "nope").0, refused)
    }

    func testSCRAMWrongPasswordUnknownUserAndMD5SecretLookAlike() {
        let wrong = login(.scramSHA256, secret: scramSecret, password: "nope")
        let unknown = login(.scramSHA256, secret: nil, password: "pw")
        let md5Stored = login(.scramSHA256, secret: md5Secret, password: "pw")
        for result in [wrong, unknown, md5Stored] {
            XCTAssertEqual(result.0, refused)
            XCTAssertEqual(result.askedFor, 10, "the whole SCRAM exchange runs before the refusal")
        }
    }

    func testMD5Method() {
        XCTAssertEqual(login(.md5, secret: md5Secret, password: "pw").0, .authenticated(ClientAuthSuccess()))
        XCTAssertEqual(login(.md5, secret: md5Secret, password: "pw").askedFor, 5)
        XCTAssertEqual(login(.md5, secret: "pw", password: "pw").0, .authenticated(ClientAuthSuccess()))
        XCTAssertEqual(login(.md5, secret: md5Secret, password: "nope").0, refused)
    }

    func testMD5MethodWithSCRAMSecretUsesSCRAM() {
        let (outcome, asked) = login(.md5, secret: scramSecret, password: "pw")
        XCTAssertEqual(asked, 10)
        guard case .authenticated(let success) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertNotNil(success.scramKeys)
    }

    func testMD5MethodUnknownUserFakesSCRAM() {
        let (outcome, asked) = login(.md5, secret: nil, password: "pw")
        XCTAssertEqual(outcome, refused)
        XCTAssertEqual(asked, 10)
    }

    func testCleartextMethodAgainstEverySecretKind() {
        for secret in ["pw", md5Secret, scramSecret] {
            let (outcome, asked) = login(.password, secret: secret, password: "pw")
            XCTAssertEqual(asked, 3)
            XCTAssertEqual(outcome, .authenticated(ClientAuthSuccess(cleartextPassword: "pw")), secret)
            XCTAssertEqual(login(.password, secret: secret, password: "nope").0, refused, secret)
        }
        XCTAssertEqual(login(.password, secret: nil, password: "pw").0, refused)
        XCTAssertEqual(login(.password, secret: "", password: "").0, refused, "empty passwords never work")
    }

    func testMalformedSASLIsProtocolViolation() {
        var authenticator = ClientAuthenticator(method: .scramSHA256, user: "alice", storedSecret: scramSecret)
        _ = authenticator.start()
        var reply: [UInt8] = []
        reply.writeSASLInitialResponse(mechanism: "SCRAM-SHA-256", data: Array("garbage".utf8))
        var message = onlyMessage(reply)
        guard case .failed(let error, _) = authenticator.received(type: message.type, payload: message.payload) else { return XCTFail() }
        XCTAssertEqual(error.code, "08P01")
        XCTAssertEqual(error.message, "malformed SCRAM message")

        var other = ClientAuthenticator(method: .scramSHA256, user: "alice", storedSecret: scramSecret)
        _ = other.start()
        reply = []
        reply.writeSASLInitialResponse(mechanism: "SCRAM-SHA-1", data: Array("n,,n=,r=x".utf8))
        message = onlyMessage(reply)
        guard case .failed(let wrongMechanism, _) = other.received(type: message.type, payload: message.payload) else { return XCTFail() }
        XCTAssertEqual(wrongMechanism.code, "08P01")
        XCTAssertEqual(wrongMechanism.message, "client selected an invalid SASL authentication mechanism")

        var third = ClientAuthenticator(method: .scramSHA256, user: "alice", storedSecret: scramSecret)
        _ = third.start()
        guard case .failed(let wrongType, _) = third.received(type: UInt8(ascii: "Q"), payload: [0]) else { return XCTFail() }
        XCTAssertEqual(wrongType.code, "08P01")
    }

    func testFailureBytesAreWhatPostgreSQLSends() {
        var authenticator = ClientAuthenticator(method: .password, user: "scramuser", storedSecret: "x")
        _ = authenticator.start()
        var reply: [UInt8] = []
        reply.writePasswordMessage("y")
        let message = onlyMessage(reply)
        guard case .failed(_, let bytes) = authenticator.received(type: message.type, payload: message.payload) else { return XCTFail() }
        let fields = try! ErrorFields.decode(onlyMessage(bytes).payload)
        // PostgreSQL 15's own answer, minus its source-location fields (F, L, R).
        let captured = try! ErrorFields.decode(onlyMessage(hexBytes("450000006953464154414c0056464154414c00433238503031004d70617373776f72642061757468656e7469636174696f6e206661696c656420666f7220757365722022736372616d75736572220046617574682e63004c3333340052617574685f6661696c65640000")).payload)
        XCTAssertEqual(fields.fields, Array(captured.fields.prefix(4)))
    }
}
