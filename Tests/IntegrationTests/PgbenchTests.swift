import Foundation
import XCTest

/// pgbench through the proxy: initialisation, then the select-only and the default tpcb-like
/// scripts in simple, extended and prepared modes, several clients each. Zero failures, every
/// transaction processed, and the backends' logs show where the work ran.
final class PgbenchTests: ProxyTestCase {
    private let clients = 4
    private let selectTransactions = 250 // per client
    private let tpcbTransactions = 100 // per client

    private struct Outcome {
        var processed: Int
        var expected: Int
        var failed: Int
    }

    private func pgbench(_ proxy: ProxyProcess, _ args: [String], file: StaticString = #filePath,
                         line: UInt = #line) throws -> String {
        let result = runProcess(toolPath("pgbench"),
                                args + ["-h", "127.0.0.1", "-p", "\(proxy.port)", "-U", "app_rw", "app"],
                                environment: ["PGPASSWORD": "app_rw", "PGCONNECT_TIMEOUT": "30"])
        XCTAssertEqual(result.status, 0, "pgbench \(args.joined(separator: " ")):\n\(result.stdout)\n\(result.stderr)",
                       file: file, line: line)
        return result.stdout + "\n" + result.stderr
    }

    /// Parses "number of transactions actually processed: X/Y" and "number of failed transactions: N".
    private func parse(_ output: String) -> Outcome? {
        var out = Outcome(processed: -1, expected: -1, failed: 0)
        for line in output.split(separator: "\n") {
            if let r = line.range(of: "number of transactions actually processed: ") {
                let parts = line[r.upperBound...].split(separator: "/")
                guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1].prefix { $0.isNumber }) else { return nil }
                out.processed = a
                out.expected = b
            }
            if let r = line.range(of: "number of failed transactions: ") {
                out.failed = Int(line[r.upperBound...].prefix { $0.isNumber }) ?? -1
            }
        }
        return out.processed >= 0 ? out : nil
    }

    func testPgbenchThroughTheProxy() throws {
        let proxy = try startProxy()
        let initResult = runProcess(toolPath("pgbench"),
                                    ["-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p", "\(proxy.port)", "-U", "app_rw", "app"],
                                    environment: ["PGPASSWORD": "app_rw", "PGCONNECT_TIMEOUT": "30"])
        guard initResult.status == 0 else {
            XCTFail("pgbench -i failed (\(initResult.status)):\n\(initResult.stdout)\n\(initResult.stderr)")
            return
        }
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM pgbench_accounts"), [["100000"]])
        try cluster.waitForReplica()

        for mode in ["simple", "extended", "prepared"] {
            let r0 = cluster.logOffset(.replica)
            let p0 = cluster.logOffset(.primary)
            let selectOut = try pgbench(proxy, ["-n", "-S", "-M", mode, "-c", "\(clients)", "-j", "2",
                                                "-t", "\(selectTransactions)"])
            guard let s = parse(selectOut) else {
                XCTFail("cannot parse pgbench -S (\(mode)) output:\n\(selectOut)")
                continue
            }
            XCTAssertEqual(s.processed, clients * selectTransactions, "-S \(mode)")
            XCTAssertEqual(s.expected, clients * selectTransactions, "-S \(mode)")
            XCTAssertEqual(s.failed, 0, "-S \(mode)")
            XCTAssertFalse(cluster.loggedStatements(.replica, containing: "FROM pgbench_accounts", since: r0).isEmpty,
                           "-S \(mode): the selects should have run on the replica")
            XCTAssertTrue(cluster.loggedStatements(.primary, containing: "SELECT abalance FROM pgbench_accounts", since: p0).isEmpty,
                          "-S \(mode): no select should have run on the primary")

            let before = Int(try onPrimary("SELECT count(*) FROM pgbench_history").first?.first.flatMap { $0 } ?? "0") ?? 0
            let tpcbOut = try pgbench(proxy, ["-n", "-M", mode, "-c", "\(clients)", "-j", "2", "-t", "\(tpcbTransactions)"])
            guard let t = parse(tpcbOut) else {
                XCTFail("cannot parse pgbench tpcb-like (\(mode)) output:\n\(tpcbOut)")
                continue
            }
            XCTAssertEqual(t.processed, clients * tpcbTransactions, "tpcb \(mode)")
            XCTAssertEqual(t.expected, clients * tpcbTransactions, "tpcb \(mode)")
            XCTAssertEqual(t.failed, 0, "tpcb \(mode)")
            // Every committed tpcb transaction inserted one history row on the primary.
            let after = Int(try onPrimary("SELECT count(*) FROM pgbench_history").first?.first.flatMap { $0 } ?? "0") ?? 0
            XCTAssertEqual(after - before, clients * tpcbTransactions, "tpcb \(mode): history rows on the primary")
        }
    }

    /// `pgbench -i --unlogged-tables`: a standby cannot read unlogged tables, so the select-only script
    /// runs on the primary (it used to abort at once: "could not count number of branches", 0A000).
    func testUnloggedPgbenchTablesAreReadOnThePrimary() throws {
        let proxy = try startProxy()
        _ = try pgbench(proxy, ["-i", "-s", "1", "-q", "--unlogged-tables"])
        try cluster.waitForReplica()
        for mode in ["simple", "prepared"] {
            let p0 = cluster.logOffset(.primary)
            let out = try pgbench(proxy, ["-n", "-S", "-M", mode, "-c", "2", "-j", "2", "-t", "50"])
            let outcome = parse(out)
            XCTAssertEqual(outcome?.processed, 100, "-S \(mode) on unlogged tables:\n\(out)")
            XCTAssertEqual(outcome?.failed, 0, "-S \(mode)")
            XCTAssertFalse(cluster.loggedStatements(.primary, containing: "FROM pgbench_accounts", since: p0).isEmpty,
                           "-S \(mode): the selects should have run on the primary")
        }
        // Logged again (pgbench -i drops and creates them): the selects go back to the replica.
        _ = try pgbench(proxy, ["-i", "-s", "1", "-q"])
        try cluster.waitForReplica()
        let r0 = cluster.logOffset(.replica)
        let out = try pgbench(proxy, ["-n", "-S", "-c", "2", "-j", "2", "-t", "50"])
        XCTAssertEqual(parse(out)?.failed, 0, out)
        XCTAssertFalse(cluster.loggedStatements(.replica, containing: "FROM pgbench_accounts", since: r0).isEmpty,
                       "logged tables are read on the replica again")
    }
}
