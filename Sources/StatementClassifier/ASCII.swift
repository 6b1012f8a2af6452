/// Byte constants and character classes of SQL text, as PostgreSQL's scanner defines them.
enum ASCII {
    static let tab: UInt8 = 0x09
    static let newline: UInt8 = 0x0A
    static let carriageReturn: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let doubleQuote: UInt8 = 0x22
    static let dollar: UInt8 = 0x24
    static let ampersand: UInt8 = 0x26
    static let quote: UInt8 = 0x27
    static let openParen: UInt8 = 0x28
    static let closeParen: UInt8 = 0x29
    static let star: UInt8 = 0x2A
    static let comma: UInt8 = 0x2C
    static let minus: UInt8 = 0x2D
    static let dot: UInt8 = 0x2E
    static let slash: UInt8 = 0x2F
    static let zero: UInt8 = 0x30
    static let nine: UInt8 = 0x39
    static let colon: UInt8 = 0x3A
    static let semicolon: UInt8 = 0x3B
    static let openBracket: UInt8 = 0x5B
    static let backslash: UInt8 = 0x5C
    static let closeBracket: UInt8 = 0x5D
    static let underscore: UInt8 = 0x5F
    static let lowerA: UInt8 = 0x61
    static let lowerB: UInt8 = 0x62
    static let lowerE: UInt8 = 0x65
    static let lowerN: UInt8 = 0x6E
    static let lowerU: UInt8 = 0x75
    static let lowerX: UInt8 = 0x78
    static let lowerZ: UInt8 = 0x7A

    /// Space, tab, newline, carriage return, form feed, vertical tab.
    @inline(__always) static func isSpace(_ c: UInt8) -> Bool {
        c == space || (c >= 0x09 && c <= 0x0D)
    }

    @inline(__always) static func isDigit(_ c: UInt8) -> Bool { c >= zero && c <= nine }

    @inline(__always) static func isLetter(_ c: UInt8) -> Bool {
        let lower = c | 0x20
        return lower >= lowerA && lower <= lowerZ
    }

    /// Letters, `_`, and every non-ASCII byte (PostgreSQL allows any multibyte character in names).
    @inline(__always) static func isIdentifierStart(_ c: UInt8) -> Bool {
        isLetter(c) || c == underscore || c >= 0x80
    }

    /// Bit sets of the ASCII identifier characters, bytes 0-63 and 64-127: a letter, digit, `_` or `$`.
    /// Integer literals, so the hot loop needs no table lookup through a lazily initialised global.
    private static let identifierPartLow: UInt64 = (1 << 0x24) | (0x3FF << 0x30)
    private static let identifierPartHigh: UInt64 = (0x3FF_FFFF << 1) | (1 << 31) | (0x3FF_FFFF << 33)

    @inline(__always) static func isIdentifierPart(_ c: UInt8) -> Bool {
        if c < 64 { return (identifierPartLow >> UInt64(c)) & 1 != 0 }
        if c < 128 { return (identifierPartHigh >> UInt64(c - 64)) & 1 != 0 }
        return true
    }

    /// PostgreSQL's operator characters: ~ ! @ # ^ & | ` ? + - * / % < > =
    @inline(__always) static func isOperator(_ c: UInt8) -> Bool {
        switch c {
        case 0x7E, 0x21, 0x40, 0x23, 0x5E, 0x26, 0x7C, 0x60, 0x3F, 0x2B, 0x2D, 0x2A, 0x2F, 0x25, 0x3C, 0x3E, 0x3D:
            return true
        default:
            return false
        }
    }

    /// ASCII lower-casing; other bytes unchanged (PostgreSQL folds only ASCII in multibyte encodings).
    @inline(__always) static func lowercased(_ c: UInt8) -> UInt8 {
        (c >= 0x41 && c <= 0x5A) ? c | 0x20 : c
    }
}
