import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

// Helpers for the hostile-client tests: what the proxy process holds (open descriptors, memory,
// its sockets to the backends), how many backend sessions it has on each server, hand-made
// protocol messages beyond RawWire's few, and a streaming reader that counts a huge result
// without keeping it.

// MARK: - The proxy process, from /proc

enum HostileProc {
    /// A /proc file read to its end (Foundation's String(contentsOfFile:) may stop after one page).
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Entries in /proc/<pid>/fd.
    static func fdCount(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// A `Vm...:  N kB` line of /proc/<pid>/status, in kB.
    static func statusKB(_ pid: Int32, _ key: String) -> Int? {
        guard let text = read("/proc/\(pid)/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            let digits = line.dropFirst(key.count + 1).filter(\.isNumber)
            return Int(digits)
        }
        return nil
    }

    /// Resident memory now, in kB.
    static func rssKB(_ pid: Int32) -> Int { statusKB(pid, "VmRSS") ?? 0 }

    /// The process's peak resident memory, in kB.
    static func peakRSSKB(_ pid: Int32) -> Int { statusKB(pid, "VmHWM") ?? 0 }

    /// Inodes of the sockets the process holds.
    static func socketInodes(_ pid: Int32) -> Set<UInt64> {
        let dir = "/proc/\(pid)/fd"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        var out: Set<UInt64> = []
        for name in names {
            var buf = [CChar](repeating: 0, count: 256)
            let n = readlink(dir + "/" + name, &buf, buf.count - 1)
            guard n > 0 else { continue }
            let target = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard target.hasPrefix("socket:[") else { continue }
            if let inode = UInt64(target.dropFirst(8).dropLast()) { out.insert(inode) }
        }
        return out
    }

    /// Local ports of the process's TCP connections to one of `remotePorts` (its backend sockets).
    static func localPorts(_ pid: Int32, connectedTo remotePorts: Set<Int>) -> [Int] {
        let inodes = socketInodes(pid)
        var ports: [Int] = []
        for table in ["/proc/\(pid)/net/tcp", "/proc/\(pid)/net/tcp6"] {
            guard let text = read(table) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let cols = line.split(separator: " ", omittingEmptySubsequences: true)
                guard cols.count > 9, let inode = UInt64(cols[9]), inodes.contains(inode),
                      let local = cols[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) }),
                      let remote = cols[2].split(separator: ":").last.flatMap({ Int($0, radix: 16) }),
                      remotePorts.contains(remote) else { continue }
                ports.append(local)
            }
        }
        return ports
    }
}

// MARK: - Baselines: descriptors and backend sessions

/// Watches one proxy: its descriptor count and its backend sessions on each server (rows of
/// pg_stat_activity for app_ro / app_rw whose client port is one of the proxy's sockets, or whose
/// application_name starts with the test's tag), measured with no client connected.
final class HostileWatch {
    let proxy: ProxyProcess
    let cluster: TestCluster
    let tag: String
    private(set) var fdBaseline = 0
    private(set) var backendBaseline: [TestCluster.Server: Int] = [:]
    private(set) var rssBaselineKB = 0

    /// The password of the default user (app_rw) when the proxy does not trust.
    let password: String?

    init(proxy: ProxyProcess, cluster: TestCluster, tag: String, password: String? = nil) throws {
        self.proxy = proxy
        self.cluster = cluster
        self.tag = tag
        self.password = password
        // Warm up: one login and one statement on each backend, so whatever the proxy opens once
        // (login facts, monitor connections) exists before the baseline.
        let warm = try PQConnection(conninfo(app: "warm"))
        _ = try warm.query("SELECT 1")
        _ = try warm.query("SELECT txid_current()")
        warm.finish()
        fdBaseline = settle("proxy descriptors") { HostileProc.fdCount(proxy.pid) }
        for server in [TestCluster.Server.primary, .replica] {
            backendBaseline[server] = settle("backend sessions on \(server)") { (try? backendCount(server)) ?? -1 }
        }
        rssBaselineKB = HostileProc.rssKB(proxy.pid)
    }

    /// A value once it has been the same for 5 samples in a row (bounded; a hang guard only).
    private func settle(_ what: String, _ sample: () -> Int) -> Int {
        var last = sample()
        var same = 0
        for _ in 0..<300 {
            Thread.sleep(forTimeInterval: 0.1)
            let now = sample()
            if now == last { same += 1 } else { same = 0; last = now }
            if same >= 5 { return now }
        }
        XCTFail("\(what) did not settle (last \(last))")
        return last
    }

