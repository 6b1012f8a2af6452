/// What a query (SELECT, VALUES, TABLE, WITH, a parenthesised query, or a DML body inside COPY /
/// EXPLAIN / DECLARE) does, found in one pass over its tokens.
///
/// Kept as the StatementInfo it becomes, so that `query` hands it over without copying its strings.
struct QueryFeatures {
    var info: StatementInfo
    /// Names something only writeable can answer — an unlogged relation, which a standby cannot read —
    /// without writing anything.
    var asksWriteable = false

    /// The statement this makes: one that writes nothing but asks writeable goes there, marked as
    /// asking (reads after it need not wait for main to replay anything).
    var statement: StatementInfo {
        guard asksWriteable, info.target == .main else { return info }
        var asking = info
        asking.target = .writeable
        asking.asksWriteable = true
        return asking
    }

    init(command: String) {
        info = StatementInfo(target: .main, command: command)
    }

    var command: String {
        get { info.command }
        set { info.command = newValue }
    }
    var writes: Bool {
        get { info.target == .writeable }
        set { info.target = newValue ? .writeable : .main }
    }
    var pin: PinReason? {
        get { info.pin }
        set { info.pin = newValue }
    }
    var session: SessionEffect? {
        get { info.session }
        set { info.session = newValue }
    }
    var settingValue: String? {
        get { info.settingValue }
        set { info.settingValue = newValue }
    }
    var settingParameter: Int? {
        get { info.settingParameter }
        set { info.settingParameter = newValue }
    }
    var callsUnknownFunction: Bool {
        get { info.callsUnknownFunction }
        set { info.callsUnknownFunction = newValue }
    }
}

extension StatementReader {
    /// Reads a query starting at `first` to the end of the statement, or — when `closingBelow` is given —
    /// up to and including the `)` that takes the parenthesis depth below `closingBelow`.
    ///
    /// The query writes when it contains INSERT/UPDATE/DELETE/MERGE (data-modifying CTEs, or the main
    /// statement after WITH), SELECT ... INTO, a locking clause (FOR UPDATE / NO KEY UPDATE / SHARE /
    /// KEY SHARE), or a call of a function that writes. A false "writes" only costs a trip to writeable.
    mutating func readQuery(first: Token, closingBelow: Int = Int.min) -> QueryFeatures {
        var features = QueryFeatures(command: "select")
        var findMainCommand = false
        switch first.kind {
        case .openParen:
            break
        case .word:
            if let command = queryCommand(first) {
                features.command = command
                // A DML body (COPY (INSERT ... RETURNING) TO, DECLARE ... FOR INSERT ...) writes.
                if !matches(first, "select") && !matches(first, "values") && !matches(first, "table") {
                    features.writes = true
                }
            } else if matches(first, "with") {
                findMainCommand = true
            } else {
                features.command = "unknown"
                features.writes = true
            }
        default:
            features.command = "unknown"
            features.writes = true
        }

        let baseDepth = lexer.depth
        var previous = Token.none
        var beforePrevious = Token.none
        var thirdPrevious = Token.none
        var token = first
        while true {
            switch token.kind {
            case .end:
                return features
            case .closeParen:
                if lexer.depth < closingBelow { return features }
            case .openParen:
                if previous.isName {
                    let schema: Token? = beforePrevious.kind == .dot && thirdPrevious.isName ? thirdPrevious : nil
                    noteCall(name: previous, schema: schema, features: &features)
                }
            case .word:
                if token.length <= 6 { noteWord(token, previous: previous, features: &features) }
                if findMainCommand && lexer.depth == baseDepth, let command = queryCommand(token) {
                    features.command = command
                    findMainCommand = false
                }
                if functions.hasUnlogged { noteRelation(token, features: &features) }
            case .quotedName:
                if functions.hasUnlogged { noteRelation(token, features: &features) }
            case .semicolon:
                // A `;` inside parentheses: not a query we understand.
                features.writes = true
            default:
                break
            }
            thirdPrevious = beforePrevious
            beforePrevious = previous
            previous = token
            token = next()
        }
    }

    /// The command a query-like statement starts with.
    private func queryCommand(_ token: Token) -> String? {
        switch token.length {
        case 5:
            if matches(token, "table") { return "table" }
            if matches(token, "merge") { return "merge" }
        case 6:
            if matches(token, "select") { return "select" }
            if matches(token, "values") { return "values" }
            if matches(token, "insert") { return "insert" }
            if matches(token, "update") { return "update" }
            if matches(token, "delete") { return "delete" }
        default:
            break
        }
        return nil
    }

    /// Keywords inside a query that make it write.
    private func noteWord(_ token: Token, previous: Token, features: inout QueryFeatures) {
        switch token.length {
        case 2:
            if matches(token, "no") && matches(previous, "for") { features.writes = true }
        case 3:
            if matches(token, "key") && matches(previous, "for") { features.writes = true }
        case 4:
            if matches(token, "into") {
                features.writes = true
                // SELECT ... INTO TEMP / TEMPORARY / LOCAL TEMP t creates a temporary table.
                let following = peek()
                if matches(following, "temp") || matches(following, "temporary") || matches(following, "local")
                    || matches(following, "global") {
                    features.pin = .temporaryTable
                }
            }
        case 5:
            if matches(token, "share") && matches(previous, "for") { features.writes = true }
            if matches(token, "merge") && matches(peek(), "into") { features.writes = true }
        case 6:
            if matches(token, "insert") && matches(peek(), "into") { features.writes = true }
            if matches(token, "delete") && matches(peek(), "from") { features.writes = true }
            if matches(token, "update") {
                if matches(previous, "for") || matches(previous, "key") {
                    features.writes = true
                } else {
                    // UPDATE [ONLY] table ...; not a column that happens to be called "update".
                    let following = peek()
                    if following.isName && !matches(following, "from") && !matches(following, "as") {
                        features.writes = true
                    }
                }
            }
        default:
            break
        }
    }

