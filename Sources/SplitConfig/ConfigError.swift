/// A mistake in a configuration or userlist file.
///
/// Its description names the place precisely, so a typo is found without guessing:
/// `proxy.conf:12: [database app] writeable: unknown connection key "hots"`.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file name as the user gave it.
    public let file: String
    /// 1-based line; nil when the mistake is about the file as a whole.
    public let line: Int?
    /// The section header's text, e.g. `pgsplit` or `database app`.
    public let section: String?
    public let key: String?
    public let reason: String

    public init(file: String, line: Int?, section: String? = nil, key: String? = nil, reason: String) {
        self.file = file
        self.line = line
        self.section = section
        self.key = key
        self.reason = reason
    }

    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        text += ": "
        if let section { text += "[\(section)] " }
        if let key { text += "\(key): " }
        return text + reason
    }
}
