import DispatchTransport
import Foundation
import XCTest

final class CloseTests: XCTestCase {
    override class func setUp() { Transport.ignoreSIGPIPE() }

    /// A connected pair: `client` from connect, `server` from the listener; both reading, their
    /// close reasons recorded.
    private struct Pair {
        let group: EventLoopGroup
        let listener: Listener
        let client: Connection
        let server: Connection
        let clientCloses: Shared<[TransportError?]>
        let serverCloses: Shared<[TransportError?]>
    }

    private func makePair(strategy: IOStrategy) throws -> Pair {
        let group = EventLoopGroup(loopCount: 2, ioStrategy: strategy)
        let listener = try Listener(host: "127.0.0.1", port: 0, group: group)
        let serverCloses = Shared<[TransportError?]>([])
        let accepted = Shared<Connection?>(nil)
        listener.start { connection in
            connection.start(onRead: { _ in }, onClose: { error in serverCloses.update { $0.append(error) } })
            accepted.update { $0 = connection }
        }
        let client = try connectAndWait(host: "127.0.0.1", port: listener.boundPort, on: group.loops[0]).get()
        let clientCloses = Shared<[TransportError?]>([])
        onLoop(client.loop) {
            client.start(onRead: { _ in }, onClose: { error in clientCloses.update { $0.append(error) } })
        }
        waitUntil("accepted") { accepted.value != nil }
        return Pair(group: group, listener: listener, client: client, server: accepted.value!,
                    clientCloses: clientCloses, serverCloses: serverCloses)
    }

    func testLocalCloseFiresOnCloseOnceOnEachSide() throws {
        for strategy in allStrategies {
            let pair = try makePair(strategy: strategy)
            onLoop(pair.client.loop) {
                pair.client.close()
                pair.client.close()
                XCTAssertTrue(pair.client.isClosed)
            }
            waitUntil("both sides closed") { pair.clientCloses.value.count == 1 && pair.serverCloses.value.count == 1 }
            onLoop(pair.server.loop) { pair.server.close() }
            drain(pair.group)
            XCTAssertEqual(pair.clientCloses.value.count, 1)
            XCTAssertEqual(pair.clientCloses.value.first!, nil)
            XCTAssertEqual(pair.serverCloses.value.count, 1)
            XCTAssertEqual(pair.serverCloses.value.first!, .endOfStream)
            pair.listener.close()
        }
    }

    func testPeerCloseFiresEndOfStreamOnce() throws {
        for strategy in allStrategies {
            let pair = try makePair(strategy: strategy)
            onLoop(pair.server.loop) { pair.server.close() }
            waitUntil("client saw the close") { pair.clientCloses.value.count == 1 }
            onLoop(pair.client.loop) {
                pair.client.close()
                pair.client.write(Array("ignored after close".utf8))
            }
            drain(pair.group)
            XCTAssertEqual(pair.clientCloses.value.map { $0 }, [.endOfStream])
            XCTAssertEqual(pair.serverCloses.value.map { $0 }, [nil])
            pair.listener.close()
        }
    }

    func testCloseWhileReadingIsPausedStillReportsOnce() throws {
        for strategy in allStrategies {
            let pair = try makePair(strategy: strategy)
            onLoop(pair.client.loop) {
                pair.client.pauseReading()
                pair.client.pauseReading()
            }
            onLoop(pair.server.loop) { pair.server.write(Array(repeating: 1, count: 100)) }
            onLoop(pair.client.loop) { pair.client.close() }
            waitUntil("closed") { pair.clientCloses.value.count == 1 && pair.serverCloses.value.count == 1 }
            drain(pair.group)
            XCTAssertEqual(pair.clientCloses.value.count, 1)
            pair.listener.close()
        }
    }

    func testWritingToAVanishedPeerReportsAnErrorOnce() throws {
        for strategy in allStrategies {
            let pair = try makePair(strategy: strategy)
            // Stop reading on the client so its close() leaves unread data and sends a reset.
            onLoop(pair.client.loop) { pair.client.pauseReading() }
            onLoop(pair.server.loop) { pair.server.write(Array(repeating: 7, count: 10)) }
            usleep(20_000)
            onLoop(pair.client.loop) { pair.client.close() }
            waitUntil("server saw the peer go") { pair.serverCloses.value.count == 1 }
            onLoop(pair.server.loop) {
                // Already closed: further writes are ignored, not crashes.
                pair.server.write(Array(repeating: 7, count: 1000))
            }
            drain(pair.group)
            XCTAssertEqual(pair.serverCloses.value.count, 1)
            XCTAssertNotNil(pair.serverCloses.value.first!)
            pair.listener.close()
        }
    }

    func testCloseAfterFlushDeliversEverythingThenCloses() throws {
        let size = 5_000_000
        for strategy in allStrategies {
            let group = EventLoopGroup(loopCount: 2, ioStrategy: strategy)
            let listener = try Listener(host: "127.0.0.1", port: 0, group: group)
            let serverClosed = Shared<[TransportError?]>([])
            listener.start { connection in
                connection.onClose = { error in serverClosed.update { $0.append(error) } }
                var offset = 0
                while offset < size {
                    let count = min(64 * 1024, size - offset)
                    patternBlock.withUnsafeBytes { block in
                        connection.write(UnsafeRawBufferPointer(rebasing: block[(offset % 251)...].prefix(count)))
                    }
                    offset += count
                }
                connection.closeAfterFlush()
                connection.write(Array("dropped: written after closeAfterFlush".utf8))
            }
            let client = try connectAndWait(host: "127.0.0.1", port: listener.boundPort, on: group.loops[0]).get()
            let received = Shared<(count: Int, intact: Bool)>((0, true))
            let closed = expectation(description: "client sees end of stream")
            let reason = Shared<TransportError?>(nil)
            onLoop(client.loop) {
                client.start(onRead: { bytes in
                    received.update { state in
                        if !matchesPattern(bytes, at: state.count) { state.intact = false }
                        state.count += bytes.count
                    }
                }, onClose: { error in
                    reason.update { $0 = error }
                    closed.fulfill()
                })
            }
            wait(for: [closed], timeout: hangGuard)
            XCTAssertEqual(received.value.count, size)
            XCTAssertTrue(received.value.intact)
            XCTAssertEqual(reason.value, .endOfStream)
            drain(group)
            XCTAssertEqual(serverClosed.value.map { $0 }, [nil])
            listener.close()
        }
    }
}
