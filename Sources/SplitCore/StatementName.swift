// Protocol-level statement names, and the table that keeps a value per name.

import Glibc
import StatementClassifier

/// A protocol-level statement name as the client sent it, read straight from the message bytes, and
/// copied as plain words: a prepared-mode client names a statement in every Bind, and decoding and
/// hashing it as a String cost a seventh of such a query.
///
/// PostgreSQL knows a statement by the first 63 bytes of its name (NAMEDATALEN - 1: a longer name is
/// the same statement as any other with those 63 bytes), and so does this.
///
/// Names of up to 24 bytes — most drivers' (`S_12`, `P_3`, `_pg3_0`, `__asyncpg_stmt_1f__`) — are held
/// in the three words themselves. A longer name (pgx names statements by a digest of their text) is
/// held as two 64-bit SipHash values of its bytes under this process's random key, and its first
/// eight bytes: two different names of the same length share all three with a chance of 2^-128, and
/// no client can aim for it without the key. Its bytes are kept by `LongStatementNames`, for the few
/// messages the proxy writes itself.
struct StatementName: Hashable, CustomStringConvertible, BitwiseCopyable {
    static let inlineCapacity = 24
    /// The bytes of a name that count (NAMEDATALEN - 1).
    static let significantLength = 63

    private var w0: UInt64 = 0
    private var w1: UInt64 = 0
    private var w2: UInt64 = 0
    /// The name's length in bytes.
    private(set) var count = 0

    static let unnamed = StatementName()

    init() {}

    init(_ bytes: UnsafeRawBufferPointer) {
        let bytes = bytes.count > Self.significantLength
            ? UnsafeRawBufferPointer(rebasing: bytes[0..<Self.significantLength]) : bytes
        count = bytes.count
        if count == 0 { return }
        if count <= Self.inlineCapacity {
            var words: (UInt64, UInt64, UInt64) = (0, 0, 0)
            withUnsafeMutableBytes(of: &words) { $0.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: count) }
            (w0, w1, w2) = words
        } else {
            (w0, w1, w2) = Self.digest(bytes)
        }
    }

    /// The name `r` spans in `buffer` (its terminating NUL excluded).
    @inline(__always)
    init(_ buffer: UnsafeRawBufferPointer, _ r: Range<Int>) {
        // The unnamed statement, named in every batch of most drivers: nothing to copy.
        if r.isEmpty { self.init(); return }
        self.init(UnsafeRawBufferPointer(rebasing: buffer[r]))
    }

    @inline(never)
    private static func digest(_ bytes: UnsafeRawBufferPointer) -> (UInt64, UInt64, UInt64) {
        var first = Hasher(), second = Hasher()
        first.combine(0 as UInt8); first.combine(bytes: bytes)
        second.combine(1 as UInt8); second.combine(bytes: bytes)
        var prefix: UInt64 = 0
        withUnsafeMutableBytes(of: &prefix) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<8])) }
        return (UInt64(UInt(bitPattern: first.finalize())), UInt64(UInt(bitPattern: second.finalize())), prefix)
    }

    init(_ string: String) {
        var string = string
        self = string.withUTF8 { StatementName(UnsafeRawBufferPointer($0)) }
    }

    var isEmpty: Bool { count == 0 }

    /// True when the name is held as a digest: its bytes are in `LongStatementNames`.
    var isLong: Bool { count > Self.inlineCapacity }

    /// Calls `body` with the bytes of a name that is not long.
    func withInlineBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        precondition(!isLong, "a long statement name's bytes are kept apart")
        var words = (w0, w1, w2)
        return withUnsafeBytes(of: &words) { body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    var description: String {
        isLong ? "(a \(count)-byte name)" : withInlineBytes { String(decoding: $0, as: UTF8.self) }
    }
}

/// The bytes of the long statement names (see `StatementName`) of the statements a session holds, for
/// the Close and Describe messages the proxy writes itself. Names no statement holds any more are
/// dropped when the table has doubled since it was last trimmed.
struct LongStatementNames {
    private var bytes: [StatementName: [UInt8]] = [:]
    private var trimAt = 64

    /// Keeps `name`'s bytes (those that count); true when the table is due for trimming.
    mutating func remember(_ name: StatementName, _ nameBytes: UnsafeRawBufferPointer) -> Bool {
        guard name.isLong, bytes[name] == nil else { return false }
        bytes[name] = Array(nameBytes.prefix(StatementName.significantLength))
        return bytes.count >= trimAt
    }

