import Foundation
import XCTest

/// Backend connections outlive their clients: reset with server_reset_query and handed to the next
/// client with the same backend, user and database. Which backend process answered is read from the
/// backend itself (pg_backend_pid()), and what the reset did from the replica's pg_stat_activity.
final class BackendPoolTests: ProxyTestCase {
    /// The main backend's process id and work_mem, as the replica reports them to this client.
    private func backendOf(_ conn: PQConnection) throws -> (pid: String, workMem: String) {
        let rows = try conn.query("SELECT pg_backend_pid(), current_setting('work_mem'), inet_server_port()")
        XCTAssertEqual(rows.first?[2], replica, "reads run on the replica")
        return (rows[0][0] ?? "", rows[0][1] ?? "")
    }

    /// The replica's view of one backend process: its last query and state, nil once it has gone.
    private func activity(of pid: String) throws -> [String?]? {
        let c = try cluster.superuser(.replica)
        defer { c.finish() }
        return try c.query("SELECT query, state FROM pg_stat_activity WHERE pid = \(pid)").first
    }

    func testALeavingClientsBackendIsResetThenServesTheNextClient() throws {
        // One loop: pools are per loop, and a second loop would take the next client.
        let proxy = try startProxy(settings: ["workers = 1"])
        let first = try proxy.connect()
        try first.exec("SET work_mem = '7MB'")
        let used = try backendOf(first)
        XCTAssertEqual(used.workMem, "7MB")
        first.finish()

        // The proxy resets the connection before it keeps it.
        try waitUntil("the left backend ran the reset query and sits idle") {
            try activity(of: used.pid) == ["DISCARD ALL", "idle"]
        }
        let second = try proxy.connect()
        defer { second.finish() }
        let reused = try backendOf(second)
        XCTAssertEqual(reused.pid, used.pid, "the next client got the kept backend connection")
        XCTAssertEqual(reused.workMem, "4MB", "nothing of the first client's session is left on it")
    }

    func testABackendWhoseSessionDefinedACustomSettingIsNotHandedOn() throws {
        // After DISCARD ALL, PostgreSQL still knows a custom setting's name: the next client would read
        // '' where a fresh connection reads NULL (and `current_setting('app.tenant', true)::int` fails).
        let proxy = try startProxy(settings: ["workers = 1"])
        let first = try proxy.connect()
        try first.exec("SET app.tenant = '42'")
        let used = try backendOf(first)
        first.finish()

        try waitUntil("the backend has gone") { try activity(of: used.pid) == nil }
        let second = try proxy.connect()
        defer { second.finish() }
        XCTAssertNotEqual(try backendOf(second).pid, used.pid)
        XCTAssertEqual(try second.query("SELECT current_setting('app.tenant', true) IS NULL, inet_server_port()"), [["t", replica]])
    }

    func testAClientLeavingInsideATransactionDoesNotHandItsBackendOn() throws {
        let proxy = try startProxy(settings: ["workers = 1"])
        let first = try proxy.connect()
        try first.exec("BEGIN READ ONLY")
        let used = try backendOf(first)
        first.finish()

        try waitUntil("the backend of the open transaction has gone") { try activity(of: used.pid) == nil }
        let second = try proxy.connect()
        defer { second.finish() }
        XCTAssertNotEqual(try backendOf(second).pid, used.pid)
    }

    func testWithPoolSizeZeroEveryClientGetsAFreshBackend() throws {
        let proxy = try startProxy(settings: ["workers = 1", "server_pool_size = 0"])
        let first = try proxy.connect()
        let used = try backendOf(first)
        first.finish()

        try waitUntil("the left backend has gone") { try activity(of: used.pid) == nil }
        let second = try proxy.connect()
        defer { second.finish() }
        XCTAssertNotEqual(try backendOf(second).pid, used.pid)
    }

    func testAResetQueryThatFailsClosesTheConnectionInsteadOfKeepingIt() throws {
        let proxy = try startProxy(settings: ["workers = 1", "server_reset_query = SELECT no_such_function()"])
        let first = try proxy.connect()
        let used = try backendOf(first)
        first.finish()

        try waitUntil("the backend whose reset failed has gone") { try activity(of: used.pid) == nil }
        let second = try proxy.connect()
        defer { second.finish() }
        XCTAssertNotEqual(try backendOf(second).pid, used.pid)
    }

    func testAKeptBackendIdlePastServerIdleTimeoutIsClosed() throws {
        let proxy = try startProxy(settings: ["workers = 1", "server_idle_timeout = 1s"])
        let first = try proxy.connect()
        let used = try backendOf(first)
        first.finish()

        try waitUntil("the kept backend was reset") { try activity(of: used.pid) == ["DISCARD ALL", "idle"] }
        try waitUntil("the idle backend was closed after server_idle_timeout") { try activity(of: used.pid) == nil }
    }

    func testABackendOlderThanServerLifetimeIsClosedWhenItsClientLeaves() throws {
        let proxy = try startProxy(settings: ["workers = 1", "server_lifetime = 1s"])
        let first = try proxy.connect()
        let used = try backendOf(first)
        // Let the backend connection outlive server_lifetime while its client still holds it.
        Thread.sleep(forTimeInterval: 1.2)
        XCTAssertNotNil(try activity(of: used.pid), "a backend in use is not closed for its age")
        first.finish()

        try waitUntil("the old backend was closed instead of kept") { try activity(of: used.pid) == nil }
    }
}
