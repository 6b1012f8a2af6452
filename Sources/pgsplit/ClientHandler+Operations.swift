import Foundation
import PostgresWire
import SplitConfig
import SplitCore

/// The operational side of a client session: where reads may go given main's health and lag,
/// shutdown, and the session's row on the admin console.
extension ClientHandler {
    /// Main down or lagging past max_replica_lag sends reads to writeable (or refuses them, with
    /// `read_fallback = error`); with `read_your_writes = lsn`, so does main not having replayed this
    /// session's last write yet.
    func updateReadPlacement() {
        // Placement matters only for reads outside a transaction: inside one, everything stays put.
        guard let health, session != nil, session!.settings.hasWriteable, session!.transaction == nil else { return }
        // Nothing new from the monitor since the last answer: it stands. (Both inputs change only with
        // the board's version or with a commit, and a commit clears `placementVersion`.)
        let version = health.version
        if version == placementVersion { return }
        placementVersion = version
        let snapshot = health.snapshot
        let mainUsable = snapshot.mainUsable(maxLag: config.maxReplicaLag)
        let caughtUp = config.readYourWrites != .lsn || replayGate.mainIsCaughtUp(snapshot)
        switch config.readFallback {
        case .writeable:
            session!.readsToWriteable = !mainUsable || !caughtUp
            session!.readRefusal = nil
        case .error:
            session!.readsToWriteable = !caughtUp
            if mainUsable {
                session!.readRefusal = nil
            } else {
                var out = ByteBuffer(capacity: 256)
                out.writeErrorResponse(severity: "ERROR", code: SQLState.connectionFailure,
                                       message: "the main backend is unavailable or lags behind (read_fallback = error)",
                                       detail: nil, hint: "Retry later, or set read_fallback = writeable to read from the writeable backend meanwhile.")
                session!.readRefusal = out.readableArray
            }
        }
    }

    /// During shutdown, a session closes as soon as nothing is running and no transaction is open.
    func closeIfIdleForShutdown() {
        switch phase {
        case .ready:
            guard let session, session.isIdle else { return }
        case .admin, .startup, .authenticating:
            break
        case .connectingMain, .closed:
            return
        }
        fail(code: SQLState.adminShutdown, message: "terminating connection due to administrator command",
             hint: "pgsplit is shutting down.")
    }

    /// client_idle_timeout and idle_transaction_timeout, checked once a second by the server.
    func closeIfIdleTooLong(now: MonotonicInstant) {
        guard case .ready = phase, let session, !session.hasUnitsInFlight, clientInput.isEmpty else { return }
        let idle = now - lastActivity
        let settings = config.operations
        if session.transaction == nil {
            guard settings.clientIdleTimeout > .zero, idle > settings.clientIdleTimeout else { return }
            fail(code: "57P05", message: "terminating connection due to idle-session timeout",
                 hint: "client_idle_timeout is \(AdminFormat.duration(settings.clientIdleTimeout)).")
        } else {
            guard settings.idleTransactionTimeout > .zero, idle > settings.idleTransactionTimeout else { return }
            fail(code: "25P03", message: "terminating connection due to idle-in-transaction timeout",
                 hint: "idle_transaction_timeout is \(AdminFormat.duration(settings.idleTransactionTimeout)); the transaction was rolled back.")
        }
    }

    /// This session's line in SHOW SESSIONS (nil for admin connections).
    func adminRow() -> AdminSessionRow? {
        if case .admin = phase { return nil }
        var gate = replayGate
        let waiting = health.map { !gate.mainIsCaughtUp($0.snapshot) } ?? false
        return AdminSessionRow(id: id, clientAddress: client.remoteAddress, user: user, database: databaseName,
                               session: session, connectedAt: connectedAt,
                               waitingForReplay: config.readYourWrites == .lsn && waiting)
    }
}
