import DispatchTransport
import PostgresWire
import SplitConfig
import SplitCore

/// Watches every configured backend: one persistent connection per backend, logged in with the
/// backend's own service credentials (as the startup checks do), one check query every
/// `health_check_period`. Results go to each database's `HealthBoard`, whose snapshot any loop
/// reads cheaply; state changes are logged once each. Reconnects with backoff; never blocks a loop.
final class HealthMonitor: Sendable {
    /// By database name.
    let boards: [String: HealthBoard]
    private let watchers: [BackendWatcher]

    /// The check: recovery state, the WAL position (replay position on a standby, insert position
    /// otherwise) and, on a standby, the replay delay (0 when everything received is replayed, so an
    /// idle primary does not look like lag).
    ///
    /// The insert position, not `pg_current_wal_lsn()` (the write position): with
    /// `synchronous_commit = off` a commit returns before its WAL is written, so the write position
    /// can stay behind it for up to `wal_writer_delay` — and a replica that has replayed up to there
    /// would pass for caught up with a read-your-writes commit it lacks.
    static let checkQuery = """
        SELECT pg_is_in_recovery(), \
        (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END)::text, \
        (CASE WHEN NOT pg_is_in_recovery() THEN NULL \
        WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
        ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END)::float8
        """

    init(config: ProxyConfig, group: EventLoopGroup, metrics: ProxyMetrics?) {
        var boards: [String: HealthBoard] = [:]
        var watchers: [BackendWatcher] = []
        let period = max(0.1, StartupChecks.seconds(config.operations.healthCheckPeriod))
        let connectTimeout = max(0.5, StartupChecks.seconds(config.connectTimeout))
        for database in config.databases {
            let board = HealthBoard(database: database.name, mainAddress: database.main.label,
                                    writeableAddress: database.writeable?.label,
                                    metrics: metrics?.database(database.name))
            boards[database.name] = board
            var backends: [(BackendRole, BackendAddress)] = [(.main, database.main)]
            if let writeable = database.writeable { backends.append((.writeable, writeable)) }
            for (role, address) in backends {
                guard var login = StartupChecks.serviceLogin(address, database: database, config: config) else {
                    Log.warning("database \"\(database.name)\": \(role) backend \(address.label) logs in as each client and no auth_file password is known: it is not health-checked")
                    continue
                }
                login.parameters = [("application_name", "pgsplit health check")]
                watchers.append(BackendWatcher(role: role, login: login, board: board, loop: group.next(),
                                               period: period, connectTimeout: connectTimeout))
            }
        }
        self.boards = boards
        self.watchers = watchers
    }

    /// Starts polling (from any thread).
    func start() {
        for watcher in watchers { watcher.loop.execute { watcher.start() } }
    }

    /// Stops polling and closes the monitor connections (from any thread; idempotent).
    func stop() {
        for watcher in watchers { watcher.loop.execute { watcher.stop() } }
    }

    func board(for database: String) -> HealthBoard? { boards[database] }

    /// Every database's snapshot, by name (for SHOW BACKENDS).
    var snapshots: [HealthSnapshot] {
        boards.keys.sorted().map { boards[$0]!.snapshot }
    }
}

/// One backend's monitor connection. Confined to `loop`: every method runs there.
private final class BackendWatcher: @unchecked Sendable {
    let role: BackendRole
    let login: BackendLogin
    let board: HealthBoard
    let loop: EventLoop
    let period: Double
    let connectTimeout: Double

    var connection: Connection?
    var buffer = ByteBuffer(capacity: 1024)
    var stopped = false
    var connecting = false
    var failures = 0
    var timer: TimerHandle?
    /// The poll in flight: its sequence number, and what it has read so far.
    var pollSequence: UInt64?
    var row: [String?]?
    var error: ErrorFields?

    init(role: BackendRole, login: BackendLogin, board: HealthBoard, loop: EventLoop, period: Double, connectTimeout: Double) {
        self.role = role
        self.login = login
        self.board = board
        self.loop = loop
        self.period = period
        self.connectTimeout = connectTimeout
    }

    var label: String { "database \"\(board.database)\": \(role) backend \(login.address.label)" }

    func start() {
        stopped = false
        connect()
    }

    func stop() {
        stopped = true
        timer?.cancel()
        timer = nil
        if let connection {
            connection.onRead = nil
            connection.onClose = nil
            connection.write([UInt8(ascii: "X"), 0, 0, 0, 4])
            connection.closeAfterFlush()
        }
        connection = nil
    }

