import XCTest
import StatementClassifier

/// Statement templates must never change an answer: whatever text comes after whatever other text,
/// the answer through the templates is the classifier's own.
final class StatementTemplateTests: XCTestCase {
    let plain = Classifier(policy: FunctionPolicy())

    private func throughTemplates(_ templates: inout StatementTemplates, _ sql: String, _ classifier: Classifier? = nil,
                                  version: Int = 0) -> [StatementInfo] {
        var out: [StatementInfo] = []
        Array(sql.utf8).withUnsafeBytes { templates.classify(utf8: $0, with: classifier ?? plain, version: version, into: &out) }
        return out
    }

    private func direct(_ sql: String, _ classifier: Classifier? = nil) -> [StatementInfo] {
        (classifier ?? plain).classify(sql).statements
    }

    func testALiteralChangeReusesTheClassification() {
        var templates = StatementTemplates()
        let first = throughTemplates(&templates, "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;")
        XCTAssertEqual(templates.count, 1)
        for aid in ["7", "-7", "99999999", "1.5e3", "0x1F"] {
            let sql = "SELECT abalance FROM pgbench_accounts WHERE aid = \(aid);"
            XCTAssertEqual(throughTemplates(&templates, sql), first, sql)
            XCTAssertEqual(templates.count, 1, "\(sql) should have matched the template")
        }
        let update = "UPDATE pgbench_accounts SET abalance = abalance + 3 WHERE aid = 5 AND note = 'x';"
        XCTAssertEqual(throughTemplates(&templates, update), direct(update))
        XCTAssertEqual(templates.count, 2)
        for (delta, note) in [("-4000", "it''s"), ("17", ";"), ("0", "-- not a comment"), ("8", "/* pgsplit: main */")] {
            let sql = "UPDATE pgbench_accounts SET abalance = abalance + \(delta) WHERE aid = 5 AND note = '\(note)';"
            XCTAssertEqual(throughTemplates(&templates, sql), direct(sql), sql)
            XCTAssertEqual(throughTemplates(&templates, sql)[0].target, .writeable)
            XCTAssertEqual(templates.count, 2, "\(sql) should have matched the template")
        }
    }

    func testAChangeOutsideTheLiteralsIsClassifiedAgain() {
        var templates = StatementTemplates()
        _ = throughTemplates(&templates, "SELECT * FROM t WHERE id = 1")
        for sql in ["SELECT * FROM t WHERE id = 1 FOR UPDATE", "SELECT * FROM t WHERE id = 1; DELETE FROM t",
                    "SELECT * FROM t WHERE id = 1 -- pgsplit: writeable", "SELECT * FROM t WHERE id = 1 /* pgsplit: writeable */",
                    "SELECT * FROM t WHERE id = nextval('s')", "SELECT * FROM t WHERE id = 1a", "SELECT * FROM t WHERE id = x",
                    "SELECT * FROM t WHERE id = '1'", "SELECT * FROM t WHERE id = $1", "SELECT * FROM t WHERE id = --1\n1",
                    "SELECT * FROM t WHERE id =-1", "SELECT * FROM t WHERE id = - 1", "SELECT * FROM t WHERE id = 1)"] {
            XCTAssertEqual(throughTemplates(&templates, sql), direct(sql), sql)
        }
        XCTAssertEqual(throughTemplates(&templates, "SELECT * FROM t WHERE id = 1 FOR UPDATE")[0].target, .writeable)
        XCTAssertEqual(throughTemplates(&templates, "SELECT * FROM t WHERE id = 1; DELETE FROM t").count, 2)
        XCTAssertEqual(throughTemplates(&templates, "SELECT * FROM t WHERE id = 1 /* pgsplit: writeable */")[0].target, .writeable)
    }

    func testAStringThatNeverClosesIsNotATemplateMatch() {
        var templates = StatementTemplates()
        _ = throughTemplates(&templates, "SELECT * FROM t WHERE name = 'a'")
        let open = "SELECT * FROM t WHERE name = 'a"
        XCTAssertEqual(throughTemplates(&templates, open), direct(open))
        XCTAssertEqual(throughTemplates(&templates, open)[0].target, .writeable, "a malformed text goes to writeable")
    }

