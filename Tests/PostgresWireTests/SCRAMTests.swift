import XCTest
@testable import PostgresWire

final class SCRAMTests: XCTestCase {
    /// pg_authid for CREATE USER scramuser PASSWORD 'secret1' on PostgreSQL 15.
    let postgresSecret = "SCRAM-SHA-256$4096:DfylxJS7kZm+P31eka2yjA==$ZgdbswtZSSr+J8w+nzHbiKkEM6X6o7Pt0e1SxFMZErI=:uiohkqr1AI2ZTwpAHHhB8auB6uaNxpPD0C7kY7oCGI8="

    func testSecretParsesAndMatchesPostgreSQL() throws {
        let secret = try XCTUnwrap(SCRAMSecret(parsing: postgresSecret))
        XCTAssertEqual(secret.iterations, 4096)
        XCTAssertEqual(secret.salt.count, 16)
        XCTAssertEqual(secret.stringValue, postgresSecret)
        XCTAssertEqual(SCRAMSecret.make(password: "secret1", salt: secret.salt).stringValue, postgresSecret)
        XCTAssertTrue(secret.matches(password: "secret1"))
        XCTAssertFalse(secret.matches(password: "secret2"))
    }

    func testMadeSecretsHaveRandomSalt() throws {
        let a = SCRAMSecret.make(password: "pw")
        let b = SCRAMSecret.make(password: "pw")
        XCTAssertNotEqual(a.salt, b.salt)
        XCTAssertEqual(a.iterations, 4096)
        XCTAssertEqual(SCRAMSecret(parsing: a.stringValue), a)
        XCTAssertTrue(a.matches(password: "pw"))
    }

    /// Remembered keys are the keys PostgreSQL's secret holds, for each salt on its own: a second
    /// role with the same password but another salt gets its own keys, not the first one's.
    func testRememberedKeysMatchTheirSaltOnly() throws {
        let secret = try XCTUnwrap(SCRAMSecret(parsing: postgresSecret))
        for _ in 0..<2 {
            let keys = SCRAMKeys.remembered(password: "secret1", salt: secret.salt, iterations: secret.iterations)
            XCTAssertEqual(Crypto.sha256(keys.clientKey), secret.storedKey)
            XCTAssertEqual(keys.serverKey, secret.serverKey)
        }
        let other = SCRAMSecret.make(password: "secret1")
        let otherKeys = SCRAMKeys.remembered(password: "secret1", salt: other.salt, iterations: other.iterations)
        XCTAssertEqual(otherKeys.serverKey, other.serverKey)
        XCTAssertNotEqual(otherKeys.serverKey, secret.serverKey)
        let fewer = SCRAMKeys.remembered(password: "secret1", salt: secret.salt, iterations: 4095)
        XCTAssertEqual(fewer, SCRAMKeys(password: "secret1", salt: secret.salt, iterations: 4095))
        XCTAssertNotEqual(fewer.serverKey, secret.serverKey)
    }

    func testRejectsBadSecrets() {
        XCTAssertNil(SCRAMSecret(parsing: "md5e11d1b13fa0872a3ba4f053d8eff8e93"))
        XCTAssertNil(SCRAMSecret(parsing: "SCRAM-SHA-256$x:AAAA$AAAA:AAAA"))
        XCTAssertNil(SCRAMSecret(parsing: "SCRAM-SHA-256$4096:DfylxJS7kZm+P31eka2yjA==$short:short"))
        XCTAssertNil(SCRAMSecret(parsing: "plain password"))
    }

