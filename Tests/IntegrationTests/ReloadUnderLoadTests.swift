import Foundation
import XCTest

/// The writeable connection changed twice by SIGHUP while pgbench's read-write script runs through
/// the proxy: no transaction fails, and every one of them reached the primary.
final class ReloadUnderLoadTests: ProxyTestCase {
    func testWriteableChangedLiveUnderPgbench() throws {
        let proxy = try startProxy()
        let env = ["PGPASSWORD": "app_rw", "PGCONNECT_TIMEOUT": "30"]
        let initResult = runProcess(toolPath("pgbench"), ["-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p", "\(proxy.port)",
                                                          "-U", "app_rw", "app"], environment: env)
        XCTAssertEqual(initResult.status, 0, initResult.stderr)
        let before = Int(try onPrimary("SELECT count(*) FROM pgbench_history").first?.first.flatMap { $0 } ?? "") ?? -1

        // Rewrite the writeable line between two spellings of the same primary while pgbench runs.
        let original = proxy.config
        let byIP = "writeable = host=127.0.0.1 port=\(cluster.primaryPort) user=app_rw password=app_rw"
        let byName = "writeable = host=localhost port=\(cluster.primaryPort) user=app_rw password=app_rw"
        XCTAssertTrue(original.contains(byIP))
        let configURL = proxy.configURL
        let pid = proxy.pid
        let reloader = Thread {
            for round in 0..<4 {
                Thread.sleep(forTimeInterval: 1)
                let text = round % 2 == 0 ? original.replacingOccurrences(of: byIP, with: byName) : original
                try? text.write(to: configURL, atomically: true, encoding: .utf8)
                kill(pid, SIGHUP)
            }
        }
        reloader.start()
        let run = runProcess(toolPath("pgbench"), ["-n", "-c", "4", "-j", "2", "-T", "6", "-h", "127.0.0.1",
                                                   "-p", "\(proxy.port)", "-U", "app_rw", "app"], environment: env)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertTrue(run.stdout.contains("number of failed transactions: 0 "), run.stdout)
        let processed = run.stdout.split(separator: "\n").first { $0.contains("number of transactions actually processed") }
            .flatMap { Int($0.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)) } ?? -1
        let after = Int(try onPrimary("SELECT count(*) FROM pgbench_history").first?.first.flatMap { $0 } ?? "") ?? -1
        XCTAssertGreaterThan(processed, 0)
        XCTAssertEqual(after - before, processed, "every committed transaction is on the primary")
        waitUntil("four reloads are logged") { proxy.stderr.components(separatedBy: "configuration reloaded").count > 4 }
        print("reloads under pgbench: \(processed) transactions, 0 failed")
    }
}
