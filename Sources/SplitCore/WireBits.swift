// Minimal wire helpers the session core needs. Kept tiny on purpose: only framing and the few
// messages the session itself generates or reads.

import Glibc

@inline(__always)
func readInt32(_ p: UnsafeRawBufferPointer, _ at: Int) -> Int32 {
    Int32(bitPattern: UInt32(p[at]) << 24 | UInt32(p[at + 1]) << 16 | UInt32(p[at + 2]) << 8 | UInt32(p[at + 3]))
}

/// A framed typed message: its type byte and where it lies in the buffer.
struct Frame {
    var type: UInt8
    /// Whole message (type byte and length included).
    var start: Int
    var end: Int
    var payloadStart: Int { start + 5 }
}

enum FrameStatus {
    case frame(Frame)
    case needMore
    case invalid(String)
}

@inline(__always)
func frameMessage(_ buffer: UnsafeRawBufferPointer, at offset: Int, maxMessageSize: Int) -> FrameStatus {
    guard buffer.count - offset >= 5 else { return .needMore }
    let length = Int(readInt32(buffer, offset + 1))
    if length < 4 || length > maxMessageSize {
        return .invalid("invalid message length \(length)")
    }
    let end = offset + 1 + length
    guard end <= buffer.count else { return .needMore }
    return .frame(Frame(type: buffer[offset], start: offset, end: end))
}

/// Reads a NUL-terminated string starting at `at`; returns its bytes' range (without the NUL).
/// `memchr`: a Parse message's SQL is scanned for its NUL on every query, and a byte loop cost
/// six instructions a byte (for short names the two cost the same).
@inline(__always)
func cStringRange(_ p: UnsafeRawBufferPointer, from at: Int, limit: Int) -> Range<Int>? {
    guard at < limit, limit <= p.count, let base = p.baseAddress,
          let nul = memchr(base + at, 0, limit - at) else { return nil }
    return at..<(base.distance(to: UnsafeRawPointer(nul)))
}

/// The two strings a Parse (name, SQL) or Bind (portal, statement) message starts with.
@inline(__always)
func leadingCStrings(_ p: UnsafeRawBufferPointer, _ f: Frame) -> (first: Range<Int>, second: Range<Int>)? {
    guard let first = cStringRange(p, from: f.payloadStart, limit: f.end),
          let second = cStringRange(p, from: first.upperBound + 1, limit: f.end) else { return nil }
    return (first, second)
}

enum WireEncode {
    static func appendInt32(_ out: inout [UInt8], _ v: Int32) {
        let u = UInt32(bitPattern: v)
        out.append(UInt8(u >> 24)); out.append(UInt8((u >> 16) & 0xff))
        out.append(UInt8((u >> 8) & 0xff)); out.append(UInt8(u & 0xff))
    }

    static func message(_ type: UInt8, _ body: (inout [UInt8]) -> Void) -> [UInt8] {
        var out: [UInt8] = [type, 0, 0, 0, 0]
        body(&out)
        let len = UInt32(out.count - 1)
        out[1] = UInt8(len >> 24); out[2] = UInt8((len >> 16) & 0xff)
        out[3] = UInt8((len >> 8) & 0xff); out[4] = UInt8(len & 0xff)
        return out
    }

    static func query(_ sql: String) -> [UInt8] {
        message(UInt8(ascii: "Q")) { $0.append(contentsOf: sql.utf8); $0.append(0) }
    }

    static func close(statement name: UnsafeRawBufferPointer) -> [UInt8] {
        message(UInt8(ascii: "C")) { $0.append(UInt8(ascii: "S")); $0.append(contentsOf: name); $0.append(0) }
    }

    static func describe(statement name: UnsafeRawBufferPointer) -> [UInt8] {
        message(UInt8(ascii: "D")) { $0.append(UInt8(ascii: "S")); $0.append(contentsOf: name); $0.append(0) }
    }

    /// Sync, for ending a batch the client left open at a Flush.
    static let sync: [UInt8] = message(UInt8(ascii: "S")) { _ in }

    static func readyForQuery(_ status: UInt8) -> [UInt8] {
        message(UInt8(ascii: "Z")) { $0.append(status) }
    }

    /// ErrorResponse with severity, SQLSTATE, message and optional hint.
    static func error(severity: String = "ERROR", code: String, message text: String, hint: String? = nil) -> [UInt8] {
        message(UInt8(ascii: "E")) { out in
            func field(_ f: Character, _ v: String) {
                out.append(f.asciiValue!); out.append(contentsOf: v.utf8); out.append(0)
            }
            field("S", severity); field("V", severity); field("C", code); field("M", text)
            if let hint { field("H", hint) }
            out.append(0)
        }
    }
}
