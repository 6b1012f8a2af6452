import SplitCore
import StatementClassifier

/// Records what a session asks of its shell, so tests can script whole conversations without sockets.
struct RecordingOutput: SessionOutput {
    enum Event: Equatable {
        case toBackend(BackendRole, [UInt8])
        case toClient([UInt8])
        case open(BackendRole)
        case close(String)
        case functionsChanged
    }
    var events: [Event] = []
    static func == (a: RecordingOutput, b: RecordingOutput) -> Bool { a.events == b.events }

    mutating func sendToBackend(_ role: BackendRole, _ bytes: UnsafeRawBufferPointer) {
        if case .toBackend(let r, let previous)? = events.last, r == role {
            events[events.count - 1] = .toBackend(role, previous + Array(bytes))
        } else {
            events.append(.toBackend(role, Array(bytes)))
        }
    }
    mutating func sendToClient(_ bytes: UnsafeRawBufferPointer) {
        if case .toClient(let previous)? = events.last {
            events[events.count - 1] = .toClient(previous + Array(bytes))
        } else {
            events.append(.toClient(Array(bytes)))
        }
    }
    mutating func openBackend(_ role: BackendRole) { events.append(.open(role)) }
    mutating func closeSession(reason: String) { events.append(.close(reason)) }
    var started: [(BackendRole, RoutingReason)] = []
    var finished: [(BackendRole, Bool, Bool)] = []
    mutating func unitStarted(_ role: BackendRole, why: RoutingReason, sql: UnsafeRawBufferPointer) { started.append((role, why)) }
    mutating func unitFinished(_ role: BackendRole, failed: Bool, wroteOnWriteable: Bool) {
        finished.append((role, failed, wroteOnWriteable))
    }
    mutating func functionsMayHaveChanged() { events.append(.functionsChanged) }
    var catalogRequests: [[String]] = []
    mutating func functionCatalogNeeded(names: [String]) { catalogRequests.append(names) }

    /// Message types sent to a backend, in order, e.g. "QQ" or "PBDES".
    func types(to role: BackendRole) -> String {
        var s = ""
        for case .toBackend(let r, let bytes) in events where r == role { s += Wire.types(bytes) }
        return s
    }
    func clientTypes() -> String {
        var s = ""
        for case .toClient(let bytes) in events { s += Wire.types(bytes) }
        return s
    }
    func sentQueries(to role: BackendRole) -> [String] {
        var out: [String] = []
        for case .toBackend(let r, let bytes) in events where r == role { out += Wire.queries(bytes) }
        return out
    }
    /// The statement named by every Close, Parse or Describe of a statement sent to a backend, in order,
    /// as "C name", "P name", "D name".
    func statementNames(to role: BackendRole) -> [String] {
        var out: [String] = []
        for case .toBackend(let r, let bytes) in events where r == role { out += Wire.statementNames(bytes) }
        return out
    }
    /// The SQL of every Parse sent to a backend, in order.
    func parsedTexts(to role: BackendRole) -> [String] {
        var out: [String] = []
        for case .toBackend(let r, let bytes) in events where r == role { out += Wire.parsedTexts(bytes) }
        return out
    }
}

/// Builds and reads wire messages for the tests.
enum Wire {
    static func message(_ type: Character, _ body: [UInt8]) -> [UInt8] {
        let len = UInt32(body.count + 4)
        return [type.asciiValue!, UInt8(len >> 24), UInt8((len >> 16) & 0xff), UInt8((len >> 8) & 0xff), UInt8(len & 0xff)] + body
    }
    static func cstr(_ s: String) -> [UInt8] { Array(s.utf8) + [0] }
    static func query(_ sql: String) -> [UInt8] { message("Q", cstr(sql)) }
    static func parse(_ name: String, _ sql: String) -> [UInt8] { message("P", cstr(name) + cstr(sql) + [0, 0]) }
    static func bind(_ statement: String, portal: String = "") -> [UInt8] {
        message("B", cstr(portal) + cstr(statement) + [0, 0, 0, 0, 0, 0])
    }
    static func execute(_ portal: String = "") -> [UInt8] { message("E", cstr(portal) + [0, 0, 0, 0]) }
    static func describe(statement name: String) -> [UInt8] { message("D", [UInt8(ascii: "S")] + cstr(name)) }
    static func describe(portal name: String) -> [UInt8] { message("D", [UInt8(ascii: "P")] + cstr(name)) }
    static func close(statement name: String) -> [UInt8] { message("C", [UInt8(ascii: "S")] + cstr(name)) }
    static let sync = message("S", [])
    static let flush = message("H", [])
    static let terminate = message("X", [])
    static func ready(_ status: Character = "I") -> [UInt8] { message("Z", [status.asciiValue!]) }
    static func commandComplete(_ tag: String) -> [UInt8] { message("C", cstr(tag)) }
    static let parseComplete = message("1", [])
    static let bindComplete = message("2", [])
    static let closeComplete = message("3", [])
    static func error(_ code: String) -> [UInt8] {
        message("E", cstr("SERROR") + cstr("C" + code) + cstr("Mboom") + [0])
    }

