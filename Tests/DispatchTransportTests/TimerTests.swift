import DispatchTransport
import Foundation
import XCTest

final class TimerTests: XCTestCase {
    func testTimerFiresOnItsLoop() {
        let loop = EventLoop()
        let fired = expectation(description: "timer fired")
        loop.execute {
            loop.scheduleTimer(after: 0.01) {
                XCTAssertTrue(loop.inEventLoop)
                fired.fulfill()
            }
        }
        wait(for: [fired], timeout: hangGuard)
    }

    func testCancelledTimerDoesNotFire() {
        let loop = EventLoop()
        let ranCancelled = Shared<Bool>(false)
        let later = expectation(description: "later timer fired")
        loop.execute {
            let doomed = loop.scheduleTimer(after: 0.01) { ranCancelled.update { $0 = true } }
            doomed.cancel()
            doomed.cancel()
            loop.scheduleTimer(after: 0.2) { later.fulfill() }
        }
        wait(for: [later], timeout: hangGuard)
        XCTAssertFalse(ranCancelled.value)
    }

    func testCancellingAfterFiringIsHarmless() {
        let loop = EventLoop()
        let fired = expectation(description: "fired")
        let handle = Shared<TimerHandle?>(nil)
        loop.execute {
            handle.update { $0 = loop.scheduleTimer(after: 0) { fired.fulfill() } }
        }
        wait(for: [fired], timeout: hangGuard)
        loop.queue.sync { handle.value?.cancel() }
    }

    /// Timers share one Dispatch timer per loop: a timer scheduled later with an earlier deadline
    /// still fires first, and one survivor among a thousand cancelled timers (enough to compact
    /// the heap) fires.
    func testTimersFireInDeadlineOrderAndSurviveCompaction() {
        let loop = EventLoop()
        let order = Shared<[String]>([])
        let done = expectation(description: "all fired")
        loop.execute {
            loop.scheduleTimer(after: 0.3) {
                order.update { $0.append("late") }
                done.fulfill()
            }
            loop.scheduleTimer(after: 0.05) { order.update { $0.append("early") } }
            var doomed: [TimerHandle] = []
            for i in 0..<1000 {
                doomed.append(loop.scheduleTimer(after: 0.1 + Double(i) / 10_000) { order.update { $0.append("cancelled") } })
            }
            loop.scheduleTimer(after: 0.15) { order.update { $0.append("survivor") } }
            doomed.forEach { $0.cancel() }
            // Scheduling after the cancels compacts the heap.
            loop.scheduleTimer(after: 0.2) { order.update { $0.append("after") } }
        }
        wait(for: [done], timeout: hangGuard)
        XCTAssertEqual(order.value, ["early", "survivor", "after", "late"])
    }

    func testCancelFromAnotherThreadTakesEffectOnTheLoop() {
        let loop = EventLoop()
        let ran = Shared<Bool>(false)
        let handle = Shared<TimerHandle?>(nil)
        loop.queue.sync { handle.update { $0 = loop.scheduleTimer(after: 0.2) { ran.update { $0 = true } } } }
        handle.value?.cancel()
        let later = expectation(description: "later")
        loop.execute { loop.scheduleTimer(after: 0.4) { later.fulfill() } }
        wait(for: [later], timeout: hangGuard)
        XCTAssertFalse(ran.value)
    }

    func testGroupHandsOutLoopsRoundRobin() {
        let group = EventLoopGroup(loopCount: 3)
        let picks = (0..<6).map { _ in ObjectIdentifier(group.next()) }
        XCTAssertEqual(picks[0], picks[3])
        XCTAssertEqual(picks[1], picks[4])
        XCTAssertEqual(Set(picks).count, 3)
        XCTAssertGreaterThanOrEqual(EventLoopGroup(loopCount: EventLoopGroup.coreCount).loops.count, 1)
    }

    func testInEventLoopTellsLoopsApart() {
        let group = EventLoopGroup(loopCount: 2)
        let (first, second) = (group.loops[0], group.loops[1])
        XCTAssertFalse(first.inEventLoop)
        first.queue.sync {
            XCTAssertTrue(first.inEventLoop)
            XCTAssertFalse(second.inEventLoop)
        }
    }
}
