/// One `key = value` line of an ini file.
struct IniEntry: Equatable {
    let key: String
    let value: String
    let line: Int
}

/// A `[header]` and the entries below it.
struct IniSection: Equatable {
    /// The text between the brackets, trimmed, with inner runs of whitespace reduced to one space.
    let header: String
    let line: Int
    var entries: [IniEntry]
}

/// The syntax of a PgBouncer-style ini file, with no meaning attached yet.
///
/// `;` and `#` start a comment line; after a value, whitespace followed by `;` or `#` starts a
/// trailing comment unless it is inside single quotes (passwords in connection strings may contain them).
struct IniDocument: Equatable {
    let sections: [IniSection]

    static func parse(text: String, fileName: String) throws -> IniDocument {
        var sections: [IniSection] = []
        var lineNumber = 0
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            var line = Substring(rawLine)
            if lineNumber == 1, line.hasPrefix("\u{FEFF}") { line = line.dropFirst() }
            let trimmed = line.trimmingWhitespace()
            if trimmed.isEmpty || trimmed.hasPrefix(";") || trimmed.hasPrefix("#") { continue }

            if trimmed.hasPrefix("[") {
                let content = stripTrailingComment(trimmed)
                guard content.hasSuffix("]") else {
                    throw ConfigError(file: fileName, line: lineNumber, reason: "section header \"\(content)\" lacks its closing \"]\"")
                }
                let header = content.dropFirst().dropLast()
                    .split(whereSeparator: { $0 == " " || $0 == "\t" })
                    .joined(separator: " ")
                sections.append(IniSection(header: header, line: lineNumber, entries: []))
                continue
            }

            guard let equals = trimmed.firstIndex(of: "=") else {
                throw ConfigError(
                    file: fileName, line: lineNumber, section: sections.last?.header,
                    reason: "expected \"key = value\", got \"\(trimmed)\"")
            }
            let key = String(trimmed[..<equals].trimmingWhitespace())
            let value = String(stripTrailingComment(trimmed[trimmed.index(after: equals)...]).trimmingWhitespace())
            guard !key.isEmpty else {
                throw ConfigError(file: fileName, line: lineNumber, section: sections.last?.header, reason: "a line has a value but no key")
            }
            guard !sections.isEmpty else {
                throw ConfigError(
                    file: fileName, line: lineNumber, key: key,
                    reason: "set before any section; put it under [pgsplit] or [database NAME]")
            }
            sections[sections.count - 1].entries.append(IniEntry(key: key, value: value, line: lineNumber))
        }
        return IniDocument(sections: sections)
    }

    /// Cuts a trailing ` ; comment` or ` # comment`, leaving quoted text alone.
    static func stripTrailingComment(_ text: Substring) -> Substring {
        var insideQuotes = false
        var previous: Character = " "
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if insideQuotes {
                if character == "\\" {
                    // An escaped character cannot end the quotes.
                    index = text.index(after: index)
                    if index == text.endIndex { break }
                } else if character == "'" {
                    insideQuotes = false
                }
            } else if character == "'" {
                insideQuotes = true
            } else if (character == ";" || character == "#") && previous.isWhitespace {
                return text[..<index]
            }
            previous = text[index]
            index = text.index(after: index)
        }
        return text
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> SubSequence {
        guard let first = firstIndex(where: { !$0.isWhitespace }) else { return self[endIndex...] }
        let last = lastIndex(where: { !$0.isWhitespace })!
        return self[first...last]
    }
}
