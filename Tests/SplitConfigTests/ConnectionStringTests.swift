import XCTest
@testable import SplitConfig

final class ConnectionStringTests: XCTestCase {
    func testQuotingAndEscapes() throws {
        let address = try BackendAddress(connectionString: #"host = db  password='it\'s a \\ secret' options='-c search_path=app' application_name=a\ b"#)
        XCTAssertEqual(address.host, "db")
        XCTAssertEqual(address.password, #"it's a \ secret"#)
        XCTAssertEqual(address.parameters.first(where: { $0.key == "options" })?.value, "-c search_path=app")
        XCTAssertEqual(address.parameters.first(where: { $0.key == "application_name" })?.value, "a b")
    }

    func testEmptyQuotedValue() throws {
        let address = try BackendAddress(connectionString: "host=db password=''")
        XCTAssertEqual(address.password, "")
        XCTAssertEqual(address.rendered(maskingPassword: false), "host=db password=''")
    }

    func testRenderedRoundTripsAndMasksThePassword() throws {
        let text = #"host=db port=6000 dbname='my db' user=u password='p w\'d' sslmode=verify-full"#
        let address = try BackendAddress(connectionString: text)
        XCTAssertEqual(address.rendered(), "host=db port=6000 dbname='my db' user=u password=*** sslmode=verify-full")
        XCTAssertEqual(address.description, address.rendered())
        let unmasked = address.rendered(maskingPassword: false)
        XCTAssertEqual(unmasked, #"host=db port=6000 dbname='my db' user=u password='p w\'d' sslmode=verify-full"#)
        XCTAssertEqual(try BackendAddress(connectionString: unmasked), address)
    }

    func testDefaultsAndLabels() throws {
        let empty = try BackendAddress(connectionString: "")
        XCTAssertEqual(empty.host, "localhost")
        XCTAssertEqual(empty.port, 5432)
        XCTAssertNil(empty.dbname)
        XCTAssertNil(empty.user)
        XCTAssertNil(empty.password)
        XCTAssertTrue(empty.usesClientCredentials)
        XCTAssertEqual(empty.label, "localhost:5432")

        XCTAssertEqual(try BackendAddress(connectionString: "host=127.0.0.1 port=15432 dbname=app").label, "127.0.0.1:15432/app")
        XCTAssertEqual(try BackendAddress(connectionString: "host=::1").label, "[::1]:5432")
        XCTAssertEqual(try BackendAddress(connectionString: "hostaddr=10.1.1.1 dbname=x").label, "10.1.1.1:5432/x")
        let socket = try BackendAddress(connectionString: "host=/var/run/postgresql dbname=app")
        XCTAssertTrue(socket.isUnixSocket)
        XCTAssertEqual(socket.label, "/var/run/postgresql:5432/app")
    }

    func testAllKnownKeysAreAccepted() throws {
        let text = ConnectionString.knownKeys.sorted().map { key in
            key == "port" || key == "connect_timeout" ? "\(key)=5" : key == "sslmode" ? "sslmode=prefer"
                : key == "channel_binding" ? "channel_binding=require" : "\(key)=v"
        }.joined(separator: " ")
        XCTAssertEqual(try BackendAddress(connectionString: text).parameters.count, 17)
    }

    func testChannelBindingValues() throws {
        XCTAssertEqual(try BackendAddress(connectionString: "host=h channel_binding=require").channelBinding, "require")
        XCTAssertNil(try BackendAddress(connectionString: "host=h").channelBinding)
        XCTAssertThrowsError(try BackendAddress(connectionString: "host=h channel_binding=yes")) {
            XCTAssertEqual("\($0)", "channel_binding must be one of disable, prefer, require, got \"yes\"")
        }
        XCTAssertThrowsError(try BackendAddress(connectionString: "host=h sslmode=disable channel_binding=require")) {
            XCTAssertEqual("\($0)", "channel_binding=require needs TLS, but sslmode=disable turns it off")
        }
    }

    func testMemberwiseConvenience() {
        let address = BackendAddress(host: "h", port: 7, dbname: "d", user: "u", password: "p")
        XCTAssertEqual(address.rendered(), "host=h port=7 dbname=d user=u password=***")
    }
}
