import CLibPQ
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An error from libpq or from the server. `sqlState` is the server's SQLSTATE when it sent one
/// (for connection failures it is read from libpq's verbose message, e.g. `FATAL:  28P01: ...`).
struct PQError: Error, CustomStringConvertible {
    var message: String
    var sqlState: String?

    var description: String {
        "PQError(\(sqlState ?? "-----")): \(message.trimmingCharacters(in: .whitespacesAndNewlines))"
    }
}

/// A thin libpq wrapper for the integration tests. Text results only.
final class PQConnection {
    private var conn: OpaquePointer?

    /// Connects with a libpq connection string. Blocks until connected or failed. Errors carry the
    /// server's message and, when there is one, its SQLSTATE.
    init(_ conninfo: String, timeout: TimeInterval = 60) throws {
        guard let c = PQconnectStart(conninfo) else {
            throw PQError(message: "PQconnectStart: out of memory", sqlState: nil)
        }
        conn = c
        // Verbose errors put the SQLSTATE into connection-time messages too.
        PQsetErrorVerbosity(c, PQERRORS_VERBOSE)
        if PQstatus(c) == CONNECTION_BAD {
            let msg = String(cString: PQerrorMessage(c))
            PQfinish(c)
            conn = nil
            throw PQError(message: msg, sqlState: PQConnection.sqlStateFromVerboseMessage(msg))
        }
        let deadline = Date().addingTimeInterval(timeout)
        var status = PGRES_POLLING_WRITING
        while true {
            if status == PGRES_POLLING_OK { break }
            if status == PGRES_POLLING_FAILED {
                let msg = String(cString: PQerrorMessage(c))
                PQfinish(c)
                conn = nil
                throw PQError(message: msg, sqlState: PQConnection.sqlStateFromVerboseMessage(msg))
            }
            if Date() > deadline {
                PQfinish(c)
                conn = nil
                throw PQError(message: "connection timed out after \(timeout)s: \(conninfo)", sqlState: nil)
            }
            var pfd = pollfd(fd: PQsocket(c), events: Int16(status == PGRES_POLLING_READING ? POLLIN : POLLOUT), revents: 0)
            _ = poll(&pfd, 1, 200)
            status = PQconnectPoll(c)
        }
        PQsetErrorVerbosity(c, PQERRORS_DEFAULT)
    }

    deinit { finish() }

    /// Closes the connection (sends Terminate). Safe to call more than once.
    func finish() {
        if let c = conn {
            PQfinish(c)
            conn = nil
        }
    }

    /// The connection's socket, e.g. to shut it down without a Terminate message.
    var socketFD: Int32 {
        guard let c = conn else { return -1 }
        return PQsocket(c)
    }

    var isOK: Bool {
        guard let c = conn else { return false }
        return PQstatus(c) == CONNECTION_OK
    }

    /// The transaction status libpq last saw in ReadyForQuery: "I", "T", "E", or "?".
    var transactionStatus: String {
        guard let c = conn else { return "?" }
        switch PQtransactionStatus(c) {
        case PQTRANS_IDLE: return "I"
        case PQTRANS_INTRANS: return "T"
        case PQTRANS_INERROR: return "E"
        case PQTRANS_ACTIVE: return "A"
        default: return "?"
        }
    }

    /// A server parameter (ParameterStatus), e.g. "server_version".
    func parameter(_ name: String) -> String? {
        guard let c = conn, let v = PQparameterStatus(c, name) else { return nil }
        return String(cString: v)
    }

    /// Runs `sql` with the simple protocol; returns the rows of the last result (text, NULL as nil).
    @discardableResult
    func query(_ sql: String) throws -> [[String?]] {
        let c = try live()
        return try consume(PQexec(c, sql))
    }

    /// Runs `sql` and ignores its rows. Returns the command tag of the last result.
    @discardableResult
    func exec(_ sql: String) throws -> String {
        let c = try live()
        guard let res = PQexec(c, sql) else { throw connectionError() }
        defer { PQclear(res) }
        try check(res)
        return String(cString: PQcmdStatus(res))
    }

    /// The first column of the first row.
    func scalar(_ sql: String) throws -> String? {
        let rows = try query(sql)
        guard let first = rows.first, let v = first.first else { return nil }
        return v
    }

    /// Extended protocol (Parse/Bind/Describe/Execute/Sync), unnamed statement, text parameters.
    @discardableResult
    func queryParams(_ sql: String, _ params: [String?] = []) throws -> [[String?]] {
        let c = try live()
        return try withCStrings(params) { ptrs in
            try consume(PQexecParams(c, sql, Int32(params.count), nil, ptrs, nil, nil, 0))
        }
    }

    /// Extended protocol: Parse of a named statement.
    func prepare(name: String, sql: String, parameterCount: Int = 0) throws {
        let c = try live()
        _ = try consume(PQprepare(c, name, sql, Int32(parameterCount), nil))
    }

    /// Extended protocol: Bind/Execute of a named statement.
    @discardableResult
    func execPrepared(name: String, params: [String?] = []) throws -> [[String?]] {
        let c = try live()
        return try withCStrings(params) { ptrs in
            try consume(PQexecPrepared(c, name, Int32(params.count), ptrs, nil, nil, 0))
        }
    }

    // MARK: - internals

    private func live() throws -> OpaquePointer {
        guard let c = conn else { throw PQError(message: "connection is closed", sqlState: nil) }
        return c
    }

    private func connectionError() -> PQError {
        let msg = conn.map { String(cString: PQerrorMessage($0)) } ?? "connection is closed"
        return PQError(message: msg, sqlState: nil)
    }

    private func check(_ res: OpaquePointer) throws {
        switch PQresultStatus(res) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_SINGLE_TUPLE:
            return
        default:
            let msg = String(cString: PQresultErrorMessage(res))
            var state: String?
            if let s = PQresultErrorField(res, Int32(UInt8(ascii: "C"))) {
                state = String(cString: s)
            }
            if state == nil, msg.isEmpty, let c = conn {
                throw PQError(message: String(cString: PQerrorMessage(c)), sqlState: nil)
            }
            throw PQError(message: msg, sqlState: state)
        }
    }

    private func consume(_ result: OpaquePointer?) throws -> [[String?]] {
        guard let res = result else { throw connectionError() }
        defer { PQclear(res) }
        try check(res)
        let nrows = PQntuples(res)
        let ncols = PQnfields(res)
        var rows: [[String?]] = []
        rows.reserveCapacity(Int(nrows))
        for r in 0..<nrows {
            var row: [String?] = []
            row.reserveCapacity(Int(ncols))
            for col in 0..<ncols {
                if PQgetisnull(res, r, col) != 0 {
                    row.append(nil)
                } else {
                    row.append(String(cString: PQgetvalue(res, r, col)))
                }
            }
            rows.append(row)
        }
        return rows
    }

    private func withCStrings<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) throws -> R) rethrows -> R {
        let dup: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0)! } }
        defer { dup.forEach { free($0) } }
        return try body(dup.map { $0.map { UnsafePointer($0) } })
    }

    /// Finds "SEVERITY:  XXXXX: " in a verbose libpq message.
    static func sqlStateFromVerboseMessage(_ message: String) -> String? {
        for severity in ["FATAL:  ", "ERROR:  ", "PANIC:  "] {
            var search = message[...]
            while let r = search.range(of: severity) {
                let rest = search[r.upperBound...]
                let code = rest.prefix(5)
                if code.count == 5,
                   code.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber) }),
                   rest.dropFirst(5).hasPrefix(":") {
                    return String(code)
                }
                search = rest
            }
        }
        return nil
    }
}
