import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Clients that vanish in the middle of a COPY FROM STDIN or of an extended-protocol batch (no
/// Sync): no transaction stays open on the primary and nothing they sent is committed.
final class HostileVanishTests: HostileTestCase {
    private func loggedIn(_ proxy: ProxyProcess, _ watch: HostileWatch, app: String) throws -> HostileSocket {
        let socket = try HostileSocket(port: proxy.port)
        socket.send(HostileWire.startup(application: watch.applicationName(app)))
        let login = socket.readMessages(until: "Z")
        XCTAssertTrue(login.contains { $0.typeChar == "Z" }, "\(login)")
        return socket
    }

    private func assertNothingLeft(_ watch: HostileWatch, table: String, file: StaticString = #filePath, line: UInt = #line) throws {
        waitUntil("no transaction of this test open on the primary", file: file, line: line) {
            (try? openTransactions(watch)) == 0
        }
        XCTAssertEqual(try primaryCount(table), 0, "nothing committed", file: file, line: line)
        watch.assertNormalClientWorks(file: file, line: line)
        watch.assertBackToBaseline(file: file, line: line)
    }

    func testVanishMidCopyFromStdin() throws {
        try makeTable("hostile_vanish_copy")
        let (proxy, watch) = try startHostile()
        for how in ["abort", "halfclose"] {
            let socket = try loggedIn(proxy, watch, app: "copy_\(how)")
            socket.send(RawWire.query("COPY hostile_vanish_copy(v) FROM STDIN"))
            let started = socket.readMessages(until: "G")
            XCTAssertTrue(started.contains { $0.typeChar == "G" }, "expected CopyInResponse: \(started)")
            for i in 0..<500 { socket.send(HostileWire.copyData("row \(i)\n")) }
            waitUntil("the COPY running on the primary") { (try? openTransactions(watch)) == 1 }
            if how == "abort" { socket.abort() } else { socket.halfClose() }
            try assertNothingLeft(watch, table: "hostile_vanish_copy")
            socket.abort()
        }
    }

    func testVanishAfterParseBindExecuteFlushWithoutSync() throws {
        try makeTable("hostile_vanish_batch")
        let (proxy, watch) = try startHostile()
        let socket = try loggedIn(proxy, watch, app: "batch")
        socket.send(HostileWire.parse("INSERT INTO hostile_vanish_batch(v) VALUES ($1)")
                    + HostileWire.bind(["lost"]) + HostileWire.execute() + HostileWire.flush)
        let answered = socket.readMessages(until: "C")
        XCTAssertEqual(HostileWire.tags(answered), ["INSERT 0 1"], "\(answered)")
        waitUntil("the batch's implicit transaction open on the primary") { (try? openTransactions(watch)) == 1 }
        socket.abort()
        try assertNothingLeft(watch, table: "hostile_vanish_batch")
    }

    func testVanishAfterParseBindWithoutSync() throws {
        try makeTable("hostile_vanish_pb")
        let (proxy, watch) = try startHostile()
        let socket = try loggedIn(proxy, watch, app: "pb")
        socket.send(HostileWire.parse("INSERT INTO hostile_vanish_pb(v) VALUES ($1)") + HostileWire.bind(["lost"]))
        socket.abort()
        try assertNothingLeft(watch, table: "hostile_vanish_pb")
    }

    func testVanishInsideAnExplicitTransactionMidBatch() throws {
        try makeTable("hostile_vanish_tx")
        let (proxy, watch) = try startHostile()
        let socket = try loggedIn(proxy, watch, app: "tx")
        socket.send(RawWire.query("BEGIN"))
        _ = socket.readMessages(until: "Z")
        socket.send(HostileWire.parse("INSERT INTO hostile_vanish_tx(v) VALUES ($1)") + HostileWire.bind(["first"])
                    + HostileWire.execute() + HostileWire.sync)
        let first = socket.readMessages(until: "Z")
        XCTAssertEqual(HostileWire.tags(first), ["INSERT 0 1"], "\(first)")
        socket.send(HostileWire.parse("INSERT INTO hostile_vanish_tx(v) VALUES ($1)") + HostileWire.bind(["second"])
                    + HostileWire.execute())
        waitUntil("the transaction open on the primary") { (try? openTransactions(watch)) == 1 }
        socket.abort()
        try assertNothingLeft(watch, table: "hostile_vanish_tx")
    }
}
