import XCTest

final class StatementClassifierTestsPlaceholder: XCTestCase { func testNothing() {} }
