import XCTest
@testable import PostgresWire

/// SCRAM-SHA-256-PLUS with tls-server-end-point: the proxy as server (clients on TLS) and as client
/// (backends on TLS), and the downgrades PostgreSQL refuses.
final class ChannelBindingTests: XCTestCase {
    let certificateHash = Array(Crypto.sha256(Array("the server certificate".utf8)))
    let secret = SCRAMSecret.make(password: "pw", iterations: 16)

    private func exchange(_ client: inout SCRAMClient, _ server: inout SCRAMServer) throws(SCRAMError) -> SCRAMServer.Outcome {
        let serverFirst = try server.receiveClientFirst(client.clientFirstMessage(), mechanism: client.mechanism)
        let outcome = try server.receiveClientFinal(try client.receiveServerFirst(serverFirst))
        try client.verifyServerFinal(outcome.serverFinalMessage)
        return outcome
    }

    func testBoundExchangeSucceedsWhenBothSeeTheSameCertificate() throws {
        var client = SCRAMClient(password: "pw", channelBinding: .tlsServerEndPoint(certificateHash))
        var server = SCRAMServer(secret: secret, channelBinding: certificateHash)
        XCTAssertEqual(client.mechanism, "SCRAM-SHA-256-PLUS")
        XCTAssertEqual(server.mechanisms, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
        let first = String(decoding: client.clientFirstMessage(), as: UTF8.self)
        XCTAssertTrue(first.hasPrefix("p=tls-server-end-point,,n=,r="), first)
        var fresh = SCRAMClient(password: "pw", channelBinding: .tlsServerEndPoint(certificateHash))
        XCTAssertEqual(try exchange(&fresh, &server).keys, SCRAMKeys(password: "pw", salt: secret.salt, iterations: secret.iterations))
    }

    func testAnotherCertificateFailsTheCheck() {
        // What a client sees through a man in the middle holding another certificate.
        var client = SCRAMClient(password: "pw", channelBinding: .tlsServerEndPoint(Array(Crypto.sha256([1, 2, 3]))))
        var server = SCRAMServer(secret: secret, channelBinding: certificateHash)
        XCTAssertThrowsError(try exchange(&client, &server)) { XCTAssertEqual($0 as? SCRAMError, .bindingCheckFailed) }
        // The same for an unknown user: the check comes before the (failing) proof.
        var ghost = SCRAMClient(password: "pw", channelBinding: .tlsServerEndPoint([9]))
        var mock = SCRAMServer.mock(user: "ghost", channelBinding: certificateHash)
        XCTAssertThrowsError(try exchange(&ghost, &mock)) { XCTAssertEqual($0 as? SCRAMError, .bindingCheckFailed) }
    }

    func testDowngradesAndMismatchedFlagsAreRefused() throws {
        var onTLS = SCRAMServer(secret: secret, channelBinding: certificateHash)
        XCTAssertThrowsError(try onTLS.receiveClientFirst(Array("y,,n=,r=abc".utf8))) {
            guard case .bindingNegotiation = $0 as? SCRAMError else { return XCTFail("\($0)") }
        }
        var plusWithoutData = SCRAMServer(secret: secret, channelBinding: certificateHash)
        XCTAssertThrowsError(try plusWithoutData.receiveClientFirst(Array("n,,n=,r=abc".utf8), mechanism: "SCRAM-SHA-256-PLUS")) {
            XCTAssertEqual($0 as? SCRAMError,
                           .malformed("The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data."))
        }
        var otherType = SCRAMServer(secret: secret, channelBinding: certificateHash)
        XCTAssertThrowsError(try otherType.receiveClientFirst(Array("p=tls-unique,,n=,r=abc".utf8), mechanism: "SCRAM-SHA-256-PLUS")) {
            XCTAssertEqual($0 as? SCRAMError, .unsupportedBindingType("tls-unique"))
        }
        // "n" on TLS is a client that does not bind at all (channel_binding=disable): accepted.
        var unbound = SCRAMClient(password: "pw")
        var server = SCRAMServer(secret: secret, channelBinding: certificateHash)
        XCTAssertNoThrow(try exchange(&unbound, &server))
    }

    func testAuthenticatorOffersPLUSOnlyOnTLS() throws {
        var plain = ClientAuthenticator(method: .scramSHA256, user: "alice", storedSecret: secret.stringValue)
        guard case .send(let plainOffer) = plain.start() else { return XCTFail("no SASL request") }
        XCTAssertEqual(try AuthenticationRequest.decode(onlyMessage(plainOffer).payload), .sasl(mechanisms: ["SCRAM-SHA-256"]))
        var reply: [UInt8] = []
        reply.writeSASLInitialResponse(mechanism: "SCRAM-SHA-256-PLUS", data: Array("p=tls-server-end-point,,n=,r=abc".utf8))
        guard case .failed(let error, _) = plain.received(type: onlyMessage(reply).type, payload: onlyMessage(reply).payload) else {
            return XCTFail("PLUS accepted without TLS")
        }
        XCTAssertEqual(error.message, "client selected an invalid SASL authentication mechanism")

        var tls = ClientAuthenticator(method: .scramSHA256, user: "alice", storedSecret: secret.stringValue, channelBinding: certificateHash)
        guard case .send(let offer) = tls.start() else { return XCTFail("no SASL request") }
        XCTAssertEqual(try AuthenticationRequest.decode(onlyMessage(offer).payload),
                       .sasl(mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]))
        var client = SCRAMClient(password: "pw", channelBinding: .tlsServerEndPoint(certificateHash))
        var first: [UInt8] = []
        first.writeSASLInitialResponse(mechanism: client.mechanism, data: client.clientFirstMessage())
        guard case .send(let cont) = tls.received(type: onlyMessage(first).type, payload: onlyMessage(first).payload),
              case .saslContinue(let serverFirst) = try AuthenticationRequest.decode(onlyMessage(cont).payload) else {
            return XCTFail("no server-first")
        }
        var final: [UInt8] = []
        final.writeSASLResponse(data: try client.receiveServerFirst(serverFirst))
        guard case .authenticated(let success, _) = tls.received(type: onlyMessage(final).type, payload: onlyMessage(final).payload) else {
            return XCTFail("bound login refused")
        }
        XCTAssertNotNil(success.scramKeys)

        // A client told (by someone in between) that we cannot bind: refused, as PostgreSQL does.
        var downgraded = ClientAuthenticator(method: .scramSHA256, user: "alice", storedSecret: secret.stringValue, channelBinding: certificateHash)
        _ = downgraded.start()
        var yes: [UInt8] = []
        yes.writeSASLInitialResponse(mechanism: "SCRAM-SHA-256", data: Array("y,,n=,r=abc".utf8))
        guard case .failed(let refusal, _) = downgraded.received(type: onlyMessage(yes).type, payload: onlyMessage(yes).payload) else {
            return XCTFail("downgrade accepted")
        }
        XCTAssertEqual(refusal.code, "28000")
        XCTAssertEqual(refusal.message, "SCRAM channel binding negotiation error")
    }

