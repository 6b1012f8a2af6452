@testable import PostgresWire
import XCTest

/// Inputs the fuzzer found, kept as tests.
final class FuzzRegressionTests: XCTestCase {
    /// A server asking for more SCRAM iterations than an Int32 holds crashed the proxy in PBKDF2.
    func testHugeSCRAMIterationCountIsRefusedNotATrap() {
        var handshake = BackendHandshake(user: "u", database: "d", credential: .password("p"))
        _ = handshake.start()
        var sasl: [UInt8] = [0, 0, 0, 10]
        sasl += Array("SCRAM-SHA-256".utf8) + [0, 0]
        guard case .send(let first) = handshake.received(type: UInt8(ascii: "R"), payload: sasl[...]) else {
            return XCTFail("expected the client-first message")
        }
        // The client nonce is in the client-first message after "r=".
        let text = String(decoding: first, as: UTF8.self)
        guard let range = text.range(of: "r=") else { return XCTFail("no nonce in \(text)") }
        let nonce = String(text[range.upperBound...].prefix { $0 != "," && $0 != "\0" })
        let serverFirst = Array("r=\(nonce)X,s=c2FsdA==,i=3000000000".utf8)
        let action = handshake.received(type: UInt8(ascii: "R"), payload: ([0, 0, 0, 11] + serverFirst)[...])
        guard case .failed = action else { return XCTFail("expected a refusal, got \(action)") }
    }

    func testStoredSecretWithAbsurdIterationsIsNotASCRAMSecret() {
        XCTAssertNil(SCRAMSecret(parsing: "SCRAM-SHA-256$3000000000:c2FsdA==$AAAA:AAAA"))
    }
}