    /// Statements whose answer carries text of their own, or that the session acts on, are kept for
    /// their exact text only: a text that differs in a literal is classified again.
    func testStatementsCarryingTheirOwnTextAreKeptOnlyForTheirExactText() {
        let pairs = [("SET work_mem = 64", "SET work_mem = 65"),
                     ("SELECT set_config('a.b', '1', false)", "SELECT set_config('a.c', '1', false)"),
                     ("SELECT nextval('s')", "SELECT nextval('t')"), ("BEGIN", "BEGIN READ ONLY"),
                     ("SELECT 1 /* pgsplit: writeable */", "SELECT 2 /* pgsplit: writeable */"),
                     ("DECLARE c CURSOR FOR SELECT 1", "DECLARE d CURSOR FOR SELECT 1"),
                     ("PREPARE p AS SELECT 1", "PREPARE p AS SELECT 2"), ("EXECUTE p(1)", "EXECUTE p(2)"),
                     ("FETCH 5 FROM c", "FETCH 6 FROM c"), ("COPY t FROM STDIN", "COPY u FROM STDIN"),
                     ("SELECT pg_advisory_lock(1)", "SELECT pg_advisory_lock(2)"),
                     ("SHOW transaction_read_only", "SHOW work_mem"), ("LOCK t", "LOCK u"),
                     ("SAVEPOINT a", "SAVEPOINT b"), ("SET TRANSACTION READ ONLY", "SET TRANSACTION READ WRITE")]
        for (sql, other) in pairs {
            var templates = StatementTemplates()
            XCTAssertEqual(throughTemplates(&templates, sql), direct(sql), sql)
            XCTAssertEqual(templates.count, 1, "\(sql) is kept for its exact text")
            XCTAssertEqual(throughTemplates(&templates, sql), direct(sql), sql)
            XCTAssertEqual(templates.count, 1, "\(sql) matched itself")
            XCTAssertEqual(throughTemplates(&templates, other), direct(other), other)
            XCTAssertEqual(templates.count, 2, "\(other) did not match \(sql)")
        }
        // Neither several statements in one text nor a long text.
        for sql in ["SELECT 1; SELECT 2",
                    "SET application_name = '" + String(repeating: "x", count: 200) + "'"] {
            var templates = StatementTemplates()
            XCTAssertEqual(throughTemplates(&templates, sql), direct(sql), sql)
            XCTAssertEqual(templates.count, 0, "\(sql) should not be kept")
        }
    }

    /// A bound value of set_config is named by its parameter, never taken as the text `$1`.
    func testSetConfigOfABoundValueNamesItsParameter() {
        let info = direct("SELECT pg_catalog.set_config('x.y', $2, false)")[0]
        XCTAssertEqual(info.session, .set(name: "x.y", local: false))
        XCTAssertEqual(info.settingParameter, 2)
        XCTAssertNil(info.settingValue)
        XCTAssertNil(info.pin)
        XCTAssertNil(direct("SELECT set_config('x.y', 'v', false)")[0].settingParameter)
    }

    func testANewClassifierVersionForgetsTheTemplates() {
        var templates = StatementTemplates()
        _ = throughTemplates(&templates, "SELECT f(1) FROM t", version: 1)
        XCTAssertEqual(templates.count, 1)
        let writing = Classifier(policy: FunctionPolicy(writing: ["f"]))
        XCTAssertEqual(throughTemplates(&templates, "SELECT f(2) FROM t", writing, version: 2)[0].target, .writeable)
    }

