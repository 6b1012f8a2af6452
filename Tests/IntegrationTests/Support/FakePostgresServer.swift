import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A tiny fake "PostgreSQL" server that claims to be CockroachDB: trust login (AuthenticationOk),
/// ParameterStatus server_version=13.0.0 and crdb_version=..., BackendKeyData, ReadyForQuery; every
/// simple Query answers one text row with a CockroachDB version(). Terminate closes. SSLRequest and
/// GSSENCRequest are declined with 'N'. Only for the engine-mismatch refusal test.
final class FakePostgresServer: @unchecked Sendable {
    static let versionRow = "CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu, built 2023/09/27)"
    static let crdbVersion = "CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu)"

    let port: Int
    private let listenFD: Int32
    private let lock = NSLock()
    private var stopped = false
    private var _connections = 0

    /// How many clients connected so far.
    var connections: Int { lock.withLock { _connections } }

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PQError(message: "socket failed", sqlState: nil) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var bound = -1
        for _ in 0..<200 {
            let candidate = try freePort()
            var addr = loopback(port: candidate)
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if rc == 0 { bound = candidate; break }
        }
        guard bound > 0, listen(fd, 16) == 0 else {
            close(fd)
            throw PQError(message: "fake server: cannot bind/listen", sqlState: nil)
        }
        port = bound
        listenFD = fd
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    func stop() {
        lock.withLock { stopped = true }
    }

    deinit {
        close(listenFD)
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    private func acceptLoop() {
        while !isStopped {
            var pfd = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 100) <= 0 { continue }
            let c = accept(listenFD, nil, nil)
            if c < 0 { continue }
            lock.withLock { _connections += 1 }
            let t = Thread { [self] in serve(c) }
            t.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var buf: [UInt8] = []
        func fill(_ n: Int) -> Bool {
            var chunk = [UInt8](repeating: 0, count: 8192)
            while buf.count < n {
                if isStopped { return false }
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&pfd, 1, 100) <= 0 { continue }
                let r = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if r <= 0 { return false }
                buf += chunk[0..<r]
            }
            return true
        }
        func take(_ n: Int) -> [UInt8] {
            let out = Array(buf[0..<n])
            buf.removeFirst(n)
            return out
        }
        func be32(_ b: ArraySlice<UInt8>) -> Int {
            Int(Int32(bigEndian: b.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }))
        }
        func write(_ bytes: [UInt8]) {
            var off = 0
            while off < bytes.count {
                let n = bytes[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return }
                off += n
            }
        }
        let ready = RawWire.message("Z", [UInt8(ascii: "I")])

        // Startup phase: SSLRequest / GSSENCRequest are declined, CancelRequest closes.
        while true {
            guard fill(8) else { return }
            let len = be32(buf[0..<4])
            let code = be32(buf[4..<8])
            guard len >= 8, len < 10_000, fill(len) else { return }
            _ = take(len)
            if code == 80_877_103 || code == 80_877_104 { write([UInt8(ascii: "N")]); continue }
            if code == 80_877_102 { return }
            break
        }
        var out: [UInt8] = []
        out += RawWire.message("R", RawWire.int32(0))
        out += RawWire.message("S", RawWire.cstring("server_version") + RawWire.cstring("13.0.0"))
        out += RawWire.message("S", RawWire.cstring("crdb_version") + RawWire.cstring(Self.crdbVersion))
        out += RawWire.message("S", RawWire.cstring("server_encoding") + RawWire.cstring("UTF8"))
        out += RawWire.message("S", RawWire.cstring("client_encoding") + RawWire.cstring("UTF8"))
        out += RawWire.message("S", RawWire.cstring("integer_datetimes") + RawWire.cstring("on"))
        out += RawWire.message("K", RawWire.int32(4242) + RawWire.int32(1_234_567))
        out += ready
        write(out)

        while true {
            guard fill(5) else { return }
            let type = buf[0]
            let len = be32(buf[1..<5])
            guard len >= 4, len < 1_000_000, fill(1 + len) else { return }
            _ = take(1 + len)
            switch type {
            case UInt8(ascii: "Q"):
                var r: [UInt8] = []
                // RowDescription: one text column "version".
                var rd = RawWire.int16(1)
                rd += RawWire.cstring("version") + RawWire.int32(0) + RawWire.int16(0)
                rd += RawWire.int32(25) + RawWire.int16(-1) + RawWire.int32(-1) + RawWire.int16(0)
                r += RawWire.message("T", rd)
                let value = Array(Self.versionRow.utf8)
                r += RawWire.message("D", RawWire.int16(1) + RawWire.int32(Int32(value.count)) + value)
                r += RawWire.message("C", RawWire.cstring("SELECT 1"))
                r += ready
                write(r)
            case UInt8(ascii: "S"):
                write(ready)
            case UInt8(ascii: "X"):
                return
            default:
                continue
            }
        }
    }
}
