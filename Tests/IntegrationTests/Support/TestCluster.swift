import Foundation
import XCTest

/// The PostgreSQL primary + streaming replica the integration tests run against.
///
/// `scripts/test` starts the pair and passes PGSPLIT_TEST_PRIMARY_PORT, PGSPLIT_TEST_REPLICA_PORT and
/// PGSPLIT_TEST_DIR. Without them (a bare `swift test`) the pair is started here with
/// `scripts/pg-pair.sh start var/test 25432 25433` and stopped when the test process exits.
final class TestCluster: Sendable {
    enum Server: String, Sendable {
        case primary, replica
    }

    let primaryPort: Int
    let replicaPort: Int
    /// The pair's folder: data, unix sockets (`sock/`), logs (`primary.log`, `replica.log`).
    let dir: URL

    /// The repository root (found from this source file's location).
    static let repoRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent() // Support
        .deletingLastPathComponent() // IntegrationTests
        .deletingLastPathComponent() // Tests
        .deletingLastPathComponent()

    private static let startup: Result<TestCluster, PQError> = {
        let env = ProcessInfo.processInfo.environment
        if let p = env["PGSPLIT_TEST_PRIMARY_PORT"].flatMap(Int.init),
           let r = env["PGSPLIT_TEST_REPLICA_PORT"].flatMap(Int.init),
           let d = env["PGSPLIT_TEST_DIR"], !d.isEmpty {
            return .success(TestCluster(primaryPort: p, replicaPort: r, dir: URL(fileURLWithPath: d)))
        }
        let dir = repoRoot.appendingPathComponent("var/test")
        let script = repoRoot.appendingPathComponent("scripts/pg-pair.sh").path
        let result = runProcess(script, ["start", dir.path, "25432", "25433"])
        guard result.status == 0 else {
            return .failure(PQError(message: "pg-pair.sh start failed (\(result.status)): \(result.stderr)", sqlState: nil))
        }
        atexit {
            let root = TestCluster.repoRoot
            _ = runProcess(root.appendingPathComponent("scripts/pg-pair.sh").path,
                           ["stop", root.appendingPathComponent("var/test").path])
        }
        return .success(TestCluster(primaryPort: 25432, replicaPort: 25433, dir: dir))
    }()

    /// The running pair; throws (failing the test) when it could not be started.
    static func shared() throws -> TestCluster {
        try startup.get()
    }

    init(primaryPort: Int, replicaPort: Int, dir: URL) {
        self.primaryPort = primaryPort
        self.replicaPort = replicaPort
        self.dir = dir
    }

    func port(_ server: Server) -> Int {
        server == .primary ? primaryPort : replicaPort
    }

    var socketDir: String { dir.appendingPathComponent("sock").path }

    /// Superuser `postgres` over the server's unix socket (trust).
    func superuserConninfo(_ server: Server, dbname: String = "app") -> String {
        "host=\(socketDir) port=\(port(server)) user=postgres dbname=\(dbname)"
    }

    /// A TCP (md5-authenticated) connection string to one of the servers.
    func tcpConninfo(_ server: Server, user: String, password: String, dbname: String = "app") -> String {
        "host=127.0.0.1 port=\(port(server)) user=\(user) password=\(password) dbname=\(dbname)"
    }

    func superuser(_ server: Server, dbname: String = "app") throws -> PQConnection {
        try PQConnection(superuserConninfo(server, dbname: dbname))
    }

    /// The writer role on the primary (tables it creates are readable by app_ro and writable by the client users).
    func appRW() throws -> PQConnection {
        try PQConnection(tcpConninfo(.primary, user: "app_rw", password: "app_rw"))
    }

    /// Waits until the replica has replayed everything the primary has written so far.
    func waitForReplica(timeout: TimeInterval = 60) throws {
        let p = try superuser(.primary)
        let r = try superuser(.replica)
        defer { p.finish(); r.finish() }
        // The insert position: with synchronous_commit = off a commit may not be flushed yet.
        guard let target = try p.scalar("SELECT pg_current_wal_insert_lsn()") else { return }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try r.scalar("SELECT pg_last_wal_replay_lsn() >= '\(target)'::pg_lsn") == "t" { return }
            usleep(20_000)
        }
        throw PQError(message: "replica did not replay up to \(target) within \(timeout)s", sqlState: nil)
    }

    // MARK: statement logs (log_statement = all)

    func logURL(_ server: Server) -> URL {
        dir.appendingPathComponent("\(server.rawValue).log")
    }

    /// The current size of a server's log, to read only what comes after it.
    func logOffset(_ server: Server) -> UInt64 {
        let attrs = try? FileManager.default.attributesOfItem(atPath: logURL(server).path)
        return (attrs?[.size] as? NSNumber)?.uint64Value ?? 0
    }

    /// A server's log from `offset` on.
    func log(_ server: Server, since offset: UInt64 = 0) -> String {
        guard let h = FileHandle(forReadingAtPath: logURL(server).path) else { return "" }
        defer { try? h.close() }
        try? h.seek(toOffset: offset)
        let data = (try? h.readToEnd()) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Log lines `statement: ...` (and extended-protocol `execute ...:`) containing `marker`.
    func loggedStatements(_ server: Server, containing marker: String, since offset: UInt64 = 0) -> [String] {
        log(server, since: offset).split(separator: "\n").map(String.init).filter {
            $0.contains(marker) && ($0.contains("LOG:  statement:") || $0.contains("LOG:  execute "))
        }
    }
}

/// Runs a program to completion, collecting its output.
@discardableResult
func runProcess(_ path: String, _ args: [String], environment: [String: String]? = nil,
                stdin: String? = nil) -> (status: Int32, stdout: String, stderr: String) {
    // posix_spawn + waitpid rather than Foundation's Process: its waitUntilExit was seen to hang
    // forever on a child that had already exited.
    let tmp = FileManager.default.temporaryDirectory
    let base = tmp.appendingPathComponent("pgsplit-run-\(UUID().uuidString)").path
    let (inPath, outPath, errPath) = (base + ".in", base + ".out", base + ".err")
    defer { unlink(inPath); unlink(outPath); unlink(errPath) }
    FileManager.default.createFile(atPath: inPath, contents: Data((stdin ?? "").utf8))
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, stdin == nil ? "/dev/null" : inPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let merged = ProcessInfo.processInfo.environment.merging(environment ?? [:]) { _, new in new }
    let envp: [UnsafeMutablePointer<CChar>?] = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { envp.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
    guard rc == 0 else { return (-1, "", "cannot run \(path): error \(rc)") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        if errno != EINTR { return (-1, "", "waitpid \(path): errno \(errno)") }
    }
    let o = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    let e = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    let exited = status & 0x7f == 0
    return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), o, e)
}

/// Polls `condition` until it holds; a hang guard, never a timing assertion.
func waitUntil(_ what: String, timeout: TimeInterval = 30, interval: TimeInterval = 0.05,
               file: StaticString = #filePath, line: UInt = #line, _ condition: () throws -> Bool) rethrows {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return }
        Thread.sleep(forTimeInterval: interval)
    }
    XCTFail("gave up waiting (\(Int(timeout)) s): \(what)", file: file, line: line)
}

/// Where a program lives: the PostgreSQL 15 binaries first, then PATH.
func toolPath(_ name: String) -> String {
    let pg = "/usr/lib/postgresql/15/bin/\(name)"
    if FileManager.default.isExecutableFile(atPath: pg) { return pg }
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
        let p = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return "/usr/bin/\(name)"
}
