import Foundation
import XCTest

/// `so_reuseport = on`: several pgsplit processes share one listening address.
final class ReusePortTests: ProxyTestCase {
    /// A database whose reads go to `port`, so a read tells which process served the client.
    private func database(readingFrom port: Int) -> String {
        """
        [database app]
        main = host=127.0.0.1 port=\(port) dbname=app user=app_ro password=app_ro
        """
    }

    /// Two processes with so_reuseport on the same port both serve clients (one reads from the
    /// replica, the other from the primary, so the backends tell them apart); a third without the
    /// key cannot bind; when one process stops, the other serves every new client.
    func testTwoProcessesShareOnePort() throws {
        let first = try startProxy(settings: ["so_reuseport = on"], databases: database(readingFrom: cluster.replicaPort))
        let second = try startProxy(settings: ["so_reuseport = on"], databases: database(readingFrom: cluster.primaryPort),
                                    port: first.port)

        let without = try makeProxy(databases: database(readingFrom: cluster.replicaPort), port: first.port)
        let refused = without.runToExit(timeout: 60)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("Address already in use"), refused.stderr)

        // The kernel spreads connections by their addresses: 32 clients reach both processes
        // unless something is wrong (all on one: a chance of 2^-31).
        var clients: [PQConnection] = []
        var servedBy: [String: Int] = [:]
        for _ in 0..<32 {
            let client = try first.connect()
            clients.append(client)
            servedBy[try client.scalar("SELECT inet_server_port()") ?? "?", default: 0] += 1
        }
        XCTAssertEqual(Set(servedBy.keys), [replica, primary], "clients per backend port: \(servedBy)")
        XCTAssertEqual(servedBy.values.reduce(0, +), 32)
        clients.forEach { $0.finish() }

        XCTAssertEqual(first.stop(), 0)
        for _ in 0..<8 {
            let client = try second.connect()
            XCTAssertEqual(try client.scalar("SELECT inet_server_port()"), primary)
            client.finish()
        }
    }
}
