import DispatchTransport
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A TCP listener on a group of several loops gives each loop its own SO_REUSEPORT socket.
final class ListenerSpreadTests: XCTestCase {
    override class func setUp() { Transport.ignoreSIGPIPE() }

    /// Every loop accepts (the kernel spreads connections over the sockets), every client is served,
    /// and each accepted connection stays on the loop that accepted it.
    func testEveryLoopAcceptsAndKeepsItsClients() throws {
        for strategy in allStrategies {
            let group = EventLoopGroup(loopCount: 2, ioStrategy: strategy)
            let listener = try Listener(host: "127.0.0.1", port: 0, group: group)
            defer { listener.close() }
            let perLoop = Shared<[Int]>([0, 0])
            let clients = 48
            let accepted = expectation(description: "\(clients) accepted (\(strategy))")
            accepted.expectedFulfillmentCount = clients
            listener.start { connection in
                let index = group.loops.firstIndex { $0 === connection.loop }!
                XCTAssertTrue(connection.loop.inEventLoop)
                perLoop.update { $0[index] += 1 }
                connection.close()
                accepted.fulfill()
            }
            var sockets: [Int32] = []
            for _ in 0..<clients { sockets.append(try plainConnect(port: listener.boundPort)) }
            wait(for: [accepted], timeout: hangGuard)
            for fd in sockets { close(fd) }
            // 48 connections from distinct source ports all hashed to one socket: 2^-47.
            XCTAssertGreaterThan(perLoop.value[0], 0, "\(strategy): \(perLoop.value)")
            XCTAssertGreaterThan(perLoop.value[1], 0, "\(strategy): \(perLoop.value)")
        }
    }

    /// The per-loop sockets share the port with each other, not with anyone else.
    func testAPortHeldElsewhereStillFails() throws {
        let group = EventLoopGroup(loopCount: 2)
        let single = try Listener(host: "127.0.0.1", port: 0, group: EventLoopGroup(loopCount: 1))
        defer { single.close() }
        XCTAssertThrowsError(try Listener(host: "127.0.0.1", port: single.boundPort, group: group))

        let spread = try Listener(host: "127.0.0.1", port: 0, group: group)
        defer { spread.close() }
        XCTAssertThrowsError(try Listener(host: "127.0.0.1", port: spread.boundPort, group: EventLoopGroup(loopCount: 1)))
        XCTAssertThrowsError(try Listener(host: "127.0.0.1", port: spread.boundPort, group: group))
        // Asked for, sharing with another process's SO_REUSEPORT socket still works.
        let shared = try Listener(host: "127.0.0.1", port: 0, group: group, reusePort: true)
        let sibling = try Listener(host: "127.0.0.1", port: shared.boundPort, group: EventLoopGroup(loopCount: 1), reusePort: true)
        shared.close()
        sibling.close()
    }

    /// Closing releases every loop's socket: the kernel lists no listening socket on the port any
    /// more (it listed one per loop), and the port can be bound again. Read from the kernel's socket
    /// table, not from this process's descriptor count, which other tests' late closes also move.
    func testCloseReleasesEverySocket() throws {
        let group = EventLoopGroup(loopCount: 2)
        let listener = try Listener(host: "127.0.0.1", port: 0, group: group)
        listener.start { $0.close() }
        let port = listener.boundPort
        XCTAssertEqual(listeningSockets(port: port), 2, "one listening socket per loop")
        listener.close()
        waitUntil("no socket listens on the port") { drain(group); return listeningSockets(port: port) == 0 }
        let again = try Listener(host: "127.0.0.1", port: port, group: EventLoopGroup(loopCount: 1))
        again.close()
    }

    /// How many IPv4 TCP sockets the kernel has listening on `port` (/proc/net/tcp, state 0A).
    private func listeningSockets(port: Int) -> Int {
        guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return -1 }
        let suffix = ":" + String(format: "%04X", port)
        return table.split(separator: "\n").dropFirst().filter { line in
            let fields = line.split(separator: " ")
            return fields.count > 3 && fields[1].hasSuffix(suffix) && fields[3] == "0A"
        }.count
    }

    private func plainConnect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result != 0 {
            close(fd)
            throw NSError(domain: "connect", code: Int(errno))
        }
        return fd
    }
}