    // MARK: The proxy logging in to a backend

    private func sasl(_ mechanisms: [String]) -> (UInt8, ArraySlice<UInt8>) {
        var payload: [UInt8] = [0, 0, 0, 10]
        for mechanism in mechanisms { payload += Array(mechanism.utf8) + [0] }
        payload.append(0)
        return (BackendMessageType.authentication, payload[...])
    }

    /// The mechanism and gs2 flag the handshake answers a SASL request with, or its failure.
    private func answer(policy: ChannelBindingPolicy, tls: [UInt8]??, offered: [String]) -> String {
        var handshake = BackendHandshake(user: "u", database: "d", credential: .password("pw"), channelBinding: policy)
        if case .some(let endPoint) = tls { handshake.useTLS(endPoint: endPoint) }
        _ = handshake.start()
        let (type, payload) = sasl(offered)
        switch handshake.received(type: type, payload: payload) {
        case .send(let bytes):
            guard let initial = try? SASLInitialResponse.decode(onlyMessage(bytes).payload), let data = initial.data else { return "?" }
            return initial.mechanism + " " + String(decoding: data.prefix(while: { $0 != UInt8(ascii: ",") }), as: UTF8.self)
        case .failed(let failure): return "failed: \(failure)"
        default: return "?"
        }
    }

    func testBackendLoginBindsWhenItCanAndRequireRefusesOtherwise() {
        let both = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
        XCTAssertEqual(answer(policy: .prefer, tls: .some(certificateHash), offered: both), "SCRAM-SHA-256-PLUS p=tls-server-end-point")
        XCTAssertEqual(answer(policy: .require, tls: .some(certificateHash), offered: both), "SCRAM-SHA-256-PLUS p=tls-server-end-point")
        XCTAssertEqual(answer(policy: .prefer, tls: .some(certificateHash), offered: ["SCRAM-SHA-256"]), "SCRAM-SHA-256 y")
        XCTAssertEqual(answer(policy: .prefer, tls: .none, offered: ["SCRAM-SHA-256"]), "SCRAM-SHA-256 n")
        XCTAssertEqual(answer(policy: .disable, tls: .some(certificateHash), offered: both), "SCRAM-SHA-256 n")
        // A certificate without a usable hash: the login cannot bind and must not claim it could.
        XCTAssertEqual(answer(policy: .prefer, tls: .some(nil), offered: both), "SCRAM-SHA-256 n")
        XCTAssertEqual(answer(policy: .require, tls: .some(certificateHash), offered: ["SCRAM-SHA-256"]),
                       "failed: channel binding is required, but server did not offer an authentication method that supports channel binding")
        XCTAssertEqual(answer(policy: .require, tls: .none, offered: both),
                       "failed: channel binding is required, but the connection to the server does not use TLS")
    }

    func testRequireRefusesLoginsWithoutSCRAM() {
        for (request, expected) in [
            ("520000000800000000", "channel binding required, but server authenticated client without channel binding"),
            ("520000000800000003", "channel binding required but not supported by server's authentication request"),
            ("520000000c00000005558029b9", "channel binding required but not supported by server's authentication request"),
        ] {
            var handshake = BackendHandshake(user: "u", database: "d", credential: .password("pw"), channelBinding: .require)
            handshake.useTLS(endPoint: certificateHash)
            _ = handshake.start()
            let message = onlyMessage(hexBytes(request))
            guard case .failed(let failure) = handshake.received(type: message.type, payload: message.payload) else {
                return XCTFail("\(request) accepted")
            }
            XCTAssertEqual("\(failure)", expected)
        }
    }
}
