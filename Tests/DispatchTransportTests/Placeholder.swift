import XCTest

final class DispatchTransportTestsPlaceholder: XCTestCase { func testNothing() {} }
