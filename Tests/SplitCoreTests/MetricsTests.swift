import XCTest
@testable import SplitCore

final class MetricsTests: XCTestCase {
    func testBucketIndexes() {
        XCTAssertEqual(LatencyBuckets.index(microseconds: 0), 0)
        XCTAssertEqual(LatencyBuckets.index(microseconds: 50), 0)
        XCTAssertEqual(LatencyBuckets.index(microseconds: 51), 1)
        XCTAssertEqual(LatencyBuckets.index(microseconds: 10_000_000), LatencyBuckets.boundsMicroseconds.count - 1)
        XCTAssertEqual(LatencyBuckets.index(microseconds: 10_000_001), LatencyBuckets.boundsMicroseconds.count)
    }

    func testPercentilesInterpolateInsideBuckets() throws {
        let histogram = LatencyHistogram()
        XCTAssertNil(histogram.snapshot().percentile(0.5))
        // 100 observations evenly in (1ms, 2ms]: the median is about 1.5 ms.
        for i in 1...100 { histogram.record(microseconds: 1_000 + Int64(i) * 10) }
        let snapshot = histogram.snapshot()
        XCTAssertEqual(snapshot.count, 100)
        XCTAssertEqual(snapshot.percentile(0.5), 1_500)
        XCTAssertEqual(snapshot.percentile(0.99), 1_990)
        XCTAssertEqual(snapshot.percentile(1.0), 2_000)
        XCTAssertEqual(snapshot.sumMicroseconds, 100 * 1_000 + 10 * 5050)
    }

    func testPercentilesAcrossBucketsAndOverflow() {
        let histogram = LatencyHistogram()
        for _ in 0..<90 { histogram.record(microseconds: 300) }        // (200, 500]
        for _ in 0..<9 { histogram.record(microseconds: 40_000) }      // (20ms, 50ms]
        histogram.record(.seconds(60))                                  // overflow
        let snapshot = histogram.snapshot()
        let p50 = snapshot.percentile(0.5)!
        XCTAssertTrue((200...500).contains(p50), "\(p50)")
        let p95 = snapshot.percentile(0.95)!
        XCTAssertTrue((20_000...50_000).contains(p95), "\(p95)")
        XCTAssertEqual(snapshot.percentile(1.0), 10_000_000)
    }

    func testSessionRecorderCountsAndTimesUnitsInOrder() {
        let metrics = ProxyMetrics(databases: ["app"])
        var recorder = SessionMetricsRecorder(database: metrics.database("app"))
        let t0 = MonotonicInstant.now
        // Pipelined: more units than the ring's first size, finishing in order.
        for i in 0..<6 { recorder.unitStarted(i % 2 == 0 ? .main : .writeable, why: i % 2 == 0 ? .read : .write, at: t0) }
        XCTAssertEqual(recorder.unitsInFlight, 6)
        for i in 0..<6 {
            recorder.unitFinished(i % 2 == 0 ? .main : .writeable, failed: i == 5, at: t0 + .milliseconds(3))
        }
        let main = metrics.database("app").target(.main)
        let writeable = metrics.database("app").target(.writeable)
        XCTAssertEqual(main.units(.read), 3)
        XCTAssertEqual(writeable.units(.write), 3)
        XCTAssertEqual(writeable.errors, 1)
        XCTAssertEqual(main.units(kind: .read), 3)
        XCTAssertEqual(writeable.units(kind: .write), 3)
        XCTAssertEqual(main.latency.snapshot().count, 3)
        XCTAssertEqual(main.latency.snapshot().sumMicroseconds, 9_000)
        XCTAssertTrue(metrics.database("app") === metrics.database("app"))
    }

