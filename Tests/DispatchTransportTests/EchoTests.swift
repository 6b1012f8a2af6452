import DispatchTransport
import Foundation
import XCTest

final class EchoTests: XCTestCase {
    override class func setUp() { Transport.ignoreSIGPIPE() }

    /// Sends `payload` in pieces (inside a batch) and waits for it to come back unchanged.
    private func roundTrip(strategy: IOStrategy, payload: [UInt8], host: String = "127.0.0.1",
                           listenHost: String = "127.0.0.1") throws {
        let group = EventLoopGroup(loopCount: 2, ioStrategy: strategy)
        let listener = try startEchoServer(host: listenHost, group: group)
        defer { listener.close() }
        XCTAssertGreaterThan(listener.boundPort, 0)

        let loop = group.next()
        let connection = try connectAndWait(host: host, port: listener.boundPort, on: loop).get()
        let received = Shared<[UInt8]>([])
        let echoed = expectation(description: "echo of \(payload.count) bytes")
        onLoop(loop) {
            connection.start(onRead: { bytes in
                let total = received.update { $0.append(contentsOf: bytes); return $0.count }
                if total == payload.count { echoed.fulfill() }
            }, onClose: { _ in })
            connection.beginBatch()
            var offset = 0
            while offset < payload.count {
                let end = min(payload.count, offset + 1000)
                payload.withUnsafeBytes { connection.write(UnsafeRawBufferPointer(rebasing: $0[offset..<end])) }
                offset = end
            }
            connection.endBatch()
        }
        wait(for: [echoed], timeout: hangGuard)
        XCTAssertEqual(received.value, payload)
        onLoop(loop) { connection.close() }
    }

    func testEchoRoundTrip() throws {
        for strategy in allStrategies {
            try roundTrip(strategy: strategy, payload: Array("hello, pgsplit".utf8))
        }
    }

    func testEchoOfOneMegabyteKeepsOrder() throws {
        let payload = (0..<1_000_000).map(patternByte)
        for strategy in allStrategies {
            try roundTrip(strategy: strategy, payload: payload)
        }
    }

    func testIPv6LoopbackAndWildcardListen() throws {
        for strategy in allStrategies {
            try roundTrip(strategy: strategy, payload: Array("v6".utf8), host: "::1", listenHost: "::1")
            try roundTrip(strategy: strategy, payload: Array("v4 via *".utf8), host: "127.0.0.1", listenHost: "*")
            try roundTrip(strategy: strategy, payload: Array("v6 via *".utf8), host: "[::1]", listenHost: "*")
        }
    }

    func testConnectByHostNameLocalhost() throws {
        for strategy in allStrategies {
            try roundTrip(strategy: strategy, payload: Array("by name".utf8), host: "localhost")
        }
    }

    func testUnixSocketConnect() throws {
        for strategy in allStrategies {
            let directory = makeTemporaryDirectory()
            defer { rmdir(directory) }
            let group = EventLoopGroup(loopCount: 1, ioStrategy: strategy)
            let listener = try startEchoServer(host: directory, port: 5999, group: group)
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(directory)/.s.PGSQL.5999"))
            let connection = try connectAndWait(host: directory, port: 5999, on: group.next()).get()
            XCTAssertEqual(connection.remoteAddress, "\(directory)/.s.PGSQL.5999")
            let echoed = expectation(description: "echo over Unix socket")
            onLoop(connection.loop) {
                connection.start(onRead: { bytes in
                    if Array(bytes) == Array("unix".utf8) { echoed.fulfill() }
                }, onClose: { _ in })
                connection.write(Array("unix".utf8))
            }
            wait(for: [echoed], timeout: hangGuard)
            onLoop(connection.loop) { connection.close() }
            listener.close()
            waitUntil("socket file removed") { !FileManager.default.fileExists(atPath: "\(directory)/.s.PGSQL.5999") }
        }
    }

    func testPortZeroBindsAnEphemeralPortAndReportsIt() throws {
        let group = EventLoopGroup(loopCount: 1)
        let first = try Listener(host: "127.0.0.1", port: 0, group: group)
        let second = try Listener(host: "0.0.0.0", port: 0, group: group)
        XCTAssertGreaterThan(first.boundPort, 0)
        XCTAssertGreaterThan(second.boundPort, 0)
        XCTAssertNotEqual(first.boundPort, second.boundPort)
        XCTAssertEqual(first.localAddress, "127.0.0.1:\(first.boundPort)")
        first.close()
        second.close()
    }

    func testBindingAPortInUseFails() throws {
        let group = EventLoopGroup(loopCount: 1)
        let first = try Listener(host: "127.0.0.1", port: 0, group: group)
        defer { first.close() }
        XCTAssertThrowsError(try Listener(host: "127.0.0.1", port: first.boundPort, group: group))
        // With SO_REUSEPORT on both, two listeners may share the port.
        let shared = try Listener(host: "127.0.0.1", port: 0, group: group, reusePort: true)
        let sibling = try Listener(host: "127.0.0.1", port: shared.boundPort, group: group, reusePort: true)
        shared.close()
        sibling.close()
    }

    func testAcceptedConnectionRunsOnItsLoopAndKnowsItsPeer() throws {
        let group = EventLoopGroup(loopCount: 2)
        let listener = try Listener(host: "127.0.0.1", port: 0, group: group)
        defer { listener.close() }
        let accepted = expectation(description: "accepted")
        let peer = Shared<String>("")
        listener.start { connection in
            XCTAssertTrue(connection.loop.inEventLoop)
            peer.update { $0 = connection.remoteAddress }
            connection.close()
            accepted.fulfill()
        }
        let client = try connectAndWait(host: "127.0.0.1", port: listener.boundPort, on: group.loops[0]).get()
        wait(for: [accepted], timeout: hangGuard)
        XCTAssertTrue(peer.value.hasPrefix("127.0.0.1:"), peer.value)
        XCTAssertFalse(group.loops[0].inEventLoop)
        onLoop(client.loop) { client.close() }
    }
}
