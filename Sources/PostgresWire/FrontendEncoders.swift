/// Encoders for messages the proxy sends to backends (frontend messages).
extension WireOutput {
    /// A StartupMessage (protocol 3.0) with the given parameters in order ("user" must be one).
    public mutating func writeStartupMessage(parameters: [(String, String)],
                                             protocolVersion: Int32 = StartupCode.protocolVersion3) {
        let start = beginUntypedMessage()
        putInt32(protocolVersion)
        for (name, value) in parameters {
            putCString(name)
            putCString(value)
        }
        wireAppend(0)
        endMessage(start)
    }

    public mutating func writeSSLRequest() {
        putInt32(8)
        putInt32(StartupCode.sslRequest)
    }

    public mutating func writeCancelRequest(processID: Int32, secretKey: Int32) {
        putInt32(16)
        putInt32(StartupCode.cancelRequest)
        putInt32(processID)
        putInt32(secretKey)
    }

    /// A cleartext password or an md5 response.
    public mutating func writePasswordMessage(_ password: String) {
        let start = beginMessage(FrontendMessageType.password)
        putCString(password)
        endMessage(start)
    }

    public mutating func writeSASLInitialResponse<Bytes: Collection>(mechanism: String, data: Bytes?) where Bytes.Element == UInt8 {
        let start = beginMessage(FrontendMessageType.password)
        putCString(mechanism)
        if let data {
            putInt32(Int32(data.count))
            putBytes(data)
        } else {
            putInt32(-1)
        }
        endMessage(start)
    }

    public mutating func writeSASLResponse<Bytes: Collection>(data: Bytes) where Bytes.Element == UInt8 {
        let start = beginMessage(FrontendMessageType.password)
        putBytes(data)
        endMessage(start)
    }

    public mutating func writeQuery(_ text: String) {
        let start = beginMessage(FrontendMessageType.query)
        putCString(text)
        endMessage(start)
    }

    public mutating func writeParse(statementName: String, query: String, parameterTypes: [UInt32] = []) {
        let start = beginMessage(FrontendMessageType.parse)
        putCString(statementName)
        putCString(query)
        putInt16(Int16(parameterTypes.count))
        for type in parameterTypes { putInt32(Int32(bitPattern: type)) }
        endMessage(start)
    }

    public mutating func writeDescribe(_ kind: StatementOrPortal, name: String) {
        let start = beginMessage(FrontendMessageType.describe)
        wireAppend(kind.rawValue)
        putCString(name)
        endMessage(start)
    }

    public mutating func writeClose(_ kind: StatementOrPortal, name: String) {
        let start = beginMessage(FrontendMessageType.close)
        wireAppend(kind.rawValue)
        putCString(name)
        endMessage(start)
    }

    public mutating func writeExecute(portalName: String, maxRows: Int32 = 0) {
        let start = beginMessage(FrontendMessageType.execute)
        putCString(portalName)
        putInt32(maxRows)
        endMessage(start)
    }

    public mutating func writeSync() { writeEmptyMessage(FrontendMessageType.sync) }
    public mutating func writeFlush() { writeEmptyMessage(FrontendMessageType.flush) }
    public mutating func writeTerminate() { writeEmptyMessage(FrontendMessageType.terminate) }
}
