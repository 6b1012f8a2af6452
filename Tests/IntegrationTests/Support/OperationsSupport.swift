import CLibPQ
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

// Helpers for the operations tests: a libpq client that also reports column names, command tags and
// asynchronous errors (a FATAL sent to an idle connection), a plain HTTP GET for the metrics endpoint,
// and a second primary + replica pair that tests may stop or pause without disturbing anyone else.

/// What the server said outside any query: an ErrorResponse/NoticeResponse that libpq routed to the
/// notice receiver (e.g. a FATAL on an idle connection).
struct ServerNotice: Sendable {
    var severity: String
    var sqlState: String
    var message: String
}

private final class NoticeLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [ServerNotice] = []
    func append(_ n: ServerNotice) { lock.lock(); items.append(n); lock.unlock() }
    var all: [ServerNotice] { lock.lock(); defer { lock.unlock() }; return items }
}

/// One result set: column names, rows (text, NULL as nil) and the command tag.
struct OpsResult {
    var columns: [String]
    var rows: [[String?]]
    var tag: String

    /// The values of one column, by name.
    func column(_ name: String) -> [String?] {
        guard let i = columns.firstIndex(of: name) else { return [] }
        return rows.map { $0[i] }
    }

    /// The rows as dictionaries keyed by column name.
    var records: [[String: String?]] {
        rows.map { row in
            var d: [String: String?] = [:]
            for (i, c) in columns.enumerated() { d[c] = row[i] }
            return d
        }
    }
}

/// A libpq connection (simple protocol) that keeps column names and the server's asynchronous
/// messages. Used from one thread at a time; `@unchecked Sendable` so a test may hand it to a
/// second thread while the first only watches.
final class OpsClient: @unchecked Sendable {
    private var conn: OpaquePointer?
    private let notices = NoticeLog()

    init(_ conninfo: String) throws {
        guard let c = PQconnectdb(conninfo) else { throw PQError(message: "PQconnectdb: out of memory", sqlState: nil) }
        conn = c
        if PQstatus(c) != CONNECTION_OK {
            let msg = String(cString: PQerrorMessage(c))
            PQfinish(c)
            conn = nil
            // libpq's default message has no SQLSTATE; a verbose attempt (PQConnection) reads it.
            throw PQError(message: msg, sqlState: OpsClient.loginSQLState(conninfo) ?? PQConnection.sqlStateFromVerboseMessage(msg))
        }
        let box = Unmanaged.passUnretained(notices).toOpaque()
        PQsetNoticeReceiver(c, { arg, res in
            guard let arg, let res else { return }
            let log = Unmanaged<NoticeLog>.fromOpaque(arg).takeUnretainedValue()
            func field(_ code: Character) -> String {
                guard let p = PQresultErrorField(res, Int32(code.asciiValue!)) else { return "" }
                return String(cString: p)
            }
            log.append(ServerNotice(severity: field("V").isEmpty ? field("S") : field("V"), sqlState: field("C"),
                                    message: field("M")))
        }, box)
    }

    /// The SQLSTATE of a failed login, read from a verbose connection attempt.
    private static func loginSQLState(_ conninfo: String) -> String? {
        do {
            _ = try PQConnection(conninfo)
            return nil
        } catch let e as PQError {
            return e.sqlState
        } catch {
            return nil
        }
    }

    deinit { finish() }

    func finish() {
        if let c = conn {
            PQfinish(c)
            conn = nil
        }
    }

    /// Messages the server sent outside a query (FATAL on an idle connection, notices).
    var serverNotices: [ServerNotice] { notices.all }

    var isOK: Bool { conn.map { PQstatus($0) == CONNECTION_OK } ?? false }

