import XCTest
import PostgresWire
import SplitConfig
import StatementClassifier
@testable import SplitCore

final class AdminConsoleTests: XCTestCase {
    /// Splits wire bytes into (type, payload) messages.
    func messages(_ bytes: [UInt8]) -> [(type: Character, payload: [UInt8])] {
        var out: [(Character, [UInt8])] = []
        var i = 0
        while i + 5 <= bytes.count {
            let length = Int(bytes[i + 1]) << 24 | Int(bytes[i + 2]) << 16 | Int(bytes[i + 3]) << 8 | Int(bytes[i + 4])
            XCTAssertGreaterThanOrEqual(length, 4)
            out.append((Character(UnicodeScalar(bytes[i])), Array(bytes[(i + 5)..<(i + 1 + length)])))
            i += 1 + length
        }
        XCTAssertEqual(i, bytes.count, "trailing bytes")
        return out
    }

    func columnNames(_ payload: [UInt8]) -> [String] {
        let count = Int(payload[0]) << 8 | Int(payload[1])
        var names: [String] = []
        var i = 2
        for _ in 0..<count {
            let end = payload[i...].firstIndex(of: 0)!
            names.append(String(decoding: payload[i..<end], as: UTF8.self))
            i = end + 1 + 18
        }
        XCTAssertEqual(i, payload.count)
        return names
    }

    func dataRow(_ payload: [UInt8]) -> [String?] {
        let count = Int(payload[0]) << 8 | Int(payload[1])
        var values: [String?] = []
        var i = 2
        for _ in 0..<count {
            let length = Int32(bitPattern: UInt32(payload[i]) << 24 | UInt32(payload[i + 1]) << 16 | UInt32(payload[i + 2]) << 8 | UInt32(payload[i + 3]))
            i += 4
            if length < 0 { values.append(nil); continue }
            values.append(String(decoding: payload[i..<(i + Int(length))], as: UTF8.self))
            i += Int(length)
        }
        XCTAssertEqual(i, payload.count)
        return values
    }

    /// Columns and rows of a SHOW answer, checking its framing: T, D..., C "SHOW".
    func table(_ query: String, _ provider: some AdminSnapshotProvider) throws -> (columns: [String], rows: [[String?]]) {
        let response = AdminConsole.respond(to: query, provider: provider)
        XCTAssertNil(response.action)
        XCTAssertFalse(response.failed)
        let all = messages(response.bytes)
        XCTAssertEqual(all.first?.type, "T", query)
        XCTAssertEqual(all.last?.type, "C", query)
        XCTAssertEqual(all.last.map { String(decoding: $0.payload.dropLast(), as: UTF8.self) }, "SHOW")
        let columns = columnNames(all[0].payload)
        let rows = all.dropFirst().dropLast().map { message -> [String?] in
            XCTAssertEqual(message.type, "D")
            let row = dataRow(message.payload)
            XCTAssertEqual(row.count, columns.count)
            return row
        }
        return (columns, rows)
    }

    func makeProvider() throws -> StandardAdminSnapshot {
        let text = """
            [pgsplit]
            listen = 127.0.0.1:6432
            auth_type = trust
            read_your_writes = lsn
            max_replica_lag = 2s
            metrics_listen = 127.0.0.1:9187
            log_format = json
            health_check_period = 500ms
            [database app]
            main = host=10.0.0.2 port=5433 dbname=app user=app_ro password=ro-secret
            writeable = host=10.0.0.1 user=app_rw password=rw-secret
            """
        let config = try ProxyConfig.parse(text: text, fileName: "proxy.conf")
        let metrics = ProxyMetrics(databases: ["app"])
        let app = metrics.database("app")
        var recorder = SessionMetricsRecorder(database: app)
        let start = MonotonicInstant.now
        recorder.unitStarted(.main, why: .read, at: start)
        recorder.unitFinished(.main, failed: false, at: start + .microseconds(700))
        recorder.unitStarted(.writeable, why: .transaction, at: start)
        recorder.unitFinished(.writeable, failed: true, at: start + .milliseconds(4))
        app.target(.main).bytesFromClient(40)
        app.target(.main).bytesToClient(400)
        app.target(.main).backendConnectionOpened()
        let board = HealthBoard(database: "app", mainAddress: "10.0.0.2:5433/app", writeableAddress: "10.0.0.1:5433/app", metrics: app)
        board.record(.writeable, .answered(inRecovery: false, position: LSN(text: "0/5000060"), replayDelay: nil), sequence: board.beginPoll())
        board.record(.main, .answered(inRecovery: true, position: LSN(text: "0/5000000"), replayDelay: 0.125), sequence: board.beginPoll())
        let sessions = [
            AdminSessionRow(id: 7, clientAddress: "127.0.0.1:50000", user: "alice", database: "app", state: .idleInTransaction,
                            transactionBackend: .writeable, pinned: PinReason.temporaryTable.rawValue,
                            backendsOpen: [.main, .writeable], connectedAt: 1_714_564_800),
            AdminSessionRow(id: 3, clientAddress: "127.0.0.1:50001", user: "bob", database: "app", session: nil,
                            connectedAt: 0),
        ]
        return StandardAdminSnapshot(config: ProxyConfigRows(config), metrics: metrics, health: [board.snapshot],
                                     sessions: sessions)
    }

