import XCTest
@testable import StatementClassifier

/// `Lexer.skipToEnd` scans bytes instead of making tokens; it must end every statement exactly
/// where the token walk does, with the same parenthesis depth, malformation and hint.
final class LexerSkipTests: XCTestCase {
    /// Pieces that change how the rest is read, and plain ones between them.
    private static let fragments: [String] = [
        "SELECT", "update", " ", "\n", "\t", "\r", ";", "(", ")", ",", ".", ".5", "1", "1e", "12.5", "0x1F", "x", "e", "E",
        "é", "_a", "a$", "$", "$$", "$1", "$12", "$a", "$a$", "$b$", "$1$", "'", "''", "E'", "e'", "b'", "X'", "n'", "u&'",
        "U&\"", "\"", "\"\"", "\\", "\\'", "--", "-", "/*", "*/", "/", "*", "+", "<>", "::", ":", "[", "]", "{", "}", "\u{0}",
        "\u{7}", "pgsplit: main", "pgsplit:writeable", "-- pgsplit: writable\n", "/* pgsplit: main */", "@", "#", "~", "|",
    ]

    private func soup(_ random: inout SplitMix64) -> String {
        var text = ""
        for _ in 0..<Int.random(in: 0...24, using: &random) {
            text += Self.fragments[Int.random(in: 0..<Self.fragments.count, using: &random)]
        }
        return text
    }

    /// Walks every statement of `text`, after `tokensFirst` tokens each, both ways.
    private func checkAgreement(_ text: String, tokensFirst: Int, file: StaticString = #filePath, line: UInt = #line) {
        var utf8 = Array(text.utf8)
        utf8.append(0)  // a readable byte past the end, never counted
        utf8.withUnsafeBufferPointer { buffer in
            let bytes = buffer.baseAddress!
            let count = buffer.count - 1
            var start = 0
            var statements = 0
            while start < count && statements < 64 {
                var fast = Lexer(bytes: bytes, count: count, position: start)
                for _ in 0..<tokensFirst { _ = fast.next() }
                var slow = fast
                fast.skipToEnd()
                slow.skipToEndByTokens()
                let context = "\(text.debugDescription) from \(start) after \(tokensFirst) tokens"
                XCTAssertEqual(fast.endOffset, slow.endOffset, "end: \(context)", file: file, line: line)
                XCTAssertEqual(fast.depth, slow.depth, "depth: \(context)", file: file, line: line)
                XCTAssertEqual(fast.malformed, slow.malformed, "malformed: \(context)", file: file, line: line)
                XCTAssertEqual(fast.hint, slow.hint, "hint: \(context)", file: file, line: line)
                // Skipping again at the end changes nothing, as another `.end` would not.
                fast.skipToEnd()
                XCTAssertEqual(fast.endOffset, slow.endOffset, "second skip: \(context)", file: file, line: line)
                start = slow.endOffset + 1
                statements += 1
            }
        }
    }

    func testTheByteScanEndsWhereTheTokensEnd() {
        let cases = [
            "", ";", "UPDATE t SET a = 1 WHERE id = 2; SELECT 1", "INSERT INTO t VALUES ('a;b', \"c;d\", $$e;f$$)",
            "update t set a = E'x\\';y' ; select", "update t set a = e'\\\\'; x", "update t set a = 'x\\'; y'",
            "x$$y; z", "1$$y$$; z", "a.$1; b", "x.5$; y", "$abc x; y", "$1a; b", "(;)", "());", "((", "'open", "\"open",
            "$t$ never closed", "/* /* nested */ still; */ x; y", "/* open", "-- line; comment\n; next", "a--b;c",
            "1--2;3", "+/* c */; d", "u&'x;y'; z", "U&\"x;y\"; z", "b'1;0'; z", "é'x;y'; z", "1e'x;y'; z", "xe'\\';y';z",
            "select {}; x", "a\\b; c", "select \u{0}; x", "/* pgsplit: main */ update t; -- pgsplit: writeable\n x",
        ]
        for text in cases {
            for tokensFirst in 0...3 { checkAgreement(text, tokensFirst: tokensFirst) }
        }
    }

    func testTheByteScanAgreesOnRandomSoups() {
        var random = SplitMix64(state: 0x5EED_0F_5C4A)
        for _ in 0..<20_000 {
            let text = soup(&random)
            checkAgreement(text, tokensFirst: Int.random(in: 0...3, using: &random))
        }
    }
}
