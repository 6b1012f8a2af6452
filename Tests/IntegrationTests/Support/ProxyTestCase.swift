import Foundation
import XCTest

/// Base class for tests that run a pgsplit in front of the test pair.
class ProxyTestCase: XCTestCase {
    var cluster: TestCluster!
    private var proxies: [ProxyProcess] = []

    override func setUpWithError() throws {
        try super.setUpWithError()
        cluster = try TestCluster.shared()
    }

    override func tearDown() {
        let failed = (testRun?.failureCount ?? 0) + (testRun?.unexpectedExceptionCount ?? 0) > 0
        for p in proxies {
            p.stop()
            if failed {
                print("---- pgsplit stderr (\(p.dir.lastPathComponent)) ----\n\(p.stderr.suffix(4000))\n----")
            }
            p.cleanUp()
        }
        proxies = []
        super.tearDown()
    }

    /// A proxy with the given config (not started).
    func makeProxy(auth: String = "trust", settings: [String] = [], databases: String? = nil,
                   users: [(String, String)] = ProxyProcess.defaultUsers, port: Int? = nil) throws -> ProxyProcess {
        let p = try ProxyProcess(auth: auth, settings: settings,
                                 databases: databases ?? ProxyProcess.splitDatabase(cluster), users: users, port: port)
        proxies.append(p)
        return p
    }

    /// A started proxy (main = replica as app_ro, writeable = primary as app_rw unless `databases` says otherwise).
    func startProxy(auth: String = "trust", settings: [String] = [], databases: String? = nil,
                    users: [(String, String)] = ProxyProcess.defaultUsers, port: Int? = nil) throws -> ProxyProcess {
        let p = try makeProxy(auth: auth, settings: settings, databases: databases, users: users, port: port)
        try p.start()
        return p
    }

    /// (Re)creates `name (id serial primary key, v text)` on the primary as app_rw and waits until
    /// the replica has it.
    func makeTable(_ name: String) throws {
        let rw = try cluster.appRW()
        defer { rw.finish() }
        try rw.exec("DROP TABLE IF EXISTS \(name)")
        try rw.exec("CREATE TABLE \(name) (id serial PRIMARY KEY, v text)")
        try cluster.waitForReplica()
    }

    /// A superuser query on the primary (the source of truth for what was written).
    func onPrimary(_ sql: String) throws -> [[String?]] {
        let c = try cluster.superuser(.primary)
        defer { c.finish() }
        return try c.query(sql)
    }

    var primary: String { "\(cluster.primaryPort)" }
    var replica: String { "\(cluster.replicaPort)" }

    /// A unique marker for statements and rows of one test.
    func marker(_ prefix: String = "m") -> String {
        "\(prefix)_\(UInt32.random(in: 0...UInt32.max))"
    }
}
