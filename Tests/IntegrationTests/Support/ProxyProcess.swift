import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A pgsplit process for one test: its own temp folder with `proxy.conf` and `users.txt`, its own
/// listen port below 32768, stderr captured to `stderr.log` in that folder.
final class ProxyProcess {
    /// The users every test proxy knows (plain passwords, so the proxy can also log in as them).
    static let defaultUsers: [(String, String)] = [
        ("alice", "alice-secret"), ("bob", "bob-secret"), ("carol", "carol-secret"),
        ("admin", "admin-secret"), ("app_rw", "app_rw"), ("app_ro", "app_ro"),
    ]

    let dir: URL
    let port: Int
    let configURL: URL
    let stderrURL: URL
    private var process: Process?

    /// The pgsplit binary: PGSPLIT_BIN, else `pgsplit` beside the test bundle in the build folder.
    static var binaryPath: String {
        if let b = ProcessInfo.processInfo.environment["PGSPLIT_BIN"], !b.isEmpty { return b }
        var candidates: [URL] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
        candidates.append(Bundle.main.bundleURL)
        for c in candidates {
            // The .xctest bundle may be a folder (…/debug/X.xctest/Contents/…) or a file in …/debug.
            var d = c
            for _ in 0..<5 {
                let p = d.appendingPathComponent("pgsplit").path
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue,
                   FileManager.default.isExecutableFile(atPath: p) {
                    return p
                }
                d = d.deletingLastPathComponent()
            }
        }
        return TestCluster.repoRoot.appendingPathComponent(".build/debug/pgsplit").path
    }

