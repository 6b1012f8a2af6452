/// One `key=value` pair of a libpq connection string.
public struct ConnectionParameter: Sendable, Hashable {
    public let key: String
    public let value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

/// The libpq keyword/value connection string syntax: pairs separated by whitespace, whitespace around
/// `=` allowed, values optionally in single quotes where `\'` and `\\` are escapes.
enum ConnectionString {
    static let knownKeys: Set<String> = [
        "host", "hostaddr", "port", "dbname", "user", "password",
        "sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "channel_binding",
        "application_name", "options", "connect_timeout", "target_session_attrs", "client_encoding",
    ]

    /// The pairs in the order written, or the reason the text is not a valid connection string.
    static func parse(_ text: String) -> Result<[ConnectionParameter], ConnectionStringProblem> {
        var parameters: [ConnectionParameter] = []
        var rest = Substring(text)
        while true {
            rest = rest.drop(while: \.isWhitespace)
            guard !rest.isEmpty else { break }
            let key = rest.prefix(while: { $0 != "=" && !$0.isWhitespace })
            rest = rest[key.endIndex...].drop(while: \.isWhitespace)
            guard !key.isEmpty else { return .failure(.init("a value without a key near \"\(rest.prefix(20))\"")) }
            guard rest.first == "=" else { return .failure(.init("missing \"=\" after \"\(key)\"")) }
            rest = rest.dropFirst().drop(while: \.isWhitespace)

            var value = ""
            if rest.first == "'" {
                rest = rest.dropFirst()
                var closed = false
                while let character = rest.popFirst() {
                    if character == "\\", let escaped = rest.popFirst() {
                        value.append(escaped)
                    } else if character == "'" {
                        closed = true
                        break
                    } else {
                        value.append(character)
                    }
                }
                guard closed else { return .failure(.init("unterminated quoted value for \"\(key)\"")) }
            } else {
                while let character = rest.first, !character.isWhitespace {
                    rest = rest.dropFirst()
                    if character == "\\", let escaped = rest.popFirst() {
                        value.append(escaped)
                    } else {
                        value.append(character)
                    }
                }
            }

            let name = String(key)
            guard knownKeys.contains(name) else { return .failure(.init("unknown connection key \"\(name)\"")) }
            guard !parameters.contains(where: { $0.key == name }) else {
                return .failure(.init("connection key \"\(name)\" is given twice"))
            }
            parameters.append(ConnectionParameter(key: name, value: value))
        }
        return .success(parameters)
    }

    /// A value as libpq would read it back: quoted when empty or holding whitespace, quotes or backslashes.
    static func quoted(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.contains(where: { $0.isWhitespace || $0 == "'" || $0 == "\\" })
        guard needsQuotes else { return value }
        var text = "'"
        for character in value {
            if character == "'" || character == "\\" { text.append("\\") }
            text.append(character)
        }
        return text + "'"
    }
}

/// Why a connection string is not valid; the config parser adds the file, line and key.
public struct ConnectionStringProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
