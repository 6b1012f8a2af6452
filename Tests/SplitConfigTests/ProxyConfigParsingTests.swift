import XCTest
@testable import SplitConfig

final class ProxyConfigParsingTests: XCTestCase {
    func testFullConfigParses() throws {
        let text = """
        ; a comment
        # another comment
        [pgsplit]
        listen = 127.0.0.1:6432, [::1]:6433, *:6434   ; three addresses
        auth_type = md5
        auth_file = users.txt
        admin_users = admin, ops
        max_client_conn = 500
        max_message_size = 16MB
        client_login_timeout = 1500ms
        connect_timeout = 2min
        log_routing = yes
        workers = 4
        so_reuseport = on
        read_your_writes = lsn
        max_replica_lag = 10s
        read_fallback = error

        [database app]
        main      = host=127.0.0.1 port=15433 dbname=app user=app_ro password=secret
        writeable = host=127.0.0.1 port=15432 user=app_rw password=rw   # the primary
        read_safe_functions = my_pure_fn, public.Other_Fn, "MixedCase"
        writing_functions = audit_log_read

        [database reports]
        main = host=/var/run/postgresql
        """
        let config = try ProxyConfig.parse(text: text, fileName: "proxy.conf")
        XCTAssertEqual(config.listen, [
            ListenAddress(host: "127.0.0.1", port: 6432), ListenAddress(host: "::1", port: 6433),
            ListenAddress(host: "*", port: 6434),
        ])
        XCTAssertTrue(config.listen[2].listensOnAllInterfaces)
        XCTAssertEqual(config.listen[1].description, "[::1]:6433")
        XCTAssertEqual(config.authType, .md5)
        XCTAssertEqual(config.authFile, "users.txt")
        XCTAssertNil(config.userlist)
        XCTAssertEqual(config.adminUsers, ["admin", "ops"])
        XCTAssertEqual(config.maxClientConnections, 500)
        XCTAssertEqual(config.maxMessageSize, 16 * 1024 * 1024)
        XCTAssertEqual(config.clientLoginTimeout, .milliseconds(1500))
        XCTAssertEqual(config.connectTimeout, .seconds(120))
        XCTAssertTrue(config.logRouting)
        XCTAssertEqual(config.workers, 4)
        XCTAssertTrue(config.reusePort)
        XCTAssertEqual(config.workerCount(processorCount: 2), 4)
        XCTAssertEqual(config.readYourWrites, .lsn)
        XCTAssertEqual(config.maxReplicaLag, .seconds(10))
        XCTAssertEqual(config.readFallback, .error)

        XCTAssertEqual(config.databases.map(\.name), ["app", "reports"])
        let app = try XCTUnwrap(config.database(named: "app"))
        XCTAssertEqual(app.main.label, "127.0.0.1:15433/app")
        XCTAssertEqual(app.main.user, "app_ro")
        XCTAssertEqual(app.main.password, "secret")
        let writeable = try XCTUnwrap(app.writeable)
        XCTAssertEqual(writeable.label, "127.0.0.1:15432/app")
        XCTAssertEqual(writeable.user, "app_rw")
        XCTAssertEqual(writeable.password, "rw")
        XCTAssertFalse(app.databaseRouting)
        XCTAssertEqual(app.readSafeFunctions, ["my_pure_fn", "public.other_fn", "MixedCase"])
        XCTAssertEqual(app.writingFunctions, ["audit_log_read"])

        let reports = try XCTUnwrap(config.database(named: "reports"))
        XCTAssertTrue(reports.main.isUnixSocket)
        XCTAssertEqual(reports.main.port, 5432)
        XCTAssertNil(reports.main.dbname)
        XCTAssertTrue(reports.main.usesClientCredentials)
        XCTAssertNil(reports.writeable)
        XCTAssertNil(config.database(named: "missing"))
        XCTAssertEqual(config.validationProblems(), [])
    }

    func testDefaults() throws {
        let config = try ProxyConfig.parse(text: "[database app]\nmain = host=db\n", fileName: "proxy.conf")
        XCTAssertEqual(config.listen, [ListenAddress(host: "127.0.0.1", port: 6432)])
        XCTAssertEqual(config.authType, .scramSHA256)
        XCTAssertNil(config.authFile)
        XCTAssertEqual(config.adminUsers, [])
        XCTAssertEqual(config.maxClientConnections, 10000)
        XCTAssertEqual(config.maxMessageSize, 1_073_741_823)
        XCTAssertEqual(config.clientLoginTimeout, .seconds(60))
        XCTAssertEqual(config.connectTimeout, .seconds(5))
        XCTAssertFalse(config.logRouting)
        XCTAssertEqual(config.workers, 0)
        XCTAssertFalse(config.reusePort)
        XCTAssertEqual(config.workerCount(processorCount: 2), 1)
        XCTAssertEqual(config.workerCount(processorCount: 1), 1)
        XCTAssertEqual(config.workerCount(processorCount: 8), 4)
        XCTAssertEqual(config.readYourWrites, .lsn)
        XCTAssertNil(config.maxReplicaLag)
        XCTAssertEqual(config.readFallback, .writeable)
        XCTAssertEqual(config, ProxyConfig(databases: [DatabaseConfig(name: "app", main: try BackendAddress(connectionString: "host=db"))]))
    }

