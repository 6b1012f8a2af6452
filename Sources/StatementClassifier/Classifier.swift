/// Classifies SQL text for routing: splits a query string into statements at top-level `;` and says,
/// for each, where it must run and what it does to the session (see `QueryClass` / `StatementInfo`).
///
/// Pure and allocation-light: it lexes the bytes in place; the only allocations are the statement
/// list (none when the caller lends one) and the few strings a statement carries (names of settings,
/// cursors, prepared statements).
public struct Classifier: Sendable {
    /// The only stored property: copying a Classifier (sessions do, per statement) is one retain.
    private let functions: FunctionCatalog
    public var policy: FunctionPolicy { functions.source }

    public init(policy: FunctionPolicy = FunctionPolicy()) {
        self.functions = FunctionCatalog(policy: policy)
    }

    public func classify(_ sql: String) -> QueryClass {
        var text = sql
        return text.withUTF8 { classify(utf8: UnsafeRawBufferPointer($0)) }
    }

    /// Classifies UTF-8 text (e.g. a Query or Parse message's SQL, without its terminating NUL).
    public func classify(utf8: UnsafeRawBufferPointer) -> QueryClass {
        var statements: [StatementInfo] = []
        statements.reserveCapacity(1)
        classify(utf8: utf8, into: &statements)
        return QueryClass(statements: statements)
    }

    /// Classifies into `statements` (emptied first, its storage kept): a caller that classifies
    /// query after query reuses one list instead of allocating one per query.
    public func classify(utf8: UnsafeRawBufferPointer, into statements: inout [StatementInfo]) {
        // Not removeAll(keepingCapacity:): that goes through the generic replaceSubrange, and the
        // list usually holds one statement.
        while !statements.isEmpty { statements.removeLast() }
        guard let base = utf8.baseAddress, utf8.count > 0 else { return }
        // Reading bytes as UInt8 is valid whatever the buffer was bound to: UInt8 aliases any memory.
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        let count = utf8.count
        var position = 0
        while position < count {
            var reader = StatementReader(lexer: Lexer(bytes: bytes, count: count, position: position), functions: functions)
            let first = reader.next()
            if first.kind != .end {
                var info = reader.readStatement(first: first)
                reader.lexer.skipToEnd()
                if reader.lexer.malformed { info.target = .writeable }
                if let hint = reader.lexer.hint { apply(hint, to: &info) }
                statements.append(consume info)
            }
            position = reader.lexer.endOffset + 1
        }
    }

    /// The names of functions the catalog does not know, called anywhere in `utf8` (the slow path
    /// taken when `classify` reported `callsUnknownFunction`). Unqualified and lower-cased.
    public func unknownFunctionNames(utf8: UnsafeRawBufferPointer) -> [String] {
        guard let base = utf8.baseAddress, utf8.count > 0 else { return [] }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        var names: [String] = []
        var position = 0
        while position < utf8.count {
            var reader = StatementReader(lexer: Lexer(bytes: bytes, count: utf8.count, position: position), functions: functions)
            reader.unknownNames = []
            let first = reader.next()
            if first.kind != .end { _ = reader.readStatement(first: first) }
            reader.lexer.skipToEnd()
            names.append(contentsOf: reader.unknownNames ?? [])
            position = reader.lexer.endOffset + 1
        }
        return names
    }

    /// A hint decides the target; for PREPARE it also decides where the prepared body runs.
    private func apply(_ hint: RouteTarget, to info: inout StatementInfo) {
        info.target = hint
        info.hinted = true
        if case .prepare(let name, _) = info.session {
            info.session = .prepare(name: name, target: hint)
        }
    }
}
