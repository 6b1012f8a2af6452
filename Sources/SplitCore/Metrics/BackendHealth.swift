import ProxyLocks
import Synchronization

/// A WAL position (pg_lsn): two 32-bit halves written in hex, "16/B374D848".
public struct LSN: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }

    /// Parses PostgreSQL's text form; nil for anything else.
    public init?(text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...8).contains(parts[0].count), (1...8).contains(parts[1].count),
              let high = UInt64(parts[0], radix: 16), let low = UInt64(parts[1], radix: 16) else { return nil }
        value = high << 32 | low
    }

    public var description: String {
        String(value >> 32, radix: 16, uppercase: true) + "/" + String(value & 0xffff_ffff, radix: 16, uppercase: true)
    }

    public static func < (a: LSN, b: LSN) -> Bool { a.value < b.value }

    /// Bytes from `other` up to `self` (0 when `other` is ahead), as pg_wal_lsn_diff.
    public func bytes(after other: LSN) -> Int64 {
        value >= other.value ? Int64(clamping: value - other.value) : 0
    }
}

/// What the last health check of one backend found.
public struct BackendHealth: Sendable, Equatable {
    public enum State: String, Sendable {
        /// Not checked yet.
        case unknown
        case up
        case down
    }

    public var role: BackendRole
    /// host:port/dbname, for SHOW BACKENDS and logs.
    public var address: String
    public var state: State = .unknown
    /// pg_is_in_recovery(); nil when unknown (not checked, or an engine without it).
    public var inRecovery: Bool?
    /// On a standby its replay position (pg_last_wal_replay_lsn), otherwise its WAL insert
    /// position (pg_current_wal_insert_lsn: a commit is there before it is written out).
    public var position: LSN?
    /// On a standby, seconds since the last replayed transaction's commit (0 once everything
    /// received is replayed); nil elsewhere.
    public var replayDelay: Double?
    /// Why the last check failed.
    public var lastError: String?
    /// The poll sequence number of the check that produced this (see `HealthBoard.beginPoll`).
    public var sequence: UInt64 = 0
    /// When the check that produced this finished.
    public var checkedAt: ContinuousClock.Instant?
    /// Since when the backend has been in its current state.
    public var stateSince: ContinuousClock.Instant?
    /// Main was a standby and has left recovery while a writeable backend exists: promoted, it no longer
    /// follows writeable, and reads there would miss what is written from now on. Cleared when it is a
    /// standby again.
    public var leftRecovery = false

    public init(role: BackendRole, address: String) {
        self.role = role
        self.address = address
    }
}

/// The result of one poll, as the monitor reports it.
public enum PollOutcome: Sendable, Equatable {
    /// The check query answered.
    case answered(inRecovery: Bool?, position: LSN?, replayDelay: Double?)
    /// Logged in, but the check query failed (an engine without these functions, a permission).
    case queryFailed(String)
    /// Could not connect or log in, or the connection broke or timed out.
    case unreachable(String)
}

/// Something an operator should hear about once, when it changes.
public struct HealthEvent: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case down, up, writeableInRecovery, writeableWritable, mainNotInRecovery, mainLeftRecovery, mainInRecoveryAgain
    }
    public var kind: Kind
    public var database: String
    public var role: BackendRole
    public var address: String
    public var detail: String?

    /// Down, a read-only writeable and a promoted main are warnings; the rest is information.
    public var isWarning: Bool { kind == .down || kind == .writeableInRecovery || kind == .mainLeftRecovery }

    public var description: String {
        let subject = "database \"\(database)\": \(role) backend \(address)"
        switch kind {
        case .down: return "\(subject) is down" + (detail.map { ": \($0)" } ?? "")
        case .up: return "\(subject) is up" + (detail.map { " (\($0))" } ?? "")
        case .writeableInRecovery:
            return "\(subject) is in recovery (read-only): writes will fail until it is promoted or the configuration changes"
        case .writeableWritable: return "\(subject) accepts writes again"
        case .mainNotInRecovery: return "\(subject) is not a standby (pg_is_in_recovery() is false)"
        case .mainLeftRecovery:
            return "\(subject) has left recovery (promoted?): it no longer follows writeable, so reads go to writeable while that is up"
        case .mainInRecoveryAgain: return "\(subject) is a standby again: reads go to it"
        }
    }
}

