import DispatchTransport
import PostgresWire
import SplitConfig

/// Backend connections whose clients left, kept for the next client with the same backend, user,
/// database and startup parameters — so a client that connects for each query does not pay for a
/// backend login each time. One pool per event loop, because a connection belongs to one loop.
///
/// Sendable by confinement: every method runs on `loop`'s queue (the pool is reached only from
/// handlers on that loop and its own timers).
final class BackendPool: @unchecked Sendable {
    /// A class, so that handing a key around (to the pool, to a session's backend, back to the pool)
    /// is one reference count rather than a copy of every string of the backend's address.
    final class Key: Hashable, Sendable {
        let address: BackendAddress
        let user: String
        let database: String
        let parameters: [ConnectionParameter]
        /// Hashed once when the key is made: a login looks its key up several times.
        private let precomputedHash: Int

        init(_ login: BackendLogin) {
            address = login.address
            user = login.user
            database = login.database
            parameters = login.parameters.isEmpty ? [] : login.parameters.map { ConnectionParameter(key: $0.0, value: $0.1) }
            var hasher = Hasher()
            hasher.combine(address)
            hasher.combine(user)
            hasher.combine(database)
            hasher.combine(parameters)
            precomputedHash = hasher.finalize()
        }

        static func == (lhs: Key, rhs: Key) -> Bool {
            lhs.precomputedHash == rhs.precomputedHash && lhs.address == rhs.address && lhs.user == rhs.user
                && lhs.database == rhs.database && lhs.parameters == rhs.parameters
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(precomputedHash)
        }
    }

    struct Idle {
        var connection: Connection
        var info: BackendSessionInfo
        var createdAt: ContinuousClock.Instant
        var idleSince: ContinuousClock.Instant
    }

    let loop: EventLoop
    let settings: PoolSettings
    private var idle: [Key: [Idle]] = [:]
    private var sweeping = false

    init(loop: EventLoop, settings: PoolSettings) {
        self.loop = loop
        self.settings = settings
    }

    var idleCount: Int { idle.values.reduce(0) { $0 + $1.count } }

    /// A live idle connection for `key`, if one is kept.
    func take(_ key: Key) -> Idle? {
        let now = ContinuousClock.now
        while let index = idle.index(forKey: key) {
            // Popped in place: copying the list out of the dictionary would copy its storage.
            let candidate = idle.values[index].popLast()!
            if idle.values[index].isEmpty { idle.remove(at: index) }
            if candidate.connection.isClosed { continue }
            if now - candidate.createdAt > settings.lifetime {
                candidate.connection.close()
                continue
            }
            candidate.connection.onRead = nil
            candidate.connection.onClose = nil
            return candidate
        }
        return nil
    }

    /// Takes a connection whose client left: resets it, then keeps it (or closes it when the pool
    /// is full, the connection is too old, or the reset fails).
    func release(_ connection: Connection, key: Key, info: BackendSessionInfo, createdAt: ContinuousClock.Instant) {
        guard settings.size > 0, !connection.isClosed,
              ContinuousClock.now - createdAt < settings.lifetime,
              (idle[key]?.count ?? 0) < settings.size else {
            terminate(connection)
            return
        }
        let entry = Idle(connection: connection, info: info, createdAt: createdAt, idleSince: .now)
        if settings.resetQuery.isEmpty {
            keep(entry, key: key)
            return
        }
        // The answer normally arrives in one read; only a split one is gathered.
        var partial: [UInt8] = []
        connection.onClose = { _ in }
        connection.onRead = { [self] bytes in
            let outcome: ResetOutcome
            if partial.isEmpty {
                outcome = Self.resetOutcome(bytes)
                if case .incomplete = outcome { partial.append(contentsOf: bytes) }
            } else {
                partial.append(contentsOf: bytes)
                outcome = partial.withUnsafeBytes { Self.resetOutcome($0) }
            }
            switch outcome {
            case .incomplete: return
            case .clean: keep(entry, key: key)
            case .failed: terminate(connection)
            }
        }
        connection.write(resetMessage)
    }

    /// The reset query as a Query message, encoded once.
    private lazy var resetMessage: [UInt8] = {
        var reset = ByteBuffer(capacity: 64)
        reset.writeQuery(settings.resetQuery)
        return reset.readableArray
    }()

    enum ResetOutcome: Equatable {
        case incomplete
        /// ReadyForQuery "idle", no error, nothing after it.
        case clean
        case failed
    }

    /// Reads the backend's answer to the reset query so far.
    static func resetOutcome(_ bytes: UnsafeRawBufferPointer) -> ResetOutcome {
        var offset = 0
        var sawError = false
        while true {
            switch MessageFraming.frame(bytes, from: offset, maxMessageSize: 1 << 20) {
            case .needMore:
                return .incomplete
            case .invalid:
                return .failed
            case .message(let type, let payload):
                if type == UInt8(ascii: "E") { sawError = true }
                if type == UInt8(ascii: "Z") {
                    let idle = payload.count == 1 && bytes[payload.lowerBound] == UInt8(ascii: "I")
                    return !sawError && idle && payload.upperBound == bytes.count ? .clean : .failed
                }
                offset = payload.upperBound
            }
        }
    }

    private func keep(_ entry: Idle, key: Key) {
        let connection = entry.connection
        // Anything a pooled connection says (a FATAL at server shutdown) ends it.
        connection.onRead = { [self] _ in
            forget(connection)
            connection.close()
        }
        connection.onClose = { [self] _ in forget(connection) }
        idle[key, default: []].append(entry)
        scheduleSweep()
    }

    private func forget(_ connection: Connection) {
        for (key, list) in idle {
            if let index = list.firstIndex(where: { $0.connection === connection }) {
                var list = list
                list.remove(at: index)
                idle[key] = list.isEmpty ? nil : list
                return
            }
        }
    }

    private func terminate(_ connection: Connection) {
        connection.onRead = nil
        connection.onClose = nil
        connection.write([UInt8(ascii: "X"), 0, 0, 0, 4])
        connection.closeAfterFlush()
    }

    /// Closes connections idle past server_idle_timeout or older than server_lifetime.
    private func scheduleSweep() {
        guard !sweeping else { return }
        sweeping = true
        let period = max(1, min(60, Double(settings.idleTimeout.components.seconds) / 4))
        _ = loop.scheduleTimer(after: period) { [self] in
            sweeping = false
            let now = ContinuousClock.now
            for (key, list) in idle {
                let (keep, drop) = list.reduce(into: ([Idle](), [Idle]())) { acc, entry in
                    if now - entry.idleSince > settings.idleTimeout || now - entry.createdAt > settings.lifetime {
                        acc.1.append(entry)
                    } else {
                        acc.0.append(entry)
                    }
                }
                idle[key] = keep.isEmpty ? nil : keep
                for entry in drop { terminate(entry.connection) }
            }
            if !idle.isEmpty { scheduleSweep() }
        }
    }
}