    // MARK: Connecting

    func connect() {
        guard !stopped, connection == nil, !connecting else { return }
        connecting = true
        let sequence = board.beginPoll()
        BackendConnector.open(login, on: loop, timeout: connectTimeout) { [self] result in
            connecting = false
            switch result {
            case .failure(let failure):
                report(.unreachable(failure.description), sequence: sequence)
                scheduleReconnect()
            case .success(let opened):
                if stopped {
                    opened.connection.close()
                    return
                }
                failures = 0
                connection = opened.connection
                buffer.clear()
                opened.connection.start(onRead: { [self] bytes in received(bytes) },
                                        onClose: { [self] error in closed(error) })
                poll()
                if !opened.leftover.isEmpty { opened.leftover.withUnsafeBytes { received($0) } }
            }
        }
    }

    /// period, 2×, 4× ... at most 10 s (or the period, if longer).
    func scheduleReconnect() {
        guard !stopped else { return }
        failures += 1
        let delay = min(period * Double(1 << min(failures - 1, 10)), max(period, 10))
        timer?.cancel()
        timer = loop.scheduleTimer(after: delay) { [self] in
            timer = nil
            connect()
        }
    }

    func closed(_ error: TransportError?) {
        connection = nil
        timer?.cancel()
        timer = nil
        guard !stopped else { return }
        let sequence = pollSequence ?? board.beginPoll()
        pollSequence = nil
        report(.unreachable("the health-check connection closed\(error.map { ": \($0)" } ?? "")"), sequence: sequence)
        scheduleReconnect()
    }

    /// Drops the connection after a timeout and reconnects.
    func abandon(_ why: String) {
        guard let connection else { return }
        connection.onRead = nil
        connection.onClose = nil
        connection.close()
        self.connection = nil
        let sequence = pollSequence ?? board.beginPoll()
        pollSequence = nil
        report(.unreachable(why), sequence: sequence)
        scheduleReconnect()
    }

    // MARK: Polling

    func poll() {
        guard !stopped, let connection else { return }
        pollSequence = board.beginPoll()
        row = nil
        error = nil
        var out = ByteBuffer(capacity: 512)
        out.writeQuery(HealthMonitor.checkQuery)
        connection.write(out.readableArray)
        let limit = max(2 * period, connectTimeout)
        timer?.cancel()
        timer = loop.scheduleTimer(after: limit) { [self] in
            timer = nil
            abandon("no answer to the health check within \(Int(limit.rounded())) s")
        }
    }

    func received(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(contentsOf: bytes)
        while true {
            switch buffer.frameMessage(maxMessageSize: 1 << 20) {
            case .needMore:
                buffer.compact()
                return
            case .invalid(let why):
                abandon("unreadable answer: \(why)")
                return
            case .message(let type, let payload):
                let body = buffer.storage[payload]
                buffer.moveReaderIndex(to: payload.upperBound)
                switch type {
                case UInt8(ascii: "D"):
                    row = DataRow.decodeText(body)
                case UInt8(ascii: "E"):
                    error = try? ErrorFields.decode(body)
                case UInt8(ascii: "Z"):
                    finishPoll()
                default:
                    break  // RowDescription, CommandComplete, ParameterStatus, NoticeResponse
                }
            }
        }
    }

    func finishPoll() {
        guard let sequence = pollSequence else { return }
        pollSequence = nil
        timer?.cancel()
        timer = nil
        if let error {
            report(.queryFailed("\(error.code): \(error.message)"), sequence: sequence)
        } else if let row, row.count == 3 {
            let inRecovery = row[0].map { $0 == "t" }
            let position = row[1].flatMap { LSN(text: $0) }
            let delay = row[2].flatMap { Double($0) }
            report(.answered(inRecovery: inRecovery, position: position, replayDelay: delay), sequence: sequence)
        } else {
            report(.queryFailed("the health check returned no row"), sequence: sequence)
        }
        timer = loop.scheduleTimer(after: period) { [self] in
            timer = nil
            poll()
        }
    }

    func report(_ outcome: PollOutcome, sequence: UInt64) {
        for event in board.record(role, outcome, sequence: sequence) {
            if event.isWarning { Log.warning(event.description) } else { Log.info(event.description) }
        }
        if case .queryFailed(let why) = outcome { Log.debug("\(label): health check failed: \(why)") }
    }

}
