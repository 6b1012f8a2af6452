/// Decoders for the backend messages a proxy needs to understand. Each takes the payload (the
/// bytes after the length field).

/// An Authentication ('R') message.
public enum AuthenticationRequest: Equatable, Sendable {
    case ok
    case kerberosV5
    case cleartextPassword
    case md5Password(salt: UInt32)
    case scmCredential
    case gss
    case gssContinue(data: ArraySlice<UInt8>)
    case sspi
    case sasl(mechanisms: [String])
    case saslContinue(data: ArraySlice<UInt8>)
    case saslFinal(data: ArraySlice<UInt8>)
    case other(code: Int32, data: ArraySlice<UInt8>)

    public var code: Int32 {
        switch self {
        case .ok: 0
        case .kerberosV5: 2
        case .cleartextPassword: 3
        case .md5Password: 5
        case .scmCredential: 6
        case .gss: 7
        case .gssContinue: 8
        case .sspi: 9
        case .sasl: 10
        case .saslContinue: 11
        case .saslFinal: 12
        case .other(let code, _): code
        }
    }

    /// A readable name for a method code, for error messages.
    public static func methodName(_ code: Int32) -> String {
        switch code {
        case 2: "Kerberos V5"
        case 3: "cleartext password"
        case 5: "MD5"
        case 6: "SCM credentials"
        case 7: "GSS"
        case 8: "GSS continue"
        case 9: "SSPI"
        case 10: "SASL"
        default: "unknown"
        }
    }

    public static func decode(_ payload: ArraySlice<UInt8>) throws(WireDecodingError) -> AuthenticationRequest {
        var reader = PayloadReader(payload)
        let code = try reader.readInt32()
        let result: AuthenticationRequest
        switch code {
        case 0: result = .ok
        case 2: result = .kerberosV5
        case 3: result = .cleartextPassword
        case 5:
            let salt = try reader.readInt32()
            result = .md5Password(salt: UInt32(bitPattern: salt))
        case 6: result = .scmCredential
        case 7: result = .gss
        case 8: result = .gssContinue(data: reader.readRest())
        case 9: result = .sspi
        case 10:
            var mechanisms: [String] = []
            while true {
                let name = try reader.readCString()
                if name.isEmpty { break }
                mechanisms.append(name)
            }
            result = .sasl(mechanisms: mechanisms)
        case 11: result = .saslContinue(data: reader.readRest())
        case 12: result = .saslFinal(data: reader.readRest())
        default: result = .other(code: code, data: reader.readRest())
        }
        try reader.expectEnd()
        return result
    }
}

/// The transaction status in ReadyForQuery.
public enum TransactionStatus: UInt8, Sendable {
    case idle = 73 // 'I'
    case inTransaction = 84 // 'T'
    case failed = 69 // 'E'
}

public struct ParameterStatus: Equatable, Sendable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    public static func decode(_ payload: ArraySlice<UInt8>) throws(WireDecodingError) -> ParameterStatus {
        var reader = PayloadReader(payload)
        let name = try reader.readCString()
        let value = try reader.readCString()
        try reader.expectEnd()
        return ParameterStatus(name: name, value: value)
    }
}

public struct BackendKeyData: Equatable, Sendable {
    public var processID: Int32
    public var secretKey: Int32
    public init(processID: Int32, secretKey: Int32) {
        self.processID = processID
        self.secretKey = secretKey
    }

    public static func decode(_ payload: ArraySlice<UInt8>) throws(WireDecodingError) -> BackendKeyData {
        var reader = PayloadReader(payload)
        let pid = try reader.readInt32()
        let key = try reader.readInt32()
        try reader.expectEnd()
        return BackendKeyData(processID: pid, secretKey: key)
    }
}

public enum ReadyForQuery {
    public static func decode(_ payload: ArraySlice<UInt8>) throws(WireDecodingError) -> TransactionStatus {
        guard payload.count == 1, let status = TransactionStatus(rawValue: payload[payload.startIndex]) else {
            throw WireDecodingError("invalid ReadyForQuery status")
        }
        return status
    }
}

public enum CommandComplete {
    /// The command tag, e.g. "INSERT 0 1", "SELECT 3", "BEGIN".
    public static func decodeTag(_ payload: ArraySlice<UInt8>) throws(WireDecodingError) -> String {
        var reader = PayloadReader(payload)
        let tag = try reader.readCString()
        try reader.expectEnd()
        return tag
    }
}
