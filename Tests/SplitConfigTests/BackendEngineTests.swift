import XCTest
import SplitConfig

final class BackendEngineTests: XCTestCase {
    func testPostgresFromServerVersion() {
        let engine = BackendEngine.identify(
            versionFunction: "PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc (Debian 12.2.0-14) 12.2.0, 64-bit",
            parameters: ["server_version": "15.18 (Debian 15.18-0+deb12u1)"])
        XCTAssertEqual(engine, .postgres(major: 15, version: "15.18"))
        XCTAssertEqual(engine.displayName, "PostgreSQL 15.18")
        XCTAssertEqual(BackendEngine.identify(versionFunction: nil, parameters: ["server_version": "9.6.24"]),
                       .postgres(major: 9, version: "9.6.24"))
        XCTAssertEqual(BackendEngine.identify(versionFunction: nil, parameters: ["server_version": "17beta2"]),
                       .postgres(major: 17, version: "17beta2"))
    }

    func testPostgresFromVersionFunctionOnly() {
        XCTAssertEqual(BackendEngine.identify(versionFunction: "PostgreSQL 16.4 on x86_64-pc-linux-gnu, compiled by gcc", parameters: [:]),
                       .postgres(major: 16, version: "16.4"))
    }

    func testCockroachDB() {
        let version = "CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu, built 2023/09/27 01:53:43, go1.19.10)"
        let engine = BackendEngine.identify(versionFunction: version, parameters: ["server_version": "13.0.0"])
        XCTAssertEqual(engine, .cockroachDB("CCL v23.1.11"))
        XCTAssertEqual(engine.displayName, "CockroachDB CCL v23.1.11")
        XCTAssertEqual(engine.majorVersion, 23)
        // Before version() is asked, the crdb_version parameter alone tells.
        XCTAssertEqual(BackendEngine.identify(versionFunction: nil, parameters: ["server_version": "13.0.0", "crdb_version": version]),
                       .cockroachDB("CCL v23.1.11"))
    }

    func testYugabyteDB() {
        let engine = BackendEngine.identify(
            versionFunction: "PostgreSQL 11.2-YB-2.18.0.0-b0 on x86_64-pc-linux-gnu, compiled by clang version 15.0.7",
            parameters: ["server_version": "11.2-YB-2.18.0.0-b0"])
        XCTAssertEqual(engine, .yugabyteDB("2.18.0.0-b0"))
        XCTAssertEqual(engine.displayName, "YugabyteDB 2.18.0.0-b0")
        XCTAssertEqual(BackendEngine.identify(versionFunction: "PostgreSQL 15.2 (YugabyteDB 2.25.0.0)", parameters: [:]),
                       .yugabyteDB("2.25.0.0"))
    }

    func testRedshiftAndGreenplum() {
        let redshift = BackendEngine.identify(
            versionFunction: "PostgreSQL 8.0.2 on i686-pc-linux-gnu, compiled by GCC gcc (GCC) 3.4.2 20041017 (Red Hat 3.4.2-6.fc3), Redshift 1.0.77467",
            parameters: ["server_version": "8.0.2"])
        XCTAssertEqual(redshift, .redshift("1.0.77467"))
        XCTAssertEqual(redshift.displayName, "Amazon Redshift 1.0.77467")
        let greenplum = BackendEngine.identify(
            versionFunction: "PostgreSQL 9.4.26 (Greenplum Database 6.20.0 build commit:8d4f6d2) on x86_64-unknown-linux-gnu, compiled by gcc",
            parameters: ["server_version": "9.4.26"])
        XCTAssertEqual(greenplum, .greenplum("6.20.0"))
        XCTAssertEqual(greenplum.displayName, "Greenplum 6.20.0")
    }

    func testOther() {
        XCTAssertEqual(BackendEngine.identify(versionFunction: "SomeDB 3.1", parameters: ["server_version": "14.0"]), .other("SomeDB 3.1"))
        XCTAssertEqual(BackendEngine.identify(versionFunction: nil, parameters: [:]), .other(""))
        XCTAssertEqual(BackendEngine.other("").displayName, "an unknown engine")
    }

    func testCompare() {
        let postgres15 = BackendEngine.postgres(major: 15, version: "15.18")
        let postgres15b = BackendEngine.postgres(major: 15, version: "15.2")
        let postgres16 = BackendEngine.postgres(major: 16, version: "16.4")
        let cockroach = BackendEngine.cockroachDB("CCL v23.1.11")
        XCTAssertEqual(BackendEngine.compare(main: postgres15, writeable: postgres15b), .same)
        XCTAssertEqual(BackendEngine.compare(main: postgres15, writeable: postgres16),
                       .differentMajor(warning: "main runs PostgreSQL 15.18 but writeable runs PostgreSQL 16.4; different major versions may behave differently, so reads and writes may not agree"))
        XCTAssertEqual(BackendEngine.compare(main: postgres15, writeable: cockroach),
                       .differentEngine(refusal: "main runs PostgreSQL 15.18 but writeable runs CockroachDB CCL v23.1.11; both backends must run the same database engine"))
        XCTAssertEqual(BackendEngine.compare(main: .yugabyteDB("2.18.0.0"), writeable: .yugabyteDB("2.20.1.0")), .same)
        XCTAssertEqual(BackendEngine.compare(main: .other("SomeDB 3"), writeable: .other("SomeDB 3.1")), .same)
        if case .differentEngine = BackendEngine.compare(main: .other("SomeDB 3"), writeable: .other("OtherDB 3")) {} else {
            XCTFail("two unknown engines with different names must be refused")
        }
    }
}