    func testParsing() {
        XCTAssertEqual(AdminCommand.parse("show help"), .show(.help))
        XCTAssertEqual(AdminCommand.parse("  SHOW\t  Stats ;; "), .show(.stats))
        XCTAssertEqual(AdminCommand.parse("show servers"), .show(.backends))
        XCTAssertEqual(AdminCommand.parse("show clients;"), .show(.sessions))
        XCTAssertEqual(AdminCommand.parse("reload;"), .reload)
        XCTAssertEqual(AdminCommand.parse("Pause"), .pause)
        XCTAssertEqual(AdminCommand.parse("resume"), .resume)
        XCTAssertEqual(AdminCommand.parse("SHUTDOWN"), .shutdown)
        XCTAssertEqual(AdminCommand.parse(" ; "), .empty)
        XCTAssertEqual(AdminCommand.parse("select 1"), .unknown("select 1"))
        XCTAssertEqual(AdminCommand.parse("show stats extra"), .unknown("show stats extra"))
        XCTAssertEqual(AdminCommand.parseAll("show help; reload"), [.show(.help), .reload])
        XCTAssertEqual(AdminCommand.parseAll(";"), [.empty])
        XCTAssertTrue(AdminCommand.parse("show sessions").needsSessions)
    }

    func testShowHelp() throws {
        let result = try table("SHOW HELP;", try makeProvider())
        XCTAssertEqual(result.columns, ["command", "description"])
        XCTAssertEqual(result.rows.map { $0[0]! }, AdminConsole.help.map(\.command))
    }

    func testShowDatabases() throws {
        let result = try table("show databases", try makeProvider())
        XCTAssertEqual(result.columns.prefix(4), ["name", "main", "writeable", "database_routing"])
        XCTAssertEqual(result.rows, [["app", "10.0.0.2:5433/app", "10.0.0.1:5433/app", "off", "lsn", "writeable", "2s", "off"]])
    }

    func testShowBackends() throws {
        let result = try table("show backends", try makeProvider())
        XCTAssertEqual(result.columns, ["database", "role", "address", "state", "in_recovery", "lag_bytes", "lag_seconds",
                                        "wal_position", "connections", "last_error"])
        XCTAssertEqual(result.rows, [
            ["app", "main", "10.0.0.2:5433/app", "up", "on", "96", "0.125", "0/5000000", "1", nil],
            ["app", "writeable", "10.0.0.1:5433/app", "up", "off", nil, nil, "0/5000060", "0", nil],
        ])
    }

    func testShowSessions() throws {
        let result = try table("show sessions", try makeProvider())
        XCTAssertEqual(result.columns.first, "id")
        XCTAssertEqual(result.rows.count, 2)
        XCTAssertEqual(result.rows[0], ["3", "127.0.0.1:50001", "bob", "app", "login", nil, nil, "", "off", "1970-01-01 00:00:00 UTC"])
        XCTAssertEqual(result.rows[1], ["7", "127.0.0.1:50000", "alice", "app", "idle in transaction", "writeable",
                                        "temporary table", "main,writeable", "off", "2024-05-01 12:00:00 UTC"])
    }

    func testShowStats() throws {
        let result = try table("show stats", try makeProvider())
        XCTAssertEqual(result.columns, ["database", "target", "statements", "reads", "writes", "in_transaction", "other", "errors",
                                        "bytes_in", "bytes_out", "avg_us", "p50_us", "p95_us", "p99_us"])
        XCTAssertEqual(result.rows.count, 2)
        let main = result.rows[0]
        XCTAssertEqual(Array(main.prefix(11)), ["app", "main", "1", "1", "0", "0", "0", "0", "40", "400", "700"])
        XCTAssertTrue((500...1000).contains(Int(main[11]!)!), "\(main)")
        let writeable = result.rows[1]
        XCTAssertEqual(Array(writeable.prefix(8)), ["app", "writeable", "1", "0", "0", "1", "0", "1"])
        XCTAssertTrue((2000...5000).contains(Int(writeable[13]!)!), "\(writeable)")
    }

