import XCTest
import SplitConfig

final class ConfigValidationTests: XCTestCase {
    private func problems(_ text: String) throws -> [String] {
        try ProxyConfig.parse(text: text, fileName: "proxy.conf").validationProblems()
    }

    func testRoutingWithWriteableIsRefused() throws {
        let text = """
        [pgsplit]
        auth_type = trust
        [database app]
        main = host=replica
        writeable = host=primary
        database_routing = on
        """
        XCTAssertEqual(try problems(text), [
            #"database "app": a writeable connection cannot be used with database routing (database_routing = on); remove one of them"#,
        ])
    }

    func testRoutesWithRoutingOff() throws {
        let text = "[pgsplit]\nauth_type = trust\n[database app]\nmain = host=a\nroute.bob = host=b\nroute.alice = host=c\n"
        XCTAssertEqual(try problems(text), [
            #"database "app": route.alice, route.bob set but database_routing is off; set database_routing = on or remove the routes"#,
        ])
    }

    func testAuthFileNeededUnlessTrust() throws {
        XCTAssertEqual(try problems("[database app]\nmain = host=a\n"), [
            "auth_type = scram-sha-256 needs an auth_file with the users' secrets; set auth_file or use auth_type = trust",
        ])
        XCTAssertEqual(try problems("[pgsplit]\nauth_type = md5\nauth_file = users.txt\n[database app]\nmain = host=a\n"), [])
        XCTAssertEqual(try problems("[pgsplit]\nauth_type = trust\n[database app]\nmain = host=a\n"), [])
    }

    func testFunctionInBothLists() throws {
        let text = "[pgsplit]\nauth_type = trust\n[database app]\nmain = host=a\nread_safe_functions = f, g\nwriting_functions = F\n"
        XCTAssertEqual(try problems(text), [
            #"database "app": f listed both in read_safe_functions and in writing_functions; keep one"#,
        ])
    }
}
