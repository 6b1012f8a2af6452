/// The entries of one section by key, taken one at a time so that what is left over is known to be
/// unknown: a misspelt key is an error, never silently ignored.
struct SectionEntries {
    let section: IniSection
    let fileName: String
    private var remaining: [String: IniEntry] = [:]

    init(section: IniSection, fileName: String) throws {
        self.section = section
        self.fileName = fileName
        for entry in section.entries {
            let key = Self.normalized(entry.key)
            if let first = remaining[key] {
                throw ConfigError(file: fileName, line: entry.line, section: section.header, key: key,
                                  reason: "given twice (first on line \(first.line))")
            }
            remaining[key] = IniEntry(key: key, value: entry.value, line: entry.line)
        }
    }

    /// Keys are case-insensitive, except the user name in `route.USER`, which is a PostgreSQL role name.
    static func normalized(_ key: String) -> String {
        let lowered = key.lowercased()
        return lowered.hasPrefix("route.") ? "route." + key.dropFirst("route.".count) : lowered
    }

    mutating func take(_ key: String) -> IniEntry? {
        remaining.removeValue(forKey: key)
    }

    /// Takes every key starting with `prefix`, in file order.
    mutating func take(keysWithPrefix prefix: String) -> [IniEntry] {
        let matching = remaining.values.filter { $0.key.hasPrefix(prefix) }.sorted { $0.line < $1.line }
        for entry in matching { remaining.removeValue(forKey: entry.key) }
        return matching
    }

    /// Fails on the first key (in file order) nobody took.
    func rejectUnknownKeys(known: [String]) throws {
        guard let unknown = remaining.values.min(by: { $0.line < $1.line }) else { return }
        throw error(unknown, "unknown key; known keys are \(known.joined(separator: ", "))")
    }

    func error(_ entry: IniEntry, _ reason: String) -> ConfigError {
        ConfigError(file: fileName, line: entry.line, section: section.header, key: entry.key, reason: reason)
    }

    /// Reads a value with `convert`, or fails naming what was expected.
    func value<Value>(_ entry: IniEntry, expected: String, _ convert: (String) -> Value?) throws -> Value {
        guard !entry.value.isEmpty else { throw error(entry, "has no value; expected \(expected)") }
        guard let value = convert(entry.value) else { throw error(entry, "expected \(expected), got \"\(entry.value)\"") }
        return value
    }
}
