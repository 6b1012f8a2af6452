/// What calling a function means for routing: built-in knowledge of functions that write, need session
/// state or cannot run on a standby, combined with the per-database `FunctionPolicy`.
enum FunctionEffect: Equatable {
    case readSafe
    /// Not in the catalog (FunctionPolicy.knownFunctions): the session looks it up before routing.
    case unknown
    case writes
    /// nextval / setval: writes, and later currval needs the same backend.
    case writesSequence
    /// A session-level advisory lock function: writes, and the lock lives on that backend.
    case writesAdvisoryLock
    /// set_config(name, value, is_local): writes, and is a session effect when its arguments are literals.
    case setConfig
}

/// A class so that each statement's reader shares it with one reference count, not one per table array.
/// Immutable after init (only `let`s of Sendable types), hence Sendable.
final class FunctionCatalog: Sendable {
    /// What the tables were built from (kept here so that a Classifier is one reference to copy).
    let source: FunctionPolicy
    private let builtins: NameTable
    private let policy: NameTable
    private let known: NameTable
    private let unlogged: NameTable
    /// Whether any unlogged relation is known: most databases have none, and their queries skip the lookup.
    let hasUnlogged: Bool

    private enum Builtin {
        static let writes: UInt8 = 1
        static let sequence: UInt8 = 2
        static let setConfig: UInt8 = 3
    }

    private enum PolicyBit {
        static let volatile: UInt8 = 1
        static let readSafe: UInt8 = 2
        static let writing: UInt8 = 4
    }

    init(policy: FunctionPolicy) {
        source = policy
        var builtinEntries: [(name: [UInt8], value: UInt8)] = []
        for name in Self.writingBuiltins { builtinEntries.append((Array(name.utf8), Builtin.writes)) }
        builtinEntries.append((Array("nextval".utf8), Builtin.sequence))
        builtinEntries.append((Array("setval".utf8), Builtin.sequence))
        builtinEntries.append((Array("set_config".utf8), Builtin.setConfig))
        builtins = NameTable(builtinEntries)

        var policyEntries: [(name: [UInt8], value: UInt8)] = []
        func add(_ names: Set<String>, _ bit: UInt8) {
            for name in names {
                policyEntries.append((Array(name.utf8), bit))
                let lower = Array(name.utf8).map(ASCII.lowercased)
                if lower != Array(name.utf8) { policyEntries.append((lower, bit)) }
            }
        }
        add(policy.volatileFunctions, PolicyBit.volatile)
        add(policy.readSafe, PolicyBit.readSafe)
        add(policy.writing, PolicyBit.writing)
        self.policy = NameTable(policyEntries)
        known = NameTable(policy.knownFunctions.map { (Array($0.utf8), UInt8(1)) })
        unlogged = NameTable(policy.unloggedRelations.map { (Array($0.lowercased().utf8), UInt8(1)) })
        hasUnlogged = !policy.unloggedRelations.isEmpty
    }

    /// Whether `name` (a name as written: unquoted or the inside of a quoted one) may be an unlogged
    /// relation. Compared lower-cased: a quoted name that differs only in case counts too, the safe side.
    func isUnlogged(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        withLowercased(name) { unlogged.value(for: $0) != 0 }
    }

    /// The effect of calling `name` (already lower-cased when it was unquoted); `qualified` is
    /// "schema.name" when the call named a schema. `readSafe` overrides everything, then `writing`,
    /// then the built-in list, then the catalog's volatile functions.
    func effect(name: UnsafeBufferPointer<UInt8>, qualified: UnsafeBufferPointer<UInt8>?) -> FunctionEffect {
        if !policy.isEmpty {
            var bits = policyBits(name, qualified)
            if bits == 0 && (hasUpperCase(name) || qualified.map(hasUpperCase) == true) {
                // A quoted "My Fn" against a policy that lists names lower-cased: better a false "writes".
                bits = withLowercased(name) { lowerName in
                    guard let qualified else { return policyBits(lowerName, nil) }
                    return withLowercased(qualified) { policyBits(lowerName, $0) }
                }
            }
            if bits & PolicyBit.readSafe != 0 { return .readSafe }
            if bits & PolicyBit.writing != 0 { return .writes }
            let builtin = builtinEffect(name)
            if builtin != .readSafe { return builtin }
            if bits & PolicyBit.volatile != 0 { return .writes }
        } else {
            let builtin = builtinEffect(name)
            if builtin != .readSafe { return builtin }
        }
        if !known.isEmpty && known.value(for: name) == 0 && !isKnownLowercased(name) { return .unknown }
        return .readSafe
    }