    mutating func trim(keeping isHeld: (StatementName) -> Bool) {
        bytes = bytes.filter { isHeld($0.key) }
        trimAt = max(64, 2 * bytes.count)
    }

    mutating func removeAll() { bytes.removeAll() }

    var count: Int { bytes.count }

    /// Calls `body` with `name`'s bytes; a long name no statement held has none (it was never
    /// prepared, so nothing is written for it).
    func withBytes<R>(of name: StatementName, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        guard name.isLong else { return name.withInlineBytes(body) }
        return bytes[name]?.withUnsafeBytes(body)
    }
}

/// Values by statement name. The unnamed statement is kept apart (drivers Parse it again for every
/// query), and the first `scannedCapacity` named ones are found by comparing names in a row rather
/// than by hashing: a client cycling through a handful of statements (pgbench's tpcb-like binds seven)
/// finds each in a few word comparisons. Names beyond those go to a dictionary.
struct StatementNames<Value> {
    static var scannedCapacity: Int { 16 }

    fileprivate var unnamed: Value?
    fileprivate var names: [StatementName] = []
    fileprivate var values: [Value] = []
    fileprivate var overflow: [StatementName: Value] = [:]

    @inline(__always)
    fileprivate func index(of name: StatementName) -> Int? {
        var i = 0
        while i < names.count {
            if names[i] == name { return i }
            i += 1
        }
        return nil
    }

    subscript(name: StatementName) -> Value? {
        get {
            if name.isEmpty { return unnamed }
            if let i = index(of: name) { return values[i] }
            return overflow.isEmpty ? nil : overflow[name]
        }
        set {
            if name.isEmpty { unnamed = newValue; return }
            if let i = index(of: name) {
                if let newValue {
                    values[i] = newValue
                } else {
                    names.swapAt(i, names.count - 1); names.removeLast()
                    values.swapAt(i, values.count - 1); values.removeLast()
                }
            } else if !overflow.isEmpty, overflow[name] != nil {
                overflow[name] = newValue
            } else if let newValue {
                if names.count < Self.scannedCapacity {
                    names.append(name); values.append(newValue)
                } else {
                    overflow[name] = newValue
                }
            }
        }
    }

    /// Changes the entry in place (the unnamed one without copying it: re-Parsed for every query).
    mutating func update<R>(_ name: StatementName, _ body: (inout Value?) -> R) -> R {
        if name.isEmpty { return body(&unnamed) }
        var value = self[name]
        let result = body(&value)
        self[name] = value
        return result
    }

    mutating func removeAll() {
        unnamed = nil
        names.removeAll()
        values.removeAll()
        overflow.removeAll()
    }

    var count: Int { (unnamed == nil ? 0 : 1) + names.count + overflow.count }
}

// Read in place: a copy of a stored statement would retain and release its arrays.
extension StatementNames where Value == PreparedStatement {
    /// The stored class of statement `name` when `parse` is its Parse message again.
    func classification(of name: StatementName, ifSameAs parse: UnsafeRawBufferPointer, version: Int) -> [StatementInfo]? {
        if name.isEmpty { return unnamed?.classification(ifSameAs: parse, version: version) }
        if let i = index(of: name) { return values[i].classification(ifSameAs: parse, version: version) }
        return overflow.isEmpty ? nil : overflow[name]?.classification(ifSameAs: parse, version: version)
    }

    /// The class of statement `name` (a prepared-mode client binds it per query).
    func classes(of name: StatementName) -> [StatementInfo]? {
        if name.isEmpty { return unnamed?.statements }
        if let i = index(of: name) { return values[i].statements }
        return overflow.isEmpty ? nil : overflow[name]?.statements
    }

    /// The generation of statement `name`.
    func generation(of name: StatementName) -> UInt64? {
        if name.isEmpty { return unnamed?.generation }
        if let i = index(of: name) { return values[i].generation }
        return overflow.isEmpty ? nil : overflow[name]?.generation
    }
}

extension StatementNames where Value == PreparedStatement {
    /// Copies of statement `name` are prepared with the parameter types `description` gives.
    mutating func pinParameterTypes(of name: StatementName, _ description: [UInt8]) {
        update(name) { stored in
            guard let statement = stored, statement.pinnedParse == nil else { return }
            stored?.pinnedParse = statement.parse(withParameterTypes: description)
        }
    }
}
