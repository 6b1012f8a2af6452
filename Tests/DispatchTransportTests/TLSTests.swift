import DispatchTransport
import Foundation
import XCTest

/// A throwaway CA with a server certificate (localhost / 127.0.0.1), a client certificate and an
/// unrelated second CA, made with the openssl command line in a temp folder.
final class TestCertificates {
    let dir: URL
    var caCert: String { path("ca.crt") }
    var otherCACert: String { path("other-ca.crt") }
    var serverCert: String { path("server.crt") }
    var serverKey: String { path("server.key") }
    var clientCert: String { path("client.crt") }
    var clientKey: String { path("client.key") }

    init(clientCommonName: String = "alice") throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("pgsplit-tls-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try makeCA("ca", name: "pgsplit test CA")
        try makeCA("other-ca", name: "some other CA")
        try issue("server", commonName: "localhost", altNames: "DNS:localhost,IP:127.0.0.1")
        try issue("client", commonName: clientCommonName, altNames: nil)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    private func makeCA(_ name: String, name commonName: String) throws {
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", path("\(name).key"), "-out", path("\(name).crt"), "-days", "3650",
                     "-subj", "/CN=\(commonName)",
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    }

    private func issue(_ name: String, commonName: String, altNames: String?) throws {
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", "/CN=\(commonName)"])
        var extensions = "basicConstraints=CA:FALSE\n"
        if let altNames { extensions += "subjectAltName=\(altNames)\n" }
        try extensions.write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", path("\(name).csr"), "-CA", caCert, "-CAkey", path("ca.key"),
                     "-set_serial", "\(UInt32.random(in: 1...UInt32.max))", "-days", "3650",
                     "-extfile", path("\(name).ext"), "-out", path("\(name).crt")])
        chmod(path("\(name).key"), 0o600)
    }

    private func openssl(_ args: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = args
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw NSError(domain: "openssl", code: Int(process.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "openssl \(args.first ?? ""): \(text)"])
        }
    }
}

final class TLSTests: XCTestCase {
    override class func setUp() { Transport.ignoreSIGPIPE() }

    private struct ServerSide: Sendable {
        let handshakes = Shared<[Result<TLSPeerInfo, TLSError>]>([])
    }

    /// A listener whose connections start TLS at once and then echo the plaintext back.
    private func startTLSEchoServer(context: TLSContext, group: EventLoopGroup, server: ServerSide) throws -> Listener {
        let listener = try Listener(host: "127.0.0.1", port: 0, group: group)
        listener.start { connection in
            connection.onRead = { [unowned connection] bytes in connection.write(bytes) }
            connection.onClose = { _ in }
            connection.startReading()
            connection.startTLS(context: context) { result in
                server.handshakes.update { $0.append(result) }
            }
        }
        return listener
    }

    /// Connects, runs the client handshake, and sends `payload` once it finished.
    private func clientRun(port: Int, on loop: EventLoop, context: TLSContext, serverName: String?,
                           payload: [UInt8]) -> (handshake: Result<TLSPeerInfo, TLSError>?, echoed: [UInt8], closed: Bool) {
        let connection: Connection
        switch connectAndWait(host: "127.0.0.1", port: port, on: loop) {
        case .success(let c): connection = c
        case .failure(let error):
            XCTFail("connect: \(error)")
            return (nil, [], true)
        }
        let handshake = Shared<Result<TLSPeerInfo, TLSError>?>(nil)
        let received = Shared<[UInt8]>([])
        let closed = Shared(false)
        let done = DispatchSemaphore(value: 0)
        onLoop(loop) {
            connection.start(onRead: { bytes in
                let total = received.update { $0.append(contentsOf: bytes); return $0.count }
                if total == payload.count { done.signal() }
            }, onClose: { _ in
                closed.update { $0 = true }
                done.signal()
            })
            connection.startTLS(context: context, serverName: serverName) { result in
                handshake.update { $0 = result }
                guard case .success = result else { return }
                XCTAssertTrue(connection.isTLS)
                connection.beginBatch()
                payload.withUnsafeBytes { connection.write($0) }
                connection.endBatch()
            }
        }
        XCTAssertEqual(done.wait(timeout: .now() + hangGuard), .success, "client run did not finish")
        onLoop(loop) { connection.close() }
        return (handshake.value, received.value, closed.value)
    }

    func testEchoOverTLSWithVerifiedServer() throws {
        let certificates = try TestCertificates()
        let server = try TLSContext(.server(certificateFile: certificates.serverCert, privateKeyFile: certificates.serverKey))
        let client = try TLSContext(.client(caFile: certificates.caCert, verification: .chainAndHost))
        let payload = (0..<1_000_000).map(patternByte)
        for strategy in allStrategies {
            let group = EventLoopGroup(loopCount: 2, ioStrategy: strategy)
            let side = ServerSide()
            let listener = try startTLSEchoServer(context: server, group: group, server: side)
            defer { listener.close() }
            for name in ["localhost", "127.0.0.1"] {
                let run = clientRun(port: listener.boundPort, on: group.next(), context: client, serverName: name, payload: payload)
                let info = try XCTUnwrap(run.handshake).get()
                XCTAssertTrue(info.presentedCertificate)
                XCTAssertEqual(info.commonName, "localhost")
                XCTAssertEqual(info.protocolVersion, "TLSv1.3")
                XCTAssertEqual(run.echoed.count, payload.count)
                XCTAssertTrue(run.echoed == payload, "echo differs")
            }
            waitUntil("server handshakes") { side.handshakes.value.count == 2 }
            for result in side.handshakes.value {
                let info = try result.get()
                XCTAssertFalse(info.presentedCertificate, "no client certificate was sent")
            }
        }
    }

