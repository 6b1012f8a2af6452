/// A DataRow read as text values: for the few queries the proxy itself runs (checks, the catalog,
/// health polls). Client traffic is never decoded.
public enum DataRow {
    /// The row's values as text (nil for NULL). A truncated row yields the values that are whole.
    public static func decodeText(_ body: ArraySlice<UInt8>) -> [String?] {
        var values: [String?] = []
        var i = body.startIndex
        guard body.count >= 2 else { return [] }
        let count = Int(body[i]) << 8 | Int(body[i + 1])
        i += 2
        for _ in 0..<count {
            guard i + 4 <= body.endIndex else { break }
            let length = Int(Int32(bitPattern: UInt32(body[i]) << 24 | UInt32(body[i + 1]) << 16
                                   | UInt32(body[i + 2]) << 8 | UInt32(body[i + 3])))
            i += 4
            if length < 0 { values.append(nil); continue }
            guard i + length <= body.endIndex else { break }
            values.append(String(decoding: body[i..<(i + length)], as: UTF8.self))
            i += length
        }
        return values
    }
}
