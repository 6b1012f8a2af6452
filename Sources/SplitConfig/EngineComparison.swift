/// Whether main and writeable may serve one database together.
public enum EngineComparison: Sendable, Equatable {
    case same
    /// Same engine, different major versions: allowed, but worth a warning at startup.
    case differentMajor(warning: String)
    /// Different engines: startup refuses, reload keeps the old configuration.
    case differentEngine(refusal: String)
}

extension BackendEngine {
    public static func compare(main: BackendEngine, writeable: BackendEngine) -> EngineComparison {
        let both = "main runs \(main.displayName) but writeable runs \(writeable.displayName)"
        guard main.isSameEngine(as: writeable) else {
            return .differentEngine(refusal: "\(both); both backends must run the same database engine")
        }
        if let mainMajor = main.majorVersion, let writeableMajor = writeable.majorVersion, mainMajor != writeableMajor {
            return .differentMajor(warning: "\(both); different major versions may behave differently, so reads and writes may not agree")
        }
        return .same
    }
}