    /// A libpq connection string to the proxy whose backends carry application_name `<tag>_<app>`.
    func conninfo(user: String = "app_rw", password: String? = nil, app: String) -> String {
        proxy.conninfo(user: user, password: password ?? (user == "app_rw" ? self.password : nil),
                       extra: "application_name=\(tag)_\(app)")
    }

    func applicationName(_ app: String) -> String { "\(tag)_\(app)" }

    /// The proxy's backend sessions on `server` right now.
    func backendCount(_ server: TestCluster.Server) throws -> Int {
        let ports = HostileProc.localPorts(proxy.pid, connectedTo: [cluster.port(server)])
        let portList = ports.map(String.init).joined(separator: ",")
        let su = try cluster.superuser(server)
        defer { su.finish() }
        let n = try su.scalar("""
            SELECT count(*) FROM pg_stat_activity
            WHERE usename IN ('app_ro', 'app_rw') AND pid <> pg_backend_pid()
              AND (client_port = ANY('{\(portList)}'::int[]) OR application_name LIKE '\(tag)\\_%')
            """)
        return Int(n ?? "") ?? -1
    }

    /// The app_ro / app_rw sessions on `server` and the proxy's sockets to it, for failure messages.
    func describe(_ server: TestCluster.Server) -> String {
        let ports = HostileProc.localPorts(proxy.pid, connectedTo: [cluster.port(server)])
        let rows = (try? cluster.superuser(server).query("""
            SELECT pid, usename, client_port, application_name, state, backend_type, left(query, 60)
            FROM pg_stat_activity WHERE usename IN ('app_ro', 'app_rw') AND pid <> pg_backend_pid()
            """)) ?? []
        return "proxy ports \(ports); sessions \(rows.map { $0.map { $0 ?? "NULL" }.joined(separator: "|") })"
    }

    /// Rows of pg_stat_activity on `server` for application_name `<tag>_<app>`.
    func sessions(_ server: TestCluster.Server, app: String) throws -> [[String?]] {
        let su = try cluster.superuser(server)
        defer { su.finish() }
        return try su.query("""
            SELECT pid::text, state, coalesce(wait_event, ''), query, coalesce(backend_xid::text, '')
            FROM pg_stat_activity WHERE application_name = '\(applicationName(app))' AND pid <> pg_backend_pid()
            """)
    }

    /// Polls until the descriptors and backend sessions are back at their baselines.
    func assertBackToBaseline(file: StaticString = #filePath, line: UInt = #line) {
        var fds = -1
        waitUntil("proxy descriptors back to \(fdBaseline)", timeout: 60, file: file, line: line) {
            fds = HostileProc.fdCount(proxy.pid)
            return fds == fdBaseline
        }
        XCTAssertEqual(fds, fdBaseline, "open descriptors of the proxy", file: file, line: line)
        for server in [TestCluster.Server.primary, .replica] {
            var n = -1
            waitUntil("backend sessions on \(server) back to \(backendBaseline[server] ?? -1)", timeout: 60, file: file, line: line) {
                n = (try? backendCount(server)) ?? -1
                return n == backendBaseline[server]
            }
            XCTAssertEqual(n, backendBaseline[server], "backend sessions on \(server): \(describe(server))", file: file, line: line)
        }
    }

    /// A well-behaved client: a read answered by main, a write-class statement by writeable,
    /// both with the right values.
    func assertNormalClientWorks(_ label: String = "normal", file: StaticString = #filePath, line: UInt = #line) {
        do {
            let c = try PQConnection(conninfo(app: label))
            defer { c.finish() }
            XCTAssertEqual(try c.query("SELECT inet_server_port()::text, sum(g)::text FROM generate_series(1, 1000) g"),
                           [["\(cluster.replicaPort)", "500500"]], "read through the proxy", file: file, line: line)
            XCTAssertEqual(try c.query("SELECT inet_server_port()::text, (txid_current() > 0)::text"),
                           [["\(cluster.primaryPort)", "true"]], "write-class statement through the proxy", file: file, line: line)
        } catch {
            XCTFail("a normal client failed: \(error)", file: file, line: line)
        }
    }
}

