@testable import PostgresWire

/// Target 2: typed messages. The first input byte chooses the framing limit and which handshake
/// machines see the stream; the rest is a stream of typed messages (type byte, Int32 length,
/// payload). Every framed message goes through the frontend and backend decoders for its type
/// letter (re-encoding what decodes and checking the round trip), through a BackendHandshake (the
/// proxy logging in to a server) and a ClientAuthenticator (the proxy checking a client's login),
/// and through a SCRAM server with a fixed nonce. None of them may crash, whatever the bytes.

private let maxMessageSizes = [4, 5, 64, 1 << 20]
private let password = "secret"
private let user = "alice"
/// A cheap SCRAM secret (few iterations, fixed salt) so SCRAM paths stay fast.
private let scramSecret = SCRAMSecret.make(password: password, salt: Array("fuzzsalt".utf8), iterations: 16)
private let storedSecrets: [String?] = [nil, password, MD5Auth.storedHash(user: user, password: password),
                                        scramSecret.stringValue]
private let methods: [ClientAuthMethod] = [.trust, .md5, .scramSHA256, .password]
/// Built once: a plain password stored for SCRAM costs a full key derivation per authenticator.
private let authenticators: [ClientAuthenticator] = methods.flatMap { method in
    storedSecrets.map { ClientAuthenticator(method: method, user: user, storedSecret: $0) }
}
private let scramKeys = SCRAMKeys(password: password, salt: scramSecret.salt, iterations: scramSecret.iterations)
private let credentials: [BackendCredential] = [
    .password(password), .md5Hash(MD5Auth.storedHash(user: user, password: password)),
    .scramKeys(clientKey: scramKeys.clientKey, serverKey: scramKeys.serverKey), .none,
]
/// Fixed nonces make the SCRAM exchanges reachable: a fuzzer cannot guess a random one.
let clientNonce = "fuzzClientNonce"
let serverNonce = "fuzzServerNonce"

/// SCRAM iteration counts are the server's choice and PBKDF2 costs time in proportion; the harness
/// keeps large but valid counts away from the password credential so a run does not stall on them.
private let maxIterationsForPassword = 10_000

func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard size >= 1, let data else { return 0 }
    let control = data[0]
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let maxMessageSize = maxMessageSizes[Int(control & 3)]

    var handshake = BackendHandshake(user: user, database: "app", parameters: [("application_name", "fuzz")],
                                     credential: credentials[Int(control >> 2 & 3)])
    handshake.scramNonce = clientNonce
    let startup = handshake.start()
    precondition(!startup.isEmpty)
    var authenticator = authenticators[Int(control >> 4 & 15)]
    _ = authenticator.start()
    var scramServer = SCRAMServer(secret: scramSecret, nonce: serverNonce)
    var scramStarted = false

    let buffer = ByteBuffer(bytes: bytes)
    precondition(buffer.frameMessage(maxMessageSize: maxMessageSize)
                 == MessageFraming.frame(bytes, from: 0, to: bytes.count, maxMessageSize: maxMessageSize),
                 "ByteBuffer and array framing disagree")

    var offset = 0
    while offset < bytes.count {
        guard case .message(let type, let range) = MessageFraming.frame(bytes, from: offset, to: bytes.count,
                                                                        maxMessageSize: maxMessageSize) else { break }
        precondition(range.lowerBound == offset + 5 && range.upperBound <= bytes.count
                     && range.count + 4 <= maxMessageSize && bytes[offset] == type,
                     "frame returned an impossible range \(range) at \(offset)")
        let payload = bytes[range]
        frontend(type, payload)
        backend(type, payload)

        if !(isExpensiveSCRAM(type, payload) && handshakeUsesPassword(control)) {
            _ = handshake.received(type: type, payload: payload)
        }
        _ = authenticator.received(type: type, payload: payload)
        if type == FrontendMessageType.password {
            if !scramStarted {
                scramStarted = true
                if let initial = try? SASLInitialResponse.decode(payload), let first = initial.data {
                    _ = try? scramServer.receiveClientFirst(first)
                } else {
                    _ = try? scramServer.receiveClientFirst(payload)
                }
            } else {
                _ = try? scramServer.receiveClientFinal(payload)
            }
        }
        offset = range.upperBound
    }
    return 0
}

private func handshakeUsesPassword(_ control: UInt8) -> Bool { control >> 2 & 3 == 0 }

/// An AuthenticationSASLContinue whose i= asks for more key-derivation rounds than a test can wait for.
private func isExpensiveSCRAM(_ type: UInt8, _ payload: ArraySlice<UInt8>) -> Bool {
    guard type == BackendMessageType.authentication,
          case .saslContinue(let data)? = try? AuthenticationRequest.decode(payload) else { return false }
    let text = String(decoding: data, as: UTF8.self)
    for part in text.split(separator: ",") where part.hasPrefix("i=") {
        if let count = Int(part.dropFirst(2)), count > maxIterationsForPassword, count <= Int(Int32.max) { return true }
    }
    return false
}

