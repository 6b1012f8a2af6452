import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// TLS on both sides of pgsplit, with real psql / libpq and the real pair (started with ssl = on by
/// pg-pair.sh, its CA in DIR/tls/ca.crt). The proxy's own certificates are made here with openssl.
final class TLSTests: ProxyTestCase {
    private var certificates: TLSTestCertificates!

    override func setUpWithError() throws {
        try super.setUpWithError()
        certificates = try TLSTestCertificates()
    }

    override func tearDown() {
        certificates = nil
        super.tearDown()
    }

    /// The pair's CA; tests that need TLS on the backends skip when the pair runs without it.
    private func pairCA() throws -> String {
        let path = cluster.dir.appendingPathComponent("tls/ca.crt").path
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("the test pair has no TLS (\(path) missing): restart it with the current scripts/pg-pair.sh")
        }
        return path
    }

    private func tlsSettings(mode: String, ca: Bool = false) -> [String] {
        var lines = [
            "client_tls_sslmode = \(mode)",
            "client_tls_cert_file = \(certificates.path("server.crt"))",
            "client_tls_key_file = \(certificates.path("server.key"))",
        ]
        if ca { lines.append("client_tls_ca_file = \(certificates.path("ca.crt"))") }
        return lines
    }

    /// Runs psql against the proxy; returns (status, stdout, stderr).
    private func psql(_ proxy: ProxyProcess, user: String = "app_ro", _ extra: String, _ sql: String)
        -> (status: Int32, stdout: String, stderr: String) {
        let conninfo = "host=localhost port=\(proxy.port) dbname=app user=\(user) connect_timeout=30 \(extra)"
        return runProcess(toolPath("psql"), ["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql],
                          environment: ["PGPASSWORD": "", "PGSSLMODE": "", "PGSSLROOTCERT": ""])
    }

    private let sslOfThisBackend = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"

    func testVerifyFullClientAndTLSToTheBackendWhereAsked() throws {
        let pairCA = try pairCA()
        let proxy = try startProxy(settings: tlsSettings(mode: "require"), databases: """
            [database app]
            main = host=localhost port=\(cluster.replicaPort) dbname=app user=app_ro password=app_ro sslmode=verify-full sslrootcert=\(pairCA)
            writeable = host=127.0.0.1 port=\(cluster.primaryPort) user=app_rw password=app_rw sslmode=disable
            """)
        let ca = certificates.path("ca.crt")
        // The client verifies the proxy's certificate against the host name it dialled.
        let read = psql(proxy, "sslmode=verify-full sslrootcert=\(ca)", "\(sslOfThisBackend) AND inet_server_port() = \(replica)")
        XCTAssertEqual(read.status, 0, read.stderr)
        XCTAssertEqual(read.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "t", "main was asked for verify-full")
        let write = psql(proxy, "sslmode=verify-full sslrootcert=\(ca)", "/* pgsplit: writeable */ \(sslOfThisBackend) AND inet_server_port() = \(primary)")
        XCTAssertEqual(write.status, 0, write.stderr)
        XCTAssertEqual(write.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "f", "writeable was asked for sslmode=disable")

        // libpq from Swift: a pipeline of reads and writes over TLS, results intact.
        let conn = try PQConnection(proxy.conninfo(user: "app_rw", extra: "sslmode=verify-full sslrootcert=\(ca)").replacingOccurrences(of: "host=127.0.0.1", with: "host=localhost"))
        XCTAssertEqual(try conn.query("SELECT count(*), sum(length(repeat('x', g))) FROM generate_series(1, 2000) g"), [["2000", "2001000"]])
        conn.finish()

        // A client that does not trust the proxy's CA refuses it.
        let wrongCA = psql(proxy, "sslmode=verify-full sslrootcert=\(pairCA)", "SELECT 1")
        XCTAssertNotEqual(wrongCA.status, 0)
        XCTAssertTrue(wrongCA.stderr.contains("certificate verify failed"), wrongCA.stderr)
    }

    func testBackendRequireUsesTLSAndPreferUsesItWhenOffered() throws {
        _ = try pairCA()
        let proxy = try startProxy(databases: """
            [database app]
            main = host=127.0.0.1 port=\(cluster.replicaPort) dbname=app user=app_ro password=app_ro sslmode=require
            writeable = host=127.0.0.1 port=\(cluster.primaryPort) user=app_rw password=app_rw
            """)
        let conn = try proxy.connect()
        XCTAssertEqual(try conn.query(sslOfThisBackend), [["t"]], "sslmode=require to main")
        XCTAssertEqual(try conn.query("/* pgsplit: writeable */ \(sslOfThisBackend)"), [["t"]], "default prefer to writeable")
    }

    func testRequireRefusesAClientWithoutTLS() throws {
        let proxy = try startProxy(settings: tlsSettings(mode: "require"))
        XCTAssertThrowsError(try PQConnection(proxy.conninfo(extra: "sslmode=disable"))) { error in
            let e = error as? PQError
            XCTAssertEqual(e?.sqlState, "28000", "\(error)")
            XCTAssertTrue(e?.message.contains("requires TLS") ?? false, "\(error)")
            XCTAssertTrue(e?.message.contains("sslmode=require") ?? false, "the message says what to do: \(error)")
        }
        // The same client with TLS gets in.
        let conn = try PQConnection(proxy.conninfo(extra: "sslmode=require"))
        XCTAssertEqual(try conn.query("SELECT 1"), [["1"]])
    }

    func testPreferWithoutCertificateAnswersNo() throws {
        let proxy = try startProxy(settings: ["client_tls_sslmode = prefer"])
        let plain = psql(proxy, "sslmode=prefer", "SELECT 1")
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let required = psql(proxy, "sslmode=require", "SELECT 1")
        XCTAssertNotEqual(required.status, 0)
        XCTAssertTrue(required.stderr.contains("server does not support SSL"), required.stderr)
    }

    func testCertAuthenticationByCommonName() throws {
        let proxy = try startProxy(auth: "cert", settings: tlsSettings(mode: "verify-full", ca: true))
        let ca = certificates.path("ca.crt")
        func certificate(_ name: String) -> String {
            "sslmode=verify-full sslrootcert=\(ca) sslcert=\(certificates.path("\(name).crt")) sslkey=\(certificates.path("\(name).key"))"
        }
        let alice = psql(proxy, user: "alice", certificate("alice"), "SELECT current_user, inet_server_port()")
        XCTAssertEqual(alice.status, 0, alice.stderr)
        XCTAssertEqual(alice.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "app_ro|\(replica)")

        let mismatch = psql(proxy, user: "alice", certificate("bob"), "SELECT 1")
        XCTAssertNotEqual(mismatch.status, 0)
        XCTAssertTrue(mismatch.stderr.contains("certificate authentication failed for user \"alice\""), mismatch.stderr)
        XCTAssertThrowsError(try PQConnection(proxy.conninfo(user: "alice", extra: certificate("bob")).replacingOccurrences(of: "host=127.0.0.1", with: "host=localhost"))) { error in
            XCTAssertEqual((error as? PQError)?.sqlState, "28000", "\(error)")
        }

        // verify-full demands a certificate: without one the handshake itself fails.
        let none = psql(proxy, user: "alice", "sslmode=verify-full sslrootcert=\(ca)", "SELECT 1")
        XCTAssertNotEqual(none.status, 0)
        XCTAssertTrue(none.stderr.lowercased().contains("certificate") || none.stderr.contains("SSL"), none.stderr)
        XCTAssertTrue(proxy.isRunning)
    }

    func testBackendVerifyFullWithAWrongHostNameIsRefusedAtStartup() throws {
        let pairCA = try pairCA()
        let good = try makeProxy(databases: """
            [database app]
            main = host=localhost port=\(cluster.replicaPort) dbname=app user=app_ro password=app_ro sslmode=verify-full sslrootcert=\(pairCA)
            """)
        let accepted = good.runToExit(["--check"])
        XCTAssertEqual(accepted.status, 0, accepted.stderr)

        // Connect to the right address, but expect a name the certificate does not carry.
        let bad = try makeProxy(databases: """
            [database app]
            main = host=db.example.com hostaddr=127.0.0.1 port=\(cluster.replicaPort) dbname=app user=app_ro password=app_ro sslmode=verify-full sslrootcert=\(pairCA)
            """)
        for args in [["--check"], []] {
            let (status, stderr) = bad.runToExit(args)
            XCTAssertNotEqual(status, 0, stderr)
            XCTAssertTrue(stderr.contains("does not match host name \"db.example.com\""), stderr)
            XCTAssertTrue(stderr.contains("main"), "names the backend: \(stderr)")
        }

        // verify-ca checks the chain only: the same address is fine.
        let chainOnly = try makeProxy(databases: """
            [database app]
            main = host=db.example.com hostaddr=127.0.0.1 port=\(cluster.replicaPort) dbname=app user=app_ro password=app_ro sslmode=verify-ca sslrootcert=\(pairCA)
            """)
        let chainResult = chainOnly.runToExit(["--check"])
        XCTAssertEqual(chainResult.status, 0, chainResult.stderr)

        // A CA that did not sign the server's certificate.
        let wrongCA = try makeProxy(databases: """
            [database app]
            main = host=localhost port=\(cluster.replicaPort) dbname=app user=app_ro password=app_ro sslmode=verify-ca sslrootcert=\(certificates.path("ca.crt"))
            """)
        let wrongResult = wrongCA.runToExit(["--check"])
        XCTAssertNotEqual(wrongResult.status, 0)
        XCTAssertTrue(wrongResult.stderr.contains("could not be verified"), wrongResult.stderr)
    }

    /// SCRAM-SHA-256-PLUS on both sides: libpq insists on it towards the proxy, the proxy insists on
    /// it towards both servers. A proof computed over another certificate's hash would be refused by
    /// the other end ("channel binding check failed"), so each login that succeeds shows both ends
    /// hashed the same certificate.
    func testChannelBindingRequiredByTheClientAndTowardsTheBackends() throws {
        _ = try pairCA()
        let proxy = try startProxy(auth: "scram-sha-256", settings: tlsSettings(mode: "require"), databases: """
            [database app]
            main = host=127.0.0.1 port=\(cluster.replicaPort) dbname=app user=app_ro password=app_ro sslmode=require channel_binding=require
            writeable = host=127.0.0.1 port=\(cluster.primaryPort) user=app_rw password=app_rw sslmode=require channel_binding=require
            """)
        let env = ["PGPASSWORD": "app_rw", "PGSSLMODE": "", "PGSSLROOTCERT": "", "PGCHANNELBINDING": ""]
        func run(_ extra: String, _ sql: String, password: String = "app_rw") -> (status: Int32, stdout: String, stderr: String) {
            let conninfo = "host=localhost port=\(proxy.port) dbname=app user=app_rw connect_timeout=30 sslmode=require \(extra)"
            return runProcess(toolPath("psql"), ["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql],
                              environment: env.merging(["PGPASSWORD": password]) { $1 })
        }
        let read = run("channel_binding=require", "SELECT inet_server_port(), (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())")
        XCTAssertEqual(read.status, 0, read.stderr)
        XCTAssertEqual(read.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "\(replica)|t")
        let write = run("channel_binding=require", "/* pgsplit: writeable */ SELECT inet_server_port(), pg_is_in_recovery()")
        XCTAssertEqual(write.status, 0, write.stderr)
        XCTAssertEqual(write.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "\(primary)|f")
        // Binding does not let a wrong password in, and clients that do not bind still get in.
        let wrong = run("channel_binding=require", "SELECT 1", password: "nope")
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.stderr.contains("password authentication failed for user \"app_rw\""), wrong.stderr)
        for mode in ["prefer", "disable"] {
            let other = run("channel_binding=\(mode)", "SELECT 1")
            XCTAssertEqual(other.status, 0, "channel_binding=\(mode): \(other.stderr)")
        }

        // Without TLS there is nothing to bind to: libpq's require is refused, by libpq.
        let plain = try startProxy(auth: "scram-sha-256")
        let unbound = runProcess(toolPath("psql"), ["-X", "-At", "-d", "host=127.0.0.1 port=\(plain.port) dbname=app user=app_rw sslmode=disable channel_binding=require", "-c", "SELECT 1"],
                                 environment: env)
        XCTAssertNotEqual(unbound.status, 0)
        XCTAssertTrue(unbound.stderr.contains("channel binding"), unbound.stderr)
    }

    func testBackendChannelBindingRequireRefusesAnMD5LoginAtStartup() throws {
        _ = try pairCA()
        // bob's secret on the servers is md5: no SCRAM, so no channel binding.
        let proxy = try makeProxy(databases: """
            [database app]
            main = host=127.0.0.1 port=\(cluster.replicaPort) dbname=app user=bob password=bob-secret sslmode=require channel_binding=require
            """)
        let (status, stderr) = proxy.runToExit(["--check"])
        XCTAssertNotEqual(status, 0, stderr)
        XCTAssertTrue(stderr.contains("channel binding required but not supported by server's authentication request"), stderr)
        // The same login without the requirement is fine.
        let relaxed = try makeProxy(databases: """
            [database app]
            main = host=127.0.0.1 port=\(cluster.replicaPort) dbname=app user=bob password=bob-secret sslmode=require
            """)
        let accepted = relaxed.runToExit(["--check"])
        XCTAssertEqual(accepted.status, 0, accepted.stderr)
    }

    func testBackendRequireRefusesAServerWithoutTLS() throws {
        let fake = try FakePostgresServer() // answers SSLRequest with N
        defer { fake.stop() }
        let proxy = try makeProxy(databases: """
            [database app]
            main = host=127.0.0.1 port=\(fake.port) dbname=app user=app_ro password=app_ro sslmode=require
            """)
        let (status, stderr) = proxy.runToExit(["--check"])
        XCTAssertNotEqual(status, 0, stderr)
        XCTAssertTrue(stderr.contains("does not support SSL, but sslmode=require requires it"), stderr)
    }
}

