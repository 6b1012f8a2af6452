import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Clients that log in and go quiet: client_idle_timeout closes them with 57P05,
/// idle_transaction_timeout closes one idle inside a transaction with 25P03 and its transaction is
/// rolled back on the primary.
final class HostileIdleTests: HostileTestCase {
    private func loggedIn(_ proxy: ProxyProcess, _ watch: HostileWatch, app: String) throws -> RawClient {
        let client = try RawClient(port: proxy.port)
        let login = client.hostileLogin(application: watch.applicationName(app))
        XCTAssertTrue(login.contains { $0.typeChar == "Z" }, "\(login)")
        return client
    }

    func testClientIdleTimeoutClosesIdleClients() throws {
        let (proxy, watch) = try startHostile(["client_idle_timeout = 1s"])
        // One that never ran a statement, one that did (and so held backends).
        let silent = try loggedIn(proxy, watch, app: "silent")
        let worked = try loggedIn(proxy, watch, app: "worked")
        worked.send(RawWire.query("SELECT 1; SELECT txid_current()"))
        let answered = worked.readMessages(until: "Z")
        XCTAssertEqual(HostileWire.tags(answered), ["SELECT 1", "SELECT 1"], "\(answered)")
        for (name, client) in [("silent", silent), ("worked", worked)] {
            let messages = RawWire.parse(client.read(timeout: 30)).messages
            XCTAssertTrue(client.closedByPeer, "\(name): the idle client should be closed")
            XCTAssertEqual(HostileWire.errorCodes(messages), ["57P05"], "\(name): \(messages)")
        }
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }

    func testIdleTransactionTimeoutRollsBack() throws {
        try makeTable("hostile_idle_tx")
        let (proxy, watch) = try startHostile(["idle_transaction_timeout = 1s"])
        let client = try loggedIn(proxy, watch, app: "idletx")
        client.send(RawWire.query("BEGIN; INSERT INTO hostile_idle_tx(v) VALUES ('never committed')"))
        let answered = client.readMessages(until: "Z")
        XCTAssertEqual(HostileWire.tags(answered), ["BEGIN", "INSERT 0 1"], "\(answered)")
        XCTAssertEqual(answered.last?.body, [UInt8(ascii: "T")], "inside a transaction")
        let messages = RawWire.parse(client.read(timeout: 30)).messages
        XCTAssertTrue(client.closedByPeer, "the client idle in a transaction should be closed")
        XCTAssertEqual(HostileWire.errorCodes(messages), ["25P03"], "\(messages)")
        waitUntil("the transaction is gone from the primary") { (try? openTransactions(watch)) == 0 }
        XCTAssertEqual(try primaryCount("hostile_idle_tx"), 0, "the transaction was rolled back")
        // Without the timeout on idle sessions, an idle client outside a transaction stays; a
        // normal client works.
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }
}
