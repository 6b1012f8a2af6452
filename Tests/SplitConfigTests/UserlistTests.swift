import XCTest
@testable import SplitConfig

final class UserlistTests: XCTestCase {
    static let scram = "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs=:PiPoFgA5WUoziU9lZOGxNIu9egCI1CxKy3PurtWcAJ0="

    func testParsesAllSecretKinds() throws {
        let text = """
        ; users of the app
        # another comment

        "alice" "md54A0A68B43B6CD5CF266FA02F196E2371"
        "bob"   "\(Self.scram)"
        "carol" "plain ""quoted"" secret"   ; trailing comment
        "dave" "md5short"
        """
        let userlist = try Userlist.parse(text: text, fileName: "users.txt")
        XCTAssertEqual(userlist.secrets.count, 4)
        XCTAssertEqual(userlist["alice"], .md5("4a0a68b43b6cd5cf266fa02f196e2371"))
        XCTAssertEqual(userlist["carol"], .plain(#"plain "quoted" secret"#))
        XCTAssertEqual(userlist["dave"], .plain("md5short"))
        XCTAssertNil(userlist["eve"])
        guard case .scramSHA256(let verifier) = userlist["bob"] else { return XCTFail("bob should have a SCRAM verifier") }
        XCTAssertEqual(verifier.iterations, 4096)
        XCTAssertEqual(verifier.salt, Array("0123456789abcdef".utf8))
        XCTAssertEqual(verifier.storedKey.count, 32)
        XCTAssertEqual(verifier.serverKey.count, 32)
        XCTAssertEqual(verifier.text, Self.scram)
    }

    func testQuotedUserNames() throws {
        let userlist = try Userlist.parse(text: #""we""ird user" "x""#, fileName: "users.txt")
        XCTAssertEqual(userlist[#"we"ird user"#], .plain("x"))
    }

    private func message(_ text: String) -> String {
        do {
            _ = try Userlist.parse(text: text, fileName: "users.txt")
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    func testErrorsNameFileAndLine() {
        XCTAssertEqual(message("\"a\" \"x\"\nalice secret\n"), #"users.txt:2: expected "user" "secret", each in double quotes"#)
        XCTAssertEqual(message("\"alice\"\n"), #"users.txt:1: expected the secret of "alice" in double quotes after the user name"#)
        XCTAssertEqual(message("\"alice\" \"open\n"), #"users.txt:1: expected the secret of "alice" in double quotes after the user name"#)
        XCTAssertEqual(message("\"alice\" \"x\" extra\n"), #"users.txt:1: unexpected text after the secret of "alice""#)
        XCTAssertEqual(message("\"a\" \"x\"\n\n\"a\" \"y\"\n"), #"users.txt:3: user "a" is listed twice (first on line 1)"#)
        XCTAssertEqual(message("\"\" \"x\"\n"), "users.txt:1: the user name is empty")
        XCTAssertEqual(message("\"a\" \"SCRAM-SHA-256$4096:abc\"\n"),
                       #"users.txt:1: user "a": malformed SCRAM-SHA-256 secret; expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"#)
    }
}