/// The base of the hostile-client tests: a proxy without backend reuse, so backend baselines are exact.
class HostileTestCase: ProxyTestCase {
    func startHostile(_ settings: [String] = [], auth: String = "trust", prefix: String = "hx") throws -> (ProxyProcess, HostileWatch) {
        var all = settings
        if !all.contains(where: { $0.hasPrefix("server_pool_size") }) { all.append("server_pool_size = 0") }
        let proxy = try startProxy(auth: auth, settings: all)
        let watch = try HostileWatch(proxy: proxy, cluster: cluster, tag: marker(prefix),
                                     password: auth == "trust" ? nil : "app_rw")
        return (proxy, watch)
    }

    /// Row count of a table on the primary.
    func primaryCount(_ table: String, _ condition: String = "true") throws -> Int {
        Int(try onPrimary("SELECT count(*) FROM \(table) WHERE \(condition)").first?.first.flatMap { $0 } ?? "") ?? -1
    }

    /// Sessions on the primary that are inside a transaction and belong to this test's tag.
    func openTransactions(_ watch: HostileWatch) throws -> Int {
        Int(try onPrimary("""
            SELECT count(*) FROM pg_stat_activity
            WHERE application_name LIKE '\(watch.tag)\\_%' AND (xact_start IS NOT NULL OR state LIKE 'idle in transaction%')
              AND pid <> pg_backend_pid()
            """).first?.first.flatMap { $0 } ?? "") ?? -1
    }
}

// MARK: - Hand-made protocol

enum HostileWire {
    static func startup(user: String = "app_rw", database: String = "app", application: String) -> [UInt8] {
        RawWire.startup([("user", user), ("database", database), ("application_name", application)])
    }

    static func parse(_ sql: String, name: String = "", types: Int = 0) -> [UInt8] {
        RawWire.message("P", RawWire.cstring(name) + RawWire.cstring(sql) + RawWire.int16(Int16(types))
                        + Array(repeating: 0, count: 4 * types))
    }

    /// Bind with text parameters (nil = NULL), all results in text.
    static func bind(portal: String = "", statement: String = "", _ params: [String?]) -> [UInt8] {
        var body = RawWire.cstring(portal) + RawWire.cstring(statement) + RawWire.int16(0) + RawWire.int16(Int16(params.count))
        for p in params {
            if let p { body += RawWire.int32(Int32(p.utf8.count)) + Array(p.utf8) } else { body += RawWire.int32(-1) }
        }
        return RawWire.message("B", body + RawWire.int16(0))
    }

    static func execute(portal: String = "", maxRows: Int32 = 0) -> [UInt8] {
        RawWire.message("E", RawWire.cstring(portal) + RawWire.int32(maxRows))
    }

    static let sync = RawWire.message("S", [])
    static let flush = RawWire.message("H", [])
    static let copyDone = RawWire.message("c", [])
    static func copyData(_ text: String) -> [UInt8] { RawWire.message("d", Array(text.utf8)) }
    static func password(_ text: String) -> [UInt8] { RawWire.message("p", RawWire.cstring(text)) }

    static func cancelRequest(processID: Int32, secretKey: Int32) -> [UInt8] {
        RawWire.int32(16) + RawWire.int32(80_877_102) + RawWire.int32(processID) + RawWire.int32(secretKey)
    }

    static func int32(_ bytes: ArraySlice<UInt8>) -> Int32 {
        bytes.reduce(0) { ($0 << 8) | Int32($1) }
    }

    /// (process id, secret key) of a BackendKeyData message.
    static func keyData(_ messages: [RawWire.Message]) -> (Int32, Int32)? {
        guard let k = messages.first(where: { $0.typeChar == "K" }), k.body.count == 8 else { return nil }
        return (int32(k.body[0..<4]), int32(k.body[4..<8]))
    }

    /// SQLSTATEs of the ErrorResponses among `messages`.
    static func errorCodes(_ messages: [RawWire.Message]) -> [String] {
        messages.filter { $0.typeChar == "E" }.map { $0.fields["C"] ?? "?" }
    }

    /// A CommandComplete's tag.
    static func tags(_ messages: [RawWire.Message]) -> [String] {
        messages.filter { $0.typeChar == "C" }.map { String(decoding: $0.body.prefix { $0 != 0 }, as: UTF8.self) }
    }
}

extension RawClient {
    /// Startup with trust auth; the messages up to the first ReadyForQuery (or close).
    func hostileLogin(user: String = "app_rw", application: String) -> [RawWire.Message] {
        send(HostileWire.startup(user: user, application: application))
        return readMessages(until: "Z")
    }