    private func policyBits(_ name: UnsafeBufferPointer<UInt8>, _ qualified: UnsafeBufferPointer<UInt8>?) -> UInt8 {
        var bits = policy.value(for: name)
        if let qualified { bits |= policy.value(for: qualified) }
        return bits
    }

    private func isKnownLowercased(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        guard hasUpperCase(name) else { return false }
        return withLowercased(name) { known.value(for: $0) != 0 }
    }

    private func hasUpperCase(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        name.contains { $0 >= 0x41 && $0 <= 0x5A }
    }

    private func withLowercased<R>(_ name: UnsafeBufferPointer<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(1, name.count)) { buffer in
            for i in 0..<name.count { buffer[i] = ASCII.lowercased(name[i]) }
            return body(UnsafeBufferPointer(start: buffer.baseAddress, count: name.count))
        }
    }

    private func builtinEffect(_ name: UnsafeBufferPointer<UInt8>) -> FunctionEffect {
        switch builtins.value(for: name) {
        case Builtin.writes: return .writes
        case Builtin.sequence: return .writesSequence
        case Builtin.setConfig: return .setConfig
        default: break
        }
        // Every pg_advisory* / pg_try_advisory* function takes or releases a lock; the _xact_ ones
        // end with the transaction, the others live as long as the session. Taking a session lock
        // pins the session to writeable, where every later statement then runs, its unlocks too. An
        // unlock in a session not pinned has no lock to release anywhere: it is a read (asyncpg's pool
        // sends `pg_advisory_unlock_all()` at every release; it must not need the primary).
        if hasPrefix(name, "pg_advisory") || hasPrefix(name, "pg_try_advisory") {
            if contains(name, "_unlock") { return .readSafe }
            return contains(name, "_xact_") ? .writes : .writesAdvisoryLock
        }
        return .readSafe
    }

    private func hasPrefix(_ name: UnsafeBufferPointer<UInt8>, _ prefix: StaticString) -> Bool {
        let n = prefix.utf8CodeUnitCount
        guard name.count >= n else { return false }
        for i in 0..<n where name[i] != prefix.utf8Start[i] { return false }
        return true
    }

    private func contains(_ name: UnsafeBufferPointer<UInt8>, _ part: StaticString) -> Bool {
        let n = part.utf8CodeUnitCount
        guard name.count >= n else { return false }
        outer: for start in 0...(name.count - n) {
            for i in 0..<n where name[start + i] != part.utf8Start[i] { continue outer }
            return true
        }
        return false
    }

    /// Built-in functions that write, assign a transaction id, or cannot run during recovery.
    static let writingBuiltins: [String] = [
        "currval", "lastval",
        "pg_notify",
        "txid_current", "txid_current_if_assigned", "pg_current_xact_id", "pg_current_xact_id_if_assigned",
        "pg_current_wal_lsn", "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn", "pg_switch_wal",
        "pg_current_xlog_location", "pg_current_xlog_insert_location", "pg_current_xlog_flush_location",
        "pg_switch_xlog", "pg_create_restore_point",
        "pg_backup_start", "pg_start_backup", "pg_backup_stop", "pg_stop_backup",
        "pg_create_physical_replication_slot", "pg_create_logical_replication_slot", "pg_drop_replication_slot",
        "pg_copy_physical_replication_slot", "pg_copy_logical_replication_slot", "pg_replication_slot_advance",
        "pg_logical_emit_message",
        "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
        "lo_create", "lo_creat", "lo_import", "lo_export", "lo_unlink", "lo_open", "lo_close", "lo_write",
        "lowrite", "loread", "lo_put", "lo_from_bytea", "lo_truncate", "lo_truncate64", "lo_lseek",
        "lo_lseek64", "lo_tell", "lo_tell64", "lo_get",
        "dblink_exec",
    ]
}
