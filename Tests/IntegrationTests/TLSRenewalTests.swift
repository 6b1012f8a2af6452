import Foundation
import XCTest

/// Renewed certificate files are served after a reload, without a restart.
final class TLSRenewalTests: ProxyTestCase {
    func testReloadPicksUpRenewedCertificate() throws {
        let first = try TLSTestCertificates()
        let renewed = try TLSTestCertificates()  // another CA: only a client trusting it accepts the new one
        let live = FileManager.default.temporaryDirectory.appendingPathComponent("pgsplit-live-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: live, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: live) }
        func install(_ certificates: TLSTestCertificates) throws {
            for name in ["server.crt", "server.key"] {
                let target = live.appendingPathComponent(name)
                try? FileManager.default.removeItem(at: target)
                try FileManager.default.copyItem(atPath: certificates.path(name), toPath: target.path)
                chmod(target.path, 0o600)
            }
        }
        try install(first)
        let proxy = try startProxy(settings: [
            "client_tls_sslmode = require",
            "client_tls_cert_file = \(live.appendingPathComponent("server.crt").path)",
            "client_tls_key_file = \(live.appendingPathComponent("server.key").path)",
        ])
        func connects(trusting certificates: TLSTestCertificates) -> Bool {
            let conninfo = "host=localhost port=\(proxy.port) dbname=app user=app_ro connect_timeout=30 "
                + "sslmode=verify-full sslrootcert=\(certificates.path("ca.crt"))"
            let result = runProcess(toolPath("psql"), ["-X", "-At", "-d", conninfo, "-c", "SELECT inet_server_port()"],
                                    environment: ["PGPASSWORD": "", "PGSSLMODE": "", "PGSSLROOTCERT": ""])
            return result.status == 0 && result.stdout.contains(replica)
        }
        XCTAssertTrue(connects(trusting: first))
        XCTAssertFalse(connects(trusting: renewed))

        try install(renewed)
        kill(proxy.pid, SIGHUP)
        waitUntil("the renewed certificate is served") { connects(trusting: renewed) }
        XCTAssertFalse(connects(trusting: first), "the old certificate is no longer served")
    }
}