    /// Runs `sql` (simple protocol); the last result. Errors carry the SQLSTATE.
    @discardableResult
    func run(_ sql: String) throws -> OpsResult {
        guard let c = conn else { throw PQError(message: "connection is closed", sqlState: nil) }
        guard let res = PQexec(c, sql) else {
            throw PQError(message: String(cString: PQerrorMessage(c)), sqlState: nil)
        }
        defer { PQclear(res) }
        switch PQresultStatus(res) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            break
        default:
            var state: String?
            if let s = PQresultErrorField(res, Int32(UInt8(ascii: "C"))) { state = String(cString: s) }
            var msg = String(cString: PQresultErrorMessage(res))
            if msg.isEmpty { msg = String(cString: PQerrorMessage(c)) }
            throw PQError(message: msg, sqlState: state)
        }
        let ncols = PQnfields(res)
        let columns = (0..<ncols).map { String(cString: PQfname(res, $0)) }
        var rows: [[String?]] = []
        for r in 0..<PQntuples(res) {
            rows.append((0..<ncols).map { col in
                PQgetisnull(res, r, col) != 0 ? nil : String(cString: PQgetvalue(res, r, col))
            })
        }
        return OpsResult(columns: columns, rows: rows, tag: String(cString: PQcmdStatus(res)))
    }

    /// Reads whatever the server sends while this client is idle until the server closes the
    /// connection (true) or `timeout` passes (false). A FATAL sent first lands in `serverNotices`.
    func waitForServerClose(timeout: TimeInterval = 30) -> Bool {
        guard let c = conn else { return true }
        if PQstatus(c) == CONNECTION_BAD { return true }  // already seen closed
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var pfd = pollfd(fd: PQsocket(c), events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 100) > 0 {
                if PQconsumeInput(c) == 0 || PQstatus(c) == CONNECTION_BAD { return true }
                while let r = PQgetResult(c) { PQclear(r) }
                if PQstatus(c) == CONNECTION_BAD { return true }
            }
        }
        return false
    }
}

// MARK: - HTTP

