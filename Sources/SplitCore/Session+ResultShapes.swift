import PostgresWire

// Result shapes. A statement the client prepared on one backend may be prepared again by the proxy
// on the other. If its table changed in between, that copy returns other columns than the client
// was told — pgJDBC and asyncpg would decode an int8 as an int4, or fail on a column count.
// PostgreSQL itself refuses to run such a statement ("cached plan must not change result type",
// 0A000), and the drivers then prepare it again. So before the proxy's copy first runs, the statement
// is described on the backend the client prepared it on (which still answers with the columns the
// client knows, or with that same 0A000 when its own table changed) and the copy is described on the
// new backend; a copy that describes other columns is not used, and the client gets PostgreSQL's
// error. This costs two round trips once per statement and backend (again at each use while the
// columns differ, since the change may be undone), and nothing on the usual path. Columns are compared
// as PostgreSQL compares them: names, types and modifiers (`resultColumns`).

/// What the comparisons of a statement's copies found; valid for one generation of it (a new Parse,
/// even of the same text, is a new statement).
struct ShapeVerdict {
    var generation: UInt64
    /// Backends (a bit per role) where the copy was compared, and where it differed.
    var checked: UInt8 = 0
    var refused: UInt8 = 0
    /// Where it differed and the client's next batch has not met the refusal yet: that batch is not
    /// compared again (the batch after it is).
    var unapplied: UInt8 = 0
}

/// A comparison in flight: first the client's copy is described, then the proxy's new one.
struct ShapeCheck {
    var name: StatementName
    var generation: UInt64
    /// The backend the statement is new to.
    var role: BackendRole
    /// False while the client's copy (on the other backend) is being described.
    var describingCopy = false
    /// The RowDescription payload (empty for NoData) of the step in flight, once it came.
    var described: [UInt8]?
    var failure: String?
    /// What the client's copy described.
    var reference: [UInt8]?
    /// The parameter types (ParameterDescription payload) of the step in flight, and the client's copy's.
    var parameters: [UInt8]?
    var referenceParameters: [UInt8]?
}

extension BackendRole {
    var bit: UInt8 { 1 << UInt8(rawValue) }
}

extension Session {
    /// Before a batch that needs statements prepared on `role` is sent there: for a statement the
    /// client prepared on the other backend and whose copy here has not been compared yet, starts the
    /// comparison and holds the client's input until it ends. True when the batch must wait: for the
    /// comparison, or for what is still in flight before it can start (the session's settings being
    /// replayed on `role`, so that the copy is prepared under them; answers come in unit order).
    @inline(never)
    mutating func startShapeCheck<Out: SessionOutput>(needed: [StatementName], on role: BackendRole, _ out: inout Out) -> Bool {
        let other = role.other
        guard backends[other.rawValue].status == .open else { return false }
        for name in needed {
            guard let generation = statements.generation(of: name),
                  backends[role.rawValue].prepared[name] != generation,
                  backends[other.rawValue].prepared[name] == generation,
                  !shapeMatchedOrJustRefused(name, generation: generation, on: role) else { continue }
            if !units.isEmpty { return true }
            var bytes = describeMessage(name)
            bytes.append(contentsOf: WireEncode.sync)
            bytes.withUnsafeBytes { out.sendToBackend(other, $0) }
            units.append(Unit(backend: other, kind: .shapeCheck))
            shapeCheck = ShapeCheck(name: name, generation: generation, role: role)
            return true
        }
        return false
    }

    /// The verdict on this generation of statement `name`, if it was compared.
    private func verdict(_ name: StatementName, generation: UInt64) -> ShapeVerdict? {
        guard let verdict = shapeVerdicts[name], verdict.generation == generation else { return nil }
        return verdict
    }

    /// True when the copy on `role` needs no comparison now: it matched, or it was just found to
    /// differ and the client's next batch has not met that refusal yet. Otherwise (never compared, or
    /// refused before) it is compared: the change may have been undone, an ALTER rolled back.
    func shapeMatchedOrJustRefused(_ name: StatementName, generation: UInt64, on role: BackendRole) -> Bool {
        guard let verdict = verdict(name, generation: generation), verdict.checked & role.bit != 0 else { return false }
        return verdict.refused & role.bit == 0 || verdict.unapplied & role.bit != 0
    }

    /// The client's batch meets the refusal (its Bind will fail): the next one compares again.
    mutating func applyRefusal(_ name: StatementName, on role: BackendRole) {
        shapeVerdicts[name]?.unapplied &= ~role.bit
    }

    func shapeDiffers(_ name: StatementName, generation: UInt64, on role: BackendRole) -> Bool {
        (verdict(name, generation: generation)?.refused ?? 0) & role.bit != 0
    }

    /// One answer to the proxy's own messages of the step in flight.
    mutating func noteShapeCheckAnswer(_ f: Frame, _ buffer: UnsafeRawBufferPointer) {
        switch f.type {
        case UInt8(ascii: "t"): shapeCheck?.parameters = Array(buffer[f.payloadStart..<f.end])
        case UInt8(ascii: "T"): shapeCheck?.described = Self.resultColumns(buffer[f.payloadStart..<f.end])
        case UInt8(ascii: "n"): shapeCheck?.described = []
        case UInt8(ascii: "E"):
            shapeCheck?.failure = (try? ErrorFields.decode(ArraySlice(buffer[f.payloadStart..<f.end])))?.code ?? "?"
        default: break
        }
    }