    func testKeysAreCaseInsensitiveAndWindowsLineEndingsWork() throws {
        let text = "[PGSPLIT]\r\nLog_Routing = ON\r\n[Database app]\r\nMAIN = host=db\r\n"
        let config = try ProxyConfig.parse(text: text, fileName: "proxy.conf")
        XCTAssertTrue(config.logRouting)
        XCTAssertEqual(config.databases.first?.main.host, "db")
    }

    func testWriteableInheritsMissingKeysFromMain() throws {
        let text = """
        [database app]
        main = host=10.0.0.2 port=5433 dbname=app user=app_ro password=ro sslmode=require application_name=pgsplit
        writeable = host=10.0.0.1
        """
        let app = try XCTUnwrap(ProxyConfig.parse(text: text, fileName: "proxy.conf").databases.first)
        let writeable = try XCTUnwrap(app.writeable)
        XCTAssertEqual(writeable.host, "10.0.0.1")
        XCTAssertEqual(writeable.port, 5433)
        XCTAssertEqual(writeable.dbname, "app")
        XCTAssertEqual(writeable.user, "app_ro")
        XCTAssertEqual(writeable.password, "ro", "the same user keeps its password")
        XCTAssertEqual(writeable.sslmode, "require")
        XCTAssertEqual(writeable.rendered(maskingPassword: false),
                       "host=10.0.0.1 port=5433 dbname=app user=app_ro password=ro sslmode=require application_name=pgsplit")
    }

    func testNewUserDoesNotInheritMainsPassword() throws {
        let text = """
        [database app]
        main = host=10.0.0.2 dbname=app user=app_ro password=ro
        writeable = host=10.0.0.1 user=app_rw
        database_routing = off
        """
        let writeable = try XCTUnwrap(ProxyConfig.parse(text: text, fileName: "proxy.conf").databases.first?.writeable)
        XCTAssertEqual(writeable.user, "app_rw")
        XCTAssertNil(writeable.password)
        XCTAssertEqual(writeable.rendered(), "host=10.0.0.1 dbname=app user=app_rw")
    }

    func testNewHostDropsMainsHostaddrAndNewCertificateDropsMainsKey() throws {
        let main = try BackendAddress(connectionString: "hostaddr=10.0.0.2 sslcert=a.crt sslkey=a.key sslpassword=x dbname=app")
        let writeable = try BackendAddress(connectionString: "host=primary.local sslcert=b.crt", inheritingFrom: main)
        XCTAssertNil(writeable.hostaddr)
        XCTAssertEqual(writeable.host, "primary.local")
        XCTAssertEqual(writeable.rendered(), "sslcert=b.crt dbname=app host=primary.local")
    }

    func testRoutesInheritFromMainWithThePasswordRule() throws {
        let text = """
        [pgsplit]
        auth_type = trust
        [database app]
        main = host=127.0.0.1 port=15433 dbname=app user=svc password=svc
        database_routing = on
        route.alice = host=10.0.0.5 dbname=alice_db
        route.Bob = host=10.0.0.6 user=bob
        """
        let config = try ProxyConfig.parse(text: text, fileName: "proxy.conf")
        let app = try XCTUnwrap(config.databases.first)
        XCTAssertTrue(app.databaseRouting)
        let alice = app.backend(forRoutedUser: "alice")
        XCTAssertEqual(alice.label, "10.0.0.5:15433/alice_db")
        XCTAssertEqual(alice.user, "svc")
        XCTAssertEqual(alice.password, "svc")
        let bob = app.backend(forRoutedUser: "Bob")
        XCTAssertEqual(bob.user, "bob")
        XCTAssertNil(bob.password)
        XCTAssertEqual(app.backend(forRoutedUser: "carol"), app.main)
        XCTAssertEqual(config.validationProblems(), [])
    }

    func testRoutesAreNotUsedWithRoutingOff() {
        let main = BackendAddress(host: "main")
        let database = DatabaseConfig(name: "app", main: main, routes: ["alice": BackendAddress(host: "other")])
        XCTAssertEqual(database.backend(forRoutedUser: "alice"), main)
    }

    func testEmptyWriteableMeansNone() throws {
        let text = "[database app]\nmain = host=db\nwriteable =\n"
        XCTAssertNil(try ProxyConfig.parse(text: text, fileName: "proxy.conf").databases.first?.writeable)
    }

    func testQuotedValuesKeepCommentCharacters() throws {
        let text = "[database app]\nmain = host=db password='pa ss ;word #1' ; real comment\n"
        let main = try XCTUnwrap(ProxyConfig.parse(text: text, fileName: "proxy.conf").databases.first?.main)
        XCTAssertEqual(main.password, "pa ss ;word #1")
    }

    func testSemicolonWithoutWhitespaceIsPartOfTheValue() throws {
        let text = "[database app]\nmain = host=db password=a;b#c\n"
        let main = try XCTUnwrap(ProxyConfig.parse(text: text, fileName: "proxy.conf").databases.first?.main)
        XCTAssertEqual(main.password, "a;b#c")
    }
}
