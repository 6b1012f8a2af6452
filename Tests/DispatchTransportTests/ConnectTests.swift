import DispatchTransport
import Foundation
import XCTest

final class ConnectTests: XCTestCase {
    override class func setUp() { Transport.ignoreSIGPIPE() }

    /// A loopback port that is bound but not listening: connecting to it is refused, and nobody
    /// else can take it while the socket is open.
    private func withRefusingPort(_ body: (Int) throws -> Void) rethrows {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                XCTAssertEqual(bind(fd, $0, length), 0)
                XCTAssertEqual(getsockname(fd, $0, &length), 0)
            }
        }
        try body(Int(UInt16(bigEndian: address.sin_port)))
    }

    func testConnectToAClosedPortFails() {
        for strategy in allStrategies {
            let group = EventLoopGroup(loopCount: 1, ioStrategy: strategy)
            withRefusingPort { port in
                let result = connectAndWait(host: "127.0.0.1", port: port, on: group.next())
                guard case .failure(let error) = result else { return XCTFail("connected to a closed port") }
                XCTAssertEqual(error, .io(operation: "connect", errno: ECONNREFUSED))
            }
        }
    }

    func testConnectByNameToAClosedPortFailsAfterTryingEachAddress() {
        let group = EventLoopGroup(loopCount: 1)
        withRefusingPort { port in
            let result = connectAndWait(host: "localhost", port: port, on: group.next())
            guard case .failure(let error) = result else { return XCTFail("connected to a closed port") }
            guard case .io(_, let code) = error else { return XCTFail("unexpected \(error)") }
            XCTAssertEqual(code, ECONNREFUSED)
        }
    }

    func testUnknownHostNameFailsToResolve() {
        let group = EventLoopGroup(loopCount: 1)
        let result = connectAndWait(host: "no-such-host.invalid", port: 5432, on: group.next())
        guard case .failure(.resolutionFailed(let host, _)) = result else {
            return XCTFail("expected a resolution failure, got \(result)")
        }
        XCTAssertEqual(host, "no-such-host.invalid")
    }

    func testMissingUnixSocketFails() {
        let directory = makeTemporaryDirectory()
        defer { rmdir(directory) }
        let group = EventLoopGroup(loopCount: 1)
        let result = connectAndWait(host: directory, port: 5432, on: group.next())
        guard case .failure(.io(_, let code)) = result else { return XCTFail("expected failure, got \(result)") }
        XCTAssertEqual(code, ENOENT)
    }

    func testConnectThatCannotFinishTimesOut() throws {
        // A listener whose backlog is full and never accepts: further SYNs are dropped, so the
        // connect stays in progress until our timeout.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                XCTAssertEqual(bind(fd, $0, length), 0)
                XCTAssertEqual(getsockname(fd, $0, &length), 0)
            }
        }
        XCTAssertEqual(listen(fd, 0), 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let group = EventLoopGroup(loopCount: 1)
        var fillers: [Connection] = []
        var sawTimeout = false
        for _ in 0..<8 where !sawTimeout {
            switch connectAndWait(host: "127.0.0.1", port: port, on: group.next(), timeout: 0.3) {
            case .success(let connection): fillers.append(connection)
            case .failure(let error):
                XCTAssertEqual(error, .timedOut)
                sawTimeout = true
            }
        }
        XCTAssertTrue(sawTimeout, "the backlog never filled")
        for connection in fillers { onLoop(connection.loop) { connection.close() } }
    }

    func testWritesBeforeTheFirstReadArriveInOrder() throws {
        let group = EventLoopGroup(loopCount: 1)
        let listener = try startEchoServer(group: group)
        defer { listener.close() }
        let received = Shared<[UInt8]>([])
        let done = expectation(description: "echo")
        let loop = group.next()
        loop.execute {
            Connection.connect(host: "127.0.0.1", port: listener.boundPort, on: loop, timeout: 10) { result in
                guard case .success(let connection) = result else { return XCTFail("\(result)") }
                connection.write(Array("one ".utf8))
                connection.write(Array("two".utf8))
                connection.start(onRead: { bytes in
                    if received.update({ $0.append(contentsOf: bytes); return $0.count }) == 7 { done.fulfill() }
                }, onClose: { _ in })
            }
        }
        wait(for: [done], timeout: hangGuard)
        XCTAssertEqual(String(decoding: received.value, as: UTF8.self), "one two")
    }
}