    func testClientCertificateIsVerifiedAndItsCommonNameShown() throws {
        let certificates = try TestCertificates(clientCommonName: "alice")
        let server = try TLSContext(.server(certificateFile: certificates.serverCert, privateKeyFile: certificates.serverKey,
                                            caFile: certificates.caCert, requirePeerCertificate: true))
        let withCertificate = try TLSContext(.client(caFile: certificates.caCert, certificateFile: certificates.clientCert,
                                                     privateKeyFile: certificates.clientKey, verification: .chain))
        let withoutCertificate = try TLSContext(.client(caFile: certificates.caCert, verification: .chain))
        for strategy in allStrategies {
            let group = EventLoopGroup(loopCount: 2, ioStrategy: strategy)
            let side = ServerSide()
            let listener = try startTLSEchoServer(context: server, group: group, server: side)
            defer { listener.close() }

            let good = clientRun(port: listener.boundPort, on: group.next(), context: withCertificate, serverName: "localhost",
                                 payload: Array("hello".utf8))
            XCTAssertEqual(good.echoed, Array("hello".utf8))
            waitUntil("server handshake") { side.handshakes.value.count == 1 }
            let info = try side.handshakes.value[0].get()
            XCTAssertTrue(info.presentedCertificate)
            XCTAssertEqual(info.commonName, "alice")

            // Without a certificate the server refuses (in TLS 1.3 the client learns it after its own Finished).
            let bad = clientRun(port: listener.boundPort, on: group.next(), context: withoutCertificate, serverName: "localhost",
                                payload: Array("hello".utf8))
            XCTAssertTrue(bad.closed)
            XCTAssertTrue(bad.echoed.isEmpty)
            waitUntil("server handshake") { side.handshakes.value.count == 2 }
            guard case .failure(let error) = side.handshakes.value[1] else {
                return XCTFail("a client without a certificate was accepted")
            }
            XCTAssertTrue(error.message.contains("certificate"), error.message)
        }
    }

    func testWrongCAOrHostNameFailsTheHandshake() throws {
        let certificates = try TestCertificates()
        let server = try TLSContext(.server(certificateFile: certificates.serverCert, privateKeyFile: certificates.serverKey))
        let otherCA = try TLSContext(.client(caFile: certificates.otherCACert, verification: .chain))
        let rightCA = try TLSContext(.client(caFile: certificates.caCert, verification: .chainAndHost))
        let noVerification = try TLSContext(.client())
        for strategy in allStrategies {
            let group = EventLoopGroup(loopCount: 2, ioStrategy: strategy)
            let listener = try startTLSEchoServer(context: server, group: group, server: ServerSide())
            defer { listener.close() }

            let wrongCA = clientRun(port: listener.boundPort, on: group.next(), context: otherCA, serverName: "localhost", payload: [1])
            guard case .failure(let caError)? = wrongCA.handshake else { return XCTFail("a server signed by another CA was accepted") }
            XCTAssertTrue(caError.message.contains("could not be verified"), caError.message)
            XCTAssertTrue(wrongCA.closed)

            let wrongName = clientRun(port: listener.boundPort, on: group.next(), context: rightCA, serverName: "db.example.com", payload: [1])
            guard case .failure(let nameError)? = wrongName.handshake else { return XCTFail("a wrong host name was accepted") }
            XCTAssertTrue(nameError.message.contains("does not match host name \"db.example.com\""), nameError.message)

            let wrongAddress = clientRun(port: listener.boundPort, on: group.next(), context: rightCA, serverName: "127.0.0.2", payload: [1])
            guard case .failure = wrongAddress.handshake else { return XCTFail("a wrong IP address was accepted") }

            // Encryption only: any certificate will do.
            let plain = clientRun(port: listener.boundPort, on: group.next(), context: noVerification, serverName: "db.example.com",
                                  payload: [1, 2, 3])
            XCTAssertEqual(plain.echoed, [1, 2, 3])
        }
    }

    func testMinimumProtocolVersionIsEnforced() throws {
        let certificates = try TestCertificates()
        let server = try TLSContext(.server(certificateFile: certificates.serverCert, privateKeyFile: certificates.serverKey,
                                            minimumVersion: .tls1_3))
        let oldClient = try TLSContext(.client(minimumVersion: .tls1_2, maximumVersion: .tls1_2))
        let group = EventLoopGroup(loopCount: 1)
        let side = ServerSide()
        let listener = try startTLSEchoServer(context: server, group: group, server: side)
        defer { listener.close() }
        let run = clientRun(port: listener.boundPort, on: group.next(), context: oldClient, serverName: "localhost", payload: [1])
        guard case .failure? = run.handshake else { return XCTFail("TLS 1.2 accepted by a TLS 1.3-only server") }
    }

    func testContextRefusesMissingOrMismatchedFiles() throws {
        let certificates = try TestCertificates()
        XCTAssertThrowsError(try TLSContext(.server(certificateFile: certificates.path("missing.crt"),
                                                    privateKeyFile: certificates.serverKey))) { error in
            XCTAssertTrue("\(error)".contains("missing.crt"), "\(error)")
        }
        XCTAssertThrowsError(try TLSContext(.server(certificateFile: certificates.serverCert,
                                                    privateKeyFile: certificates.clientKey))) { error in
            XCTAssertTrue("\(error)".contains("does not match"), "\(error)")
        }
        XCTAssertThrowsError(try TLSContext(.client(verification: .chain)))
        // Equal configurations share one context.
        let configuration = TLSConfiguration.client(caFile: certificates.caCert, verification: .chain)
        XCTAssertTrue(try TLSContext.shared(configuration) === TLSContext.shared(configuration))
    }
}
