import XCTest
@testable import SplitConfig

/// Every mistake names the file, the line and the key, exactly.
final class ConfigErrorMessageTests: XCTestCase {
    private func message(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try ProxyConfig.parse(text: text, fileName: "proxy.conf")
            XCTFail("expected an error", file: file, line: line)
            return ""
        } catch let error as ConfigError {
            return error.description
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
            return ""
        }
    }

    private let database = "[database app]\nmain = host=db\n"

    func testUnknownConnectionKey() {
        let text = "[pgsplit]\nlog_routing = on\n[database app]\nmain = host=db\nwriteable = hots=10.0.0.1 port=5432\n"
        XCTAssertEqual(message(text), #"proxy.conf:5: [database app] writeable: unknown connection key "hots""#)
    }

    func testBadAuthType() {
        XCTAssertEqual(message("[pgsplit]\n\nauth_type = sha1\n" + database),
                       #"proxy.conf:3: [pgsplit] auth_type: expected one of scram-sha-256, md5, password, trust, cert, got "sha1""#)
    }

    func testUnknownKey() {
        XCTAssertEqual(message("[pgsplit]\nlisten_port = 6432\n" + database),
                       "proxy.conf:2: [pgsplit] listen_port: unknown key; known keys are " + ProxyConfigParser.generalKeys.joined(separator: ", "))
        XCTAssertEqual(message("[database app]\nmain = host=db\nwritable = host=p\n"),
                       "proxy.conf:3: [database app] writable: unknown key; known keys are main, writeable, database_routing, read_safe_functions, writing_functions, route.USER")
    }

    func testUnknownSection() {
        XCTAssertEqual(message("[pgbouncer]\nlisten = *:6432\n" + database),
                       "proxy.conf:1: unknown section [pgbouncer]; expected [pgsplit] or [database NAME]")
    }

    func testDuplicateKey() {
        XCTAssertEqual(message("[database app]\nmain = host=a\nMain = host=b\n"),
                       "proxy.conf:3: [database app] main: given twice (first on line 2)")
    }

    func testDuplicateSections() {
        XCTAssertEqual(message("[pgsplit]\n[pgsplit]\n" + database), "proxy.conf:2: [pgsplit] appears twice (first on line 1)")
        XCTAssertEqual(message(database + database),
                       #"proxy.conf:3: [database app] database "app" is defined twice (first on line 1)"#)
    }

    func testDatabaseSectionNeedsOneName() {
        XCTAssertEqual(message("[database]\nmain = host=db\n"),
                       "proxy.conf:1: a database section is written [database NAME], with one name without spaces; got [database]")
    }

    func testNoDatabase() {
        XCTAssertEqual(message("[pgsplit]\nlisten = *:6432\n"), "proxy.conf: no [database NAME] section; define at least one database")
        XCTAssertEqual(message(""), "proxy.conf: no [database NAME] section; define at least one database")
    }

    func testDatabaseWithoutMain() {
        XCTAssertEqual(message("[pgsplit]\n[database app]\nwriteable = host=p\n"),
                       "proxy.conf:2: [database app] main: missing; every database needs a main connection string")
        XCTAssertEqual(message("[database app]\nmain =\n"), "proxy.conf:2: [database app] main: has no value; expected a connection string")
    }

    func testKeyOutsideSectionAndLineWithoutEquals() {
        XCTAssertEqual(message("listen = *:6432\n" + database),
                       "proxy.conf:1: listen: set before any section; put it under [pgsplit] or [database NAME]")
        XCTAssertEqual(message("[pgsplit]\nlog_routing\n" + database),
                       #"proxy.conf:2: [pgsplit] expected "key = value", got "log_routing""#)
        XCTAssertEqual(message("[pgsplit\n" + database), #"proxy.conf:1: section header "[pgsplit" lacks its closing "]""#)
    }

    func testBadScalarValues() {
        XCTAssertEqual(message("[pgsplit]\nlog_routing = maybe\n" + database),
                       #"proxy.conf:2: [pgsplit] log_routing: expected on, off, true, false, yes, no, 1 or 0, got "maybe""#)
        XCTAssertEqual(message("[pgsplit]\nconnect_timeout = 5 fortnights\n" + database),
                       #"proxy.conf:2: [pgsplit] connect_timeout: expected a duration such as 500ms, 10s, 5min, 1h or 1d, got "5 fortnights""#)
        XCTAssertEqual(message("[pgsplit]\nconnect_timeout = 0\n" + database),
                       "proxy.conf:2: [pgsplit] connect_timeout: must be longer than zero")
        XCTAssertEqual(message("[pgsplit]\nmax_message_size = 1PB\n" + database),
                       #"proxy.conf:2: [pgsplit] max_message_size: expected a size in bytes, or with a unit such as 64kB, 16MB or 1GB, got "1PB""#)
        XCTAssertEqual(message("[pgsplit]\nmax_message_size = 2GB\n" + database),
                       #"proxy.conf:2: [pgsplit] max_message_size: must be between 1 byte and 2GB - 1 (the protocol's limit), got "2GB""#)
        XCTAssertEqual(message("[pgsplit]\nmax_client_conn = 0\n" + database),
                       #"proxy.conf:2: [pgsplit] max_client_conn: expected a whole number of at least 1, got "0""#)
        XCTAssertEqual(message("[pgsplit]\nworkers = -1\n" + database),
                       #"proxy.conf:2: [pgsplit] workers: expected a whole number; 0 means one per two cores, got "-1""#)
        XCTAssertEqual(message("[pgsplit]\nlisten = 127.0.0.1\n" + database),
                       #"proxy.conf:2: [pgsplit] listen: expected host:port, [ipv6]:port or *:port, got "127.0.0.1""#)
        XCTAssertEqual(message("[pgsplit]\nlisten = 127.0.0.1:6432, ::1:6432\n" + database),
                       #"proxy.conf:2: [pgsplit] listen: expected host:port, [ipv6]:port or *:port, got "::1:6432""#)
        XCTAssertEqual(message("[pgsplit]\nauth_type =\n" + database),
                       "proxy.conf:2: [pgsplit] auth_type: has no value; expected one of scram-sha-256, md5, password, trust, cert")
        XCTAssertEqual(message("[pgsplit]\nread_fallback = replica\n" + database),
                       #"proxy.conf:2: [pgsplit] read_fallback: expected one of writeable, error, got "replica""#)
    }

    func testBadConnectionStrings() {
        func connectionMessage(_ connection: String) -> String {
            message("[database app]\nmain = \(connection)\n")
        }
        XCTAssertEqual(connectionMessage("host=db port=abc"),
                       #"proxy.conf:2: [database app] main: port must be a number from 1 to 65535, got "abc""#)
        XCTAssertEqual(connectionMessage("host=db port=70000"),
                       #"proxy.conf:2: [database app] main: port must be a number from 1 to 65535, got "70000""#)
        XCTAssertEqual(connectionMessage("host db"), #"proxy.conf:2: [database app] main: missing "=" after "host""#)
        XCTAssertEqual(connectionMessage("host=db password='oops"),
                       #"proxy.conf:2: [database app] main: unterminated quoted value for "password""#)
        XCTAssertEqual(connectionMessage("host=db host=db2"),
                       #"proxy.conf:2: [database app] main: connection key "host" is given twice"#)
        XCTAssertEqual(connectionMessage("host=a,b"),
                       #"proxy.conf:2: [database app] main: several hosts in "host" are not supported; name one backend"#)
        XCTAssertEqual(connectionMessage("host=db sslmode=always"),
                       #"proxy.conf:2: [database app] main: sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full, got "always""#)
        XCTAssertEqual(connectionMessage("host=db =x"),
                       #"proxy.conf:2: [database app] main: a value without a key near "=x""#)
    }

    func testBadRouteAndFunctionNames() {
        XCTAssertEqual(message("[database app]\nmain = host=db\nroute. = host=x\n"),
                       "proxy.conf:3: [database app] route.: needs a user name: route.USER = connection string")
        XCTAssertEqual(message("[database app]\nmain = host=db\nroute.alice = hots=x\n"),
                       #"proxy.conf:3: [database app] route.alice: unknown connection key "hots""#)
        XCTAssertEqual(message("[database app]\nmain = host=db\nread_safe_functions = good, bad name\n"),
                       #"proxy.conf:3: [database app] read_safe_functions: "bad name" is not a function name (name or schema.name)"#)
        XCTAssertEqual(message("[database app]\nmain = host=db\nwriting_functions = a.b.c\n"),
                       #"proxy.conf:3: [database app] writing_functions: "a.b.c" is not a function name (name or schema.name)"#)
    }
}
