/// The classifications of a session's recent statements, reused for texts that differ from one of them
/// only in the values of numeric and string literals.
///
/// Clients that inline values (pgbench's simple mode, psycopg2, most hand-written SQL) send the same
/// statement again and again with other numbers and strings in it. No literal's value changes where a
/// plain statement runs, so such a text gets the earlier classification after a byte comparison —
/// about a tenth of lexing and reading it again.
///
/// Why this is sound: the lexer works left to right, so identical bytes before a literal leave it in
/// the identical state; a literal of the same kind lexed by the same rules leaves it there again (a
/// literal changes neither the parenthesis depth nor a hint); identical bytes after it then give the
/// identical tokens. Only statements whose classification carries no text of their own (no setting,
/// name or value, no pin, hint, transaction control or unknown function) are kept that way; others up
/// to 128 bytes are kept for their exact text, which the classifier, a pure function of the text,
/// answers the same way every time.
public struct StatementTemplates: Sendable {
    /// Enough for a session cycling through a handful of statements (pgbench's tpcb-like script needs
    /// nine: five statements, three of them in two forms as a value is negative or not).
    public static let capacity = 12
    /// Longer texts are rarely repeated and would cost memory per session.
    public static let maximumLength = 512
    static let maximumHoles = 16
    /// Statements whose classification carries text of their own are kept only this short.
    static let maximumExactLength = 128

    private var entries: [Template] = []
    private var nextVictim = 0
    /// Where the next search starts: after the last template matched.
    private var nextGuess = 0
    /// The classifier version the entries were made with: a new catalog empties the list.
    private var version = 0

    public init() {}

    /// Classifies `utf8` into `statements` (emptied first), from a template when one matches, else with
    /// `classifier` — remembering the text as a template when its classification allows.
    public mutating func classify(utf8: UnsafeRawBufferPointer, with classifier: Classifier, version: Int,
                                  into statements: inout [StatementInfo]) {
        if version != self.version {
            entries = []
            nextVictim = 0
            self.version = version
        }
        if utf8.count <= Self.maximumLength, !entries.isEmpty {
            // From the one after the last match, round: a client cycling through its statements (a
            // pgbench script, an application's request) then matches at the first try.
            let start = nextGuess < entries.count ? nextGuess : 0
            let hit = entries.withUnsafeBufferPointer { templates -> Int? in
                var index = start
                repeat {
                    if templates[index].matches(utf8) { return index }
                    index = index + 1 == templates.count ? 0 : index + 1
                } while index != start
                return nil
            }
            if let hit {
                nextGuess = hit + 1
                while !statements.isEmpty { statements.removeLast() }
                statements.append(entries[hit].info)
                return
            }
        }
        classifier.classify(utf8: utf8, into: &statements)
        guard statements.count == 1, utf8.count <= Self.maximumLength else { return }
        let template: Template
        if Self.isPlain(statements[0]) {
            guard let withHoles = Template(utf8, info: statements[0]) else { return }
            template = withHoles
        } else {
            // Kept for its exact text only: a classification is the classifier's answer for a text, so
            // the same bytes get the same answer (BEGIN and COMMIT around every transaction, the same
            // SET at every checkout from an application's pool).
            guard utf8.count <= Self.maximumExactLength, !statements[0].callsUnknownFunction else { return }
            template = Template(exactly: utf8, info: statements[0])
        }
        if entries.count < Self.capacity {
            entries.append(template)
        } else {
            entries[nextVictim] = template
            nextVictim = (nextVictim + 1) % Self.capacity
        }
    }

    /// A statement whose classification does not depend on its literals.
    static func isPlain(_ info: StatementInfo) -> Bool {
        guard info.transaction == nil, info.pin == nil, !info.hinted, !info.copyFromStdin, !info.changesFunctions,
              !info.callsUnknownFunction, !info.hasDetails else { return false }
        switch info.command {
        case "select", "insert", "update", "delete", "merge", "values", "table": return true
        default: return false
        }
    }

    /// The number of remembered templates (for tests).
    public var count: Int { entries.count }

    /// Marks the template `utf8` matches as a read only writeable can answer (`asksWriteable`): main
    /// refused it in a way that will not change (a view whose function writes, a table its user may not
    /// read). Texts that match it from now on go to writeable at once. False when none matches.
    @discardableResult
    public mutating func markAnsweredByWriteable(utf8: UnsafeRawBufferPointer) -> Bool {
        guard let index = entries.firstIndex(where: { $0.matches(utf8) }) else { return false }
        entries[index].info.markAnsweredByWriteable()
        return true
    }

    /// Whether the templates were made with classifier `version` (any others are dropped at the next
    /// `classify`).
    public func isCurrent(version: Int) -> Bool { self.version == version && !entries.isEmpty }

    /// The same templates, taken as made with `version`: for a session that starts with what another
    /// session of the same database learnt with the same classifier (its own versions count apart).
    public func restamped(version: Int) -> StatementTemplates {
        var copy = self
        copy.version = version
        return copy
    }
}