    /// Closes the socket now, without a Terminate (RST when unread data is pending).
    func slam() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Whether the peer has closed: a zero-length read or a reset within `timeout`.
    func peerClosed(timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var chunk = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 100) <= 0 { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return true }
        }
        return false
    }
}

// MARK: - Streaming a huge result

/// Counts the messages of a backend stream without keeping DataRows: only their number and bytes.
struct HostileMessageCounter {
    private(set) var counts: [Character: Int] = [:]
    private(set) var dataRowBytes = 0
    private(set) var totalBytes = 0
    /// Every message but DataRow, whole.
    private(set) var kept: [RawWire.Message] = []
    private var header: [UInt8] = []
    private var type: UInt8 = 0
    private var remaining: Int?
    private var body: [UInt8] = []

    mutating func feed(_ chunk: UnsafeRawBufferPointer) {
        totalBytes += chunk.count
        var i = 0
        while i < chunk.count {
            if let r = remaining {
                let n = min(r, chunk.count - i)
                if type != UInt8(ascii: "D") { body += chunk[i..<(i + n)] } else { dataRowBytes += n }
                i += n
                remaining = r - n
                if remaining == 0 { finish() }
            } else {
                header.append(chunk[i])
                i += 1
                if header.count == 5 {
                    type = header[0]
                    remaining = max(0, Int(HostileWire.int32(header[1..<5])) - 4)
                    header = []
                    body = []
                    if remaining == 0 { finish() }
                }
            }
        }
    }

    private mutating func finish() {
        let c = Character(UnicodeScalar(type))
        counts[c, default: 0] += 1
        if type != UInt8(ascii: "D") { kept.append(RawWire.Message(type: type, body: body)) }
        remaining = nil
        body = []
    }

    var sawReadyForQuery: Bool { (counts["Z"] ?? 0) > 0 }
}

/// Reads `fd` into `counter` until `done` holds, the peer closes, or `timeout` passes. True when closed by the peer.
@discardableResult
func hostileDrain(_ fd: Int32, into counter: inout HostileMessageCounter, timeout: TimeInterval,
                  until done: (HostileMessageCounter) -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    var chunk = [UInt8](repeating: 0, count: 1 << 18)
    while Date() < deadline {
        if done(counter) { return false }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        if poll(&pfd, 1, 100) <= 0 { continue }
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { return true }
        chunk.withUnsafeBytes { counter.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }
    return false
}

// MARK: - Work on another thread

/// The outcome of work started on a second thread, once it has one.
final class HostileBackground<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Result<T, Error>?

    init(_ work: @escaping @Sendable () throws -> T) {
        let thread = Thread { [self] in
            let r = Result { try work() }
            lock.lock(); stored = r; lock.unlock()
        }
        thread.start()
    }

    var result: Result<T, Error>? { lock.lock(); defer { lock.unlock() }; return stored }
    var isDone: Bool { result != nil }
}

/// The SQLSTATE of a thrown error (PQError), or nil.
func hostileSQLState(_ result: Result<some Any, Error>?) -> String? {
    guard case .failure(let e)? = result else { return nil }
    return (e as? PQError)?.sqlState
}

// MARK: - A socket the test may abort

/// A raw client socket that can also be aborted (RST) or half-closed; reads like RawClient.
final class HostileSocket {
    private(set) var fd: Int32

    init(port: Int) throws {
        fd = try connectTCP(port: port)
    }

    deinit { if fd >= 0 { close(fd) } }

    func send(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count, fd >= 0 {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    /// Messages until one of `type` arrives (or close, or `timeout`).
    func readMessages(until type: Character, timeout: TimeInterval = 30) -> [RawWire.Message] {
        var counter = HostileMessageCounter()
        hostileDrain(fd, into: &counter, timeout: timeout) { c in c.kept.contains { $0.typeChar == type } }
        return counter.kept
    }

    /// Gone at once: SO_LINGER 0 and close, so the peer sees a reset, whatever is unread.
    func abort() {
        guard fd >= 0 else { return }
        var l = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        close(fd)
        fd = -1
    }

    /// Sends FIN but keeps the socket (and never reads).
    func halfClose() {
        if fd >= 0 { shutdown(fd, Int32(SHUT_WR)) }
    }
}

/// Hands a non-Sendable value (a libpq connection) to one other thread while this one only waits.
final class HostileUnchecked<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
