import DispatchTransport
import PostgresWire
import SplitConfig

/// Who the proxy logs in to a backend as.
struct BackendLogin: Sendable {
    var address: BackendAddress
    var user: String
    var database: String
    var credential: BackendCredential
    /// Startup parameters passed on from the client (application_name, options, ...).
    var parameters: [(String, String)]
}

/// Opens a backend connection and logs in. The completion runs once, on `loop`, with the open
/// connection and what the backend reported, or a one-line reason.
enum BackendConnector {
    struct Opened {
        var connection: Connection
        var info: BackendSessionInfo
        /// Bytes that arrived after the login's ReadyForQuery (normally none).
        var leftover: [UInt8]
    }

    enum Failure: Error {
        case unreachable(String)
        case refused(BackendHandshakeFailure)

        var description: String {
            switch self {
            case .unreachable(let why): why
            case .refused(let failure): failure.description
            }
        }
    }

    static func open(_ login: BackendLogin, on loop: EventLoop, timeout: Double,
                     completion: @escaping (Result<Opened, Failure>) -> Void) {
        let host = login.address.hostaddr ?? login.address.host
        Connection.connect(host: host, port: login.address.port, on: loop, timeout: timeout) { result in
            switch result {
            case .failure(let error):
                completion(.failure(.unreachable("cannot connect to \(login.address.label): \(error)")))
            case .success(let connection):
                let driver = HandshakeDriver(connection: connection, login: login, completion: completion)
                driver.start()
            }
        }
    }
}

/// Runs a BackendHandshake over a connection. Confined to the connection's loop.
private final class HandshakeDriver {
    let connection: Connection
    var handshake: BackendHandshake
    var buffer = ByteBuffer(capacity: 1024)
    var completion: ((Result<BackendConnector.Opened, BackendConnector.Failure>) -> Void)?
    let label: String

    init(connection: Connection, login: BackendLogin,
         completion: @escaping (Result<BackendConnector.Opened, BackendConnector.Failure>) -> Void) {
        self.connection = connection
        self.label = login.address.label
        self.handshake = BackendHandshake(user: login.user, database: login.database, parameters: login.parameters,
                                          credential: login.credential)
        self.completion = completion
    }

    func start() {
        // The driver keeps itself alive through the connection's handlers until it finishes.
        connection.start(onRead: { [self] bytes in received(bytes) },
                         onClose: { [self] error in
                             finish(.failure(.unreachable("\(label) closed the connection during login\(error.map { ": \($0)" } ?? "")")))
                         })
        connection.write(handshake.start())
    }

    func received(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(contentsOf: bytes)
        while completion != nil {
            switch buffer.frameMessage(maxMessageSize: 1 << 24) {
            case .needMore:
                buffer.compact()
                return
            case .invalid(let why):
                connection.close()
                finish(.failure(.refused(.proxy("\(label): \(why)"))))
                return
            case .message(let type, let payload):
                let action = handshake.received(type: type, payload: buffer.storage[payload])
                buffer.moveReaderIndex(to: payload.upperBound)
                switch action {
                case .send(let out):
                    connection.write(out)
                case .wait:
                    break
                case .done(let info):
                    let leftover = buffer.readableArray
                    let opened = BackendConnector.Opened(connection: connection, info: info, leftover: leftover)
                    connection.onRead = nil
                    connection.onClose = nil
                    let done = completion
                    completion = nil
                    done?(.success(opened))
                    return
                case .failed(let failure):
                    connection.close()
                    finish(.failure(.refused(failure)))
                    return
                }
            }
        }
    }

    func finish(_ result: Result<BackendConnector.Opened, BackendConnector.Failure>) {
        guard let done = completion else { return }
        completion = nil
        connection.onRead = nil
        connection.onClose = nil
        done(result)
    }
}
