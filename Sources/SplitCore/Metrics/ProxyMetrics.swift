import ProxyLocks
import Synchronization

/// The proxy's statistics, shared by every loop. The hot path (a unit starting or finishing, bytes
/// moving) is relaxed atomic adds on objects a session looks up once (`database(_:)` then
/// `target(_:)`); the registry's lock is taken only to find or create a database's entry and to
/// list them for a scrape or SHOW STATS.
public final class ProxyMetrics: Sendable {
    private let global = AtomicCounters(count: Global.count)
    private let registry = Locked<[String: DatabaseMetrics]>([:])

    enum Global: Int, CaseIterable {
        case clientsAccepted, clientsCurrent, clientsRefused
        static var count: Int { allCases.count }
    }

    public init(databases: [String] = []) {
        registry.withLock { registry in
            for name in databases { registry[name] = DatabaseMetrics(name: name) }
        }
    }

    // MARK: Clients

    /// A client connection was accepted (before login).
    public func clientConnected() {
        global.add(Global.clientsAccepted.rawValue)
        global.add(Global.clientsCurrent.rawValue)
    }

    /// A client connection that `clientConnected()` counted has closed.
    public func clientDisconnected() { global.add(Global.clientsCurrent.rawValue, -1) }

    /// A client was turned away (max_client_conn, failed login).
    public func clientRefused() { global.add(Global.clientsRefused.rawValue) }

    public var clientsAccepted: Int64 { global.load(Global.clientsAccepted.rawValue) }
    public var clientsCurrent: Int64 { global.load(Global.clientsCurrent.rawValue) }
    public var clientsRefused: Int64 { global.load(Global.clientsRefused.rawValue) }

    // MARK: Databases

    /// The entry of a client-visible database, created on first use. Look it up once per session
    /// (or per reload), not per statement.
    public func database(_ name: String) -> DatabaseMetrics {
        registry.withLock { registry in
            if let existing = registry[name] { return existing }
            let created = DatabaseMetrics(name: name)
            registry[name] = created
            return created
        }
    }

    /// Every database seen so far, by name.
    public var databases: [DatabaseMetrics] {
        registry.withLock { Array($0.values) }.sorted { $0.name < $1.name }
    }
}

/// One client-visible database: a `TargetMetrics` per backend role.
public final class DatabaseMetrics: Sendable {
    public let name: String
    private let targets: [TargetMetrics]

    init(name: String) {
        self.name = name
        targets = BackendRole.allCases.map { TargetMetrics(role: $0) }
    }

    @inline(__always)
    public func target(_ role: BackendRole) -> TargetMetrics { targets[role.rawValue] }
}

/// Counters, the latency histogram and the monitor's gauges of one database × target.
public final class TargetMetrics: Sendable {
    public let role: BackendRole
    public let latency = LatencyHistogram()
    private let counters = AtomicCounters(count: Field.count + RoutingReason.metricsCount)

    enum Field: Int, CaseIterable {
        case errors, bytesFromClients, bytesToClients
        case backendOpened, backendOpenFailed, backendCurrent
        // Gauges set by the health monitor.
        case up, inRecovery, lagBytes, lagMicroseconds, walPosition, checkedAtMicroseconds
        static var count: Int { allCases.count }
    }

    init(role: BackendRole) {
        self.role = role
        counters.store(Field.up.rawValue, -1)
        counters.store(Field.inRecovery.rawValue, -1)
        counters.store(Field.lagBytes.rawValue, -1)
        counters.store(Field.lagMicroseconds.rawValue, -1)
        counters.store(Field.walPosition.rawValue, -1)
    }

    // MARK: Hot path

    @inline(__always)
    public func unitStarted(_ reason: RoutingReason) {
        counters.add(Field.count + reason.metricsIndex)
    }

    /// A unit finished after `microseconds` (from unitStarted to its ReadyForQuery).
    @inline(__always)
    public func unitFinished(failed: Bool, microseconds: Int64) {
        if failed { counters.add(Field.errors.rawValue) }
        latency.record(microseconds: microseconds)
    }

    /// Client bytes forwarded to this target.
    @inline(__always)
    public func bytesFromClient(_ count: Int) { counters.add(Field.bytesFromClients.rawValue, Int64(count)) }

    /// This target's bytes forwarded to a client.
    @inline(__always)
    public func bytesToClient(_ count: Int) { counters.add(Field.bytesToClients.rawValue, Int64(count)) }

    /// A backend connection to this target opened (counted as open until `backendConnectionClosed`).
    public func backendConnectionOpened() {
        counters.add(Field.backendOpened.rawValue)
        counters.add(Field.backendCurrent.rawValue)
    }

    public func backendConnectionClosed() { counters.add(Field.backendCurrent.rawValue, -1) }

    public func backendConnectionFailed() { counters.add(Field.backendOpenFailed.rawValue) }

    // MARK: Monitor gauges

    /// Sets the gauges from a health check. Unknown values are stored as -1 (not rendered).
    public func setHealth(_ health: BackendHealth, lagBytes: Int64?) {
        counters.store(Field.up.rawValue, health.state == .up ? 1 : health.state == .down ? 0 : -1)
        counters.store(Field.inRecovery.rawValue, health.inRecovery.map { $0 ? 1 : 0 } ?? -1)
        counters.store(Field.walPosition.rawValue, health.position.map { Int64(bitPattern: $0.value) } ?? -1)
        counters.store(Field.lagMicroseconds.rawValue, health.replayDelay.map { Int64(($0 * 1_000_000).rounded()) } ?? -1)
        counters.store(Field.lagBytes.rawValue, lagBytes ?? -1)
    }

