import XCTest
@testable import PostgresWire

final class MD5AuthTests: XCTestCase {
    func testStoredHashMatchesPostgreSQL() {
        // From pg_authid after CREATE USER md5user PASSWORD 'secret2' with password_encryption = md5.
        XCTAssertEqual(MD5Auth.storedHash(user: "md5user", password: "secret2"), "md5e11d1b13fa0872a3ba4f053d8eff8e93")
        XCTAssertEqual(MD5Auth.storedHash(user: "clearuser", password: "secret3"), "md5f9441903736b88d86bd2ddb61b76de30")
    }

    func testResponseMatchesCapturedLogin() {
        // A PostgreSQL 15 login as md5user: salt 558029b9, answer accepted by the server.
        XCTAssertEqual(MD5Auth.response(user: "md5user", password: "secret2", salt: 0x5580_29B9),
                       "md5d690a9ff92b5c55dd55bd1c342e6a8ef")
        XCTAssertEqual(MD5Auth.response(storedHash: "md5e11d1b13fa0872a3ba4f053d8eff8e93", salt: 0x68FB_C182),
                       "md55418d4dda9accdf8a776f581c55d6d19")
    }

    func testServerSideCheck() {
        let stored = MD5Auth.storedHash(user: "u", password: "p")
        let salt: UInt32 = 0x0102_0304
        XCTAssertTrue(MD5Auth.verify(response: MD5Auth.response(user: "u", password: "p", salt: salt), storedHash: stored, salt: salt))
        XCTAssertFalse(MD5Auth.verify(response: MD5Auth.response(user: "u", password: "q", salt: salt), storedHash: stored, salt: salt))
        XCTAssertFalse(MD5Auth.verify(response: MD5Auth.response(user: "u", password: "p", salt: salt + 1), storedHash: stored, salt: salt))
        XCTAssertFalse(MD5Auth.verify(response: "", storedHash: stored, salt: salt))
    }

    func testRecognisesMD5Hashes() {
        XCTAssertTrue(MD5Auth.isMD5Hash("md5e11d1b13fa0872a3ba4f053d8eff8e93"))
        XCTAssertFalse(MD5Auth.isMD5Hash("md5e11d1b13fa0872a3ba4f053d8eff8e9"))
        XCTAssertFalse(MD5Auth.isMD5Hash("md5E11D1B13FA0872A3BA4F053D8EFF8E93"))
        XCTAssertFalse(MD5Auth.isMD5Hash("md5password-that-is-35-characters!!"))
    }
}
