import Foundation
import XCTest
import SplitConfig

/// The proxy.conf at the top of the repository is the demo's default: it must load and be valid.
final class ShippedConfigTests: XCTestCase {
    private var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    func testShippedProxyConfLoads() throws {
        let config = try ProxyConfig.load(path: repositoryRoot.appendingPathComponent("proxy.conf").path)
        XCTAssertEqual(config.validationProblems(), [])
        XCTAssertEqual(config.listen, [ListenAddress(host: "127.0.0.1", port: 6432)])
        XCTAssertEqual(config.authType, .trust)
        XCTAssertEqual(config.databases.count, 1)
        let app = try XCTUnwrap(config.database(named: "app"))
        XCTAssertEqual(app.main.rendered(), "host=127.0.0.1 port=15433 dbname=app user=app_ro password=***")
        XCTAssertEqual(app.main.password, "app_ro")
        let writeable = try XCTUnwrap(app.writeable)
        XCTAssertEqual(writeable.rendered(maskingPassword: false), "host=127.0.0.1 port=15432 dbname=app user=app_rw password=app_rw")
        XCTAssertEqual(writeable.label, "127.0.0.1:15432/app")
    }

    func testLoadReadsTheAuthFileNextToTheConfig() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("splitconfig-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let configPath = folder.appendingPathComponent("proxy.conf").path
        try "[pgsplit]\nauth_type = md5\nauth_file = users.txt\n[database app]\nmain = host=db\n"
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        try "\"alice\" \"secret\"\n".write(to: folder.appendingPathComponent("users.txt"), atomically: true, encoding: .utf8)

        let config = try ProxyConfig.load(path: configPath)
        XCTAssertEqual(config.authFile, folder.appendingPathComponent("users.txt").path)
        XCTAssertEqual(config.userlist?["alice"], .plain("secret"))
        XCTAssertEqual(config.validationProblems(), [])
    }

    func testLoadErrorsNameTheFiles() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("splitconfig-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let configPath = folder.appendingPathComponent("proxy.conf").path
        let usersPath = folder.appendingPathComponent("users.txt").path

        XCTAssertThrowsError(try ProxyConfig.load(path: configPath)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(configPath): cannot read the configuration: "), "\(error)")
        }
        try "[pgsplit]\nauth_file = users.txt\n[database app]\nmain = host=db\n".write(toFile: configPath, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ProxyConfig.load(path: configPath)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(configPath):2: [pgsplit] auth_file: cannot read \"\(usersPath)\": "), "\(error)")
        }
        try "\"alice\"\n".write(toFile: usersPath, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ProxyConfig.load(path: configPath)) { error in
            XCTAssertEqual("\(error)", "\(usersPath):1: expected the secret of \"alice\" in double quotes after the user name")
        }
    }
}