    /// RFC 7677 section 3 (user "user", password "pencil"), checked on the server side: our client
    /// sends an empty user name like libpq, so only the server can replay the RFC's messages.
    func testRFC7677VectorServerSide() throws {
        let salt = try XCTUnwrap(Base64.decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
        var server = SCRAMServer(secret: .make(password: "pencil", salt: salt), nonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
        let serverFirst = try server.receiveClientFirst(Array("n,,n=user,r=rOprNGfwEbeRWgbNEkqO".utf8))
        XCTAssertEqual(String(decoding: serverFirst, as: UTF8.self),
                       "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
        let outcome = try server.receiveClientFinal(Array("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=".utf8))
        XCTAssertEqual(String(decoding: outcome.serverFinalMessage, as: UTF8.self), "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        XCTAssertEqual(outcome.keys, SCRAMKeys(password: "pencil", salt: salt, iterations: 4096))
    }

    func testClientAgainstCapturedPostgreSQLExchange() throws {
        var client = SCRAMClient(password: "secret1", nonce: "fixedClientNonce0123")
        XCTAssertEqual(String(decoding: client.clientFirstMessage(), as: UTF8.self), "n,,n=,r=fixedClientNonce0123")
        let final = try client.receiveServerFirst(Array("r=fixedClientNonce01239GTLZYG6a5FgNsYGkPLJZmx0,s=DfylxJS7kZm+P31eka2yjA==,i=4096".utf8))
        XCTAssertEqual(String(decoding: final, as: UTF8.self),
                       "c=biws,r=fixedClientNonce01239GTLZYG6a5FgNsYGkPLJZmx0,p=th3v6OwgvArb6TS7JCEVeWaFxAy39WNHhVBwBiWxXVI=")
        try client.verifyServerFinal(Array("v=hYxV8vnBvc9zS0J5ZkZXsFUFbMIVFZXcnEpxa4klgrE=".utf8))
    }

    func testClientRejectsForgedServerSignature() throws {
        var client = SCRAMClient(password: "secret1", nonce: "fixedClientNonce0123")
        _ = client.clientFirstMessage()
        _ = try client.receiveServerFirst(Array("r=fixedClientNonce01239GTLZYG6a5FgNsYGkPLJZmx0,s=DfylxJS7kZm+P31eka2yjA==,i=4096".utf8))
        XCTAssertThrowsError(try client.verifyServerFinal(Array("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".utf8))) {
            XCTAssertEqual($0 as? SCRAMError, .serverSignatureMismatch)
        }
    }

    func testClientRejectsBadServerFirst() {
        for bad in ["r=otherNonce,s=AAAA,i=4096", "r=abcdef,s=!!!!,i=4096", "r=abcdef,s=AAAA,i=0", "garbage", "m=ext,r=abcdef,s=AAAA,i=1"] {
            var client = SCRAMClient(password: "x", nonce: "abc")
            _ = client.clientFirstMessage()
            XCTAssertThrowsError(try client.receiveServerFirst(Array(bad.utf8)), bad)
        }
        var client = SCRAMClient(password: "x", nonce: "abc")
        _ = client.clientFirstMessage()
        _ = try? client.receiveServerFirst(Array("r=abcdef,s=AAAA,i=1".utf8))
        XCTAssertThrowsError(try client.verifyServerFinal(Array("e=invalid-proof".utf8))) {
            XCTAssertEqual($0 as? SCRAMError, .serverError("invalid-proof"))
        }
    }

    func exchange(_ client: inout SCRAMClient, _ server: inout SCRAMServer) throws -> SCRAMServer.Outcome {
        let serverFirst = try server.receiveClientFirst(client.clientFirstMessage())
        let clientFinal = try client.receiveServerFirst(serverFirst)
        let outcome = try server.receiveClientFinal(clientFinal)
        try client.verifyServerFinal(outcome.serverFinalMessage)
        return outcome
    }

    func testClientAndServerAgree() throws {
        let secret = SCRAMSecret.make(password: "correct horse")
        var client = SCRAMClient(password: "correct horse")
        var server = SCRAMServer(secret: secret)
        let outcome = try exchange(&client, &server)
        XCTAssertEqual(outcome.keys, SCRAMKeys(password: "correct horse", salt: secret.salt, iterations: secret.iterations))
        XCTAssertEqual(client.keys, outcome.keys)
    }

    func testRecoveredKeysLogInOnward() throws {
        // The proxy learns the keys from the client's login and reuses them against a backend that
        // holds the same secret.
        let secret = SCRAMSecret.make(password: "pw")
        var client = SCRAMClient(password: "pw")
        var proxySide = SCRAMServer(secret: secret)
        let learned = try exchange(&client, &proxySide).keys

        var onward = SCRAMClient(clientKey: learned.clientKey, serverKey: learned.serverKey)
        var backend = SCRAMServer(secret: secret)
        XCTAssertNoThrow(try exchange(&onward, &backend))
    }

    func testWrongPasswordIsInvalidProof() throws {
        var client = SCRAMClient(password: "wrong")
        var server = SCRAMServer(secret: .make(password: "right"))
        XCTAssertThrowsError(try exchange(&client, &server)) { XCTAssertEqual($0 as? SCRAMError, .invalidProof) }
    }

    func testMockServerAlwaysFailsWithStableSalt() throws {
        var first = SCRAMServer.mock(user: "ghost")
        var second = SCRAMServer.mock(user: "ghost")
        let a = String(decoding: try first.receiveClientFirst(Array("n,,n=,r=abc".utf8)), as: UTF8.self)
        let b = String(decoding: try second.receiveClientFirst(Array("n,,n=,r=abc".utf8)), as: UTF8.self)
        XCTAssertEqual(a.split(separator: ",")[1], b.split(separator: ",")[1], "same salt for the same unknown user")
        XCTAssertTrue(a.hasSuffix(",i=4096"))
        var client = SCRAMClient(password: "anything")
        var mock = SCRAMServer.mock(user: "ghost")
        XCTAssertThrowsError(try exchange(&client, &mock)) { XCTAssertEqual($0 as? SCRAMError, .invalidProof) }
    }

    func testServerRejectsMalformedAndUnsupported() throws {
        let cases: [(String, SCRAMError)] = [
            ("p=tls-server-end-point,,n=,r=abc",
             .malformed("The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data.")),
            ("n,a=admin,n=,r=abc", .unsupported("client uses authorization identity, but it is not supported")),
            ("n,,m=ext,n=,r=abc", .unsupported("client requires an unsupported SCRAM extension")),
            ("x,,n=,r=abc", .malformed("unexpected channel-binding flag \"x\"")),
            ("n,,n=,r=a,b", .malformed("client-first-message attributes")),
            ("n,,", .malformed("client-first-message attributes")),
        ]
        for (message, expected) in cases {
            var server = SCRAMServer(secret: .make(password: "x", iterations: 1))
            XCTAssertThrowsError(try server.receiveClientFirst(Array(message.utf8)), message) {
                XCTAssertEqual($0 as? SCRAMError, expected, message)
            }
        }
        // Without TLS, "y,," (client could bind, thinks we cannot) is accepted and must be echoed as c=eSws.
        var server = SCRAMServer(secret: .make(password: "x", iterations: 1), nonce: "S")
        _ = try server.receiveClientFirst(Array("y,,n=,r=C".utf8))
        XCTAssertThrowsError(try server.receiveClientFinal(Array("c=biws,r=CS,p=AAAA".utf8))) {
            XCTAssertEqual($0 as? SCRAMError, .malformed("unexpected channel binding data"))
        }
    }

    func testServerRejectsWrongNonceAndMissingProof() throws {
        for final in ["c=biws,r=CX,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "c=biws,r=CS", "c=biws,r=CS,p=short"] {
            var server = SCRAMServer(secret: .make(password: "x", iterations: 1), nonce: "S")
            _ = try server.receiveClientFirst(Array("n,,n=,r=C".utf8))
            XCTAssertThrowsError(try server.receiveClientFinal(Array(final.utf8)), final) {
                guard case .malformed = $0 as? SCRAMError else { return XCTFail("\($0)") }
            }
        }
    }

    func testBase64() {
        for length in 0..<10 {
            let bytes = (0..<length).map { UInt8($0 * 37 & 0xFF) }
            XCTAssertEqual(Base64.decode(Base64.encode(bytes)), bytes)
        }
        XCTAssertEqual(Base64.encode(Array("n,,".utf8)), "biws")
        XCTAssertNil(Base64.decode("abc"))
        XCTAssertNil(Base64.decode("a=bc"))
        XCTAssertNil(Base64.decode("ab=c"))
    }
}