    func testShowConfigMasksPasswords() throws {
        let result = try table("show config", try makeProvider())
        XCTAssertEqual(result.columns, ["key", "value"])
        let values = Dictionary(result.rows.map { ($0[0]!, $0[1]!) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(values["read_your_writes"], "lsn")
        XCTAssertEqual(values["max_replica_lag"], "2s")
        XCTAssertEqual(values["metrics_listen"], "127.0.0.1:9187")
        XCTAssertEqual(values["log_format"], "json")
        XCTAssertEqual(values["health_check_period"], "500ms")
        XCTAssertEqual(values["shutdown_timeout"], "30s")
        XCTAssertEqual(values["database.app.main"], "host=10.0.0.2 port=5433 dbname=app user=app_ro password=***")
        for row in result.rows {
            XCTAssertFalse(row[1]!.contains("secret"), "\(row)")
        }
    }

    func testActions() throws {
        let provider = try makeProvider()
        for (query, action, tag) in [("RELOAD", AdminAction.reload, "RELOAD"), ("pause;", .pause, "PAUSE"),
                                     ("resume", .resume, "RESUME"), ("shutdown", .shutdown, "SHUTDOWN")] {
            let response = AdminConsole.respond(to: query, provider: provider)
            XCTAssertEqual(response.action, action)
            let all = messages(response.bytes)
            XCTAssertEqual(all.map(\.type), ["C"])
            XCTAssertEqual(String(decoding: all[0].payload.dropLast(), as: UTF8.self), tag)
        }
    }

    func testUnknownCommandIsA42601WithAHint() throws {
        let response = AdminConsole.respond(to: "SELECT 1; SHOW HELP", provider: try makeProvider())
        XCTAssertTrue(response.failed)
        XCTAssertNil(response.action)
        let all = messages(response.bytes)
        XCTAssertEqual(all.map(\.type), ["E"], "stops at the first error")
        let fields = try ErrorFields.decode(all[0].payload[...])
        XCTAssertEqual(fields.code, "42601")
        XCTAssertEqual(fields.severity, "ERROR")
        XCTAssertTrue(fields.message.contains("SELECT 1"))
        XCTAssertTrue(fields.hint?.contains("SHOW HELP") ?? false)
    }

    func testEmptyQueryAndSeveralCommands() throws {
        let provider = try makeProvider()
        XCTAssertEqual(messages(AdminConsole.respond(to: "  ", provider: provider).bytes).map(\.type), ["I"])
        let both = AdminConsole.respond(to: "show help; pause", provider: provider)
        XCTAssertEqual(both.action, .pause)
        let types = messages(both.bytes).map(\.type)
        XCTAssertEqual(types.first, "T")
        XCTAssertEqual(types.suffix(2), ["C", "C"])
    }

    func testFormats() {
        XCTAssertEqual(AdminFormat.duration(.milliseconds(1500)), "1.5s")
        XCTAssertEqual(AdminFormat.duration(.seconds(90)), "90s")
        XCTAssertEqual(AdminFormat.duration(.milliseconds(250)), "250ms")
        XCTAssertEqual(AdminFormat.fixed(0.1254, decimals: 3), "0.125")
        XCTAssertEqual(AdminFormat.fixed(3, decimals: 3), "3")
        XCTAssertEqual(AdminFormat.timestamp(unixSeconds: 951_782_400), "2000-02-29 00:00:00 UTC")
        XCTAssertEqual(AdminFormat.timestamp(unixSeconds: -1), "1969-12-31 23:59:59 UTC")
    }

    func testOperationsSettingsParseAndRefuseBadValues() throws {
        let defaults = try ProxyConfig.parse(text: "[database app]\nmain = host=db\n", fileName: "p.conf")
        XCTAssertNil(defaults.operations.metricsListen)
        XCTAssertEqual(defaults.operations.logFormat, .text)
        XCTAssertEqual(defaults.operations.healthCheckPeriod, .milliseconds(250))
        XCTAssertEqual(defaults.operations.shutdownTimeout, .seconds(30))
        let off = try ProxyConfig.parse(text: "[pgsplit]\nmetrics_listen = off\n[database app]\nmain = host=db\n", fileName: "p.conf")
        XCTAssertNil(off.operations.metricsListen)
        for bad in ["metrics_listen = nowhere", "log_format = xml", "health_check_period = 10ms", "shutdown_timeout = soon"] {
            XCTAssertThrowsError(try ProxyConfig.parse(text: "[pgsplit]\n\(bad)\n[database app]\nmain = host=db\n", fileName: "p.conf"), bad)
        }
    }
}
