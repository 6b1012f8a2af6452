/// The first packet a client sends, decoded.
public enum StartupPacket: Sendable {
    case startup(protocol: Int32, parameters: [(String, String)])
    case sslRequest
    case gssEncRequest
    case cancel(processID: Int32, secretKey: Int32)

    /// A startup packet PostgreSQL would refuse, with the SQLSTATE and message it would send.
    public struct Failure: Error, Equatable, Sendable {
        public let sqlState: String
        public let message: String

        public var errorFields: ErrorFields { ErrorFields(severity: "FATAL", code: sqlState, message: message) }
    }

    /// Decodes the payload of a startup-phase packet (after the length; see
    /// `MessageFraming.frameStartup`).
    public static func decode(_ payload: ArraySlice<UInt8>) throws(Failure) -> StartupPacket {
        var reader = PayloadReader(payload)
        guard let code = try? reader.readInt32() else {
            throw Failure(sqlState: SQLState.protocolViolation, message: "invalid length of startup packet")
        }
        switch code {
        case StartupCode.sslRequest: return .sslRequest
        case StartupCode.gssEncRequest: return .gssEncRequest
        case StartupCode.cancelRequest:
            guard let pid = try? reader.readInt32(), let key = try? reader.readInt32() else {
                throw Failure(sqlState: SQLState.protocolViolation, message: "invalid length of startup packet")
            }
            return .cancel(processID: pid, secretKey: key)
        default: break
        }

        let major = UInt32(bitPattern: code) >> 16
        let minor = UInt32(bitPattern: code) & 0xFFFF
        // Only protocol 3 exists today; a newer 3.x minor is answered by the server with
        // NegotiateProtocolVersion, so it is accepted here and reported as is.
        guard major == 3 else {
            throw Failure(sqlState: SQLState.featureNotSupported,
                          message: "unsupported frontend protocol \(major).\(minor): server supports 3.0 to 3.0")
        }

        var parameters: [(String, String)] = []
        while true {
            guard let name = try? reader.readCString() else {
                throw Failure(sqlState: SQLState.protocolViolation,
                              message: "invalid startup packet layout: expected terminator as last byte")
            }
            if name.isEmpty { break }
            guard let value = try? reader.readCString() else {
                throw Failure(sqlState: SQLState.protocolViolation,
                              message: "invalid startup packet layout: expected terminator as last byte")
            }
            parameters.append((name, value))
        }
        guard reader.isAtEnd else {
            throw Failure(sqlState: SQLState.protocolViolation,
                          message: "invalid startup packet layout: expected terminator as last byte")
        }
        guard let user = parameters.first(where: { $0.0 == "user" })?.1, !user.isEmpty else {
            throw Failure(sqlState: SQLState.invalidAuthorizationSpecification,
                          message: "no PostgreSQL user name specified in startup packet")
        }
        return .startup(protocol: code, parameters: parameters)
    }
}

extension StartupPacket {
    /// The value of a startup parameter; "database" defaults to the user name, as in PostgreSQL.
    public static func parameter(_ name: String, in parameters: [(String, String)]) -> String? {
        if let value = parameters.first(where: { $0.0 == name })?.1 { return value }
        if name == "database" { return parameters.first(where: { $0.0 == "user" })?.1 }
        return nil
    }
}
