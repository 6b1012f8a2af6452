import StatementClassifier

/// One row of the classification table: SQL text, where it must go, and what else it must say.
struct ClassificationCase {
    var sql: String
    var target: RouteTarget
    var expectations: [Expectation]
    var policy: FunctionPolicy?
    var line: UInt
}

/// Fields checked on a statement (the first, unless `.statement(n)` picks another). For a one-statement
/// query every field not mentioned must be empty: nil, false.
enum Expectation {
    case command(String)
    case transaction(TransactionControl)
    case session(SessionEffect)
    case pin(PinReason)
    case cursor(String)
    case executes(String)
    case hinted
    case copyFromStdin
    case changesFunctions
    /// A read writeable must answer (asksWriteable).
    case asks
    case settingValue(String)
    /// How many statements the query string holds (default 1).
    case statements(Int)
    /// Which statement the field expectations apply to.
    case statement(Int)
}

let M = RouteTarget.main
let W = RouteTarget.writeable

func c(_ sql: String, _ target: RouteTarget, _ expectations: Expectation..., policy: FunctionPolicy? = nil,
       line: UInt = #line) -> ClassificationCase {
    ClassificationCase(sql: sql, target: target, expectations: expectations, policy: policy, line: line)
}