/// A CA, a server certificate for localhost / 127.0.0.1 and client certificates for alice and bob.
final class TLSTestCertificates {
    let dir: URL

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("pgsplit-certs-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", path("ca.key"), "-out", path("ca.crt"), "-days", "3650", "-subj", "/CN=pgsplit test CA",
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        try issue("server", commonName: "localhost", altNames: "DNS:localhost,IP:127.0.0.1")
        try issue("alice", commonName: "alice", altNames: nil)
        try issue("bob", commonName: "bob", altNames: nil)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    private func issue(_ name: String, commonName: String, altNames: String?) throws {
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", "/CN=\(commonName)"])
        var extensions = "basicConstraints=CA:FALSE\n"
        if let altNames { extensions += "subjectAltName=\(altNames)\n" }
        try extensions.write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", path("\(name).csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"),
                     "-set_serial", "\(UInt32.random(in: 1...UInt32.max))", "-days", "3650",
                     "-extfile", path("\(name).ext"), "-out", path("\(name).crt")])
        // libpq refuses a client key that others can read; the proxy warns about its own.
        chmod(path("\(name).key"), 0o600)
    }

    private func openssl(_ args: [String]) throws {
        let result = runProcess(toolPath("openssl"), args)
        guard result.status == 0 else {
            throw PQError(message: "openssl \(args.first ?? "") failed: \(result.stderr)", sqlState: nil)
        }
    }
}
