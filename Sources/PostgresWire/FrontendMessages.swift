/// Decoders for the frontend messages a proxy needs to understand. Each takes the payload (the
/// bytes after the length field). Messages the proxy forwards unchanged are decoded only as far
/// as routing needs.

public enum QueryMessage {
    public static func decodeText(_ payload: ArraySlice<UInt8>) throws(WireDecodingError) -> String {
        var reader = PayloadReader(payload)
        let text = try reader.readCString()
        try reader.expectEnd()
        return text
    }
}

public struct ParseMessage: Equatable, Sendable {
    /// Empty for the unnamed statement.
    public var statementName: String
    public var query: String
    /// Parameter type OIDs; 0 leaves a type unspecified.
    public var parameterTypes: [UInt32]

    public init(statementName: String, query: String, parameterTypes: [UInt32] = []) {
        self.statementName = statementName
        self.query = query
        self.parameterTypes = parameterTypes
    }

    public static func decode(_ payload: ArraySlice<UInt8>) throws(WireDecodingError) -> ParseMessage {
        var reader = PayloadReader(payload)
        let name = try reader.readCString()
        let query = try reader.readCString()
        let count = try reader.readInt16()
        guard count >= 0 else { throw WireDecodingError("negative parameter type count") }
        var types: [UInt32] = []
        types.reserveCapacity(Int(count))
        for _ in 0..<count { types.append(UInt32(bitPattern: try reader.readInt32())) }
        try reader.expectEnd()
        return ParseMessage(statementName: name, query: query, parameterTypes: types)
    }
}

/// The names in a Bind message; parameters and formats stay in the forwarded bytes.
public struct BindNames: Equatable, Sendable {
    public var portalName: String
    public var statementName: String

    public init(portalName: String, statementName: String) {
        self.portalName = portalName
        self.statementName = statementName
    }

    public static func decode(_ payload: ArraySlice<UInt8>) throws(WireDecodingError) -> BindNames {
        var reader = PayloadReader(payload)
        let portal = try reader.readCString()
        let statement = try reader.readCString()
        return BindNames(portalName: portal, statementName: statement)
    }
}

/// What Describe and Close refer to.
public enum StatementOrPortal: UInt8, Sendable {
    case statement = 83 // 'S'
    case portal = 80 // 'P'
}

/// A Describe or Close message: they have the same shape.
public struct TargetedMessage: Equatable, Sendable {
    public var kind: StatementOrPortal
    public var name: String

    public init(kind: StatementOrPortal, name: String) {
        self.kind = kind
        self.name = name
    }

    public static func decode(_ payload: ArraySlice<UInt8>) throws(WireDecodingError) -> TargetedMessage {
        var reader = PayloadReader(payload)
        guard let kind = StatementOrPortal(rawValue: try reader.readByte()) else {
            throw WireDecodingError("invalid DESCRIBE/CLOSE message subtype")
        }
        let name = try reader.readCString()
        try reader.expectEnd()
        return TargetedMessage(kind: kind, name: name)
    }
}

public typealias DescribeMessage = TargetedMessage
public typealias CloseMessage = TargetedMessage

public struct ExecuteMessage: Equatable, Sendable {
    public var portalName: String
    /// 0 means no limit.
    public var maxRows: Int32

    public init(portalName: String, maxRows: Int32 = 0) {
        self.portalName = portalName
        self.maxRows = maxRows
    }

    public static func decode(_ payload: ArraySlice<UInt8>) throws(WireDecodingError) -> ExecuteMessage {
        var reader = PayloadReader(payload)
        let portal = try reader.readCString()
        let maxRows = try reader.readInt32()
        try reader.expectEnd()
        return ExecuteMessage(portalName: portal, maxRows: maxRows)
    }
}

/// A PasswordMessage: a cleartext password or an "md5..." response.
public enum PasswordMessage {
    public static func decode(_ payload: ArraySlice<UInt8>) throws(WireDecodingError) -> String {
        var reader = PayloadReader(payload)
        let password = try reader.readCString()
        try reader.expectEnd()
        return password
    }
}

public struct SASLInitialResponse: Equatable, Sendable {
    public var mechanism: String
    /// nil when the client sent length -1 (no initial response).
    public var data: [UInt8]?

    public init(mechanism: String, data: [UInt8]?) {
        self.mechanism = mechanism
        self.data = data
    }

    public static func decode(_ payload: ArraySlice<UInt8>) throws(WireDecodingError) -> SASLInitialResponse {
        var reader = PayloadReader(payload)
        let mechanism = try reader.readCString()
        let length = try reader.readInt32()
        var data: [UInt8]?
        if length >= 0 {
            data = Array(try reader.readBytes(Int(length)))
        } else if length != -1 {
            throw WireDecodingError("invalid SASL initial response length")
        }
        try reader.expectEnd()
        return SASLInitialResponse(mechanism: mechanism, data: data)
    }
}

/// A SASLResponse is the mechanism's bytes, nothing else.
public enum SASLResponse {
    public static func decode(_ payload: ArraySlice<UInt8>) -> [UInt8] { Array(payload) }
}
