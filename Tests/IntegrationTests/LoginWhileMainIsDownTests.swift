import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Logins while main is lost (stopped) or frozen (SIGSTOPped: it accepts connections and never
/// answers), on a primary + replica pair of this class's own — the shared pair must never see its
/// replica stopped or frozen.
final class LoginWhileMainIsDownTests: ProxyTestCase {
    nonisolated(unsafe) private static var pair: Result<OwnPair, Error>?

    override class func setUp() {
        super.setUp()
        pair = Result { try OwnPair(folder: "var/test-login", primaryPort: 25462, replicaPort: 25463) }
    }

    override class func tearDown() {
        if case .success(let p)? = pair { p.stop() }
        pair = nil
        super.tearDown()
    }

    private var own: OwnPair!
    /// The replica's processes while they are stopped (`freezeReplica`).
    private var frozen: [pid_t] = []

    override func setUpWithError() throws {
        try super.setUpWithError()
        own = try XCTUnwrap(Self.pair, "the pair was not started").get()
        cluster = own.cluster
        try own.start()  // an earlier test may have left the replica stopped (after a failure)
    }

    override func tearDown() {
        thawReplica()
        super.tearDown()
        if let own, !own.replicaIsUp { try? own.start() }
    }

    private let fastHealth = "health_check_period = 100ms"

    /// A login with startup parameters no earlier login had (a new application_name, as every new
    /// psql or pgJDBC ApplicationName sends), so the proxy has no greeting from main to reuse. The
    /// client's own connect_timeout is the hang guard.
    private func newLogin(_ proxy: ProxyProcess, _ name: String) throws -> PQConnection {
        try PQConnection(proxy.conninfo(user: "alice", extra: "application_name=\(marker(name)) connect_timeout=20"),
                         timeout: 25)
    }

    private func waitUntilMainIsDown(_ proxy: ProxyProcess) throws {
        let console = try OpsClient(proxy.conninfo(user: "admin", dbname: "pgsplit"))
        try waitUntil("the monitor sees main down") {
            try console.run("SHOW BACKENDS").records.contains { $0["role"] == "main" && $0["state"] == "down" }
        }
    }

    /// SIGSTOPs the replica's postmaster, then its children: the listen socket still completes TCP
    /// handshakes, but nothing answers (a paused VM, a black hole).
    private func freezeReplica() throws {
        let pidFile = own.dir.appendingPathComponent("replica/postmaster.pid").path
        let text = try String(contentsOfFile: pidFile, encoding: .utf8)
        let postmaster = try XCTUnwrap(text.split(separator: "\n").first.flatMap { pid_t($0) }, "no pid in \(pidFile)")
        XCTAssertEqual(kill(postmaster, SIGSTOP), 0, "SIGSTOP the replica's postmaster")
        frozen = [postmaster]
        // Stopped first, the postmaster forks no new children while they are listed.
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // "pid (comm) state ppid ...": comm may hold spaces, so fields are counted after ')'.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, pid_t(fields[1]) == postmaster, kill(pid, SIGSTOP) == 0 { frozen.append(pid) }
        }
    }

    private func thawReplica() {
        for pid in frozen.reversed() { kill(pid, SIGCONT) }
        frozen = []
    }

    /// With main stopped, a client logging in with new startup parameters is greeted through
    /// writeable (read_fallback = writeable, the default): its reads and writes run on the primary,
    /// and once the replica is back its reads go there again. (It used to get FATAL "pgsplit cannot
    /// reach the main backend".)
    func testNewLoginWhileMainIsStoppedIsServedByWriteable() throws {
        try makeTable("login_stopped")
        let proxy = try startProxy(settings: [fastHealth])
        XCTAssertEqual(try newLogin(proxy, "before").query("SELECT inet_server_port()"), [[replica]])
        try own.stopReplica()
        try waitUntilMainIsDown(proxy)

        let client: PQConnection
        do {
            client = try newLogin(proxy, "stopped")
        } catch {
            return XCTFail("a client with a new application_name cannot log in while main is down: \(error)")
        }
        XCTAssertEqual(client.parameter("in_hot_standby"), "off")
        XCTAssertEqual(client.parameter("default_transaction_read_only"), "off")
        XCTAssertEqual(try client.query("SELECT inet_server_port(), pg_is_in_recovery()"), [[primary, "f"]])
        let m = marker("stopped")
        XCTAssertEqual(try client.query("INSERT INTO login_stopped(v) VALUES ('\(m)') RETURNING inet_server_port()"), [[primary]])
        XCTAssertEqual(try client.query("SELECT inet_server_port(), count(*) FROM login_stopped WHERE v = '\(m)'"), [[primary, "1"]])
        // The client's own default_transaction_read_only=on still wins over writeable's "off".
        let readOnly = try PQConnection(proxy.conninfo(user: "alice", extra: "application_name=\(marker("ro")) connect_timeout=20 options='-c default_transaction_read_only=on'"),
                                        timeout: 25)
        XCTAssertEqual(readOnly.parameter("default_transaction_read_only"), "on")

        try own.start()
        waitUntil("reads return to the replica", timeout: 60) {
            (try? client.query("SELECT inet_server_port(), count(*) FROM login_stopped WHERE v = '\(m)'")) == [[replica, "1"]]
        }
        XCTAssertEqual(try newLogin(proxy, "after").query("SELECT inet_server_port()"), [[replica]])
    }

    /// With read_fallback = error a login without main is still refused, with 08006.
    func testNewLoginWhileMainIsStoppedIsRefusedWithReadFallbackError() throws {
        let proxy = try startProxy(settings: [fastHealth, "read_fallback = error"])
        try own.stopReplica()
        XCTAssertThrowsError(try newLogin(proxy, "refused")) {
            XCTAssertEqual(($0 as? PQError)?.sqlState, "08006", "\($0)")
            XCTAssertTrue("\($0)".contains("pgsplit cannot reach the main backend"), "\($0)")
        }
    }

    /// With main frozen after the monitor has marked it down, a new login does not wait for it
    /// longer than connect_timeout: it is served through writeable (read_fallback = writeable), or
    /// refused with 08006 (read_fallback = error), and both proxies serve normally once main thaws.
    /// (The login used to hang for as long as the replica was frozen.)
    func testNewLoginWhileMainIsFrozenIsBoundedByConnectTimeout() throws {
        let fallback = try startProxy(settings: [fastHealth, "connect_timeout = 1s"])
        let refusing = try startProxy(settings: [fastHealth, "connect_timeout = 1s", "read_fallback = error"])
        let early = try newLogin(fallback, "early")
        XCTAssertEqual(try early.query("SELECT inet_server_port()"), [[replica]])

        try freezeReplica()
        defer { thawReplica() }
        try waitUntilMainIsDown(fallback)
        try waitUntilMainIsDown(refusing)

        do {
            let client = try newLogin(fallback, "frozen")
            XCTAssertEqual(try client.query("SELECT inet_server_port(), pg_is_in_recovery()"), [[primary, "f"]])
        } catch {
            XCTFail("a new login while main is frozen: \(error)")
        }
        for attempt in 1...3 {
            XCTAssertThrowsError(try newLogin(refusing, "frozen-refused")) {
                XCTAssertEqual(($0 as? PQError)?.sqlState, "08006", "attempt \(attempt): \($0)")
                XCTAssertTrue("\($0)".contains("timed out logging in"), "attempt \(attempt): \($0)")
            }
        }
        // Each timed-out login's connection is closed (just after its client was answered): what
        // remains towards the replica is at most the health monitor's own login in progress.
        waitUntil("the timed-out logins' sockets towards the frozen replica closed") {
            HostileProc.localPorts(refusing.pid, connectedTo: [cluster.replicaPort]).count <= 1
        }
        // The session from before the freeze reads from the primary meanwhile.
        XCTAssertEqual(try early.query("SELECT inet_server_port()"), [[primary]])

        thawReplica()
        waitUntil("reads return to the replica", timeout: 60) {
            (try? early.query("SELECT inet_server_port()")) == [[replica]]
        }
        XCTAssertEqual(try newLogin(fallback, "thawed").query("SELECT inet_server_port()"), [[replica]])
        XCTAssertEqual(try newLogin(refusing, "thawed").query("SELECT inet_server_port()"), [[replica]])
    }
}