    static func types(_ bytes: [UInt8]) -> String {
        var s = ""
        var i = 0
        while i + 5 <= bytes.count {
            s.append(Character(UnicodeScalar(bytes[i])))
            let len = Int(bytes[i + 1]) << 24 | Int(bytes[i + 2]) << 16 | Int(bytes[i + 3]) << 8 | Int(bytes[i + 4])
            i += 1 + len
        }
        return s
    }
    static func parsedTexts(_ bytes: [UInt8]) -> [String] {
        var out: [String] = []
        var i = 0
        while i + 5 <= bytes.count {
            let len = Int(bytes[i + 1]) << 24 | Int(bytes[i + 2]) << 16 | Int(bytes[i + 3]) << 8 | Int(bytes[i + 4])
            if bytes[i] == UInt8(ascii: "P") {
                let body = bytes[(i + 5)..<(i + 1 + len)]
                let afterName = body.firstIndex(of: 0)! + 1
                let sqlEnd = body[afterName...].firstIndex(of: 0)!
                out.append(String(decoding: bytes[afterName..<sqlEnd], as: UTF8.self))
            }
            i += 1 + len
        }
        return out
    }
    static func statementNames(_ bytes: [UInt8]) -> [String] {
        var out: [String] = []
        var i = 0
        while i + 5 <= bytes.count {
            let len = Int(bytes[i + 1]) << 24 | Int(bytes[i + 2]) << 16 | Int(bytes[i + 3]) << 8 | Int(bytes[i + 4])
            let type = bytes[i]
            var nameStart = i + 5
            if type == UInt8(ascii: "C") || type == UInt8(ascii: "D") {
                // Only the statement forms ('S'), not portals.
                nameStart = bytes[i + 5] == UInt8(ascii: "S") ? i + 6 : -1
            } else if type != UInt8(ascii: "P") {
                nameStart = -1
            }
            if nameStart >= 0, let nul = bytes[nameStart..<(i + 1 + len)].firstIndex(of: 0) {
                out.append(String(UnicodeScalar(type)) + " " + String(decoding: bytes[nameStart..<nul], as: UTF8.self))
            }
            i += 1 + len
        }
        return out
    }
    static func queries(_ bytes: [UInt8]) -> [String] {
        var out: [String] = []
        var i = 0
        while i + 5 <= bytes.count {
            let len = Int(bytes[i + 1]) << 24 | Int(bytes[i + 2]) << 16 | Int(bytes[i + 3]) << 8 | Int(bytes[i + 4])
            if bytes[i] == UInt8(ascii: "Q") { out.append(String(decoding: bytes[(i + 5)..<(i + len)], as: UTF8.self)) }
            i += 1 + len
        }
        return out
    }
}

/// A session plus its scripted shell.
struct Harness {
    var session: Session
    var out = RecordingOutput()
    var pendingClient: [UInt8] = []

    init(hasWriteable: Bool = true, policy: FunctionPolicy = FunctionPolicy(),
         defaults: TransactionDefaults = TransactionDefaults()) {
        session = Session(settings: SessionSettings(hasWriteable: hasWriteable), classifier: Classifier(policy: policy),
                          defaults: defaults)
    }

    /// The client sends bytes; the session consumes what it can now.
    mutating func client(_ bytes: [UInt8]) {
        pendingClient += bytes
        pump()
    }

    mutating func pump() {
        let consumed = pendingClient.withUnsafeBytes { session.clientInput($0, &out) }
        pendingClient.removeFirst(consumed)
    }

    /// A backend answers; then the shell retries pending client input, as the real one does.
    mutating func backend(_ role: BackendRole, _ bytes: [UInt8]) {
        let consumed = bytes.withUnsafeBytes { session.backendInput(role, $0, &out) }
        precondition(consumed == bytes.count, "test sent a partial message")
        pump()
    }

    mutating func opened(_ role: BackendRole) {
        session.backendOpened(role)
        pump()
    }

    mutating func reset() { out.events.removeAll() }

    /// Answers the proxy's comparison of a statement's copies before it is used on `role` for the first
    /// time (Session+ResultShapes.swift): the client's copy on the other backend is described, then the
    /// new copy is prepared and described on `role`; both describe the same (no) columns.
    mutating func passShapeCheck(on role: BackendRole, otherStatus: Character = "I", status: Character = "I") {
        let described = Wire.message("t", [0, 0]) + Wire.message("n", [])
        backend(role.other, described + Wire.ready(otherStatus))
        backend(role, Wire.closeComplete + Wire.parseComplete + described + Wire.ready(status))
    }
}
