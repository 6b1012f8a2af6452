/// Type bytes of the protocol's messages, by direction. Some letters mean different things in
/// each direction ('D', 'C', 'E', ...), hence two namespaces.
public enum BackendMessageType {
    public static let authentication = UInt8(ascii: "R")
    public static let backendKeyData = UInt8(ascii: "K")
    public static let bindComplete = UInt8(ascii: "2")
    public static let closeComplete = UInt8(ascii: "3")
    public static let commandComplete = UInt8(ascii: "C")
    public static let copyData = UInt8(ascii: "d")
    public static let copyDone = UInt8(ascii: "c")
    public static let copyInResponse = UInt8(ascii: "G")
    public static let copyOutResponse = UInt8(ascii: "H")
    public static let copyBothResponse = UInt8(ascii: "W")
    public static let dataRow = UInt8(ascii: "D")
    public static let emptyQueryResponse = UInt8(ascii: "I")
    public static let errorResponse = UInt8(ascii: "E")
    public static let functionCallResponse = UInt8(ascii: "V")
    public static let negotiateProtocolVersion = UInt8(ascii: "v")
    public static let noData = UInt8(ascii: "n")
    public static let noticeResponse = UInt8(ascii: "N")
    public static let notificationResponse = UInt8(ascii: "A")
    public static let parameterDescription = UInt8(ascii: "t")
    public static let parameterStatus = UInt8(ascii: "S")
    public static let parseComplete = UInt8(ascii: "1")
    public static let portalSuspended = UInt8(ascii: "s")
    public static let readyForQuery = UInt8(ascii: "Z")
    public static let rowDescription = UInt8(ascii: "T")
}

public enum FrontendMessageType {
    public static let bind = UInt8(ascii: "B")
    public static let close = UInt8(ascii: "C")
    public static let copyData = UInt8(ascii: "d")
    public static let copyDone = UInt8(ascii: "c")
    public static let copyFail = UInt8(ascii: "f")
    public static let describe = UInt8(ascii: "D")
    public static let execute = UInt8(ascii: "E")
    public static let flush = UInt8(ascii: "H")
    public static let functionCall = UInt8(ascii: "F")
    public static let parse = UInt8(ascii: "P")
    /// PasswordMessage, SASLInitialResponse, SASLResponse (and GSSResponse) all use 'p'; which one
    /// it is follows from the authentication exchange in progress.
    public static let password = UInt8(ascii: "p")
    public static let query = UInt8(ascii: "Q")
    public static let sync = UInt8(ascii: "S")
    public static let terminate = UInt8(ascii: "X")
}

/// Magic numbers of the untyped first packet.
public enum StartupCode {
    public static let protocolVersion3: Int32 = 196_608 // 3 << 16
    public static let cancelRequest: Int32 = 80_877_102
    public static let sslRequest: Int32 = 80_877_103
    public static let gssEncRequest: Int32 = 80_877_104
}
