import DispatchTransport
import Foundation
import XCTest

final class DescriptorLeakTests: XCTestCase {
    override class func setUp() { Transport.ignoreSIGPIPE() }

    /// 500 connections opened at once, used, and closed (half by each side) leave the process's
    /// descriptor count where it started.
    func testFiveHundredConnectionsLeaveNoDescriptorsBehind() throws {
        let count = 500
        for strategy in allStrategies {
            let group = EventLoopGroup(loopCount: 2, ioStrategy: strategy)
            let listener = try Listener(host: "127.0.0.1", port: 0, group: group)
            let serverSide = Shared<[Connection]>([])
            let serverCloses = Shared<Int>(0)
            listener.start { connection in
                connection.start(onRead: { [unowned connection] bytes in
                    // "close" asks the server side to be the one that closes.
                    if Array(bytes) == Array("close".utf8) { connection.close() } else { connection.write(bytes) }
                },
                                 onClose: { _ in serverCloses.update { $0 += 1 } })
                serverSide.update { $0.append(connection) }
            }
            // Warm up: the loops' lazily created descriptors (epoll) exist before the baseline.
            for loop in group.loops {
                let warm = try connectAndWait(host: "127.0.0.1", port: listener.boundPort, on: loop).get()
                onLoop(loop) { warm.close() }
            }
            waitUntil("warm-up closed") { serverCloses.value == group.loops.count }
            serverSide.update { $0.removeAll() }
            serverCloses.update { $0 = 0 }
            drain(group)
            let baseline = openDescriptorCount()

            let clients = Shared<[Connection]>([])
            let echoes = Shared<Int>(0)
            let clientCloses = Shared<Int>(0)
            let failures = Shared<[TransportError]>([])
            for _ in 0..<count {
                let loop = group.next()
                loop.execute {
                    Connection.connect(host: "127.0.0.1", port: listener.boundPort, on: loop, timeout: 30) { result in
                        switch result {
                        case .success(let connection):
                            clients.update { $0.append(connection) }
                            connection.start(onRead: { _ in echoes.update { $0 += 1 } },
                                             onClose: { _ in clientCloses.update { $0 += 1 } })
                            connection.write(Array("ping".utf8))
                        case .failure(let error):
                            failures.update { $0.append(error) }
                        }
                    }
                }
            }
            waitUntil("all connected and echoed") { echoes.value + failures.value.count >= count }
            XCTAssertEqual(failures.value, [])
            waitUntil("all accepted") { serverSide.value.count == count }
            XCTAssertGreaterThanOrEqual(openDescriptorCount(), baseline + 2 * count)

            // Half closed by the client, half by the server.
            for (index, connection) in clients.value.enumerated() {
                connection.loop.execute {
                    if index % 2 == 0 { connection.close() } else { connection.write(Array("close".utf8)) }
                }
            }
            waitUntil("every close reported") { clientCloses.value == count && serverCloses.value == count }
            clients.update { $0.removeAll() }
            serverSide.update { $0.removeAll() }
            waitUntil("descriptors back at baseline (\(strategy))") { openDescriptorCount() <= baseline }
            XCTAssertLessThanOrEqual(openDescriptorCount(), baseline, "\(strategy)")
            drain(group)
            XCTAssertEqual(clientCloses.value, count)
            XCTAssertEqual(serverCloses.value, count)
            listener.close()
        }
    }
}