/// An immutable picture of a database's backends, published by the health monitor and read by
/// any loop (`HealthBoard.snapshot`).
public final class HealthSnapshot: Sendable {
    public let database: String
    public let main: BackendHealth
    public let writeable: BackendHealth?
    /// Recent writeable positions with the sequence number of the poll that read them, oldest first.
    public let writeablePositions: [(sequence: UInt64, position: LSN)]
    // What read placement asks after every commit, kept as plain values: reading a field of `main`
    // through the class copies the whole BackendHealth (its strings retained and released).
    private let mainDown: Bool
    private let mainUp: Bool
    /// Main was promoted while writeable is up: writes go on there, so main serves no reads.
    private let mainDiverged: Bool
    public let mainInRecovery: Bool?
    private let mainPosition: LSN?
    private let mainReplayDelay: Double?
    public let hasWriteableHealth: Bool

    init(database: String, main: BackendHealth, writeable: BackendHealth?, writeablePositions: [(sequence: UInt64, position: LSN)]) {
        self.database = database
        self.main = main
        self.writeable = writeable
        self.writeablePositions = writeablePositions
        mainDown = main.state == .down
        mainUp = main.state == .up
        mainDiverged = main.leftRecovery && writeable?.state != .down
        mainInRecovery = main.inRecovery
        mainPosition = main.position
        mainReplayDelay = main.replayDelay
        hasWriteableHealth = writeable != nil
    }

    public var writeableLSN: LSN? { writeable?.position }
    public var mainReplayLSN: LSN? { main.inRecovery == true ? main.position : nil }

    /// writeable's WAL position minus main's replay position; nil unless both are known and main
    /// is a standby.
    public var lagBytes: Int64? {
        guard main.inRecovery == true, let replay = main.position, let current = writeable?.position else { return nil }
        return current.bytes(after: replay)
    }

    /// Main may take reads: it answered its last check (or has not been checked yet) and, with a
    /// limit, its replay delay is within it. An unknown delay (an engine without these functions)
    /// does not count against it.
    public func mainUsable(maxLag: Duration?) -> Bool {
        if mainDown || mainDiverged { return false }
        guard let maxLag, let delay = mainReplayDelay else { return true }
        let (seconds, attoseconds) = maxLag.components
        return delay <= Double(seconds) + Double(attoseconds) / 1e18
    }

    /// The writeable position main must reach for a session whose write committed when the poll
    /// sequence was `token`: the position read by the first writeable poll that started after it
    /// (it covers the commit). Nil until such a poll has answered.
    public func replayTarget(after token: UInt64) -> LSN? {
        writeablePositions.first(where: { $0.sequence > token })?.position
    }

    /// Whether main has replayed `target` — true when main is not a standby at all.
    public func mainHasReplayed(_ target: LSN) -> Bool {
        if mainInRecovery == false { return true }
        guard mainUp, let replay = mainPosition else { return false }
        return replay >= target
    }
}

/// One database's health: the monitor records into it, sessions read its snapshot. A lock is
/// held only to swap or take the snapshot reference; the poll sequence is an atomic.
public final class HealthBoard: Sendable {
    public let database: String
    public let hasWriteable: Bool
    /// Writeable positions kept for read-your-writes targets.
    public static let historyLength = 64
    private let sequence = Atomic<UInt64>(0)
    /// Bumped after every recorded poll: a session recomputes its read placement only when it moved.
    private let recorded = Atomic<UInt64>(0)
    private let current: Locked<HealthSnapshot>
    private let metrics: DatabaseMetrics?

    public init(database: String, mainAddress: String, writeableAddress: String?, metrics: DatabaseMetrics? = nil) {
        self.database = database
        self.hasWriteable = writeableAddress != nil
        self.metrics = metrics
        current = Locked(HealthSnapshot(database: database, main: BackendHealth(role: .main, address: mainAddress),
                                       writeable: writeableAddress.map { BackendHealth(role: .writeable, address: $0) },
                                       writeablePositions: []))
    }

    /// The latest picture (a lock and a reference copy).
    public var snapshot: HealthSnapshot { current.withLock { $0 } }

    /// The monitor calls this as it sends a check query; the number orders polls against commits.
    public func beginPoll() -> UInt64 {
        sequence.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue
    }

    /// How many polls were recorded: unchanged means the snapshot is the one read last time.
    public var version: UInt64 { recorded.load(ordering: .acquiring) }

    /// The last poll number handed out. A session stores it when its write commits (its
    /// "read-your-writes token"); see `ReadYourWritesGate`.
    public var currentSequence: UInt64 { sequence.load(ordering: .acquiring) }

