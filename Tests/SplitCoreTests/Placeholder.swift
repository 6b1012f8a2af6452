import XCTest

final class SplitCoreTestsPlaceholder: XCTestCase { func testNothing() {} }