    func testCountersFromManyThreads() {
        let metrics = ProxyMetrics()
        let target = metrics.database("app").target(.main)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<10_000 {
                target.unitStarted(.read)
                target.bytesToClient(10)
                target.latency.record(microseconds: 100)
            }
        }
        XCTAssertEqual(target.units, 80_000)
        XCTAssertEqual(target.bytesToClients, 800_000)
        XCTAssertEqual(target.latency.snapshot().count, 80_000)
    }

    func testPrometheusTextShape() throws {
        let metrics = ProxyMetrics(databases: ["app"])
        metrics.clientConnected()
        metrics.clientConnected()
        metrics.clientDisconnected()
        let app = metrics.database("app")
        app.target(.main).unitStarted(.read)
        app.target(.main).unitFinished(failed: false, microseconds: 150)
        app.target(.writeable).unitStarted(.write)
        app.target(.writeable).unitFinished(failed: true, microseconds: 20_000_000)
        app.target(.main).bytesFromClient(33)
        app.target(.main).backendConnectionOpened()
        let board = HealthBoard(database: "app", mainAddress: "127.0.0.1:5433/app", writeableAddress: "127.0.0.1:5432/app",
                                metrics: app)
        board.record(.writeable, .answered(inRecovery: false, position: LSN(text: "0/3000100"), replayDelay: nil), sequence: board.beginPoll())
        board.record(.main, .answered(inRecovery: true, position: LSN(text: "0/3000000"), replayDelay: 0.25), sequence: board.beginPoll())

        let text = metrics.prometheusText()
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertTrue(text.hasSuffix("\n"))
        XCTAssertTrue(lines.contains("# TYPE pgsplit_unit_duration_seconds histogram"))
        XCTAssertTrue(lines.contains("# TYPE pgsplit_units_total counter"))
        XCTAssertTrue(lines.contains("pgsplit_client_connections_accepted_total 2"))
        XCTAssertTrue(lines.contains("pgsplit_client_connections 1"))
        XCTAssertTrue(lines.contains("pgsplit_units_total{database=\"app\",target=\"main\",reason=\"read\"} 1"))
        XCTAssertTrue(lines.contains("pgsplit_unit_errors_total{database=\"app\",target=\"writeable\"} 1"))
        XCTAssertTrue(lines.contains("pgsplit_client_bytes_received_total{database=\"app\",target=\"main\"} 33"))
        XCTAssertTrue(lines.contains("pgsplit_backend_connections{database=\"app\",target=\"main\"} 1"))
        XCTAssertTrue(lines.contains("pgsplit_unit_duration_seconds_bucket{database=\"app\",target=\"main\",le=\"0.00005\"} 0"))
        XCTAssertTrue(lines.contains("pgsplit_unit_duration_seconds_bucket{database=\"app\",target=\"main\",le=\"0.0002\"} 1"))
        XCTAssertTrue(lines.contains("pgsplit_unit_duration_seconds_bucket{database=\"app\",target=\"main\",le=\"10\"} 1"))
        XCTAssertTrue(lines.contains("pgsplit_unit_duration_seconds_bucket{database=\"app\",target=\"writeable\",le=\"10\"} 0"))
        XCTAssertTrue(lines.contains("pgsplit_unit_duration_seconds_bucket{database=\"app\",target=\"writeable\",le=\"+Inf\"} 1"))
        XCTAssertTrue(lines.contains("pgsplit_unit_duration_seconds_sum{database=\"app\",target=\"main\"} 0.00015"))
        XCTAssertTrue(lines.contains("pgsplit_unit_duration_seconds_count{database=\"app\",target=\"writeable\"} 1"))
        XCTAssertTrue(lines.contains("pgsplit_backend_up{database=\"app\",target=\"main\"} 1"))
        XCTAssertTrue(lines.contains("pgsplit_backend_in_recovery{database=\"app\",target=\"writeable\"} 0"))
        XCTAssertTrue(lines.contains("pgsplit_replica_lag_bytes{database=\"app\",target=\"main\"} 256"))
        XCTAssertTrue(lines.contains("pgsplit_replica_lag_seconds{database=\"app\",target=\"main\"} 0.25"))

        // Every sample belongs to a family announced by HELP and TYPE before it; names are valid.
        var announced = Set<String>()
        var helped = Set<String>()
        for line in lines {
            if line.hasPrefix("# HELP ") { helped.insert(String(line.split(separator: " ")[2])) ; continue }
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                XCTAssertEqual(parts.count, 4, line)
                XCTAssertTrue(["counter", "gauge", "histogram"].contains(parts[3]), line)
                XCTAssertTrue(helped.contains(String(parts[2])), "TYPE without HELP: \(line)")
                announced.insert(String(parts[2]))
                continue
            }
            let name = String(line.prefix(while: { $0 != "{" && $0 != " " }))
            XCTAssertTrue(name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" }, line)
            let family = ["_bucket", "_sum", "_count"].reduce(name) { name, suffix in
                announced.contains(name) ? name : (name.hasSuffix(suffix) ? String(name.dropLast(suffix.count)) : name)
            }
            XCTAssertTrue(announced.contains(family), "sample before its TYPE: \(line)")
            XCTAssertNotNil(Double(line.split(separator: " ").last!), line)
        }
        // Cumulative buckets never decrease.
        var previous: Int64 = -1
        for line in lines where line.hasPrefix("pgsplit_unit_duration_seconds_bucket{database=\"app\",target=\"main\"") {
            let value = Int64(line.split(separator: " ").last!)!
            XCTAssertGreaterThanOrEqual(value, previous)
            previous = value
        }
    }

    func testLabelEscapingAndSecondsText() {
        XCTAssertEqual(PrometheusWriter.escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd")
        XCTAssertEqual(PrometheusWriter.seconds(microseconds: 50), "0.00005")
        XCTAssertEqual(PrometheusWriter.seconds(microseconds: 2_000_000), "2")
        XCTAssertEqual(PrometheusWriter.seconds(microseconds: 1_500_000), "1.5")
    }

    // MARK: Health board and read-your-writes

    func testLSNParsing() {
        XCTAssertEqual(LSN(text: "16/B374D848")?.value, 0x16_B374_D848)
        XCTAssertEqual(LSN(text: "16/B374D848")?.description, "16/B374D848")
        XCTAssertEqual(LSN(text: "0/0")?.value, 0)
        XCTAssertNil(LSN(text: "16B374D848"))
        XCTAssertNil(LSN(text: "x/1"))
        XCTAssertNil(LSN(text: "1/123456789"))
        XCTAssertEqual(LSN(0x1_0000_0010).bytes(after: LSN(0xFFFF_FFF0)), 0x20)
        XCTAssertEqual(LSN(5).bytes(after: LSN(9)), 0)
    }

    func testBoardReportsEachChangeOnce() {
        let board = HealthBoard(database: "app", mainAddress: "m:5433/app", writeableAddress: "w:5432/app")
        XCTAssertTrue(board.snapshot.mainUsable(maxLag: .seconds(1)), "unchecked main is given the benefit of the doubt")
        var events = board.record(.main, .answered(inRecovery: true, position: LSN(100), replayDelay: 0), sequence: board.beginPoll())
        XCTAssertEqual(events, [])
        events = board.record(.main, .unreachable("connection refused"), sequence: board.beginPoll())
        XCTAssertEqual(events.map(\.kind), [.down])
        XCTAssertEqual(events.first?.description, "database \"app\": main backend m:5433/app is down: connection refused")
        XCTAssertEqual(board.record(.main, .unreachable("connection refused"), sequence: board.beginPoll()), [])
        XCTAssertFalse(board.snapshot.mainUsable(maxLag: nil))
        events = board.record(.main, .answered(inRecovery: true, position: LSN(200), replayDelay: 5), sequence: board.beginPoll())
        XCTAssertEqual(events.map(\.kind), [.up])
        XCTAssertTrue(board.snapshot.mainUsable(maxLag: nil))
        XCTAssertFalse(board.snapshot.mainUsable(maxLag: .seconds(2)))
        XCTAssertTrue(board.snapshot.mainUsable(maxLag: .seconds(10)))

        events = board.record(.writeable, .answered(inRecovery: true, position: LSN(300), replayDelay: 0), sequence: board.beginPoll())
        XCTAssertEqual(events.map(\.kind), [.writeableInRecovery])
        XCTAssertTrue(events[0].isWarning)
        XCTAssertEqual(board.record(.writeable, .answered(inRecovery: true, position: LSN(300), replayDelay: 0), sequence: board.beginPoll()), [])
        events = board.record(.writeable, .answered(inRecovery: false, position: LSN(300), replayDelay: nil), sequence: board.beginPoll())
        XCTAssertEqual(events.map(\.kind), [.writeableWritable])
        XCTAssertEqual(board.snapshot.lagBytes, 100)
        XCTAssertEqual(board.snapshot.writeableLSN, LSN(300))
        XCTAssertEqual(board.snapshot.mainReplayLSN, LSN(200))
    }

    /// A main that was a standby and leaves recovery (promoted) while writeable is up no longer follows
    /// it: reads there would miss the session's own writes and everyone's after. It takes no reads until
    /// it is a standby again — unless writeable is down, when it is all there is.
    func testAPromotedMainServesNoReadsWhileWriteableIsUp() {
        let board = HealthBoard(database: "app", mainAddress: "m", writeableAddress: "w")
        board.record(.writeable, .answered(inRecovery: false, position: LSN(1000), replayDelay: nil), sequence: board.beginPoll())
        board.record(.main, .answered(inRecovery: true, position: LSN(1000), replayDelay: 0), sequence: board.beginPoll())
        XCTAssertTrue(board.snapshot.mainUsable(maxLag: nil))
        var events = board.record(.main, .answered(inRecovery: false, position: LSN(1200), replayDelay: nil), sequence: board.beginPoll())
        XCTAssertEqual(events.map(\.kind), [.mainLeftRecovery])
        XCTAssertTrue(events[0].isWarning)
        XCTAssertFalse(board.snapshot.mainUsable(maxLag: nil))
        XCTAssertEqual(board.record(.main, .answered(inRecovery: false, position: LSN(1300), replayDelay: nil), sequence: board.beginPoll()), [])
        // A failed check does not forget it.
        board.record(.main, .unreachable("restarting"), sequence: board.beginPoll())
        board.record(.main, .answered(inRecovery: false, position: LSN(1300), replayDelay: nil), sequence: board.beginPoll())
        XCTAssertFalse(board.snapshot.mainUsable(maxLag: nil))
        XCTAssertTrue(board.snapshot.main.leftRecovery)
        // Writeable down: the promoted main is the only server left to read from.
        board.record(.writeable, .unreachable("connection refused"), sequence: board.beginPoll())
        XCTAssertTrue(board.snapshot.mainUsable(maxLag: nil))
        board.record(.writeable, .answered(inRecovery: false, position: LSN(1400), replayDelay: nil), sequence: board.beginPoll())
        XCTAssertFalse(board.snapshot.mainUsable(maxLag: nil))
        // Rebuilt as a standby of writeable: reads go back to it.
        events = board.record(.main, .answered(inRecovery: true, position: LSN(1400), replayDelay: 0), sequence: board.beginPoll())
        XCTAssertEqual(events.map(\.kind), [.mainInRecoveryAgain])
        XCTAssertTrue(board.snapshot.mainUsable(maxLag: nil))
        XCTAssertFalse(board.snapshot.main.leftRecovery)
    }

    /// A main that is a primary from the start (main and writeable the same server, main with a
    /// read-only user) is configured that way: it keeps serving reads.
    func testAMainThatWasNeverAStandbyServesReads() {
        let board = HealthBoard(database: "app", mainAddress: "m", writeableAddress: "w")
        board.record(.writeable, .answered(inRecovery: false, position: LSN(1000), replayDelay: nil), sequence: board.beginPoll())
        let events = board.record(.main, .answered(inRecovery: false, position: LSN(1000), replayDelay: nil), sequence: board.beginPoll())
        XCTAssertEqual(events.map(\.kind), [.mainNotInRecovery])
        XCTAssertFalse(events[0].isWarning)
        XCTAssertTrue(board.snapshot.mainUsable(maxLag: nil))
    }

    func testReadYourWritesWaitsForAWriteablePollAfterTheCommitAndForMainToReplayIt() {
        let board = HealthBoard(database: "app", mainAddress: "m", writeableAddress: "w")
        board.record(.writeable, .answered(inRecovery: false, position: LSN(1000), replayDelay: nil), sequence: board.beginPoll())
        board.record(.main, .answered(inRecovery: true, position: LSN(1000), replayDelay: 0), sequence: board.beginPoll())

        var gate = ReadYourWritesGate()
        XCTAssertTrue(gate.mainIsCaughtUp(board.snapshot))
        gate.wrote(board)  // the commit
        // No writeable poll has started since: main's 1000 proves nothing.
        XCTAssertFalse(gate.mainIsCaughtUp(board.snapshot))
        let afterCommit = board.beginPoll()
        // A poll that started earlier but answers now does not count either.
        XCTAssertFalse(gate.mainIsCaughtUp(board.snapshot))
        board.record(.writeable, .answered(inRecovery: false, position: LSN(1500), replayDelay: nil), sequence: afterCommit)
        XCTAssertFalse(gate.mainIsCaughtUp(board.snapshot))
        XCTAssertEqual(gate.target, LSN(1500))
        // Others keep writing: later writeable positions must not move this session's target.
        board.record(.writeable, .answered(inRecovery: false, position: LSN(9000), replayDelay: nil), sequence: board.beginPoll())
        board.record(.main, .answered(inRecovery: true, position: LSN(1499), replayDelay: 0.1), sequence: board.beginPoll())
        XCTAssertFalse(gate.mainIsCaughtUp(board.snapshot))
        board.record(.main, .answered(inRecovery: true, position: LSN(1500), replayDelay: 0.1), sequence: board.beginPoll())
        XCTAssertTrue(gate.mainIsCaughtUp(board.snapshot))
        XCTAssertFalse(gate.isWaiting)

        // A fresh gate resolves its target from history even when it reads late.
        var late = ReadYourWritesGate()
        late.wrote(board)
        board.record(.writeable, .answered(inRecovery: false, position: LSN(9100), replayDelay: nil), sequence: board.beginPoll())
        board.record(.writeable, .answered(inRecovery: false, position: LSN(9900), replayDelay: nil), sequence: board.beginPoll())
        board.record(.main, .answered(inRecovery: true, position: LSN(9200), replayDelay: 0), sequence: board.beginPoll())
        XCTAssertTrue(late.mainIsCaughtUp(board.snapshot))
    }

    func testReadYourWritesWithoutAStandby() {
        let board = HealthBoard(database: "app", mainAddress: "m", writeableAddress: nil)
        var gate = ReadYourWritesGate()
        gate.wrote(board)
        XCTAssertTrue(gate.mainIsCaughtUp(board.snapshot))
    }
}
