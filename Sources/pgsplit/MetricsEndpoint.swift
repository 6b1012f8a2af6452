import DispatchTransport
import SplitConfig
import SplitCore

/// A tiny HTTP/1.1 server for Prometheus: `GET /metrics` (or HEAD) answers 200 with the
/// registry's text; anything else 404 (405 for another method on /metrics). One request per
/// connection, closed after the answer. Runs on the loops like any connection: nothing blocks.
final class MetricsEndpoint: Sendable {
    let listener: Listener
    let metrics: ProxyMetrics
    /// Extra text appended to the registry's (e.g. from another component); optional.
    let extra: (@Sendable () -> String)?

    /// Binds now (call at start, off the loops; throws when the address is taken).
    init(address: ListenAddress, group: EventLoopGroup, metrics: ProxyMetrics, extra: (@Sendable () -> String)? = nil) throws {
        let host = address.listensOnAllInterfaces ? "*" : address.host
        listener = try Listener(host: host, port: address.port, group: group)
        self.metrics = metrics
        self.extra = extra
    }

    var boundPort: Int { listener.boundPort }

    func start() {
        listener.start { [metrics, extra] connection in
            MetricsRequest(connection: connection, metrics: metrics, extra: extra).start()
        }
    }

    func close() { listener.close() }
}

/// One HTTP exchange; confined to its connection's loop, kept alive by the connection's handlers.
private final class MetricsRequest {
    static let maxRequestBytes = 16 * 1024
    static let timeoutSeconds = 10.0

    let connection: Connection
    let metrics: ProxyMetrics
    let extra: (@Sendable () -> String)?
    var received: [UInt8] = []
    var timer: TimerHandle?
    var answered = false

    init(connection: Connection, metrics: ProxyMetrics, extra: (@Sendable () -> String)?) {
        self.connection = connection
        self.metrics = metrics
        self.extra = extra
    }

    func start() {
        connection.start(onRead: { [self] bytes in read(bytes) },
                         onClose: { [self] _ in timer?.cancel(); timer = nil })
        timer = connection.loop.scheduleTimer(after: Self.timeoutSeconds) { [self] in
            if !answered { connection.close() }
        }
    }

    func read(_ bytes: UnsafeRawBufferPointer) {
        guard !answered else { return }
        received.append(contentsOf: bytes)
        guard let end = Self.headerEnd(received) else {
            if received.count > Self.maxRequestBytes { respond(431, "Request Header Fields Too Large", body: "request too large\n") }
            return
        }
        let head = String(decoding: received[..<end], as: UTF8.self)
        let requestLine = head.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            respond(400, "Bad Request", body: "bad request\n")
            return
        }
        let method = parts[0]
        let path = parts[1].split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard path == "/metrics" else {
            respond(404, "Not Found", body: "not found; try /metrics\n")
            return
        }
        guard method == "GET" || method == "HEAD" else {
            respond(405, "Method Not Allowed", body: "use GET\n", extraHeaders: "Allow: GET, HEAD\r\n")
            return
        }
        var body = metrics.prometheusText()
        if let extra { body += extra() }
        respond(200, "OK", body: body, contentType: "text/plain; version=0.0.4; charset=utf-8", headOnly: method == "HEAD")
    }

    func respond(_ status: Int, _ reason: String, body: String, contentType: String = "text/plain; charset=utf-8",
                 extraHeaders: String = "", headOnly: Bool = false) {
        answered = true
        timer?.cancel()
        timer = nil
        let bodyBytes = Array(body.utf8)
        let head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(bodyBytes.count)\r\n"
            + extraHeaders + "Connection: close\r\n\r\n"
        connection.write(Array(head.utf8) + (headOnly ? [] : bodyBytes))
        connection.closeAfterFlush()
    }

    /// The index just past "\r\n\r\n", or nil.
    static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 3..<bytes.count where bytes[i] == 10 && bytes[i - 1] == 13 && bytes[i - 2] == 10 && bytes[i - 3] == 13 {
            return i + 1
        }
        return nil
    }
}
