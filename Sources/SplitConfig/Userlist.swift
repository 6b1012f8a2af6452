/// The contents of auth_file: one `"user" "secret"` line per user, PgBouncer's userlist format.
public struct Userlist: Sendable, Equatable {
    public let secrets: [String: StoredSecret]

    public init(secrets: [String: StoredSecret]) {
        self.secrets = secrets
    }

    public subscript(user: String) -> StoredSecret? { secrets[user] }

    /// Parses userlist text. Inside quotes `""` is a literal quote; `;` and `#` lines and blank lines
    /// are skipped. Errors name `fileName:line`.
    public static func parse(text: String, fileName: String) throws -> Userlist {
        var secrets: [String: StoredSecret] = [:]
        var firstLine: [String: Int] = [:]
        var lineNumber = 0
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            func failure(_ reason: String) -> ConfigError {
                ConfigError(file: fileName, line: lineNumber, reason: reason)
            }
            var line = Substring(rawLine)
            if lineNumber == 1, line.hasPrefix("\u{FEFF}") { line = line.dropFirst() }
            line = line.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix(";") || line.hasPrefix("#") { continue }

            guard let user = quotedField(&line) else {
                throw failure("expected \"user\" \"secret\", each in double quotes")
            }
            line = line.drop(while: \.isWhitespace)
            guard let secretText = quotedField(&line) else {
                throw failure("expected the secret of \"\(user)\" in double quotes after the user name")
            }
            let rest = line.trimmingWhitespace()
            guard rest.isEmpty || rest.hasPrefix(";") || rest.hasPrefix("#") else {
                throw failure("unexpected text after the secret of \"\(user)\"")
            }
            guard !user.isEmpty else { throw failure("the user name is empty") }
            if let first = firstLine[user] {
                throw failure("user \"\(user)\" is listed twice (first on line \(first))")
            }
            guard let secret = StoredSecret.classify(secretText) else {
                throw failure("user \"\(user)\": malformed SCRAM-SHA-256 secret; expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")
            }
            secrets[user] = secret
            firstLine[user] = lineNumber
        }
        return Userlist(secrets: secrets)
    }

    /// Reads a `"..."` field from the front of `text`, where `""` stands for one quote.
    private static func quotedField(_ text: inout Substring) -> String? {
        guard text.first == "\"" else { return nil }
        var rest = text.dropFirst()
        var field = ""
        while let character = rest.popFirst() {
            if character == "\"" {
                if rest.first == "\"" {
                    rest = rest.dropFirst()
                    field.append("\"")
                } else {
                    text = rest
                    return field
                }
            } else {
                field.append(character)
            }
        }
        return nil
    }
}
