import Foundation
import XCTest

/// database_routing = on: route.USER lines choose a backend per user; other users use main.
final class DatabaseRoutingTests: ProxyTestCase {
    func testUsersAreRoutedToTheirBackends() throws {
        let proxy = try startProxy(databases: """
            [database app]
            main = host=127.0.0.1 port=\(cluster.replicaPort) dbname=app user=app_ro password=app_ro
            database_routing = on
            route.alice = port=\(cluster.primaryPort)
            """)
        let alice = try proxy.connect(user: "alice")
        let carol = try proxy.connect(user: "carol")
        XCTAssertEqual(try alice.query("SELECT inet_server_port(), pg_is_in_recovery()"), [[primary, "f"]])
        XCTAssertEqual(try carol.query("SELECT inet_server_port(), pg_is_in_recovery()"), [[replica, "t"]])
        // Routing is per user, not per statement: alice's writes go to her backend too, carol's to main.
        XCTAssertEqual(try alice.query("CREATE TEMP TABLE dr_t(x int); INSERT INTO dr_t VALUES (1) RETURNING inet_server_port()"),
                       [[primary]])
        XCTAssertThrowsError(try carol.exec("CREATE TEMP TABLE dr_t(x int)")) { e in
            XCTAssertEqual((e as? PQError)?.sqlState, "25006", "\(e)")
        }
    }
}
