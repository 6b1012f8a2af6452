import DispatchTransport
import PostgresWire

/// Runs one simple query on a freshly opened backend connection and closes it: used by the startup
/// checks and the function catalog, never on a client's path.
enum BackendQueryRunner {
    struct Result: Sendable {
        var info: BackendSessionInfo
        /// Rows of text values (nil = NULL).
        var rows: [[String?]]
    }

    static func run(_ sql: String, login: BackendLogin, on loop: EventLoop, timeout: Double,
                    completion: @escaping (Swift.Result<Result, BackendConnector.Failure>) -> Void) {
        BackendConnector.open(login, on: loop, timeout: timeout) { opened in
            switch opened {
            case .failure(let failure):
                completion(.failure(failure))
            case .success(let opened):
                let collector = RowCollector(connection: opened.connection, info: opened.info, completion: completion)
                collector.start(sql, leftover: opened.leftover)
            }
        }
    }
}

private final class RowCollector {
    let connection: Connection
    let info: BackendSessionInfo
    var buffer = ByteBuffer(capacity: 4096)
    var rows: [[String?]] = []
    var error: ErrorFields?
    var completion: ((Swift.Result<BackendQueryRunner.Result, BackendConnector.Failure>) -> Void)?

    init(connection: Connection, info: BackendSessionInfo,
         completion: @escaping (Swift.Result<BackendQueryRunner.Result, BackendConnector.Failure>) -> Void) {
        self.connection = connection
        self.info = info
        self.completion = completion
    }

    func start(_ sql: String, leftover: [UInt8]) {
        connection.start(onRead: { [self] in received($0) },
                         onClose: { [self] _ in finish(.failure(.unreachable("connection closed during a query"))) })
        var out = ByteBuffer()
        out.writeQuery(sql)
        connection.write(out.readableArray)
        if !leftover.isEmpty { leftover.withUnsafeBytes { received($0) } }
    }

    func received(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(contentsOf: bytes)
        while completion != nil {
            guard case .message(let type, let payload) = buffer.frameMessage(maxMessageSize: 1 << 26) else { return }
            let body = buffer.storage[payload]
            buffer.moveReaderIndex(to: payload.upperBound)
            switch type {
            case UInt8(ascii: "D"):
                rows.append(DataRow.decodeText(body))
            case UInt8(ascii: "E"):
                error = try? ErrorFields.decode(body)
            case UInt8(ascii: "Z"):
                connection.write([UInt8(ascii: "X"), 0, 0, 0, 4])
                connection.closeAfterFlush()
                if let error {
                    finish(.failure(.refused(.server(error))))
                } else {
                    finish(.success(BackendQueryRunner.Result(info: info, rows: rows)))
                }
            default:
                break
            }
        }
    }


    func finish(_ result: Swift.Result<BackendQueryRunner.Result, BackendConnector.Failure>) {
        guard let done = completion else { return }
        completion = nil
        connection.onRead = nil
        connection.onClose = nil
        done(result)
    }
}
