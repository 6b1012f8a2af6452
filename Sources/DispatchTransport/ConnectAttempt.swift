import Dispatch
#if canImport(Glibc)
import Glibc
#endif

extension Connection {
    /// Opens a connection to `host`:`port` without blocking `loop`.
    ///
    /// - `host` an IPv4/IPv6 literal: connected directly.
    /// - `host` a name (including "localhost"): resolved with getaddrinfo on a background queue,
    ///   then each address is tried in order until one connects.
    /// - `host` starting with "/": a Unix socket directory; connects to `<host>/.s.PGSQL.<port>`.
    ///
    /// Call on `loop`. `completion` runs once, on `loop`, never inside this call; `timeout`
    /// (seconds) covers resolution and every attempt. The new connection is not reading yet:
    /// set its handlers, then `startReading()`.
    public static func connect(host: String, port: Int, on loop: EventLoop, timeout: Double,
                               completion: @escaping (Result<Connection, TransportError>) -> Void) {
        loop.assertInEventLoop()
        let attempt = ConnectAttempt(loop: loop, completion: completion)
        attempt.start(host: host, port: port, timeout: timeout)
    }
}

/// The state of one `Connection.connect` call: its deadline and the addresses left to try.
///
/// Sendable by confinement: created and used on `loop.queue`; only the getaddrinfo call runs
/// elsewhere, and it touches none of this state.
final class ConnectAttempt: @unchecked Sendable {
    private let loop: EventLoop
    private var completion: ((Result<Connection, TransportError>) -> Void)?
    private var remaining: [SocketAddress] = []
    private var current: Connection?
    private var timer: TimerHandle?

    init(loop: EventLoop, completion: @escaping (Result<Connection, TransportError>) -> Void) {
        self.loop = loop
        self.completion = completion
    }

    func start(host: String, port: Int, timeout: Double) {
        timer = loop.scheduleTimer(after: timeout) { [self] in
            timer = nil
            finish(.failure(.timedOut))
        }
        guard (0...65535).contains(port) else {
            fail(later: .invalidAddress("port \(port)"))
            return
        }
        if SocketAddress.isUnixDirectory(host) {
            do {
                remaining = [try SocketAddress.unixSocket(directory: host, port: port)]
                tryNext(lastError: nil)
            } catch {
                fail(later: error)
            }
        } else if let address = SocketAddress.numeric(host: host, port: port) {
            remaining = [address]
            tryNext(lastError: nil)
        } else {
            // getaddrinfo blocks: never on a loop.
            DispatchQueue.global().async { [self] in
                let resolved: Result<[SocketAddress], TransportError>
                do throws(TransportError) {
                    resolved = .success(try SocketAddress.resolve(host: host, port: port))
                } catch {
                    resolved = .failure(error)
                }
                loop.execute { [self] in
                    switch resolved {
                    case .success(let addresses):
                        guard completion != nil else { return }
                        remaining = addresses
                        tryNext(lastError: nil)
                    case .failure(let error):
                        finish(.failure(error))
                    }
                }
            }
        }
    }

    /// Reports `error` as a separate loop event (never inside `Connection.connect`).
    private func fail(later error: TransportError) {
        loop.execute { [self] in finish(.failure(error)) }
    }

    /// Starts connecting to the next address; reports `lastError` when none is left.
    private func tryNext(lastError: TransportError?) {
        while completion != nil, !remaining.isEmpty {
            let address = remaining.removeFirst()
            let fd: Int32
            do {
                fd = try SocketOptions.makeStreamSocket(family: address.family)
            } catch {
                fail(later: error)
                return
            }
            let result = address.withSockaddr { Glibc.connect(fd, $0, $1) }
            if result != 0 && errno != EINPROGRESS {
                let error = TransportError.lastError("connect")
                Glibc.close(fd)
                if remaining.isEmpty {
                    fail(later: error)
                    return
                }
                continue
            }
            if !address.isUnix {
                SocketOptions.disableNagle(fd)
            }
            let connection = Connection(fd: fd, loop: loop, peer: .described(address.description))
            current = connection
            // Completion of the connect shows as writability, also when it succeeded at once.
            connection.beginConnecting(self)
            return
        }
        if let lastError {
            finish(.failure(lastError))
        }
    }

    func socketConnected(_ connection: Connection) {
        guard connection === current else { return }
        current = nil
        finish(.success(connection))
    }

    func socketFailed(_ connection: Connection, _ error: TransportError) {
        guard connection === current, completion != nil else { return }
        current = nil
        if remaining.isEmpty {
            finish(.failure(error))
        } else {
            tryNext(lastError: error)
        }
    }

    private func finish(_ result: Result<Connection, TransportError>) {
        guard let completion else { return }
        self.completion = nil
        timer?.cancel()
        timer = nil
        remaining = []
        if let pending = current {
            current = nil
            pending.closeNow(nil, notifyLater: false)
        }
        completion(result)
    }
}
