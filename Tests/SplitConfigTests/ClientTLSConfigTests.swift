import Foundation
import XCTest
@testable import SplitConfig

final class ClientTLSConfigTests: XCTestCase {
    private let database = "[database app]\nmain = host=db\n"

    private func parse(_ general: String) throws -> ProxyConfig {
        try ProxyConfig.parse(text: "[pgsplit]\nauth_type = trust\n" + general + "\n" + database, fileName: "proxy.conf")
    }

    func testDefaultsAreOff() throws {
        let tls = try parse("").clientTLS
        XCTAssertEqual(tls.mode, .disable)
        XCTAssertFalse(tls.offersTLS)
        XCTAssertEqual(tls.protocols, [.tlsv1_2, .tlsv1_3])
        XCTAssertEqual(tls.ciphers, "default")
    }

    func testAllKeys() throws {
        let config = try parse("""
            client_tls_sslmode = verify-full
            client_tls_cert_file = server.crt
            client_tls_key_file = server.key
            client_tls_ca_file = ca.crt
            client_tls_protocols = tlsv1.3
            client_tls_ciphers = HIGH:!aNULL
            """)
        let tls = config.clientTLS
        XCTAssertEqual(tls.mode, .verifyFull)
        XCTAssertEqual(tls.certificateFile, "server.crt")
        XCTAssertEqual(tls.keyFile, "server.key")
        XCTAssertEqual(tls.caFile, "ca.crt")
        XCTAssertEqual(tls.protocols, [.tlsv1_3])
        XCTAssertEqual(tls.ciphers, "HIGH:!aNULL")
        XCTAssertTrue(tls.offersTLS)
        XCTAssertEqual(config.validationProblems(), [])
    }

    func testProtocolLists() {
        XCTAssertEqual(TLSProtocolVersion.parseList("secure"), [.tlsv1_2, .tlsv1_3])
        XCTAssertEqual(TLSProtocolVersion.parseList("all"), TLSProtocolVersion.allCases)
        XCTAssertEqual(TLSProtocolVersion.parseList("TLSv1.3, tlsv1.2"), [.tlsv1_2, .tlsv1_3])
        XCTAssertNil(TLSProtocolVersion.parseList("sslv3"))
    }

    func testBadValuesNameTheKey() {
        XCTAssertThrowsError(try parse("client_tls_sslmode = always")) { error in
            XCTAssertEqual("\(error)", #"proxy.conf:3: [pgsplit] client_tls_sslmode: expected one of disable, allow, prefer, require, verify-ca, verify-full, got "always""#)
        }
        XCTAssertThrowsError(try parse("client_tls_protocols = sslv3")) { error in
            XCTAssertTrue("\(error)".contains("client_tls_protocols"), "\(error)")
        }
    }

    func testRequireWithoutCertificateIsRefused() throws {
        XCTAssertEqual(try parse("client_tls_sslmode = require").validationProblems(), [
            "client_tls_sslmode = require needs client_tls_cert_file and client_tls_key_file (the proxy's certificate and key); set them or lower client_tls_sslmode",
        ])
        // prefer without a certificate just answers N.
        XCTAssertEqual(try parse("client_tls_sslmode = prefer").validationProblems(), [])
        XCTAssertEqual(try parse("client_tls_sslmode = prefer\nclient_tls_cert_file = a.crt").validationProblems(), [
            "client_tls_cert_file is set but client_tls_key_file is not; TLS for clients needs both",
        ])
        XCTAssertEqual(try parse("client_tls_sslmode = verify-ca\nclient_tls_cert_file = a.crt\nclient_tls_key_file = a.key").validationProblems(), [
            "client_tls_sslmode = verify-ca verifies client certificates and needs client_tls_ca_file; set it or use client_tls_sslmode = require",
        ])
    }

    func testCertAuthNeedsTLSAndACA() throws {
        let noTLS = try ProxyConfig.parse(text: "[pgsplit]\nauth_type = cert\n" + database, fileName: "proxy.conf")
        XCTAssertEqual(noTLS.validationProblems(), [
            "auth_type = cert needs TLS for clients: set client_tls_sslmode (require or stronger), client_tls_cert_file and client_tls_key_file",
        ])
        let noCA = try ProxyConfig.parse(text: "[pgsplit]\nauth_type = cert\nclient_tls_sslmode = require\nclient_tls_cert_file = a.crt\nclient_tls_key_file = a.key\n" + database,
                                         fileName: "proxy.conf")
        XCTAssertEqual(noCA.validationProblems(), [
            "auth_type = cert needs client_tls_ca_file, the CA that signs the client certificates",
        ])
        let good = try ProxyConfig.parse(text: "[pgsplit]\nauth_type = cert\nclient_tls_sslmode = verify-full\nclient_tls_cert_file = a.crt\nclient_tls_key_file = a.key\nclient_tls_ca_file = ca.crt\n" + database,
                                         fileName: "proxy.conf")
        XCTAssertEqual(good.validationProblems(), [], "cert auth needs no auth_file")
    }

    func testLoadResolvesFilesAndWarnsAboutAReadableKey() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pgsplit-cfg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = dir.appendingPathComponent("server.key").path
        FileManager.default.createFile(atPath: key, contents: Data("key".utf8), attributes: [.posixPermissions: 0o644])
        let text = "[pgsplit]\nauth_type = trust\nclient_tls_sslmode = require\nclient_tls_cert_file = server.crt\nclient_tls_key_file = server.key\n" + database
        let path = dir.appendingPathComponent("proxy.conf").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let config = try ProxyConfig.load(path: path)
        XCTAssertEqual(config.clientTLS.keyFile, key)
        XCTAssertEqual(config.clientTLS.certificateFile, dir.appendingPathComponent("server.crt").path)
        XCTAssertEqual(config.tlsWarnings(), [
            "client_tls_key_file \"\(key)\" can be read by group or others (mode 644); make it private, e.g. chmod 600",
        ])
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key)
        XCTAssertEqual(config.tlsWarnings(), [])
    }
}