/// Frontend decoders by type letter, with round trips through the encoders.
private func frontend(_ type: UInt8, _ payload: ArraySlice<UInt8>) {
    switch type {
    case FrontendMessageType.query:
        if let text = try? QueryMessage.decodeText(payload) {
            var out: [UInt8] = []
            out.writeQuery(text)
            roundTrip(out) { let decoded = try QueryMessage.decodeText($0); precondition(decoded == text) }
        }
    case FrontendMessageType.parse:
        if let parse = try? ParseMessage.decode(payload) {
            var out: [UInt8] = []
            out.writeParse(statementName: parse.statementName, query: parse.query, parameterTypes: parse.parameterTypes)
            roundTrip(out) { let decoded = try ParseMessage.decode($0); precondition(decoded == parse, "Parse round trip") }
        }
    case FrontendMessageType.bind:
        _ = try? BindNames.decode(payload)
    case FrontendMessageType.describe, FrontendMessageType.close:
        if let message = try? TargetedMessage.decode(payload) {
            var out: [UInt8] = []
            if type == FrontendMessageType.describe {
                out.writeDescribe(message.kind, name: message.name)
            } else {
                out.writeClose(message.kind, name: message.name)
            }
            roundTrip(out) { let decoded = try TargetedMessage.decode($0); precondition(decoded == message, "Describe/Close round trip") }
        }
    case FrontendMessageType.execute:
        if let execute = try? ExecuteMessage.decode(payload) {
            var out: [UInt8] = []
            out.writeExecute(portalName: execute.portalName, maxRows: execute.maxRows)
            roundTrip(out) { let decoded = try ExecuteMessage.decode($0); precondition(decoded == execute, "Execute round trip") }
        }
    case FrontendMessageType.password:
        if let text = try? PasswordMessage.decode(payload) {
            var out: [UInt8] = []
            out.writePasswordMessage(text)
            roundTrip(out) { let decoded = try PasswordMessage.decode($0); precondition(decoded == text, "PasswordMessage round trip") }
        }
        if let initial = try? SASLInitialResponse.decode(payload) {
            var out: [UInt8] = []
            out.writeSASLInitialResponse(mechanism: initial.mechanism, data: initial.data)
            roundTrip(out) { let decoded = try SASLInitialResponse.decode($0); precondition(decoded == initial, "SASLInitialResponse round trip") }
        }
        _ = SASLResponse.decode(payload)
    default:
        break
    }
    // A startup packet framed as if it were typed: the decoder must accept any slice.
    _ = try? StartupPacket.decode(payload)
}

/// Backend decoders by type letter, with round trips where the proxy has an encoder.
private func backend(_ type: UInt8, _ payload: ArraySlice<UInt8>) {
    switch type {
    case BackendMessageType.authentication:
        if let request = try? AuthenticationRequest.decode(payload) {
            _ = AuthenticationRequest.methodName(request.code)
            var out: [UInt8] = []
            switch request {
            case .ok: out.writeAuthenticationOk()
            case .cleartextPassword: out.writeAuthenticationCleartextPassword()
            case .md5Password(let salt): out.writeAuthenticationMD5Password(salt: salt)
            case .sasl(let mechanisms) where !mechanisms.isEmpty: out.writeAuthenticationSASL(mechanisms: mechanisms)
            case .saslContinue(let data): out.writeAuthenticationSASLContinue(data: data)
            case .saslFinal(let data): out.writeAuthenticationSASLFinal(data: data)
            default: return
            }
            roundTrip(out) { let decoded = try AuthenticationRequest.decode($0); precondition(decoded == request, "Authentication round trip") }
        }
    case BackendMessageType.parameterStatus:
        if let status = try? ParameterStatus.decode(payload) {
            var out: [UInt8] = []
            out.writeParameterStatus(name: status.name, value: status.value)
            roundTrip(out) { let decoded = try ParameterStatus.decode($0); precondition(decoded == status, "ParameterStatus round trip") }
        }
    case BackendMessageType.backendKeyData:
        if let key = try? BackendKeyData.decode(payload) {
            var out: [UInt8] = []
            out.writeBackendKeyData(processID: key.processID, secretKey: key.secretKey)
            roundTrip(out) { let decoded = try BackendKeyData.decode($0); precondition(decoded == key, "BackendKeyData round trip") }
        }
    case BackendMessageType.readyForQuery:
        if let status = try? ReadyForQuery.decode(payload) {
            var out: [UInt8] = []
            out.writeReadyForQuery(status)
            roundTrip(out) { let decoded = try ReadyForQuery.decode($0); precondition(decoded == status, "ReadyForQuery round trip") }
        }
    case BackendMessageType.commandComplete:
        if let tag = try? CommandComplete.decodeTag(payload) {
            var out: [UInt8] = []
            out.writeCommandComplete(tag: tag)
            roundTrip(out) { let decoded = try CommandComplete.decodeTag($0); precondition(decoded == tag, "CommandComplete round trip") }
        }
    case BackendMessageType.errorResponse, BackendMessageType.noticeResponse:
        if let fields = try? ErrorFields.decode(payload) {
            _ = fields.description
            _ = (fields.detail, fields.hint)
            var out: [UInt8] = []
            if type == BackendMessageType.errorResponse { out.writeErrorResponse(fields) } else { out.writeNoticeResponse(fields) }
            roundTrip(out) { let decoded = try ErrorFields.decode($0); precondition(decoded == fields, "ErrorFields round trip") }
        }
    default:
        break
    }
}

/// Frames one encoded message and hands its payload to `check`; it must frame and decode.
private func roundTrip(_ encoded: [UInt8], _ check: (ArraySlice<UInt8>) throws -> Void) {
    guard case .message(_, let range) = MessageFraming.frame(encoded, from: 0, to: encoded.count,
                                                             maxMessageSize: Int(Int32.max)) else {
        preconditionFailure("an encoded message does not frame: \(encoded.prefix(16))")
    }
    precondition(range.upperBound == encoded.count, "an encoded message has trailing bytes")
    do { try check(encoded[range]) } catch { preconditionFailure("an encoded message does not decode: \(error)") }
}
