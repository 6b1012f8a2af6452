import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A client that vanishes mid-transaction leaves no open transaction on the primary, and its
/// uncommitted row is gone.
final class ClientVanishTests: ProxyTestCase {
    private func idleInTransaction(_ m: String) throws -> Int {
        let rows = try onPrimary("""
            SELECT count(*) FROM pg_stat_activity
            WHERE state LIKE 'idle in transaction%' AND query LIKE '%\(m)%' AND pid <> pg_backend_pid()
            """)
        return Int(rows.first?.first.flatMap { $0 } ?? "0") ?? 0
    }

    private func anyIdleInTransaction() throws -> Int {
        let rows = try onPrimary("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND datname = 'app'")
        return Int(rows.first?.first.flatMap { $0 } ?? "0") ?? 0
    }

    func testKilledPsqlLeavesNoOpenTransaction() throws {
        try makeTable("cv_items")
        let proxy = try startProxy()
        let m = marker("psqlkill")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: toolPath("psql"))
        p.arguments = ["-X", "-q", proxy.conninfo()]
        let input = Pipe()
        p.standardInput = input
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        input.fileHandleForWriting.write(Data("BEGIN;\nINSERT INTO cv_items(v) VALUES ('\(m)');\n".utf8))
        waitUntil("psql's transaction open on the primary") { (try? idleInTransaction(m)) == 1 }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        waitUntil("no idle-in-transaction session left on the primary") {
            (try? idleInTransaction(m)) == 0 && (try? anyIdleInTransaction()) == 0
        }
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM cv_items WHERE v = '\(m)'"), [["0"]])
        // The proxy still serves others.
        XCTAssertEqual(try proxy.connect().query("SELECT inet_server_port()"), [[replica]])
    }

    func testShutDownSocketLeavesNoOpenTransaction() throws {
        try makeTable("cv_items2")
        let proxy = try startProxy()
        let m = marker("sockdown")
        let conn = try proxy.connect()
        try conn.exec("BEGIN")
        try conn.exec("INSERT INTO cv_items2(v) VALUES ('\(m)')")
        waitUntil("transaction open on the primary") { (try? idleInTransaction(m)) == 1 }
        shutdown(conn.socketFD, Int32(SHUT_RDWR))
        waitUntil("no idle-in-transaction session left on the primary") {
            (try? idleInTransaction(m)) == 0 && (try? anyIdleInTransaction()) == 0
        }
        conn.finish()
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM cv_items2 WHERE v = '\(m)'"), [["0"]])
        XCTAssertEqual(try proxy.connect().query("SELECT inet_server_port()"), [[replica]])
    }
}
