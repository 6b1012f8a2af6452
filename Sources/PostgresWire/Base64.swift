/// Standard base64 with padding, as SCRAM messages and secrets use it.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            for shift in [18, 12, 6, 0] { out.append(alphabet[Int(chunk >> UInt32(shift) & 63)]) }
            index += 3
        }
        let left = bytes.count - index
        if left > 0 {
            var chunk = UInt32(bytes[index]) << 16
            if left == 2 { chunk |= UInt32(bytes[index + 1]) << 8 }
            out.append(alphabet[Int(chunk >> 18 & 63)])
            out.append(alphabet[Int(chunk >> 12 & 63)])
            out.append(left == 2 ? alphabet[Int(chunk >> 6 & 63)] : UInt8(ascii: "="))
            out.append(UInt8(ascii: "="))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// nil for anything that is not canonical padded base64.
    static func decode(_ string: Substring) -> [UInt8]? {
        let chars = Array(string.utf8)
        guard chars.count % 4 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 4 * 3)
        var index = 0
        while index < chars.count {
            var chunk: UInt32 = 0
            var padding = 0
            for offset in 0..<4 {
                let char = chars[index + offset]
                let value: UInt32
                switch char {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(char - UInt8(ascii: "A"))
                case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(char - UInt8(ascii: "a")) + 26
                case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(char - UInt8(ascii: "0")) + 52
                case UInt8(ascii: "+"): value = 62
                case UInt8(ascii: "/"): value = 63
                case UInt8(ascii: "=") where index + 4 == chars.count && offset >= 2:
                    padding += 1
                    value = 0
                default: return nil
                }
                if padding > 0 && char != UInt8(ascii: "=") { return nil }
                chunk = chunk << 6 | value
            }
            out.append(UInt8(truncatingIfNeeded: chunk >> 16))
            if padding < 2 { out.append(UInt8(truncatingIfNeeded: chunk >> 8)) }
            if padding < 1 { out.append(UInt8(truncatingIfNeeded: chunk)) }
            index += 4
        }
        return out
    }

    static func decode(_ string: String) -> [UInt8]? { decode(string[...]) }
}
