/// Encoders for messages the proxy sends to clients (backend messages).
extension WireOutput {
    public mutating func writeAuthenticationOk() { writeAuthentication(code: 0) }

    public mutating func writeAuthenticationCleartextPassword() { writeAuthentication(code: 3) }

    public mutating func writeAuthenticationMD5Password(salt: UInt32) {
        let start = beginMessage(BackendMessageType.authentication)
        putInt32(5)
        putInt32(Int32(bitPattern: salt))
        endMessage(start)
    }

    public mutating func writeAuthenticationSASL(mechanisms: [String]) {
        let start = beginMessage(BackendMessageType.authentication)
        putInt32(10)
        for mechanism in mechanisms { putCString(mechanism) }
        wireAppend(0)
        endMessage(start)
    }

    public mutating func writeAuthenticationSASLContinue<Bytes: Collection>(data: Bytes) where Bytes.Element == UInt8 {
        let start = beginMessage(BackendMessageType.authentication)
        putInt32(11)
        putBytes(data)
        endMessage(start)
    }

    public mutating func writeAuthenticationSASLFinal<Bytes: Collection>(data: Bytes) where Bytes.Element == UInt8 {
        let start = beginMessage(BackendMessageType.authentication)
        putInt32(12)
        putBytes(data)
        endMessage(start)
    }

    private mutating func writeAuthentication(code: Int32) {
        wireAppend(BackendMessageType.authentication)
        putInt32(8)
        putInt32(code)
    }

    public mutating func writeParameterStatus(name: String, value: String) {
        let start = beginMessage(BackendMessageType.parameterStatus)
        putCString(name)
        putCString(value)
        endMessage(start)
    }

    /// NegotiateProtocolVersion: the newest version served (as a whole protocol number, major << 16 |
    /// minor, which is what PostgreSQL sends and libpq reads), and the `_pq_.` options not recognised.
    /// Sent before authentication when the client asked for more than that.
    public mutating func writeNegotiateProtocolVersion(newestVersion: Int32, unrecognized options: [String]) {
        let start = beginMessage(BackendMessageType.negotiateProtocolVersion)
        putInt32(newestVersion)
        putInt32(Int32(options.count))
        for option in options { putCString(option) }
        endMessage(start)
    }

    public mutating func writeBackendKeyData(processID: Int32, secretKey: Int32) {
        wireAppend(BackendMessageType.backendKeyData)
        putInt32(12)
        putInt32(processID)
        putInt32(secretKey)
    }

    public mutating func writeReadyForQuery(_ status: TransactionStatus) {
        wireAppend(BackendMessageType.readyForQuery)
        putInt32(5)
        wireAppend(status.rawValue)
    }

    public mutating func writeErrorResponse(_ fields: ErrorFields) {
        writeFields(BackendMessageType.errorResponse, fields)
    }

    public mutating func writeNoticeResponse(_ fields: ErrorFields) {
        writeFields(BackendMessageType.noticeResponse, fields)
    }

    /// An ErrorResponse with severity (S and V), SQLSTATE, message and optional detail and hint.
    public mutating func writeErrorResponse(severity: String = "ERROR", code: String, message: String,
                                            detail: String? = nil, hint: String? = nil) {
        writeErrorResponse(ErrorFields(severity: severity, code: code, message: message, detail: detail, hint: hint))
    }

    public mutating func writeNoticeResponse(severity: String = "NOTICE", code: String, message: String,
                                             detail: String? = nil, hint: String? = nil) {
        writeNoticeResponse(ErrorFields(severity: severity, code: code, message: message, detail: detail, hint: hint))
    }

    private mutating func writeFields(_ type: UInt8, _ fields: ErrorFields) {
        let start = beginMessage(type)
        for field in fields.fields {
            wireAppend(field.code)
            putCString(field.value)
        }
        wireAppend(0)
        endMessage(start)
    }

    public mutating func writeCommandComplete(tag: String) {
        let start = beginMessage(BackendMessageType.commandComplete)
        putCString(tag)
        endMessage(start)
    }

    public mutating func writeEmptyQueryResponse() { writeEmptyMessage(BackendMessageType.emptyQueryResponse) }
    public mutating func writeParseComplete() { writeEmptyMessage(BackendMessageType.parseComplete) }
    public mutating func writeBindComplete() { writeEmptyMessage(BackendMessageType.bindComplete) }
    public mutating func writeCloseComplete() { writeEmptyMessage(BackendMessageType.closeComplete) }
    public mutating func writeNoData() { writeEmptyMessage(BackendMessageType.noData) }

    /// A RowDescription of text columns (type text, OID 25, text format), as the admin console
    /// and proxy-made results need.
    public mutating func writeRowDescription(textColumns names: [String]) {
        let start = beginMessage(BackendMessageType.rowDescription)
        putInt16(Int16(names.count))
        for name in names {
            putCString(name)
            putInt32(0) // table OID
            putInt16(0) // column number
            putInt32(25) // type OID: text
            putInt16(-1) // variable length
            putInt32(-1) // no type modifier
            putInt16(0) // text format
        }
        endMessage(start)
    }

    /// A DataRow of text values; nil is NULL.
    public mutating func writeDataRow(_ values: [String?]) {
        let start = beginMessage(BackendMessageType.dataRow)
        putInt16(Int16(values.count))
        for value in values {
            guard let value else {
                putInt32(-1)
                continue
            }
            let lengthIndex = wireEndIndex
            putInt32(0)
            putString(value)
            wireSetInt32(Int32(wireEndIndex - lengthIndex - 4), at: lengthIndex)
        }
        endMessage(start)
    }
}
