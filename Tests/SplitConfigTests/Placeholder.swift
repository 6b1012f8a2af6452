import XCTest

final class SplitConfigTestsPlaceholder: XCTestCase { func testNothing() {} }
