import XCTest
import StatementClassifier
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Prints how many statements per second one core classifies on a mix of short, realistic statements.
/// It never asserts on time; run it in release: `swift test -c release --filter Throughput`.
final class ThroughputTests: XCTestCase {
    static let mix: [String] = [
        "SELECT * FROM users WHERE id = $1",
        "SELECT id, name, email FROM accounts WHERE org_id = $1 ORDER BY name LIMIT 50",
        "select count(*) from orders where created_at > now() - interval '1 day'",
        "INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id",
        "UPDATE accounts SET balance = balance - $1 WHERE id = $2",
        "DELETE FROM sessions WHERE expires_at < now()",
        "BEGIN",
        "COMMIT",
        "BEGIN READ ONLY",
        "SET search_path = app, public",
        "SELECT a.id, b.total FROM a JOIN b ON b.a_id = a.id WHERE a.status = 'open'",
        "SELECT nextval('orders_id_seq')",
        "WITH recent AS (SELECT * FROM orders WHERE created_at > $1) SELECT sum(total) FROM recent",
        "SELECT * FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
        "/* app:web */ SELECT 1",
        "SHOW transaction_isolation",
        "SELECT pg_is_in_recovery()",
        "ROLLBACK",
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        "EXECUTE fetch_user(42)",
    ]

    func testThroughput() {
        let classifier = Classifier(policy: FunctionPolicy())
        let buffers = Self.mix.map { Array($0.utf8) }
        var sink = 0
        func run(_ rounds: Int) { sink &+= Self.classifyAll(buffers, rounds: rounds, with: classifier) }
        run(1_000)  // warm up
        #if DEBUG
        let rounds = 2_000  // only a smoke run; the number that matters comes from a release build
        #else
        let rounds = 100_000
        #endif
        let clock = ContinuousClock()
        let cpuStart = Self.threadCPUSeconds()
        let elapsed = clock.measure { run(rounds) }
        let cpuSeconds = Self.threadCPUSeconds() - cpuStart
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let statements = Double(rounds * buffers.count)
        // CPU time of this thread: on a busy machine wall time also counts the time others ran.
        print("StatementClassifier throughput (bytes API): \(Int(statements / cpuSeconds)) statements/second of CPU "
              + "(\(Int(cpuSeconds * 1e9 / statements)) ns each); \(Int(statements / seconds)) per wall-clock second; "
              + "\(Int(statements)) statements")

        var stringSink = 0
        let strings = Self.mix
        let stringElapsed = clock.measure {
            for _ in 0..<(rounds / 4) {
                for sql in strings { stringSink &+= classifier.classify(sql).statements.count }
            }
        }
        let stringSeconds = Double(stringElapsed.components.seconds) + Double(stringElapsed.components.attoseconds) / 1e18
        let stringStatements = Double(rounds / 4 * strings.count)
        print("StatementClassifier throughput (String API): \(Int(stringStatements / stringSeconds)) statements/second")
        XCTAssertGreaterThan(sink + stringSink, 0)
    }

    /// Kept out of the test method so the loop carries no actor-isolation checks.
    nonisolated private static func classifyAll(_ buffers: [[UInt8]], rounds: Int, with classifier: Classifier) -> Int {
        var count = 0
        for _ in 0..<rounds {
            for buffer in buffers {
                count &+= buffer.withUnsafeBytes { classifier.classify(utf8: $0) }.statements.count
            }
        }
        return count
    }

    private static func threadCPUSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
