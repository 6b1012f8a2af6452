import PostgresWire

/// Target 1: the startup phase. The input is what a client sends first, e.g. an SSLRequest followed
/// by a StartupMessage: frame each untyped packet, decode it, and check that what decodes survives
/// re-encoding.
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    let buffer = ByteBuffer(bytes: bytes)
    precondition(buffer.frameStartupPacket() == MessageFraming.frameStartup(bytes, from: 0, to: bytes.count),
                 "ByteBuffer and array framing disagree")

    var offset = 0
    var packets = 0
    while offset < bytes.count, packets < 8 {
        guard case .message(let type, let payload) = MessageFraming.frameStartup(bytes, from: offset, to: bytes.count) else {
            break
        }
        precondition(type == 0 && payload.lowerBound == offset + 4 && payload.upperBound <= bytes.count
                     && payload.count + 4 <= MessageFraming.maxStartupPacketLength,
                     "frameStartup returned an impossible range \(payload) at \(offset)")
        check(bytes[payload])
        offset = payload.upperBound
        packets += 1
    }
    // A startup packet may also arrive as a typed message's payload (e.g. after a short read the
    // proxy re-frames); the decoder must take any slice, whatever its start index.
    if bytes.count > 1 { _ = try? StartupPacket.decode(bytes[1...]) }
    return 0
}

private func check(_ payload: ArraySlice<UInt8>) {
    let packet: StartupPacket
    do {
        packet = try StartupPacket.decode(payload)
    } catch {
        _ = error.errorFields.description
        return
    }
    var encoded: [UInt8] = []
    switch packet {
    case .startup(let version, let parameters):
        _ = StartupPacket.parameter("database", in: parameters)
        _ = StartupPacket.parameter("options", in: parameters)
        encoded.writeStartupMessage(parameters: parameters, protocolVersion: version)
    case .sslRequest:
        encoded.writeSSLRequest()
    case .gssEncRequest:
        return
    case .cancel(let processID, let secretKey):
        encoded.writeCancelRequest(processID: processID, secretKey: secretKey)
    }
    guard case .message(_, let again) = MessageFraming.frameStartup(encoded, from: 0, to: encoded.count) else {
        // A decodable packet re-encodes to one that frames, unless it was at the size limit and
        // re-encoding replaced invalid UTF-8 (3 bytes per bad byte) and outgrew it.
        precondition(encoded.count > MessageFraming.maxStartupPacketLength, "re-encoded startup packet does not frame")
        return
    }
    let decodedAgain: StartupPacket
    do { decodedAgain = try StartupPacket.decode(encoded[again]) } catch {
        preconditionFailure("re-encoded startup packet does not decode: \(error.message)")
    }
    switch (packet, decodedAgain) {
    case (.startup(let v1, let p1), .startup(let v2, let p2)):
        precondition(v1 == v2 && p1.elementsEqual(p2, by: { $0.0 == $1.0 && $0.1 == $1.1 }),
                     "startup parameters changed in a round trip")
    case (.sslRequest, .sslRequest): break
    case (.cancel(let a, let b), .cancel(let c, let d)): precondition(a == c && b == d)
    default: preconditionFailure("startup packet kind changed in a round trip")
    }
}
