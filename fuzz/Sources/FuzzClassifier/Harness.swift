import StatementClassifier

/// Target 3: the SQL lexer and classifier on raw bytes, as a Query or Parse message's text reaches it.

private let plain = Classifier(policy: FunctionPolicy())
/// A policy that exercises the catalog's lookups (qualified names, overrides of built-ins).
private let withPolicy = Classifier(policy: FunctionPolicy(
    volatileFunctions: ["f", "public.f", "audit_log", "My_Func"],
    readSafe: ["nextval", "s.g"],
    writing: ["g", "pg_catalog.now"]))

func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let result = plain.classify(utf8: bytes)
    _ = withPolicy.classify(utf8: bytes)

    // Statements are split at top-level ';' only: never more statements than semicolons + 1.
    var semicolons = 0
    for byte in bytes where byte == UInt8(ascii: ";") { semicolons += 1 }
    precondition(result.statements.count <= semicolons + 1,
                 "\(result.statements.count) statements from \(semicolons) semicolons")
    // The whole string's target is writeable exactly when some statement's is.
    precondition((result.target == .writeable) == result.statements.contains { $0.target == .writeable })
    return 0
}
