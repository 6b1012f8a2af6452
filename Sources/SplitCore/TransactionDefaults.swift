/// The session defaults that decide where a client's transactions may run —
/// `default_transaction_read_only` and `default_transaction_isolation` — as the client set them at
/// login: a startup parameter of that name, or `options=-c name=value` (libpq's PGOPTIONS).
/// `RESET` returns to these values, as it does on the server.
public struct TransactionDefaults: Sendable, Equatable {
    public var readOnly = false
    public var serializable = false

    public init(readOnly: Bool = false, serializable: Bool = false) {
        self.readOnly = readOnly
        self.serializable = serializable
    }

    public init(startupParameters: [(String, String)]) {
        for (name, value) in startupParameters {
            if name == "options" {
                for (optionName, optionValue) in Self.settings(inOptions: value) { note(optionName, optionValue) }
            } else {
                note(name, value)
            }
        }
    }

    mutating func note(_ name: String, _ value: String) {
        // Both names are 29 bytes long; the parameters every client sends (user, database,
        // application_name, client_encoding) are not lowercased and compared for nothing.
        guard name.utf8.count == 29 else { return }
        let value = value.lowercased()
        switch name.lowercased() {
        case "default_transaction_read_only":
            readOnly = Self.isTrue(value)
        case "default_transaction_isolation":
            serializable = value == "serializable"
        default:
            break
        }
    }

    /// PostgreSQL's boolean spellings, lower-cased (`read only` is SET SESSION CHARACTERISTICS' own).
    static func isTrue(_ value: String) -> Bool {
        ["on", "true", "yes", "1", "t", "y", "read only"].contains(value)
    }

    /// The `name=value` settings in a startup `options` string: words split at unescaped white space
    /// (`\` escapes the next character), each `-c name=value`, `-cname=value` or `--name=value`;
    /// `-` in a name reads as `_`, as the server reads it.
    static func settings(inOptions options: String) -> [(String, String)] {
        var words: [String] = []
        var word = ""
        var inWord = false
        var escaped = false
        for character in options {
            if escaped {
                word.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
                inWord = true
            } else if character.isWhitespace {
                if inWord { words.append(word) }
                word = ""
                inWord = false
            } else {
                word.append(character)
                inWord = true
            }
        }
        if inWord { words.append(word) }

        var settings: [(String, String)] = []
        var index = 0
        while index < words.count {
            var assignment: Substring?
            let current = words[index]
            if current == "-c", index + 1 < words.count {
                index += 1
                assignment = words[index][...]
            } else if current.hasPrefix("--") {
                assignment = current.dropFirst(2)
            } else if current.hasPrefix("-c") {
                assignment = current.dropFirst(2)
            }
            index += 1
            guard let assignment, let equals = assignment.firstIndex(of: "=") else { continue }
            let name = assignment[..<equals].replacingOccurrences(of: "-", with: "_")
            settings.append((name, String(assignment[assignment.index(after: equals)...])))
        }
        return settings
    }
}