    // MARK: Reading

    public func units(_ reason: RoutingReason) -> Int64 { counters.load(Field.count + reason.metricsIndex) }
    public var units: Int64 { RoutingReason.metricsAll.reduce(0) { $0 + units($1) } }
    public var errors: Int64 { counters.load(Field.errors.rawValue) }
    public var bytesFromClients: Int64 { counters.load(Field.bytesFromClients.rawValue) }
    public var bytesToClients: Int64 { counters.load(Field.bytesToClients.rawValue) }
    public var backendConnectionsOpened: Int64 { counters.load(Field.backendOpened.rawValue) }
    public var backendConnectionsFailed: Int64 { counters.load(Field.backendOpenFailed.rawValue) }
    public var backendConnectionsCurrent: Int64 { counters.load(Field.backendCurrent.rawValue) }
    func gauge(_ field: Field) -> Int64? {
        let value = counters.load(field.rawValue)
        return value < 0 ? nil : value
    }

    /// Statements of a kind (read / write / transaction / other).
    public func units(kind: UnitKind) -> Int64 {
        RoutingReason.metricsAll.filter { $0.kind == kind }.reduce(0) { $0 + units($1) }
    }
}

/// The coarse kinds SHOW STATS counts statements by.
public enum UnitKind: String, Sendable, CaseIterable {
    case read, write, transaction, other
}

extension RoutingReason {
    /// Every reason, in a fixed order (the metrics' storage order).
    public static let metricsAll: [RoutingReason] = [
        .read, .write, .transaction, .readOnlyTransaction, .pinned, .noWriteable, .hint, .sessionDefault,
        .copyData, .functionCall, .fallback, .holdCursorOnMain, .mainRefused,
    ]
    static var metricsCount: Int { metricsAll.count }

    @inline(__always)
    var metricsIndex: Int {
        switch self {
        case .read: 0
        case .write: 1
        case .transaction: 2
        case .readOnlyTransaction: 3
        case .pinned: 4
        case .noWriteable: 5
        case .hint: 6
        case .sessionDefault: 7
        case .copyData: 8
        case .functionCall: 9
        case .fallback: 10
        case .holdCursorOnMain: 11
        case .mainRefused: 12
        }
    }

    /// The label value in the Prometheus exposition.
    public var metricsLabel: String {
        switch self {
        case .read: "read"
        case .write: "write"
        case .transaction: "transaction"
        case .readOnlyTransaction: "read_only_transaction"
        case .pinned: "pinned"
        case .noWriteable: "no_writeable"
        case .hint: "hint"
        case .sessionDefault: "session_default"
        case .copyData: "copy_data"
        case .functionCall: "function_call"
        case .fallback: "fallback"
        case .holdCursorOnMain: "hold_cursor_on_main"
        case .mainRefused: "main_refused"
        }
    }

    /// read: a plain read (on main, or on writeable as a fallback); transaction: inside an explicit
    /// transaction; write: what had to go to writeable; other: routed by hint, pin, session default
    /// or because there is no writeable backend.
    public var kind: UnitKind {
        switch self {
        case .read, .fallback, .mainRefused: .read
        case .transaction, .readOnlyTransaction: .transaction
        case .write, .copyData, .functionCall: .write
        case .pinned, .noWriteable, .hint, .sessionDefault, .holdCursorOnMain: .other
        }
    }
}

/// What a session's shell keeps to feed the metrics: the database's entry and the start times of
/// its units in flight (units finish in the order they started). Confined to the session's loop;
/// no allocation per unit once the ring has grown to the session's pipelining depth.
public struct SessionMetricsRecorder {
    public let database: DatabaseMetrics
    private var starts: [MonotonicInstant] = []
    private var head = 0
    private var count = 0

    public init(database: DatabaseMetrics) {
        self.database = database
    }

    /// Call from `SessionOutput.unitStarted`.
    public mutating func unitStarted(_ role: BackendRole, why: RoutingReason, at now: MonotonicInstant = .now) {
        database.target(role).unitStarted(why)
        if count == starts.count {
            // Grow, unrolling the ring so it starts at 0.
            var grown: [MonotonicInstant] = []
            grown.reserveCapacity(max(4, starts.count * 2))
            for i in 0..<count { grown.append(starts[(head + i) % starts.count]) }
            while grown.count < max(4, starts.count * 2) { grown.append(now) }
            starts = grown
            head = 0
        }
        starts[(head + count) % starts.count] = now
        count += 1
    }

    /// Call from `SessionOutput.unitFinished`.
    public mutating func unitFinished(_ role: BackendRole, failed: Bool, at now: MonotonicInstant = .now) {
        var microseconds: Int64 = 0
        if count > 0 {
            microseconds = now.microseconds(since: starts[head])
            head = (head + 1) % starts.count
            count -= 1
        }
        database.target(role).unitFinished(failed: failed, microseconds: microseconds)
    }

    /// Units started and not finished (for tests and SHOW SESSIONS).
    public var unitsInFlight: Int { count }
}