    func testTemplatesPassedOnAreTakenAsMadeWithTheReceiversVersion() {
        var learnt = StatementTemplates()
        XCTAssertFalse(learnt.isCurrent(version: 3), "nothing learnt: nothing to pass on")
        _ = throughTemplates(&learnt, "SELECT abalance FROM pgbench_accounts WHERE aid = 1", version: 3)
        XCTAssertTrue(learnt.isCurrent(version: 3))
        XCTAssertFalse(learnt.isCurrent(version: 4), "made with another classifier: not passed on")
        var received = learnt.restamped(version: 9)
        XCTAssertEqual(received.count, 1)
        XCTAssertEqual(throughTemplates(&received, "SELECT abalance FROM pgbench_accounts WHERE aid = 2", version: 9),
                       direct("SELECT abalance FROM pgbench_accounts WHERE aid = 2"))
        XCTAssertEqual(received.count, 1, "the passed-on template matched")
        // Passing on copies: what the receiver learns stays its own.
        _ = throughTemplates(&received, "DELETE FROM t WHERE id = 1", version: 9)
        XCTAssertEqual(received.count, 2)
        XCTAssertEqual(learnt.count, 1)
    }

    func testTheListKeepsItsCapacity() {
        var templates = StatementTemplates()
        for n in 0..<(StatementTemplates.capacity * 3) {
            _ = throughTemplates(&templates, "SELECT c\(n) FROM t WHERE id = \(n)")
        }
        XCTAssertEqual(templates.count, StatementTemplates.capacity)
    }

    /// Every row of the classification table, then variants of it with its numbers and strings replaced
    /// by other literals and by things that are not literals, in one list of templates: each answer is
    /// the classifier's own.
    func testEveryRowAndItsVariantsAgreeWithTheClassifier() {
        var generator = SplitMix64(state: 0x5eed)
        var checked = 0
        for row in classificationTable {
            let classifier = row.policy.map { Classifier(policy: $0) } ?? plain
            var templates = StatementTemplates()
            var texts = [row.sql, row.sql]
            for _ in 0..<12 { texts.append(mutate(row.sql, &generator)) }
            for sql in texts {
                XCTAssertEqual(throughTemplates(&templates, sql, classifier), direct(sql, classifier), sql, line: row.line)
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 5000)
    }

    /// Replacements for a literal: other literals of the same kind (which must match the template) and
    /// texts that change the statement (which must not).
    private let numberReplacements = ["0", "42", "-7", "1e5", "0x1F", "3.25", "1_000", "x", "'a'", "1; DELETE FROM t", "1 -- c",
                                      "1 /* pgsplit: writeable */", "$1", "(1", "1)", "nextval('s')", "1 FOR UPDATE", "-", "--1",
                                      "-1abc", "1.", ".5", "9 INTO t2"]
    private let stringReplacements = ["'z'", "'it''s'", "';'", "'", "'a' || nextval('s')", "E'x\\''", "$$x$$", "'--'", "'/*'",
                                      "''", "'a''", "'pgsplit: writeable'", "U&'x'", "'x' FOR SHARE", "'(' "]

    private func mutate(_ sql: String, _ generator: inout SplitMix64) -> String {
        var bytes = Array(sql.utf8)
        // Literal-looking spots: digit runs and '...' runs.
        var spots: [(Range<Int>, Bool)] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] >= 0x30 && bytes[i] <= 0x39 {
                let start = i
                while i < bytes.count && bytes[i] >= 0x30 && bytes[i] <= 0x39 { i += 1 }
                spots.append((start..<i, true))
            } else if bytes[i] == 0x27 {
                let start = i
                i += 1
                while i < bytes.count && bytes[i] != 0x27 { i += 1 }
                i = min(i + 1, bytes.count)
                spots.append((start..<i, false))
            } else {
                i += 1
            }
        }
        guard !spots.isEmpty else { return sql + (generator.next() % 2 == 0 ? " " : "") }
        // Replace one or two spots, from the back so earlier ranges stay valid.
        let picks = Set((0..<(1 + Int(generator.next() % 2))).map { _ in Int(generator.next() % UInt64(spots.count)) })
        for index in picks.sorted(by: >) {
            let (range, isNumber) = spots[index]
            let choices = isNumber ? numberReplacements : stringReplacements
            // Mostly a literal of the same kind, so that templates are hit as well as missed.
            let same = generator.next() % 3 != 0
            let replacement = same ? (isNumber ? String(generator.next() % 100000) : "'v\(generator.next() % 100)'")
                                   : choices[Int(generator.next() % UInt64(choices.count))]
            bytes.replaceSubrange(range, with: Array(replacement.utf8))
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