    /// A name that may be an unlogged relation (checked only when the database has one).
    func noteRelation(_ token: Token, features: inout QueryFeatures) {
        if isUnloggedName(token) { features.asksWriteable = true }
    }

    /// Whether `token` (a word or a quoted name) names a known unlogged relation.
    func isUnloggedName(_ token: Token) -> Bool {
        if token.kind == .word {
            return functions.isUnlogged(UnsafeBufferPointer(start: bytes + token.start, count: token.length))
        }
        guard token.kind == .quotedName else { return false }
        var inside: [UInt8] = []
        appendName(token, to: &inside)
        return inside.withUnsafeBufferPointer { functions.isUnlogged($0) }
    }

    /// A name followed by `(`: a function call (or a harmless look-alike such as `IN (` or `varchar(`).
    private mutating func noteCall(name: Token, schema: Token?, features: inout QueryFeatures) {
        let effect = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 2 * Self.maximumNameLength + 1) { buffer in
            var count = 0
            if let schema {
                count = appendNameCapped(schema, to: buffer, at: 0)
                buffer[count] = ASCII.dot
                count += 1
            }
            let nameStart = count
            count = appendNameCapped(name, to: buffer, at: count)
            let base = UnsafePointer(buffer.baseAddress!)
            let unqualified = UnsafeBufferPointer(start: base + nameStart, count: count - nameStart)
            let qualified = schema == nil ? nil : UnsafeBufferPointer(start: base, count: count)
            return functions.effect(name: unqualified, qualified: qualified)
        }
        switch effect {
        case .readSafe:
            return
        case .unknown:
            features.callsUnknownFunction = true
            if unknownNames != nil {
                let raw = UnsafeBufferPointer(start: bytes + name.start, count: name.length)
                unknownNames!.append(String(decoding: raw.lazy.map(ASCII.lowercased), as: UTF8.self))
            }
        case .writes:
            features.writes = true
        case .writesSequence:
            features.writes = true
            if features.pin == nil { features.pin = .sequence }
        case .writesAdvisoryLock:
            features.writes = true
            if features.pin == nil { features.pin = .advisoryLock }
        case .setConfig:
            features.writes = true
            if features.session == nil { readSetConfigArguments(into: &features) }
        }
    }

    /// PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes.
    static var maximumNameLength: Int { 63 }

    private func appendNameCapped(_ token: Token, to buffer: UnsafeMutableBufferPointer<UInt8>, at offset: Int) -> Int {
        var count = offset
        let limit = offset + Self.maximumNameLength
        if token.kind == .word {
            var i = token.start
            while i < token.end && count < limit {
                buffer[count] = ASCII.lowercased(bytes[i])
                count += 1
                i += 1
            }
        } else {
            var i = token.start
            while bytes[i] != ASCII.doubleQuote { i += 1 }
            i += 1
            let end = token.end - 1
            while i < end && count < limit {
                buffer[count] = bytes[i]
                count += 1
                i += bytes[i] == ASCII.doubleQuote ? 2 : 1
            }
        }
        return count
    }

    /// `set_config('name', value, true|false)` with a literal name and a literal is_local is a SET, its
    /// value a literal or a bound parameter (`$n`, read from the Bind by the session). Anything else
    /// that may set a session value — a computed name, value or is_local — pins the session to where
    /// it ran: evaluated again elsewhere, it could give another value, or fail.
    /// Reads ahead on a copy of the lexer; the main pass still scans the arguments for other calls.
    private func readSetConfigArguments(into features: inout QueryFeatures) {
        var look = self
        let argumentDepth = look.lexer.depth
        let nameToken = look.next()
        guard let settingName = look.stringValue(nameToken), look.next().kind == .comma else {
            if features.pin == nil { features.pin = .computedSetting }
            return
        }
        var valueStart = Token.none
        var valueEnd = Token.none
        var valueTokens = 0
        while true {
            let token = look.next()
            if token.kind == .end { return }
            if token.kind == .comma && look.lexer.depth == argumentDepth { break }
            if token.kind == .closeParen && look.lexer.depth < argumentDepth { return }
            if valueTokens == 0 { valueStart = token }
            valueEnd = token
            valueTokens += 1
        }
        let localToken = look.next()
        let isLocal: Bool
        if look.matches(localToken, "true") {
            isLocal = true
        } else if look.matches(localToken, "false") {
            isLocal = false
        } else {
            if features.pin == nil { features.pin = .computedSetting }
            return
        }
        guard look.next().kind == .closeParen else { return }
        let plainValue = valueTokens == 1
            && (valueStart.kind == .string || valueStart.kind == .number || valueStart.kind == .parameter)
        if !plainValue && !isLocal {
            if features.pin == nil { features.pin = .computedSetting }
            return
        }
        features.session = .set(name: String(decoding: settingName.utf8.map(ASCII.lowercased), as: UTF8.self), local: isLocal)
        if valueTokens == 1, valueStart.kind == .parameter {
            features.settingParameter = Int(text(from: valueStart.start + 1, to: valueStart.end))
            return
        }
        if valueTokens == 1, let value = stringValue(valueStart) {
            features.settingValue = value
        } else if valueTokens > 0 {
            features.settingValue = text(from: valueStart.start, to: valueEnd.end)
        }
    }
}
