import XCTest
@testable import SplitConfig

final class SettingValueTests: XCTestCase {
    func testDurations() {
        XCTAssertEqual(SettingValueParsing.duration("500ms"), .milliseconds(500))
        XCTAssertEqual(SettingValueParsing.duration("10s"), .seconds(10))
        XCTAssertEqual(SettingValueParsing.duration("10"), .seconds(10))
        XCTAssertEqual(SettingValueParsing.duration("5min"), .seconds(300))
        XCTAssertEqual(SettingValueParsing.duration("1h"), .seconds(3600))
        XCTAssertEqual(SettingValueParsing.duration("1d"), .seconds(86400))
        XCTAssertEqual(SettingValueParsing.duration("2 s"), .seconds(2))
        XCTAssertEqual(SettingValueParsing.duration("0"), .zero)
        XCTAssertNil(SettingValueParsing.duration("-1s"))
        XCTAssertNil(SettingValueParsing.duration("1.5s"))
        XCTAssertNil(SettingValueParsing.duration("s"))
        XCTAssertNil(SettingValueParsing.duration("5m"), "m is ambiguous between minutes and months")
        XCTAssertNil(SettingValueParsing.duration("9999999999999999d"))
    }

    func testSizes() {
        XCTAssertEqual(SettingValueParsing.byteSize("8192"), 8192)
        XCTAssertEqual(SettingValueParsing.byteSize("64kB"), 65536)
        XCTAssertEqual(SettingValueParsing.byteSize("16MB"), 16 << 20)
        XCTAssertEqual(SettingValueParsing.byteSize("1GB"), 1 << 30)
        XCTAssertEqual(SettingValueParsing.byteSize("1 gb"), 1 << 30)
        XCTAssertNil(SettingValueParsing.byteSize("1PB"))
        XCTAssertNil(SettingValueParsing.byteSize("MB"))
        XCTAssertNil(SettingValueParsing.byteSize("-1"))
    }

    func testBooleans() {
        for text in ["on", "ON", "true", "yes", "1"] { XCTAssertEqual(SettingValueParsing.boolean(text), true, text) }
        for text in ["off", "False", "no", "0"] { XCTAssertEqual(SettingValueParsing.boolean(text), false, text) }
        XCTAssertNil(SettingValueParsing.boolean("2"))
    }

    func testListenAddresses() {
        XCTAssertEqual(ListenAddress.parse("127.0.0.1:6432"), ListenAddress(host: "127.0.0.1", port: 6432))
        XCTAssertEqual(ListenAddress.parse("[::1]:6432"), ListenAddress(host: "::1", port: 6432))
        XCTAssertEqual(ListenAddress.parse("*:6432"), ListenAddress(host: "*", port: 6432))
        XCTAssertEqual(ListenAddress.parse("proxy.local:1"), ListenAddress(host: "proxy.local", port: 1))
        XCTAssertNil(ListenAddress.parse("127.0.0.1"))
        XCTAssertNil(ListenAddress.parse(":6432"))
        XCTAssertNil(ListenAddress.parse("[::1]6432"))
        XCTAssertNil(ListenAddress.parse("host:0"))
        XCTAssertNil(ListenAddress.parse("host:65536"))
    }

    func testFunctionNames() {
        XCTAssertEqual(SettingValueParsing.functionName("My_Fn"), "my_fn")
        XCTAssertEqual(SettingValueParsing.functionName("Public.Fn"), "public.fn")
        XCTAssertEqual(SettingValueParsing.functionName(#""Odd.""Name""#), #"Odd."Name"#)
        XCTAssertEqual(SettingValueParsing.functionName(#"app."Fn""#), "app.Fn")
        XCTAssertNil(SettingValueParsing.functionName("a b"))
        XCTAssertNil(SettingValueParsing.functionName("a."))
        XCTAssertNil(SettingValueParsing.functionName(#""open"#))
    }

    func testTrailingComments() {
        XCTAssertEqual(IniDocument.stripTrailingComment("x ; c"), "x ")
        XCTAssertEqual(IniDocument.stripTrailingComment("x\t# c"), "x\t")
        XCTAssertEqual(IniDocument.stripTrailingComment("a;b"), "a;b")
        XCTAssertEqual(IniDocument.stripTrailingComment("p='a ;b' ; c"), "p='a ;b' ")
        XCTAssertEqual(IniDocument.stripTrailingComment(#"p='a\' ;b' ; c"#), #"p='a\' ;b' "#)
    }
}
