import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A few PostgreSQL protocol messages written and read by hand, for the tests that must send bytes
/// no real client would (and for the fake server). Independent of the project's own codec.
enum RawWire {
    static func int32(_ v: Int32) -> [UInt8] {
        withUnsafeBytes(of: v.bigEndian) { Array($0) }
    }

    static func int16(_ v: Int16) -> [UInt8] {
        withUnsafeBytes(of: v.bigEndian) { Array($0) }
    }

    static func cstring(_ s: String) -> [UInt8] { Array(s.utf8) + [0] }

    /// A typed message: type byte, length (including itself), body.
    static func message(_ type: Character, _ body: [UInt8]) -> [UInt8] {
        [type.asciiValue!] + int32(Int32(body.count + 4)) + body
    }

    /// A StartupMessage (protocol 3.0) with the given parameters.
    static func startup(_ params: [(String, String)], minorVersion: Int32 = 0) -> [UInt8] {
        var body = int32(196_608 + minorVersion)
        for (k, v) in params { body += cstring(k) + cstring(v) }
        body.append(0)
        return int32(Int32(body.count + 4)) + body
    }

    static func query(_ sql: String) -> [UInt8] { message("Q", cstring(sql)) }
    static let terminate: [UInt8] = message("X", [])

    /// A backend/frontend message read off a stream.
    struct Message: CustomStringConvertible {
        var type: UInt8
        var body: [UInt8]
        var typeChar: Character { Character(UnicodeScalar(type)) }

        /// ErrorResponse / NoticeResponse fields (code letter -> value).
        var fields: [Character: String] {
            var out: [Character: String] = [:]
            var i = 0
            while i < body.count, body[i] != 0 {
                let code = Character(UnicodeScalar(body[i]))
                i += 1
                var j = i
                while j < body.count, body[j] != 0 { j += 1 }
                out[code] = String(decoding: body[i..<j], as: UTF8.self)
                i = j + 1
            }
            return out
        }

        var description: String {
            if type == UInt8(ascii: "E") || type == UInt8(ascii: "N") {
                return "\(typeChar) \(fields)"
            }
            return "\(typeChar) (\(body.count) bytes)"
        }
    }

    /// Splits a byte stream into typed messages; returns them and the bytes of an incomplete tail.
    static func parse(_ bytes: [UInt8]) -> (messages: [Message], rest: [UInt8]) {
        var out: [Message] = []
        var i = 0
        while bytes.count - i >= 5 {
            let len = Int(Int32(bigEndian: bytes[(i + 1)..<(i + 5)].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }))
            guard len >= 4, bytes.count - i >= 1 + len else { break }
            out.append(Message(type: bytes[i], body: Array(bytes[(i + 5)..<(i + 1 + len)])))
            i += 1 + len
        }
        return (out, Array(bytes[i...]))
    }
}

/// A blocking client socket with read deadlines, for raw-protocol tests.
final class RawClient {
    let fd: Int32
    private(set) var closedByPeer = false

    init(port: Int) throws {
        fd = try connectTCP(port: port)
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    /// Reads until the peer closes or `until` is satisfied by the bytes so far, or the deadline passes.
    func read(timeout: TimeInterval = 30, until: (([UInt8]) -> Bool)? = nil) -> [UInt8] {
        var buf: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while Date() < deadline {
            if let u = until, u(buf) { break }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&pfd, 1, 100)
            if r <= 0 { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 {
                closedByPeer = true
                break
            }
            buf += chunk[0..<n]
        }
        return buf
    }

    /// Reads messages until one of type `type` has arrived (or close/deadline).
    func readMessages(until type: Character, timeout: TimeInterval = 30) -> [RawWire.Message] {
        let bytes = read(timeout: timeout) { b in
            RawWire.parse(b).messages.contains { $0.typeChar == type }
        }
        return RawWire.parse(bytes).messages
    }
}
