import XCTest
import StatementClassifier

/// Random bytes and random soups of SQL fragments must never crash or hang the classifier,
/// and whatever it says must be self-consistent.
final class RobustnessTests: XCTestCase {
    private let classifier = Classifier(policy: FunctionPolicy(volatileFunctions: ["f", "s.g"], readSafe: ["h"], writing: ["w"]))

    func testRandomBytes() {
        var random = SplitMix64(state: 1)
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...64, using: &random)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            let result = bytes.withUnsafeBytes { classifier.classify(utf8: $0) }
            assertConsistent(result)
        }
    }

    /// Bytes drawn from the characters that matter to the lexer, so quotes and comments collide often.
    func testRandomLexicalCharacters() {
        var random = SplitMix64(state: 2)
        let alphabet = Array("'\"$;()/*-\\Ee&U 1a_.,:\n".utf8)
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...48, using: &random)
            let bytes = (0..<length).map { _ in alphabet.randomElement(using: &random)! }
            let result = bytes.withUnsafeBytes { classifier.classify(utf8: $0) }
            assertConsistent(result)
        }
    }

    func testRandomTokenSoup() {
        var random = SplitMix64(state: 3)
        let fragments = [
            "SELECT", "INSERT", "INTO", "UPDATE", "DELETE", "FROM", "MERGE", "WITH", "AS", "(", ")", ";", ",", ".",
            "BEGIN", "COMMIT", "ROLLBACK", "TO", "SAVEPOINT", "READ", "ONLY", "WRITE", "ISOLATION", "LEVEL",
            "SERIALIZABLE", "SET", "RESET", "LOCAL", "SESSION", "ROLE", "TIME", "ZONE", "=", "PREPARE", "EXECUTE",
            "DEALLOCATE", "EXPLAIN", "ANALYZE", "COPY", "STDIN", "STDOUT", "DECLARE", "CURSOR", "HOLD", "FETCH",
            "CLOSE", "ALL", "CREATE", "TEMP", "TABLE", "FUNCTION", "BEGIN ATOMIC", "END", "CASE", "DROP",
            "FOR", "NO", "KEY", "SHARE", "nextval", "set_config", "pg_advisory_lock", "f", "s", "g", "h", "w",
            "'x'", "'", "E'\\'", "$$", "$a$", "\"q\"", "\"", "/*", "*/", "--", "\n", "$1", "1", "true", "false",
            "/* pgsplit: main */", "-- pgsplit: writeable\n", "VALUES", "TABLE", "SHOW", "LISTEN", "DISCARD",
        ]
        for _ in 0..<20_000 {
            let count = Int.random(in: 0...24, using: &random)
            var sql = ""
            for _ in 0..<count {
                sql += fragments.randomElement(using: &random)!
                if Bool.random(using: &random) { sql += " " }
            }
            assertConsistent(classifier.classify(sql))
        }
    }

    func testLongInputs() {
        let manyStatements = String(repeating: "SELECT 1; ", count: 10_000)
        XCTAssertEqual(classifier.classify(manyStatements).statements.count, 10_000)
        let deepParentheses = String(repeating: "(", count: 50_000) + "SELECT 1" + String(repeating: ")", count: 50_000)
        XCTAssertEqual(classifier.classify(deepParentheses).target, .main)
        let bigInsert = "INSERT INTO t VALUES " + Array(repeating: "(1, 'abc', $$x$$)", count: 20_000).joined(separator: ",")
        XCTAssertEqual(classifier.classify(bigInsert).target, .writeable)
        let openComments = String(repeating: "/*", count: 10_000)
        XCTAssertEqual(classifier.classify(openComments).statements.count, 0)
        let deepExplain = String(repeating: "EXPLAIN ", count: 100_000) + "SELECT 1"
        XCTAssertEqual(classifier.classify(deepExplain).target, .writeable)
        let deepPrepare = String(repeating: "PREPARE p AS ", count: 100_000) + "SELECT 1"
        XCTAssertEqual(classifier.classify(deepPrepare).target, .writeable)
        let longWord = String(repeating: "x", count: 1_000_000)
        XCTAssertEqual(classifier.classify(longWord).statements.first?.command.count, 32)
        let manyDollars = String(repeating: "$a$", count: 1_001)
        XCTAssertEqual(classifier.classify("SELECT " + manyDollars).target, .writeable)
    }

    private func assertConsistent(_ result: QueryClass, file: StaticString = #filePath, line: UInt = #line) {
        let anyWriteable = result.statements.contains { $0.target == .writeable }
        XCTAssertEqual(result.target, anyWriteable ? .writeable : .main, file: file, line: line)
        for statement in result.statements {
            XCTAssertFalse(statement.command.isEmpty, file: file, line: line)
        }
    }
}

final class UnknownFunctionTests: XCTestCase {
    func testCallsOfNamesOutsideTheCatalogAreFlagged() {
        let classifier = Classifier(policy: FunctionPolicy(knownFunctions: ["lower", "count", "now"]))
        XCTAssertFalse(classifier.classify("SELECT lower(name), count(*) FROM t").statements[0].callsUnknownFunction)
        let info = classifier.classify("SELECT made_today(1) FROM t").statements[0]
        XCTAssertTrue(info.callsUnknownFunction)
        XCTAssertEqual(Array("SELECT made_today(1), x.Other(2)".utf8).withUnsafeBytes { classifier.unknownFunctionNames(utf8: $0) },
                       ["made_today", "other"])
    }

    func testWithoutACatalogNothingIsFlagged() {
        XCTAssertFalse(Classifier().classify("SELECT made_today(1)").statements[0].callsUnknownFunction)
    }

    func testBuiltInWritersStayWritersWhateverTheCatalog() {
        let classifier = Classifier(policy: FunctionPolicy(knownFunctions: ["lower"]))
        let info = classifier.classify("SELECT nextval('s')").statements[0]
        XCTAssertEqual(info.target, .writeable)
        XCTAssertFalse(info.callsUnknownFunction)
    }
}