    /// Records a poll's outcome; returns what changed in a way worth logging (each change once).
    @discardableResult
    public func record(_ role: BackendRole, _ outcome: PollOutcome, sequence pollSequence: UInt64,
                       at now: ContinuousClock.Instant = .now) -> [HealthEvent] {
        let (events, snapshot) = current.withLock { snapshot -> ([HealthEvent], HealthSnapshot) in
            guard role == .main || snapshot.writeable != nil else { return ([], snapshot) }
            let before = role == .main ? snapshot.main : snapshot.writeable!
            var after = before
            after.sequence = pollSequence
            after.checkedAt = now
            switch outcome {
            case .answered(let inRecovery, let position, let delay):
                after.state = .up
                after.inRecovery = inRecovery
                after.position = position
                after.replayDelay = delay
                after.lastError = nil
            case .queryFailed(let why):
                after.state = .up
                after.inRecovery = nil
                after.position = nil
                after.replayDelay = nil
                after.lastError = why
            case .unreachable(let why):
                after.state = .down
                after.lastError = why
            }
            if after.state != before.state { after.stateSince = now }
            var events: [HealthEvent] = []
            func event(_ kind: HealthEvent.Kind, _ detail: String? = nil) {
                events.append(HealthEvent(kind: kind, database: database, role: role, address: after.address, detail: detail))
            }
            if after.state == .down && before.state != .down { event(.down, after.lastError) }
            if after.state == .up && before.state == .down { event(.up) }
            if role == .main && hasWriteable {
                // Seen as a standby and then not: promoted. The flag outlives a failed check.
                if after.inRecovery == true {
                    if before.leftRecovery { event(.mainInRecoveryAgain) }
                    after.leftRecovery = false
                } else if after.inRecovery == false && (before.inRecovery == true || before.leftRecovery) {
                    if !before.leftRecovery { event(.mainLeftRecovery) }
                    after.leftRecovery = true
                }
            }
            if after.state == .up {
                if role == .writeable {
                    if after.inRecovery == true && before.inRecovery != true { event(.writeableInRecovery) }
                    if after.inRecovery == false && before.inRecovery == true { event(.writeableWritable) }
                } else if hasWriteable && after.inRecovery == false && before.inRecovery == nil {
                    event(.mainNotInRecovery)
                }
            }
            var positions = snapshot.writeablePositions
            if role == .writeable, case .answered(_, let position?, _) = outcome {
                // Keep them ordered by sequence: a slow poll may answer after a later one.
                let index = positions.lastIndex(where: { $0.sequence < pollSequence }).map { $0 + 1 } ?? 0
                positions.insert((pollSequence, position), at: index)
                if positions.count > Self.historyLength { positions.removeFirst(positions.count - Self.historyLength) }
            }
            let next = HealthSnapshot(database: database,
                                      main: role == .main ? after : snapshot.main,
                                      writeable: role == .writeable ? after : snapshot.writeable,
                                      writeablePositions: positions)
            snapshot = next
            return (events, next)
        }
        recorded.wrappingAdd(1, ordering: .releasing)
        if let metrics {
            metrics.target(.main).setHealth(snapshot.main, lagBytes: snapshot.lagBytes)
            if let writeable = snapshot.writeable { metrics.target(.writeable).setHealth(writeable, lagBytes: nil) }
        }
        return events
    }
}

/// Read-your-writes for one session (kept by its shell, confined to its loop): after a write
/// commits, reads go to writeable until main has replayed past it.
///
///     // unitFinished(_, failed: false, wroteOnWriteable: true):
///     gate.wrote(board)
///     // before handing client input to the session:
///     session.readsToWriteable = !snapshot.mainUsable(maxLag: config.maxReplicaLag)
///                                || !gate.mainIsCaughtUp(board.snapshot)
///
/// Cost when nothing is pending: one branch. While waiting: one snapshot read and a search of at
/// most 64 positions until the target is known, then one comparison.
public struct ReadYourWritesGate: Sendable {
    /// The poll sequence at the last commit still waited for.
    public private(set) var token: UInt64?
    /// The writeable position main must reach, once a later writeable poll has read it.
    public private(set) var target: LSN?

    public init() {}

    /// A write of this session committed (its ReadyForQuery came back).
    public mutating func wrote(_ board: HealthBoard) {
        token = board.currentSequence
        target = nil
    }

    /// True when nothing is pending or main has replayed past this session's last commit.
    public mutating func mainIsCaughtUp(_ snapshot: HealthSnapshot) -> Bool {
        guard let token else { return true }
        if !snapshot.hasWriteableHealth || snapshot.mainInRecovery == false {
            self.token = nil
            return true
        }
        if target == nil { target = snapshot.replayTarget(after: token) }
        guard let target, snapshot.mainHasReplayed(target) else { return false }
        self.token = nil
        self.target = nil
        return true
    }

    public var isWaiting: Bool { token != nil }
}
