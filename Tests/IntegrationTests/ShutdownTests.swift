import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM and SIGINT shut pgsplit down cleanly: exit status 0.
final class ShutdownTests: ProxyTestCase {
    func testSIGTERMExitsZero() throws {
        let proxy = try startProxy()
        let conn = try proxy.connect()
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[replica]])
        conn.finish()
        XCTAssertEqual(proxy.stop(signal: SIGTERM), 0, proxy.stderr)
    }

    func testSIGTERMWithAnIdleClientExitsZero() throws {
        let proxy = try startProxy()
        let conn = try proxy.connect()
        XCTAssertEqual(try conn.query("SELECT 1"), [["1"]])
        XCTAssertEqual(proxy.stop(signal: SIGTERM), 0, proxy.stderr)
        conn.finish()
    }

    func testSIGINTExitsZero() throws {
        let proxy = try startProxy()
        XCTAssertEqual(proxy.stop(signal: SIGINT), 0, proxy.stderr)
    }
}