    /// Writes the config. `config` is the text after the `[pgsplit]` section's listen/auth lines:
    /// pass the `[database ...]` sections (and any extra `[pgsplit]` keys through `settings`).
    init(auth: String = "trust", settings: [String] = [], databases: String,
         users: [(String, String)] = ProxyProcess.defaultUsers, port: Int? = nil) throws {
        let base = FileManager.default.temporaryDirectory
            .appendingPathComponent("pgsplit-it-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        dir = base
        self.port = try port ?? freePort()
        configURL = base.appendingPathComponent("proxy.conf")
        stderrURL = base.appendingPathComponent("stderr.log")
        var text = """
        [pgsplit]
        listen = 127.0.0.1:\(self.port)
        auth_type = \(auth)
        auth_file = users.txt
        admin_users = admin

        """
        // Routing tests read right after writing and expect main: read-your-writes (on by default)
        // has tests of its own that turn it on.
        if !settings.contains(where: { $0.hasPrefix("read_your_writes") }) { text += "read_your_writes = off\n" }
        // Two loops unless a test says otherwise, whatever the machine's default: clients, cancel
        // requests and pools then cross loops as they do on bigger machines.
        if !settings.contains(where: { $0.hasPrefix("workers") }) { text += "workers = 2\n" }
        for s in settings { text += s + "\n" }
        text += "\n" + databases + "\n"
        try text.write(to: configURL, atomically: true, encoding: .utf8)
        let usersText = users.map { "\"\($0.0)\" \"\($0.1)\"" }.joined(separator: "\n") + "\n"
        try usersText.write(to: base.appendingPathComponent("users.txt"), atomically: true, encoding: .utf8)
    }

    /// The usual two-backend database `app`: main = the replica as app_ro, writeable = the primary as app_rw.
    static func splitDatabase(_ cluster: TestCluster, extra: String = "") -> String {
        """
        [database app]
        main = host=127.0.0.1 port=\(cluster.replicaPort) dbname=app user=app_ro password=app_ro
        writeable = host=127.0.0.1 port=\(cluster.primaryPort) user=app_rw password=app_rw
        \(extra)
        """
    }

    deinit {
        if let p = process, p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
    }

    var config: String { (try? String(contentsOf: configURL, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }
    var pid: Int32 { process?.processIdentifier ?? 0 }
    var isRunning: Bool { process?.isRunning ?? false }

    /// libpq connection string to the proxy.
    func conninfo(user: String = "app_rw", password: String? = nil, dbname: String = "app",
                  extra: String = "") -> String {
        var s = "host=127.0.0.1 port=\(port) dbname=\(dbname) user=\(user) connect_timeout=30"
        if let pw = password { s += " password=\(pw)" }
        if !extra.isEmpty { s += " " + extra }
        return s
    }

    func connect(user: String = "app_rw", password: String? = nil, dbname: String = "app") throws -> PQConnection {
        try PQConnection(conninfo(user: user, password: password, dbname: dbname))
    }

    /// Launches `pgsplit --config proxy.conf` and waits until it accepts connections. Throws with the
    /// captured stderr if it exits first.
    func start(timeout: TimeInterval = 60) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ProxyProcess.binaryPath)
        p.arguments = ["--config", configURL.path]
        p.currentDirectoryURL = dir
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        let err = try FileHandle(forWritingTo: stderrURL)
        p.standardError = err
        p.standardOutput = err
        p.standardInput = FileHandle.nullDevice
        do {
            try p.run()
        } catch {
            throw PQError(message: "cannot launch \(ProxyProcess.binaryPath): \(error)", sqlState: nil)
        }
        try? err.close()
        process = p
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if !p.isRunning {
                p.waitUntilExit()
                let how = p.terminationReason == .uncaughtSignal
                    ? "was killed by signal \(p.terminationStatus)" : "exited with \(p.terminationStatus)"
                throw PQError(message: "pgsplit \(how) before listening; stderr:\n\(stderr)", sqlState: nil)
            }
            if canConnect(port: port) { return }
            if Date() > deadline {
                throw PQError(message: "pgsplit did not listen on \(port) within \(Int(timeout)) s; stderr:\n\(stderr)",
                              sqlState: nil)
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL after `timeout` as a hang guard). Returns the
    /// exit status (or 128+signal when killed by a signal).
    @discardableResult
    func stop(signal sig: Int32 = SIGTERM, timeout: TimeInterval = 30) -> Int32 {
        guard let p = process else { return -1 }
        if p.isRunning { kill(p.processIdentifier, sig) }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
        }
        p.waitUntilExit()
        process = nil
        return p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
    }

    /// Runs pgsplit to completion with `args` (the config path is appended as `--config FILE`),
    /// e.g. `runToExit(["--check"])`. Returns the exit status and stderr.
    func runToExit(_ args: [String] = [], timeout: TimeInterval = 120) -> (status: Int32, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ProxyProcess.binaryPath)
        p.arguments = args + ["--config", configURL.path]
        p.currentDirectoryURL = dir
        let errURL = dir.appendingPathComponent("run-\(UUID().uuidString.prefix(6)).err")
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        guard let err = try? FileHandle(forWritingTo: errURL) else { return (-1, "cannot open \(errURL.path)") }
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        do {
            try p.run()
        } catch {
            return (-1, "cannot launch \(ProxyProcess.binaryPath): \(error)")
        }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
        }
        p.waitUntilExit()
        try? err.close()
        let text = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
        return (status, text)
    }

    /// Removes the temp folder (call after stop).
    func cleanUp() {
        try? FileManager.default.removeItem(at: dir)
    }
}

// MARK: - ports

/// A port below 32768 that nothing listens on right now (probed by binding to it).
func freePort() throws -> Int {
    let reserved: Set<Int> = [6432, 15432, 15433, 25432, 25433]
    for _ in 0..<500 {
        let candidate = Int.random(in: 20000...32000)
        if reserved.contains(candidate) { continue }
        if canBind(port: candidate) { return candidate }
    }
    throw PQError(message: "no free port found below 32768", sqlState: nil)
}

func canBind(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = loopback(port: port)
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    return rc == 0
}

func canConnect(port: Int) -> Bool {
    guard let fd = try? connectTCP(port: port) else { return false }
    close(fd)
    return true
}

func loopback(port: Int) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return addr
}

/// A blocking TCP connection to 127.0.0.1:port.
func connectTCP(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw PQError(message: "socket: \(errno)", sqlState: nil) }
    var addr = loopback(port: port)
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    if rc != 0 {
        let e = errno
        close(fd)
        throw PQError(message: "connect to 127.0.0.1:\(port): errno \(e)", sqlState: nil)
    }
    return fd
}
