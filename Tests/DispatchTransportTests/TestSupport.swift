import DispatchTransport
import Foundation
import Synchronization
import XCTest

/// Both I/O strategies must behave identically; every test runs against each.
let allStrategies: [IOStrategy] = [.dispatchSourcePerSocket, .epollPerLoop, .epollWaiterPerLoop]

/// Hang guard for expectations: generous, never a timing assertion.
let hangGuard: TimeInterval = 60

/// A value shared between loops and the test thread.
final class Shared<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    init(_ value: Value) { storage = Mutex(value) }
    var value: Value { storage.withLock { $0 } }
    func update<R: Sendable>(_ body: (inout Value) -> R) -> R { storage.withLock { body(&$0) } }
}

/// Open descriptors of this process.
func openDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// Runs `body` on `loop` and waits for it.
func onLoop<T>(_ loop: EventLoop, _ body: () throws -> T) rethrows -> T {
    try loop.queue.sync(execute: body)
}

/// Deterministic content for transfer checks: byte at stream offset `i`.
@inline(__always) func patternByte(_ offset: Int) -> UInt8 { UInt8(truncatingIfNeeded: offset % 251) }

/// A listener whose accepted connections echo everything back.
func startEchoServer(host: String = "127.0.0.1", port: Int = 0, group: EventLoopGroup) throws -> Listener {
    let listener = try Listener(host: host, port: port, group: group)
    listener.start { connection in
        connection.onRead = { [unowned connection] bytes in connection.write(bytes) }
        connection.onClose = { _ in }
        connection.startReading()
    }
    return listener
}

/// Connects on `loop` and waits for the result.
func connectAndWait(host: String, port: Int, on loop: EventLoop, timeout: Double = 10,
                    file: StaticString = #filePath, line: UInt = #line) -> Result<Connection, TransportError> {
    let result = Shared<Result<Connection, TransportError>?>(nil)
    let done = DispatchSemaphore(value: 0)
    loop.execute {
        Connection.connect(host: host, port: port, on: loop, timeout: timeout) { outcome in
            result.update { $0 = outcome }
            done.signal()
        }
    }
    if done.wait(timeout: .now() + hangGuard) == .timedOut {
        XCTFail("connect did not complete", file: file, line: line)
        return .failure(.timedOut)
    }
    return result.value!
}

/// Waits until `condition` holds, polling; fails after the hang guard.
func waitUntil(_ what: String, file: StaticString = #filePath, line: UInt = #line, _ condition: () -> Bool) {
    let deadline = Date().addingTimeInterval(hangGuard)
    while !condition() {
        if Date() > deadline {
            XCTFail("gave up waiting for: \(what)", file: file, line: line)
            return
        }
        usleep(2_000)
    }
}

/// Makes sure everything queued on `loops` so far has run (twice: deferred callbacks queue more).
func drain(_ group: EventLoopGroup) {
    for _ in 0..<3 {
        for loop in group.loops { loop.queue.sync {} }
    }
}

/// A fresh directory for Unix sockets.
func makeTemporaryDirectory() -> String {
    let base = FileManager.default.temporaryDirectory.path
    var template = Array("\(base)/pgsplit-transport-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { buffer in
        String(cString: mkdtemp(buffer.baseAddress!)!)
    }
}

/// `patternByte` laid out so that any chunk of up to 64 KiB starting at stream offset `o`
/// is `patternBlock[o % 251 ..< o % 251 + count]`: no per-byte work on the hot path of tests.
let patternBlock: [UInt8] = (0..<(64 * 1024 + 251)).map(patternByte)

/// Whether `bytes` are the pattern at stream offset `offset`.
func matchesPattern(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Bool {
    var checked = 0
    while checked < bytes.count {
        let count = min(64 * 1024, bytes.count - checked)
        let start = (offset + checked) % 251
        let same = patternBlock.withUnsafeBytes { block in
            memcmp(block.baseAddress! + start, bytes.baseAddress! + checked, count) == 0
        }
        if !same { return false }
        checked += count
    }
    return true
}
