/// How the proxy is watched and run: the metrics endpoint, log lines, shutdown and health checks.
public struct OperationsSettings: Sendable, Equatable {
    /// Where `GET /metrics` is served (Prometheus text format); nil: no endpoint.
    public var metricsListen: ListenAddress?
    public var logFormat = LogFormat.text
    /// How long SHUTDOWN / SIGTERM waits for sessions to finish before closing them.
    public var shutdownTimeout = Duration.seconds(30)
    /// How often each backend's health, recovery state and WAL position are checked.
    public var healthCheckPeriod = Duration.milliseconds(250)
    /// A client idle (outside a transaction) longer than this is closed; zero: never.
    public var clientIdleTimeout = Duration.zero
    /// A client idle inside a transaction longer than this is closed (its transaction rolls back); zero: never.
    public var idleTransactionTimeout = Duration.zero

    public init() {}
}

/// The shape of each log line.
public enum LogFormat: String, Sendable, Equatable, CaseIterable {
    /// "2024-05-01 12:00:00.000 UTC INFO message"
    case text
    /// One JSON object per line: {"time":...,"level":...,"message":...}
    case json
}

extension ProxyConfigParser {
    static let operationsKeys = ["metrics_listen", "log_format", "shutdown_timeout", "health_check_period",
                                 "client_idle_timeout", "idle_transaction_timeout"]

    /// Takes the operations keys out of the [pgsplit] section.
    func parseOperations(_ entries: inout SectionEntries) throws -> OperationsSettings {
        var settings = OperationsSettings()
        if let entry = entries.take("metrics_listen") {
            let value = entry.value.trimmingSpaces
            if !value.isEmpty && value.lowercased() != "off" {
                guard let address = ListenAddress.parse(value) else {
                    throw entries.error(entry, "expected host:port, [ipv6]:port, *:port or off, got \"\(value)\"")
                }
                settings.metricsListen = address
            }
        }
        if let entry = entries.take("log_format") {
            settings.logFormat = try entries.value(entry, expected: "one of text, json") { LogFormat(rawValue: $0.lowercased()) }
        }
        if let entry = entries.take("shutdown_timeout") {
            settings.shutdownTimeout = try entries.value(entry, expected: "a duration such as 500ms, 10s, 5min, 1h or 1d",
                                                         SettingValueParsing.duration)
        }
        if let entry = entries.take("health_check_period") {
            let period = try entries.value(entry, expected: "a duration such as 500ms, 10s, 5min, 1h or 1d",
                                           SettingValueParsing.duration)
            guard period >= .milliseconds(100) else { throw entries.error(entry, "must be at least 100ms") }
            settings.healthCheckPeriod = period
        }
        if let entry = entries.take("client_idle_timeout") {
            settings.clientIdleTimeout = try entries.value(entry, expected: "a duration such as 500ms, 10s, 5min, 1h or 1d; 0 = never",
                                                           SettingValueParsing.duration)
        }
        if let entry = entries.take("idle_transaction_timeout") {
            settings.idleTransactionTimeout = try entries.value(entry, expected: "a duration such as 500ms, 10s, 5min, 1h or 1d; 0 = never",
                                                                SettingValueParsing.duration)
        }
        return settings
    }
}

private extension String {
    var trimmingSpaces: String {
        var text = Substring(self)
        while text.first?.isWhitespace == true { text.removeFirst() }
        while text.last?.isWhitespace == true { text.removeLast() }
        return String(text)
    }
}
