import Foundation
import XCTest

/// Startup checks: pgsplit refuses a bad configuration or bad backends with a non-zero exit and a
/// one-line reason on stderr; `--check` exits 0 on a good configuration.
final class RefusalTests: ProxyTestCase {
    func testCheckAcceptsAGoodConfig() throws {
        let proxy = try makeProxy()
        let (status, stderr) = proxy.runToExit(["--check"])
        XCTAssertEqual(status, 0, stderr)
    }

    func testWriteableWithDatabaseRoutingIsRefused() throws {
        let proxy = try makeProxy(databases: ProxyProcess.splitDatabase(cluster, extra: "database_routing = on"))
        for args in [["--check"], []] {
            let (status, stderr) = proxy.runToExit(args)
            XCTAssertNotEqual(status, 0, stderr)
            let s = stderr.lowercased()
            XCTAssertTrue(s.contains("routing") && s.contains("writeable"), "reason should name both: \(stderr)")
        }
    }

    func testEngineMismatchIsRefused() throws {
        let fake = try FakePostgresServer()
        defer { fake.stop() }
        let proxy = try makeProxy(databases: """
            [database app]
            main = host=127.0.0.1 port=\(cluster.replicaPort) dbname=app user=app_ro password=app_ro
            writeable = host=127.0.0.1 port=\(fake.port) user=app_rw password=app_rw sslmode=disable
            """)
        let (status, stderr) = proxy.runToExit([])
        XCTAssertNotEqual(status, 0, stderr)
        XCTAssertTrue(stderr.contains("CockroachDB"), "reason should name CockroachDB: \(stderr)")
        XCTAssertGreaterThan(fake.connections, 0, "pgsplit should have asked the fake server")
        let check = proxy.runToExit(["--check"])
        XCTAssertNotEqual(check.status, 0, check.stderr)
        XCTAssertTrue(check.stderr.contains("CockroachDB"), check.stderr)
    }

    func testUnreachableBackendIsRefused() throws {
        let closed = try freePort() // nothing listens there
        let proxy = try makeProxy(databases: """
            [database app]
            main = host=127.0.0.1 port=\(cluster.replicaPort) dbname=app user=app_ro password=app_ro
            writeable = host=127.0.0.1 port=\(closed) user=app_rw password=app_rw
            """)
        let (status, stderr) = proxy.runToExit([])
        XCTAssertNotEqual(status, 0, stderr)
        XCTAssertTrue(stderr.contains("writeable") || stderr.contains("\(closed)"),
                      "reason should name the backend: \(stderr)")
    }

    func testUnreachableMainIsRefused() throws {
        let closed = try freePort()
        let proxy = try makeProxy(databases: """
            [database app]
            main = host=127.0.0.1 port=\(closed) dbname=app user=app_ro password=app_ro
            """)
        let (status, stderr) = proxy.runToExit(["--check"])
        XCTAssertNotEqual(status, 0, stderr)
        XCTAssertTrue(stderr.contains("main") || stderr.contains("\(closed)"), "reason should name the backend: \(stderr)")
    }

    func testWrongBackendPasswordIsRefusedWithTheServersAnswer() throws {
        let proxy = try makeProxy(databases: """
            [database app]
            main = host=127.0.0.1 port=\(cluster.replicaPort) dbname=app user=app_ro password=app_ro
            writeable = host=127.0.0.1 port=\(cluster.primaryPort) user=app_rw password=not-the-password
            """)
        let (status, stderr) = proxy.runToExit([])
        XCTAssertNotEqual(status, 0, stderr)
        XCTAssertTrue(stderr.contains("28P01") || stderr.contains("password authentication failed"),
                      "reason should carry the server's answer: \(stderr)")
    }
}
