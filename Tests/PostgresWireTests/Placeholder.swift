import XCTest

final class PostgresWireTestsPlaceholder: XCTestCase { func testNothing() {} }