    /// What PostgreSQL compares when it revalidates a statement (the result's names, types and type
    /// modifiers), from a RowDescription: not the table OID and column number, which change when a
    /// table is recreated with the same columns, and not the format (text here). Unreadable: empty.
    static func resultColumns(_ payload: Slice<UnsafeRawBufferPointer>) -> [UInt8] {
        guard payload.count >= 2 else { return [] }
        var columns: [UInt8] = []
        var i = payload.startIndex + 2
        let count = Int(payload[payload.startIndex]) << 8 | Int(payload[payload.startIndex + 1])
        for _ in 0..<count {
            guard let nul = payload[i...].firstIndex(of: 0), nul + 19 <= payload.endIndex else { return [] }
            columns.append(contentsOf: payload[i...nul])
            // Skip table OID (4) and column number (2); keep type OID (4), length (2), modifier (4).
            columns.append(contentsOf: payload[(nul + 7)..<(nul + 17)])
            i = nul + 19
        }
        return columns
    }

    /// A step's ReadyForQuery: after the client's copy, the new one is prepared and described; after
    /// that, the copy is kept or marked as differing, and the client's input goes on.
    mutating func finishShapeCheckStep<Out: SessionOutput>(_ out: inout Out) {
        guard var check = shapeCheck else { return }
        let role = check.role
        if !check.describingCopy {
            switch (check.described, check.failure) {
            case (let described?, nil):
                check.reference = described
                check.referenceParameters = check.parameters
            case (_, SQLState.featureNotSupported?):
                // The client's copy itself no longer returns what the client was told: it would get
                // this error there, and must get it here too.
                conclude(check, differs: true)
                return
            default:
                // Nothing to compare with: the copy is prepared as before, unchecked.
                conclude(check, differs: false)
                return
            }
            guard backends[role.rawValue].status == .open else {
                // It closed meanwhile: the batch opens it again and prepares the statement as usual.
                conclude(check, differs: false)
                return
            }
            check.describingCopy = true
            check.described = nil
            check.parameters = nil
            // The copy takes the parameter types the client's copy was given: PostgreSQL keeps a
            // statement's parameter types, and the client encodes its values for them (asyncpg sends
            // a float8 as 8 binary bytes that an int8 parameter would read as another number).
            if let types = check.referenceParameters {
                statements.pinParameterTypes(of: check.name, types)
            }
            var bytes = closeMessage(check.name)
            bytes.append(contentsOf: statements[check.name]?.messageForCopies ?? [])
            bytes.append(contentsOf: describeMessage(check.name))
            bytes.append(contentsOf: WireEncode.sync)
            bytes.withUnsafeBytes { out.sendToBackend(role, $0) }
            backends[role.rawValue].prepared[check.name] = check.generation
            units.append(Unit(backend: role, kind: .shapeCheck))
            shapeCheck = check
            return
        }
        guard check.failure == nil, let described = check.described else {
            // The copy may not exist (an aborted transaction refuses every Parse): the client's batch
            // prepares it as usual and gets the backend's own answer.
            if backends[role.rawValue].prepared[check.name] == check.generation { backends[role.rawValue].prepared[check.name] = nil }
            conclude(check, differs: false)
            return
        }
        conclude(check, differs: described != check.reference || check.parameters != check.referenceParameters)
    }

    private mutating func conclude(_ check: ShapeCheck, differs: Bool) {
        shapeCheck = nil
        let role = check.role
        guard statements.generation(of: check.name) == check.generation else { return }
        var verdict = verdict(check.name, generation: check.generation) ?? ShapeVerdict(generation: check.generation)
        verdict.checked |= role.bit
        if differs {
            verdict.refused |= role.bit
            verdict.unapplied |= role.bit
        } else {
            verdict.refused &= ~role.bit
        }
        shapeVerdicts[check.name] = verdict
        guard differs else { return }
        refusedShapes = true
        // Stale there: the client's next batch closes it (`injectStatements`) and binds nothing.
        if backends[role.rawValue].prepared[check.name] != nil { backends[role.rawValue].prepared[check.name] = 0 }
    }

    /// The backend's "prepared statement does not exist" for a statement whose copy there differed
    /// from the client's: PostgreSQL's own error for that case instead, with the routine pgJDBC and
    /// asyncpg look for before they prepare the statement again.
    func changedResultError(_ role: BackendRole, _ error: ErrorFields) -> [UInt8]? {
        guard error.code == SQLState.invalidStatementName else { return nil }
        let name: StatementName
        let prefix = "prepared statement \"", suffix = "\" does not exist"
        if error.message == "unnamed prepared statement does not exist" {
            name = .unnamed
        } else if error.message.hasPrefix(prefix), error.message.hasSuffix(suffix) {
            name = StatementName(String(error.message.dropFirst(prefix.count).dropLast(suffix.count)))
        } else {
            return nil
        }
        guard let generation = statements.generation(of: name), shapeDiffers(name, generation: generation, on: role) else {
            return nil
        }
        return Self.changedResultAnswer
    }

    static let changedResultAnswer: [UInt8] = {
        var bytes: [UInt8] = []
        bytes.writeErrorResponse(ErrorFields(fields: [
            .init(code: ErrorFields.Code.severity, value: "ERROR"),
            .init(code: ErrorFields.Code.severityNonLocalized, value: "ERROR"),
            .init(code: ErrorFields.Code.sqlState, value: SQLState.featureNotSupported),
            .init(code: ErrorFields.Code.message, value: "cached plan must not change result type"),
            .init(code: UInt8(ascii: "F"), value: "plancache.c"),
            .init(code: UInt8(ascii: "R"), value: "RevalidateCachedQuery"),
        ]))
        return bytes
    }()
}
