import DispatchTransport
import Foundation
import XCTest

final class BackPressureTests: XCTestCase {
    override class func setUp() { Transport.ignoreSIGPIPE() }

    /// The server streams `total` bytes, writing only while below the high-water mark and
    /// continuing on `onWritableAgain`; the client reads slowly (pausing after every chunk).
    /// Everything must arrive intact, and back-pressure must have engaged.
    func testLargeTransferToASlowReaderUsesBackPressureAndLosesNothing() throws {
        let total = 50 * 1024 * 1024
        for strategy in allStrategies {
            let group = EventLoopGroup(loopCount: 2, ioStrategy: strategy)
            let listener = try Listener(host: "127.0.0.1", port: 0, group: group)
            let stats = Shared<(sent: Int, highWaterHits: Int, writableAgain: Int, maxPending: Int)>((0, 0, 0, 0))
            let serverLoopReady = Shared<Connection?>(nil)

            listener.start { connection in
                var offset = 0
                // Writes until the output passes the high-water mark or everything is out.
                func produce() {
                    while offset < total && !connection.isAboveHighWater && !connection.isClosed {
                        let count = min(64 * 1024, total - offset)
                        patternBlock.withUnsafeBytes { block in
                            connection.write(UnsafeRawBufferPointer(rebasing: block[(offset % 251)...].prefix(count)))
                        }
                        offset += count
                        let pending = connection.pendingOutputBytes
                        stats.update { $0.maxPending = max($0.maxPending, pending) }
                    }
                    let hitHighWater = connection.isAboveHighWater
                    stats.update { state in
                        state.sent = offset
                        if hitHighWater { state.highWaterHits += 1 }
                    }
                    if offset == total {
                        connection.closeAfterFlush()
                    }
                }
                connection.onWritableAgain = {
                    stats.update { $0.writableAgain += 1 }
                    produce()
                }
                connection.onClose = { _ in }
                serverLoopReady.update { $0 = connection }
                produce()
            }

            let client = try connectAndWait(host: "127.0.0.1", port: listener.boundPort, on: group.loops[0]).get()
            // Let the server fill every buffer before the first read.
            waitUntil("server hit the high-water mark") { stats.value.highWaterHits > 0 }

            let received = Shared<(count: Int, intact: Bool, reads: Int)>((0, true, 0))
            let finished = expectation(description: "stream complete")
            onLoop(client.loop) {
                client.start(onRead: { bytes in
                    received.update { state in
                        if state.intact && !matchesPattern(bytes, at: state.count) { state.intact = false }
                        state.count += bytes.count
                        state.reads += 1
                    }
                    // A slow reader: every few chunks, stop and continue a moment later.
                    if received.value.reads % 8 == 0 {
                        client.pauseReading()
                        client.loop.scheduleTimer(after: 0.001) { client.resumeReading() }
                    }
                }, onClose: { error in
                    XCTAssertEqual(error, .endOfStream)
                    finished.fulfill()
                })
            }
            wait(for: [finished], timeout: 300)
            let final = stats.value
            XCTAssertEqual(received.value.count, total, "\(strategy)")
            XCTAssertTrue(received.value.intact, "\(strategy)")
            XCTAssertGreaterThan(final.writableAgain, 0, "\(strategy)")
            // Bounded memory: the producer never queued much more than the mark plus one chunk.
            XCTAssertLessThanOrEqual(final.maxPending, 256 * 1024 + 64 * 1024, "\(strategy)")
            listener.close()
        }
    }

    func testPauseAndResumeAreIdempotent() throws {
        for strategy in allStrategies {
            let group = EventLoopGroup(loopCount: 1, ioStrategy: strategy)
            let listener = try startEchoServer(group: group)
            defer { listener.close() }
            let client = try connectAndWait(host: "127.0.0.1", port: listener.boundPort, on: group.next()).get()
            let received = Shared<Int>(0)
            onLoop(client.loop) {
                client.pauseReading()
                client.pauseReading()
                client.start(onRead: { bytes in received.update { $0 += bytes.count } }, onClose: { _ in })
                client.write(Array(repeating: 9, count: 1000))
                XCTAssertTrue(client.isReadingPaused)
            }
            usleep(50_000)
            drain(group)
            XCTAssertEqual(received.value, 0, "read while paused")
            onLoop(client.loop) {
                client.resumeReading()
                client.resumeReading()
            }
            waitUntil("echo after resume") { received.value == 1000 }
            onLoop(client.loop) { client.close() }
        }
    }
}
