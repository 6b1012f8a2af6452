import XCTest
import StatementClassifier

/// Runs every row of `classificationTable`.
final class ClassificationTableTests: XCTestCase {
    func testTableIsLargeEnough() {
        XCTAssertGreaterThanOrEqual(classificationTable.count, 400)
    }

    func testEveryRow() {
        let plain = Classifier(policy: FunctionPolicy())
        for row in classificationTable {
            let classifier = row.policy.map { Classifier(policy: $0) } ?? plain
            check(row, classifier.classify(row.sql))
        }
    }

    /// The byte-buffer entry point gives the same answers as the String one.
    func testBufferEntryPointAgrees() {
        let plain = Classifier(policy: FunctionPolicy())
        for row in classificationTable where row.policy == nil {
            let bytes = Array(row.sql.utf8)
            let fromBytes = bytes.withUnsafeBytes { plain.classify(utf8: $0) }
            XCTAssertEqual(fromBytes, plain.classify(row.sql), row.sql, line: row.line)
        }
    }

    /// Classifying into a lent list, one row after another, gives each row's own answer: nothing of
    /// the row before is left in the list.
    func testLentListEntryPointAgrees() {
        let plain = Classifier(policy: FunctionPolicy())
        var lent: [StatementInfo] = []
        for row in classificationTable where row.policy == nil {
            let bytes = Array(row.sql.utf8)
            bytes.withUnsafeBytes { plain.classify(utf8: $0, into: &lent) }
            XCTAssertEqual(lent, plain.classify(row.sql).statements, row.sql, line: row.line)
        }
        plain.classify(utf8: UnsafeRawBufferPointer(start: nil, count: 0), into: &lent)
        XCTAssertEqual(lent, [])
    }

    private func check(_ row: ClassificationCase, _ result: QueryClass) {
        let sql = row.sql
        let line = row.line
        XCTAssertEqual(result.target, row.target, "target of: \(sql)", line: line)
        var expectedCount = 1
        var index = 0
        for expectation in row.expectations {
            if case .statements(let n) = expectation { expectedCount = n }
            if case .statement(let i) = expectation { index = i }
        }
        XCTAssertEqual(result.statements.count, expectedCount, "statement count of: \(sql)", line: line)
        guard index < result.statements.count else { return }
        let info = result.statements[index]
        let strict = expectedCount == 1

        var transaction: TransactionControl?
        var session: SessionEffect?
        var pin: PinReason?
        var cursor: String?
        var executes: String?
        var hinted = false
        var copyFromStdin = false
        var changesFunctions = false
        var asks = false
        var settingValue: String?
        for expectation in row.expectations {
            switch expectation {
            case .command(let command):
                XCTAssertEqual(info.command, command, "command of: \(sql)", line: line)
            case .transaction(let value): transaction = value
            case .session(let value): session = value
            case .pin(let value): pin = value
            case .cursor(let value): cursor = value
            case .executes(let value): executes = value
            case .hinted: hinted = true
            case .copyFromStdin: copyFromStdin = true
            case .changesFunctions: changesFunctions = true
            case .asks: asks = true
            case .settingValue(let value): settingValue = value
            case .statements, .statement: break
            }
        }
        if strict || transaction != nil { XCTAssertEqual(info.transaction, transaction, "transaction of: \(sql)", line: line) }
        if strict || session != nil { XCTAssertEqual(info.session, session, "session of: \(sql)", line: line) }
        if strict || pin != nil { XCTAssertEqual(info.pin, pin, "pin of: \(sql)", line: line) }
        if strict || cursor != nil { XCTAssertEqual(info.cursor, cursor, "cursor of: \(sql)", line: line) }
        if strict || executes != nil { XCTAssertEqual(info.executes, executes, "executes of: \(sql)", line: line) }
        if strict || hinted { XCTAssertEqual(info.hinted, hinted, "hinted of: \(sql)", line: line) }
        if strict || copyFromStdin { XCTAssertEqual(info.copyFromStdin, copyFromStdin, "copyFromStdin of: \(sql)", line: line) }
        if strict || asks { XCTAssertEqual(info.asksWriteable, asks, "asksWriteable of: \(sql)", line: line) }
        if strict || changesFunctions {
            XCTAssertEqual(info.changesFunctions, changesFunctions, "changesFunctions of: \(sql)", line: line)
        }
        if strict || settingValue != nil {
            XCTAssertEqual(info.settingValue, settingValue, "settingValue of: \(sql)", line: line)
        }
    }
}
