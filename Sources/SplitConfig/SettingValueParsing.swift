/// Readers for the scalar value kinds used in proxy.conf. Each returns nil or a reason, never throws,
/// so the caller can add the file, line and key to the message.
enum SettingValueParsing {
    /// `on|off|true|false|yes|no|1|0`, any case.
    static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "on", "true", "yes", "1": return true
        case "off", "false", "no", "0": return false
        default: return nil
        }
    }

    static func integer(_ text: String, atLeast minimum: Int, atMost maximum: Int = Int.max) -> Int? {
        guard let value = Int(text), value >= minimum, value <= maximum else { return nil }
        return value
    }

    /// `500ms`, `10s`, `5min`, `1h`, `1d`; a bare number is seconds. Whitespace may separate number and unit.
    static func duration(_ text: String) -> Duration? {
        let (number, unit) = splitNumberAndUnit(text)
        guard let amount = Int64(number), amount >= 0 else { return nil }
        let secondsPerUnit: [String: Int64] = ["s": 1, "sec": 1, "min": 60, "h": 3600, "d": 86400]
        if unit.lowercased() == "ms" { return .milliseconds(amount) }
        if unit.isEmpty { return .seconds(amount) }
        guard let multiplier = secondsPerUnit[unit.lowercased()] else { return nil }
        let (seconds, overflow) = amount.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : .seconds(seconds)
    }

    /// Bytes, or with `B`, `kB`, `MB`, `GB`, `TB` (1024-based, as PostgreSQL counts memory).
    static func byteSize(_ text: String) -> Int? {
        let (number, unit) = splitNumberAndUnit(text)
        guard let amount = Int(number), amount >= 0 else { return nil }
        let multipliers: [String: Int] = ["": 1, "b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40]
        guard let multiplier = multipliers[unit.lowercased()] else { return nil }
        let (bytes, overflow) = amount.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : bytes
    }

    /// A comma-separated list, entries trimmed, empty entries dropped.
    static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { String($0.trimmingWhitespace()) }.filter { !$0.isEmpty }
    }

    /// A function name as the catalog spells it: unquoted parts fold to lower case, `"Quoted"` parts keep
    /// theirs, and an optional schema stays in front (`public.other_fn`).
    static func functionName(_ text: String) -> String? {
        var parts: [String] = []
        var current = ""
        var insideQuotes = false
        var characters = Array(text)[...]
        while let character = characters.popFirst() {
            if insideQuotes {
                if character == "\"" {
                    if characters.first == "\"" {
                        characters.removeFirst()
                        current.append("\"")
                    } else {
                        insideQuotes = false
                    }
                } else {
                    current.append(character)
                }
            } else if character == "\"" {
                insideQuotes = true
            } else if character == "." {
                parts.append(current)
                current = ""
            } else if character.isWhitespace {
                return nil
            } else {
                current += character.lowercased()
            }
        }
        parts.append(current)
        guard !insideQuotes, parts.count <= 2, parts.allSatisfy({ !$0.isEmpty }) else { return nil }
        return parts.joined(separator: ".")
    }

    private static func splitNumberAndUnit(_ text: String) -> (number: Substring, unit: String) {
        let trimmed = text.trimmingWhitespace()
        let unitStart = trimmed.firstIndex(where: { !$0.isNumber && $0 != "-" && $0 != "+" }) ?? trimmed.endIndex
        return (trimmed[..<unitStart], String(trimmed[unitStart...].trimmingWhitespace()))
    }
}
