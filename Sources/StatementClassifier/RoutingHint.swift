/// Routing hints written in comments: `/* pgsplit: main */`, `/* pgsplit: writeable */`,
/// `-- pgsplit: main`. The marker and target are case-insensitive; space around `:` is optional;
/// `writable` is accepted for `writeable`. Other text may surround the hint in the same comment.
enum RoutingHint {
    /// "pgsplit:main" is the shortest comment body that can hold a hint.
    static let shortestLength = 12

    /// The hint in the comment text `bytes[start..<end]`, if there is one.
    static func find(in bytes: UnsafePointer<UInt8>, from start: Int, to end: Int) -> RouteTarget? {
        var i = start
        while i + 7 <= end {
            if matchesLowercase(bytes, i, end, "pgsplit") {
                if let target = target(after: i + 7, in: bytes, end: end) { return target }
            }
            i += 1
        }
        return nil
    }

    private static func target(after index: Int, in bytes: UnsafePointer<UInt8>, end: Int) -> RouteTarget? {
        var i = skipSpaces(bytes, index, end)
        guard i < end, bytes[i] == ASCII.colon else { return nil }
        i = skipSpaces(bytes, i + 1, end)
        if matchesWord(bytes, i, end, "main") { return .main }
        if matchesWord(bytes, i, end, "writeable") || matchesWord(bytes, i, end, "writable") { return .writeable }
        return nil
    }

    private static func skipSpaces(_ bytes: UnsafePointer<UInt8>, _ index: Int, _ end: Int) -> Int {
        var i = index
        while i < end, ASCII.isSpace(bytes[i]) { i += 1 }
        return i
    }

    /// The word at `index`, not followed by more identifier characters.
    private static func matchesWord(_ bytes: UnsafePointer<UInt8>, _ index: Int, _ end: Int, _ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard matchesLowercase(bytes, index, end, word) else { return false }
        return index + n >= end || !ASCII.isIdentifierPart(bytes[index + n])
    }

    private static func matchesLowercase(_ bytes: UnsafePointer<UInt8>, _ index: Int, _ end: Int, _ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard index + n <= end else { return false }
        let w = word.utf8Start
        for k in 0..<n where ASCII.lowercased(bytes[index + k]) != w[k] { return false }
        return true
    }
}
