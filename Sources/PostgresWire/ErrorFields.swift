/// The fields of an ErrorResponse or NoticeResponse.
public struct ErrorFields: Equatable, Sendable {
    /// Field type bytes, as the protocol defines them.
    public enum Code {
        public static let severity = UInt8(ascii: "S")
        /// Severity never translated (PostgreSQL 9.6+).
        public static let severityNonLocalized = UInt8(ascii: "V")
        public static let sqlState = UInt8(ascii: "C")
        public static let message = UInt8(ascii: "M")
        public static let detail = UInt8(ascii: "D")
        public static let hint = UInt8(ascii: "H")
    }

    /// Every field in the order received, including those not lifted out below.
    public var fields: [Field]

    public struct Field: Equatable, Sendable {
        public var code: UInt8
        public var value: String
        public init(code: UInt8, value: String) {
            self.code = code
            self.value = value
        }
    }

    public init(fields: [Field]) { self.fields = fields }

    /// The usual fields a proxy creates: severity (as S and V), SQLSTATE, message, optional detail
    /// and hint.
    public init(severity: String, code: String, message: String, detail: String? = nil, hint: String? = nil) {
        var fields = [
            Field(code: Code.severity, value: severity),
            Field(code: Code.severityNonLocalized, value: severity),
            Field(code: Code.sqlState, value: code),
            Field(code: Code.message, value: message),
        ]
        if let detail { fields.append(Field(code: Code.detail, value: detail)) }
        if let hint { fields.append(Field(code: Code.hint, value: hint)) }
        self.fields = fields
    }

    public func value(of code: UInt8) -> String? { fields.first { $0.code == code }?.value }

    /// The non-localized severity when present (ERROR, FATAL, PANIC, WARNING, NOTICE, ...).
    public var severity: String { value(of: Code.severityNonLocalized) ?? value(of: Code.severity) ?? "" }
    /// FATAL or PANIC: the server closes the connection next.
    public var endsSession: Bool { severity == "FATAL" || severity == "PANIC" }
    public var code: String { value(of: Code.sqlState) ?? "" }
    public var message: String { value(of: Code.message) ?? "" }
    public var detail: String? { value(of: Code.detail) }
    public var hint: String? { value(of: Code.hint) }

    /// Decodes the payload of an ErrorResponse or NoticeResponse.
    public static func decode(_ payload: ArraySlice<UInt8>) throws(WireDecodingError) -> ErrorFields {
        var reader = PayloadReader(payload)
        var fields: [Field] = []
        while true {
            let code = try reader.readByte()
            if code == 0 { break }
            fields.append(Field(code: code, value: try reader.readCString()))
        }
        try reader.expectEnd()
        return ErrorFields(fields: fields)
    }
}

extension ErrorFields: CustomStringConvertible {
    public var description: String { "\(severity): \(message) (SQLSTATE \(code))" }
}
