/// A command of the admin console (the `pgsplit` database for `admin_users`), parsed from one
/// simple-query text. Case-insensitive; extra spaces and a trailing `;` are fine.
public enum AdminCommand: Equatable, Sendable {
    public enum ShowTopic: String, CaseIterable, Sendable {
        case help = "HELP"
        case databases = "DATABASES"
        case backends = "BACKENDS"
        case sessions = "SESSIONS"
        case stats = "STATS"
        case config = "CONFIG"
    }

    case show(ShowTopic)
    case reload
    case pause
    case resume
    case shutdown
    /// Only whitespace and semicolons: answered with EmptyQueryResponse.
    case empty
    /// Anything else, as written (trimmed).
    case unknown(String)

    /// Parses one command. Several commands in one query string are split by `parseAll`.
    public static func parse(_ text: some StringProtocol) -> AdminCommand {
        var trimmed = Substring(text)
        while let last = trimmed.last, last == ";" || last.isWhitespace { trimmed.removeLast() }
        while let first = trimmed.first, first.isWhitespace { trimmed.removeFirst() }
        if trimmed.isEmpty { return .empty }
        let words = trimmed.split(whereSeparator: { $0.isWhitespace }).map { $0.uppercased() }
        switch words {
        case ["RELOAD"]: return .reload
        case ["PAUSE"]: return .pause
        case ["RESUME"]: return .resume
        case ["SHUTDOWN"]: return .shutdown
        default:
            if words.count == 2, words[0] == "SHOW" {
                // PgBouncer's names for the same lists, so its operators' fingers still work.
                let aliases = ["SERVERS": ShowTopic.backends, "CLIENTS": .sessions, "POOLS": .databases]
                if let topic = ShowTopic(rawValue: words[1]) ?? aliases[words[1]] { return .show(topic) }
            }
            return .unknown(String(trimmed))
        }
    }

    /// Splits a query string at semicolons (admin commands contain no quoted text) and parses each
    /// part; an all-blank string gives `[.empty]`.
    public static func parseAll(_ text: String) -> [AdminCommand] {
        let commands = text.split(separator: ";", omittingEmptySubsequences: true)
            .map { parse($0) }
            .filter { $0 != .empty }
        return commands.isEmpty ? [.empty] : commands
    }

    /// What the shell must gather before answering (so it visits the session loops only for SHOW SESSIONS).
    public var needsSessions: Bool { self == .show(.sessions) }
}

/// What the shell does after sending the answer.
public enum AdminAction: Equatable, Sendable {
    /// Re-read the configuration; keep the old one in force if the checks refuse the new one.
    case reload
    /// Stop handing new units to the backends: hold them until RESUME (in-flight units finish).
    case pause
    case resume
    /// Stop accepting clients, let sessions finish (up to shutdown_timeout), then exit.
    case shutdown
}

/// The answer: the wire bytes to send (without ReadyForQuery, which the shell adds) and what to do.
public struct AdminResponse: Sendable {
    public var bytes: [UInt8]
    /// At most one action per query string (the last one given).
    public var action: AdminAction?
    /// True when a command failed (the rest of the query string was not run).
    public var failed: Bool
}
