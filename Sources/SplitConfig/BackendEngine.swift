/// Which database engine a backend runs, told from what it says about itself: `SELECT version()` and
/// the ParameterStatus values sent at login. Engines that speak PostgreSQL's protocol differ in SQL
/// and semantics, so main and writeable must run the same one.
public enum BackendEngine: Sendable, Equatable, CustomStringConvertible {
    /// `version` as in server_version without its packaging suffix, e.g. `15.18`.
    case postgres(major: Int, version: String)
    /// The edition and version, e.g. `CCL v23.1.11`.
    case cockroachDB(String)
    /// The YugabyteDB release, e.g. `2.18.0.0-b0`.
    case yugabyteDB(String)
    case redshift(String)
    case greenplum(String)
    /// Something else; holds what it called itself.
    case other(String)

    public static func identify(versionFunction: String?, parameters: [String: String]) -> BackendEngine {
        let version = versionFunction?.trimmingWhitespace().description ?? ""
        let serverVersion = parameters["server_version"] ?? ""

        if version.hasPrefix("CockroachDB") {
            return .cockroachDB(cockroachRelease(version))
        }
        if let crdbVersion = parameters["crdb_version"] {
            return .cockroachDB(cockroachRelease(crdbVersion))
        }
        if let release = word(after: "-YB-", in: serverVersion) ?? word(after: "-YB-", in: version) {
            return .yugabyteDB(release)
        }
        if version.containsIgnoringCase("YugabyteDB") {
            return .yugabyteDB(word(after: "YugabyteDB ", in: version) ?? "")
        }
        if version.containsIgnoringCase("Redshift") {
            return .redshift(word(after: "Redshift ", in: version) ?? "")
        }
        if version.containsIgnoringCase("Greenplum") {
            return .greenplum(word(after: "Greenplum Database ", in: version) ?? "")
        }
        if !version.isEmpty, !version.hasPrefix("PostgreSQL ") {
            return .other(version)
        }
        let serverRelease = serverVersion.split(separator: " ").first.map(String.init) ?? ""
        if let major = leadingNumber(serverRelease) {
            return .postgres(major: major, version: serverRelease)
        }
        if let release = word(after: "PostgreSQL ", in: version), let major = leadingNumber(release) {
            return .postgres(major: major, version: release)
        }
        return .other(version.isEmpty ? serverVersion : version)
    }

    /// How operators know it: `PostgreSQL 15.18`, `CockroachDB CCL v23.1.11`.
    public var displayName: String {
        switch self {
        case .postgres(_, let version): return "PostgreSQL \(version)"
        case .cockroachDB(let release): return Self.named("CockroachDB", release)
        case .yugabyteDB(let release): return Self.named("YugabyteDB", release)
        case .redshift(let release): return Self.named("Amazon Redshift", release)
        case .greenplum(let release): return Self.named("Greenplum", release)
        case .other(let text): return text.isEmpty ? "an unknown engine" : text
        }
    }

    public var description: String { displayName }

    /// The first number of the release, where one can be found.
    public var majorVersion: Int? {
        switch self {
        case .postgres(let major, _): return major
        case .cockroachDB(let release), .yugabyteDB(let release), .redshift(let release), .greenplum(let release):
            return Self.leadingNumber(String(release.drop(while: { !$0.isNumber })))
        case .other: return nil
        }
    }

    /// Two values are the same engine when they share the case (for `.other`, the first word).
    func isSameEngine(as other: BackendEngine) -> Bool {
        switch (self, other) {
        case (.postgres, .postgres), (.cockroachDB, .cockroachDB), (.yugabyteDB, .yugabyteDB),
             (.redshift, .redshift), (.greenplum, .greenplum):
            return true
        case (.other(let left), .other(let right)):
            return left.split(separator: " ").first == right.split(separator: " ").first
        default:
            return false
        }
    }

    private static func named(_ product: String, _ release: String) -> String {
        release.isEmpty ? product : "\(product) \(release)"
    }

    /// `CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu, ...)` → `CCL v23.1.11`.
    private static func cockroachRelease(_ text: String) -> String {
        var release = Substring(text.trimmingWhitespace())
        if release.hasPrefix("CockroachDB") { release = release.dropFirst("CockroachDB".count) }
        if let parenthesis = release.firstIndex(of: "(") { release = release[..<parenthesis] }
        return String(release.trimmingWhitespace())
    }

    /// The run of non-space, non-comma characters after `marker`.
    private static func word(after marker: String, in text: String) -> String? {
        guard let range = text.range(of: marker) else { return nil }
        let word = text[range.upperBound...].prefix(while: { !$0.isWhitespace && $0 != "," && $0 != ")" })
        return word.isEmpty ? nil : String(word)
    }

    private static func leadingNumber(_ text: String) -> Int? {
        Int(text.prefix(while: \.isNumber))
    }
}

extension String {
    /// Case-insensitive containment for ASCII markers, without pulling in Foundation.
    fileprivate func containsIgnoringCase(_ marker: String) -> Bool {
        lowercased().contains(marker.lowercased())
    }
}
