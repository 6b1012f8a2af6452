import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Hostile bytes before, during and after login: each offender gets an ErrorResponse with the right
/// SQLSTATE or is closed, a normal client keeps working, and nothing stays open in the proxy or on
/// the backends.
final class HostileStartupTests: HostileTestCase {
    /// Reads until the proxy closes; the messages it sent. Fails when it does not close.
    private func readUntilClosed(_ client: RawClient, _ what: String, file: StaticString = #filePath,
                                 line: UInt = #line) -> [RawWire.Message] {
        let bytes = client.read(timeout: 30)
        XCTAssertTrue(client.closedByPeer, "\(what): the proxy should close the connection", file: file, line: line)
        return RawWire.parse(bytes).messages
    }

    /// Deterministic pseudo-random bytes (SplitMix64).
    private func garbage(seed: UInt64, count: Int) -> [UInt8] {
        var state = seed
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            withUnsafeBytes(of: z) { out += $0.prefix(count - out.count) }
        }
        return out
    }

    func testRandomGarbageBeforeStartup() throws {
        // Random bytes may read as a short packet (rejected at once), an unknown protocol version,
        // or a long packet that never completes (closed by client_login_timeout).
        let (proxy, watch) = try startHostile(["client_login_timeout = 1s"])
        var outcomes: [String: Int] = [:]
        for seed in UInt64(1)...24 {
            let client = try RawClient(port: proxy.port)
            client.send(garbage(seed: seed &* 7919, count: 200 + Int(seed) * 13))
            let messages = readUntilClosed(client, "garbage seed \(seed)")
            XCTAssertFalse(messages.contains { "RZK".contains($0.typeChar) },
                           "garbage must not get as far as authentication: \(messages)")
            let codes = HostileWire.errorCodes(messages)
            for code in codes {
                XCTAssertTrue(["08P01", "0A000", "08006"].contains(code), "seed \(seed): unexpected SQLSTATE \(code)")
            }
            outcomes[codes.last ?? "closed", default: 0] += 1
        }
        print("hostile: garbage outcomes \(outcomes)")
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }

    /// A client asking for protocol 3.2 and a `_pq_.` extension is told what is served — 3.0 and no
    /// extensions — before authentication, as PostgreSQL tells it; then the session works. (The
    /// extension used to reach the backend, whose NegotiateProtocolVersion failed the login.)
    func testNewerProtocolAndExtensionsAreNegotiatedDown() throws {
        let (proxy, watch) = try startHostile()
        let client = try RawClient(port: proxy.port)
        client.send(RawWire.startup([("user", "app_rw"), ("database", "app"),
                                     ("application_name", watch.applicationName("negotiate")),
                                     ("_pq_.test_extension", "on")], minorVersion: 2))
        let login = client.readMessages(until: "Z")
        XCTAssertEqual(login.first?.typeChar, "v", "\(login.map(\.typeChar))")
        if let v = login.first, v.typeChar == "v" {
            XCTAssertEqual(HostileWire.int32(v.body[0..<4]), 3 << 16, "the newest version served: 3.0")
            XCTAssertEqual(HostileWire.int32(v.body[4..<8]), 1, "one option not recognised")
            XCTAssertEqual(String(decoding: v.body[8...].prefix { $0 != 0 }, as: UTF8.self), "_pq_.test_extension")
        }
        XCTAssertEqual(login.last?.typeChar, "Z")
        client.send(RawWire.query("SELECT inet_server_port()"))
        let answer = client.readMessages(until: "Z")
        XCTAssertEqual(HostileWire.tags(answer), ["SELECT 1"])
        client.send(RawWire.terminate)
        watch.assertNormalClientWorks()
    }

    func testTruncatedStartupPacketThenClose() throws {
        let (proxy, watch) = try startHostile()
        let packet = HostileWire.startup(application: watch.applicationName("trunc"))
        for cut in [1, 3, 4, 7, 8, 20, packet.count - 1] {
            let client = try RawClient(port: proxy.port)
            client.send(Array(packet.prefix(cut)))
            client.slam()
        }
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }

    func testStartupDeclaring9000BytesSendingTenThenSilence() throws {
        let (proxy, watch) = try startHostile(["client_login_timeout = 1s"])
        let client = try RawClient(port: proxy.port)
        client.send(RawWire.int32(9000) + RawWire.int32(196_608) + Array("user\0".utf8) + [0])
        // The proxy meanwhile serves others.
        watch.assertNormalClientWorks()
        let messages = readUntilClosed(client, "startup packet that never completes")
        for code in HostileWire.errorCodes(messages) {
            XCTAssertTrue(["08P01", "08006"].contains(code), "unexpected SQLSTATE \(code): \(messages)")
        }
        print("hostile: stalled startup packet answered with \(messages)")
        watch.assertBackToBaseline()
    }

    func testPasswordMessageAfterLogin() throws {
        let (proxy, watch) = try startHostile()
        let client = try RawClient(port: proxy.port)
        let login = client.hostileLogin(application: watch.applicationName("pafter"))
        XCTAssertTrue(login.contains { $0.typeChar == "Z" }, "\(login)")
        client.send(HostileWire.password("secret"))
        let messages = readUntilClosed(client, "password message after login")
        XCTAssertEqual(HostileWire.errorCodes(messages).last, "08P01", "\(messages)")
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }

    func testPasswordMessageAfterAQueryRanOnTheBackend() throws {
        // Same, once the session holds a backend connection.
        let (proxy, watch) = try startHostile()
        let client = try RawClient(port: proxy.port)
        _ = client.hostileLogin(application: watch.applicationName("pafterq"))
        client.send(RawWire.query("SELECT 1"))
        let first = client.readMessages(until: "Z")
        XCTAssertEqual(HostileWire.tags(first), ["SELECT 1"], "\(first)")
        client.send(HostileWire.password("secret"))
        let messages = readUntilClosed(client, "password message after a query")
        XCTAssertEqual(HostileWire.errorCodes(messages).last, "08P01", "\(messages)")
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }

    func testQueryDuringAuthentication() throws {
        let (proxy, watch) = try startHostile(auth: "scram-sha-256")
        let client = try RawClient(port: proxy.port)
        client.send(HostileWire.startup(user: "alice", application: watch.applicationName("qauth")))
        let challenge = client.readMessages(until: "R", timeout: 30)
        XCTAssertTrue(challenge.contains { $0.typeChar == "R" }, "expected an authentication request: \(challenge)")
        client.send(RawWire.query("SELECT 1"))
        let messages = readUntilClosed(client, "Query during authentication")
        XCTAssertEqual(HostileWire.errorCodes(messages).last, "08P01", "\(messages)")
        XCTAssertFalse(messages.contains { $0.typeChar == "Z" || $0.typeChar == "T" }, "\(messages)")
        // A normal client logs in with its password.
        do {
            let c = try PQConnection(watch.conninfo(user: "alice", password: "alice-secret", app: "normal"))
            XCTAssertEqual(try c.query("SELECT inet_server_port()::text"), [[replica]])
            c.finish()
        }
        watch.assertBackToBaseline()
    }

    func testTruncatedMessageMidSessionThenClose() throws {
        let (proxy, watch) = try startHostile()
        // Before and after a statement has given the session backends.
        for warm in [false, true] {
            let client = try RawClient(port: proxy.port)
            _ = client.hostileLogin(application: watch.applicationName("tmid\(warm)"))
            if warm {
                client.send(RawWire.query("SELECT 1; SELECT txid_current()"))
                _ = client.readMessages(until: "Z")
            }
            let query = RawWire.query("SELECT 'this message is cut short before its end'")
            client.send(Array(query.prefix(query.count / 2)))
            // The proxy has only half a message: it must not answer, and must not close yet.
            client.slam()
        }
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }

    func testOversizedLengthPrefixAllocatesNothing() throws {
        let (proxy, watch) = try startHostile(["max_message_size = 1MB"])
        let before = HostileProc.rssKB(proxy.pid)
        let client = try RawClient(port: proxy.port)
        _ = client.hostileLogin(application: watch.applicationName("big"))
        // 'Q' declaring 100 MB, then a little of its body.
        client.send([UInt8(ascii: "Q")] + RawWire.int32(100 << 20) + Array(repeating: UInt8(ascii: "x"), count: 4096))
        let messages = readUntilClosed(client, "100 MB message over max_message_size")
        XCTAssertEqual(HostileWire.errorCodes(messages).last, "08P01", "\(messages)")
        let after = HostileProc.rssKB(proxy.pid)
        print("hostile: VmRSS before \(before) kB, after the 100 MB length prefix \(after) kB, peak \(HostileProc.peakRSSKB(proxy.pid)) kB")
        XCTAssertLessThan(after - before, 32 * 1024, "the proxy should not allocate for a message it refuses")
        // A message below the limit is still fine.
        let c = try PQConnection(watch.conninfo(app: "under"))
        let text = String(repeating: "y", count: 900_000)
        XCTAssertEqual(try c.query("SELECT length('\(text)')::text"), [["900000"]])
        c.finish()
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }
}