/// `GET path` over HTTP/1.0 on 127.0.0.1:port; returns (status line, body).
func httpGet(port: Int, path: String = "/metrics", timeout: TimeInterval = 15) throws -> (status: String, body: String) {
    let fd = try connectTCP(port: port)
    defer { close(fd) }
    let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
    var off = 0
    while off < request.count {
        let n = request[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { throw PQError(message: "send to metrics endpoint failed: errno \(errno)", sqlState: nil) }
        off += n
    }
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        if poll(&pfd, 1, 100) <= 0 { continue }
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        data += chunk[0..<n]
    }
    let text = String(decoding: data, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { return (text, "") }
    let head = text[..<split.lowerBound]
    return (String(head.split(separator: "\r\n").first ?? ""), String(text[split.upperBound...]))
}

/// One sample of the Prometheus text format.
struct PrometheusSample {
    var name: String
    var labels: [String: String]
    var value: Double
}

/// Parses the samples (not `#` lines) of a Prometheus text exposition. Throws on a line it cannot read.
func parsePrometheus(_ text: String) throws -> [PrometheusSample] {
    var out: [PrometheusSample] = []
    for raw in text.split(separator: "\n") {
        let line = String(raw)
        if line.hasPrefix("#") || line.isEmpty { continue }
        guard let space = line.lastIndex(of: " ") else { throw PQError(message: "metrics line: \(line)", sqlState: nil) }
        let series = String(line[..<space])
        let valueText = String(line[line.index(after: space)...])
        let value: Double
        if valueText == "+Inf" { value = .infinity } else if let v = Double(valueText) { value = v } else {
            throw PQError(message: "metrics value: \(line)", sqlState: nil)
        }
        var name = series
        var labels: [String: String] = [:]
        if let brace = series.firstIndex(of: "{") {
            name = String(series[..<brace])
            guard series.hasSuffix("}") else { throw PQError(message: "metrics labels: \(line)", sqlState: nil) }
            let body = series[series.index(after: brace)..<series.index(before: series.endIndex)]
            // label="value" pairs; values here never contain commas or escaped quotes.
            for pair in body.split(separator: ",") {
                guard let eq = pair.firstIndex(of: "=") else { throw PQError(message: "metrics label: \(line)", sqlState: nil) }
                var v = pair[pair.index(after: eq)...]
                if v.hasPrefix("\"") { v = v.dropFirst() }
                if v.hasSuffix("\"") { v = v.dropLast() }
                labels[String(pair[..<eq])] = String(v)
            }
        }
        out.append(PrometheusSample(name: name, labels: labels, value: value))
    }
    return out
}

// MARK: - A pair of our own

/// Runs a program to completion with posix_spawn + waitpid (stdout and stderr to one temp file).
/// Foundation's Process.waitUntilExit was seen to hang here, in a class-level setUp, after its child
/// had exited, so the pair is driven without it.
@discardableResult
func spawnAndWait(_ path: String, _ args: [String]) -> (status: Int32, output: String) {
    let result = runProcess(path, args)
    return (result.status, result.stdout + result.stderr)
}

/// A primary + replica on their own ports and folder, for tests that stop the replica or pause its
/// replay. Started once per test class; stopped in the class teardown.
final class OwnPair: Sendable {
    let cluster: TestCluster
    let dir: URL

    static var script: String { TestCluster.repoRoot.appendingPathComponent("scripts/pg-pair.sh").path }

    /// The ports move as far as PGSPLIT_TEST_PRIMARY_PORT moves the shared pair from 25432, so two
    /// checkouts testing on shared pairs of their own do not meet on these either.
    init(folder: String = "var/test-ops", primaryPort: Int = 25452, replicaPort: Int = 25453) throws {
        let shift = ProcessInfo.processInfo.environment["PGSPLIT_TEST_PRIMARY_PORT"].flatMap(Int.init).map { $0 - 25432 } ?? 0
        dir = TestCluster.repoRoot.appendingPathComponent(folder)
        cluster = TestCluster(primaryPort: primaryPort + shift, replicaPort: replicaPort + shift, dir: dir)
        try start()
    }

    /// Starts both servers (idempotent: starts only what is not running) and waits for streaming.
    func start() throws {
        let r = spawnAndWait(OwnPair.script, ["start", dir.path, "\(cluster.primaryPort)", "\(cluster.replicaPort)"])
        guard r.status == 0 else {
            throw PQError(message: "pg-pair.sh start \(dir.lastPathComponent) failed (\(r.status)): \(r.output)", sqlState: nil)
        }
    }

    func stop() {
        spawnAndWait(OwnPair.script, ["stop", dir.path])
    }

    /// Stops only the replica (fast shutdown: its sessions are cut).
    func stopReplica() throws {
        let pgctl = toolPath("pg_ctl")
        let args = ["-D", dir.appendingPathComponent("replica").path, "stop", "-w", "-t", "60", "-m", "fast"]
        let r = geteuid() == 0 ? spawnAndWait(toolPath("runuser"), ["-u", "pgsplit", "--", pgctl] + args)
                               : spawnAndWait(pgctl, args)
        guard r.status == 0 else {
            throw PQError(message: "pg_ctl stop replica failed (\(r.status)): \(r.output)", sqlState: nil)
        }
    }

    /// Replay on the replica: pause or resume, and wait until the replica says so.
    func setReplayPaused(_ paused: Bool) throws {
        let r = try cluster.superuser(.replica)
        defer { r.finish() }
        try r.exec(paused ? "SELECT pg_wal_replay_pause()" : "SELECT pg_wal_replay_resume()")
        let want = paused ? "paused" : "not paused"
        try waitUntil("replay \(want)") { try r.scalar("SELECT pg_get_wal_replay_pause_state()") == want }
    }

    /// True when the replica answers.
    var replicaIsUp: Bool { (try? cluster.superuser(.replica))?.isOK ?? false }
}

/// Milliseconds since `start`, rounded.
func millis(since start: Date) -> Int { Int((Date().timeIntervalSince(start) * 1000).rounded()) }
