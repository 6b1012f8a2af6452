import DispatchTransport
import Foundation
import XCTest

/// Compares the I/O strategies on a byte relay: blocking client threads ping-pong small messages
/// through a DispatchTransport relay to a blocking echo backend. Prints numbers, asserts nothing
/// about speed. A full run needs PGSPLIT_TRANSPORT_BENCH=1 (best with `-c release`); otherwise a short smoke run.
final class RelayBenchmarkTests: XCTestCase {
    override class func setUp() { Transport.ignoreSIGPIPE() }

    func testRelayThroughput() throws {
        let environment = ProcessInfo.processInfo.environment
        // Without PGSPLIT_TRANSPORT_BENCH=1 it is a short smoke run of the same relay.
        let benchmark = environment["PGSPLIT_TRANSPORT_BENCH"] == "1"
        let clients = Int(environment["PGSPLIT_BENCH_CLIENTS"] ?? "") ?? (benchmark ? 16 : 2)
        let seconds = Double(environment["PGSPLIT_BENCH_SECONDS"] ?? "") ?? (benchmark ? 3 : 0.3)
        let backendPort = try startBlockingEchoBackend()
        var results: [IOStrategy: [Double]] = [:]
        for round in 0..<3 {
            for strategy in (round % 2 == 0 ? allStrategies : allStrategies.reversed()) {
                let rate = try measureRelay(strategy: strategy, backendPort: backendPort, clients: clients, seconds: seconds)
                results[strategy, default: []].append(rate)
            }
        }
        for strategy in allStrategies {
            let rates = results[strategy]!.sorted()
            print("relay \(strategy): \(clients) clients, round trips/s per round \(rates.map { Int($0) }), median \(Int(rates[1]))")
            XCTAssertGreaterThan(rates[0], 0, "the \(strategy) relay carried no round trip")
        }
    }

    /// Round trips per second through a relay running `strategy`.
    private func measureRelay(strategy: IOStrategy, backendPort: Int, clients: Int, seconds: Double) throws -> Double {
        let group = EventLoopGroup(ioStrategy: strategy)
        let listener = try Listener(host: "127.0.0.1", port: 0, group: group)
        defer { listener.close() }
        listener.start { client in
            client.pauseReading()
            Connection.connect(host: "127.0.0.1", port: backendPort, on: client.loop, timeout: 10) { result in
                guard case .success(let backend) = result else { return client.close() }
                Self.pipe(from: client, to: backend)
                Self.pipe(from: backend, to: client)
                client.startReading()
                backend.startReading()
                client.resumeReading()
            }
        }
        let stop = Shared<Bool>(false)
        let total = Shared<Int>(0)
        let threads = (0..<clients).map { _ in
            Thread {
                let fd = Self.blockingConnect(port: listener.boundPort)
                defer { close(fd) }
                let size = 64
                var message = [UInt8](repeating: 0x51, count: size)
                var count = 0
                while !stop.value {
                    guard send(fd, &message, size, Int32(MSG_NOSIGNAL)) == size else { break }
                    var got = 0
                    while got < size {
                        let n = message.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, size - got, 0) }
                        if n <= 0 { return }
                        got += n
                    }
                    count += 1
                }
                total.update { $0 += count }
            }
        }
        let start = Date()
        threads.forEach { $0.start() }
        Thread.sleep(forTimeInterval: seconds)
        stop.update { $0 = true }
        waitUntil("clients stopped") { threads.allSatisfy { $0.isFinished } }
        return Double(total.value) / Date().timeIntervalSince(start)
    }

    /// Forwards everything `source` reads to `sink`, pausing `source` while `sink` is backed up.
    /// Strong captures are fine: a connection drops its handlers when it closes.
    private static func pipe(from source: Connection, to sink: Connection) {
        source.onRead = { bytes in
            sink.write(bytes)
            if sink.isAboveHighWater { source.pauseReading() }
        }
        sink.onWritableAgain = { source.resumeReading() }
        source.onClose = { _ in sink.close() }
    }

    private static func blockingConnect(port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    /// A thread-per-connection echo server, independent of the code under test.
    private func startBlockingEchoBackend() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                _ = bind(fd, $0, length)
                _ = getsockname(fd, $0, &length)
            }
        }
        listen(fd, 128)
        Thread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { continue }
                var one: Int32 = 1
                setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                Thread {
                    var buffer = [UInt8](repeating: 0, count: 16 * 1024)
                    while true {
                        let n = recv(client, &buffer, buffer.count, 0)
                        if n <= 0 { break }
                        if send(client, &buffer, n, Int32(MSG_NOSIGNAL)) != n { break }
                    }
                    close(client)
                }.start()
            }
        }.start()
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