/// One remembered statement: its bytes, where its literals are, and its classification.
struct Template: Sendable {
    struct Hole: Sendable {
        enum Kind: UInt8, Sendable {
            /// Starts with a digit.
            case number
            /// Starts with a digit after a space, `(` or `,`: a `-` before the digits is accepted too,
            /// an operator token of its own there (after an operator character it would join that operator).
            case signedNumber
            /// `'...'` without a prefix.
            case string
        }
        var start: Int32
        var end: Int32
        var kind: Kind
    }

    let text: [UInt8]
    let holes: [Hole]
    var info: StatementInfo

    /// A text matched only by itself.
    init(exactly utf8: UnsafeRawBufferPointer, info: StatementInfo) {
        text = Array(utf8.bindMemory(to: UInt8.self))
        holes = []
        self.info = info
    }

    /// Nil when the text's literals cannot all be found (more than `maximumHoles`, or the lexer found it
    /// malformed or hinted).
    init?(_ utf8: UnsafeRawBufferPointer, info: StatementInfo) {
        guard let base = utf8.baseAddress else { return nil }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        var lexer = Lexer(bytes: bytes, count: utf8.count, position: 0)
        var holes: [Hole] = []
        while true {
            let token = lexer.next()
            if token.kind == .end { break }
            let first = bytes[token.start]
            let kind: Hole.Kind
            switch token.kind {
            case .number where ASCII.isDigit(first):
                let before = token.start > 0 ? bytes[token.start - 1] : 0
                kind = before == ASCII.space || before == ASCII.openParen || before == ASCII.comma ? .signedNumber : .number
            case .string where first == ASCII.quote:
                kind = .string
            default:
                continue
            }
            if holes.count == StatementTemplates.maximumHoles { return nil }
            holes.append(Hole(start: Int32(token.start), end: Int32(token.end), kind: kind))
        }
        guard !lexer.malformed, lexer.hint == nil else { return nil }
        self.text = Array(utf8)
        self.holes = holes
        self.info = info
    }

    /// Whether `utf8` is this text with other literals in the holes.
    func matches(_ utf8: UnsafeRawBufferPointer) -> Bool {
        guard let base = utf8.baseAddress else { return false }
        let other = base.assumingMemoryBound(to: UInt8.self)
        let count = utf8.count
        return text.withUnsafeBufferPointer { mine in holes.withUnsafeBufferPointer { holes in
            let own = mine.baseAddress!
            var at = 0      // in utf8
            var from = 0    // in text
            for hole in holes {
                let same = Int(hole.start) - from
                guard count - at >= same, Self.equal(own + from, other + at, same) else { return false }
                at += same
                from = Int(hole.end)
                switch hole.kind {
                case .signedNumber where at < count && other[at] == ASCII.minus:
                    at += 1
                    guard let end = Self.numberEnd(other, at, count) else { return false }
                    at = end
                case .number, .signedNumber:
                    guard let end = Self.numberEnd(other, at, count) else { return false }
                    at = end
                case .string:
                    guard let end = Self.stringEnd(other, at, count) else { return false }
                    at = end
                }
            }
            let rest = mine.count - from
            return count - at == rest && Self.equal(own + from, other + at, rest)
        } }
    }

    /// Past a number starting at `at` (a digit first), by the lexer's rule; nil if no digit is there.
    @inline(__always) private static func numberEnd(_ bytes: UnsafePointer<UInt8>, _ at: Int, _ count: Int) -> Int? {
        guard at < count, ASCII.isDigit(bytes[at]) else { return nil }
        var i = at + 1
        while i < count {
            let c = bytes[i]
            guard ASCII.isDigit(c) || ASCII.isLetter(c) || c == ASCII.underscore || c == ASCII.dot else { break }
            i += 1
        }
        return i
    }

    /// Past a `'...'` string starting at `at`, by the lexer's rule; nil if none starts there or it never closes.
    @inline(__always) private static func stringEnd(_ bytes: UnsafePointer<UInt8>, _ at: Int, _ count: Int) -> Int? {
        guard at < count, bytes[at] == ASCII.quote else { return nil }
        var i = at + 1
        while i < count {
            if bytes[i] == ASCII.quote {
                if i + 1 < count && bytes[i + 1] == ASCII.quote { i += 2; continue }
                return i + 1
            }
            i += 1
        }
        return nil
    }

    /// Byte equality, eight bytes at a time.
    @inline(__always) private static func equal(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        let ra = UnsafeRawPointer(a)
        let rb = UnsafeRawPointer(b)
        var i = 0
        while i + 8 <= count {
            if ra.loadUnaligned(fromByteOffset: i, as: UInt64.self) != rb.loadUnaligned(fromByteOffset: i, as: UInt64.self) {
                return false
            }
            i += 8
        }
        while i < count {
            if a[i] != b[i] { return false }
            i += 1
        }
        return true
    }
}
