/// Fixed latency buckets, log-spaced in a 1-2-5 series from 50 µs to 10 s (17 bounds, then +Inf):
/// readable `le` labels, and at most a factor 2.5 between neighbours.
public enum LatencyBuckets {
    /// Upper bounds in microseconds, ascending. A value lands in the first bucket whose bound is >= it.
    public static let boundsMicroseconds: [Int64] = [
        50, 100, 200, 500,
        1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
        1_000_000, 2_000_000, 5_000_000, 10_000_000,
    ]
    /// Buckets including the overflow (+Inf) one.
    public static var count: Int { boundsMicroseconds.count + 1 }

    @inline(__always)
    public static func index(microseconds: Int64) -> Int {
        // 17 comparisons at most; a binary search is not worth its branches here.
        var index = 0
        let bounds = boundsMicroseconds
        while index < bounds.count && microseconds > bounds[index] { index += 1 }
        return index
    }
}

/// A lock-free latency histogram: one atomic per bucket, plus the sum. Recording is two relaxed
/// atomic adds; reading takes a `HistogramSnapshot`.
public final class LatencyHistogram: Sendable {
    private let counters = AtomicCounters(count: LatencyBuckets.count + 1)
    private var sumIndex: Int { LatencyBuckets.count }

    public init() {}

    public func record(microseconds: Int64) {
        let value = max(0, microseconds)
        counters.add(LatencyBuckets.index(microseconds: value))
        counters.add(sumIndex, value)
    }

    public func record(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        record(microseconds: seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
    }

    public func snapshot() -> HistogramSnapshot {
        HistogramSnapshot(counts: (0..<LatencyBuckets.count).map { counters.load($0) },
                          sumMicroseconds: counters.load(sumIndex))
    }
}

/// The counts of a histogram at one moment (not cumulative), for percentiles and rendering.
public struct HistogramSnapshot: Sendable, Equatable {
    /// One count per bucket of `LatencyBuckets`, the last being the overflow bucket.
    public var counts: [Int64]
    public var sumMicroseconds: Int64

    public init(counts: [Int64], sumMicroseconds: Int64) {
        self.counts = counts
        self.sumMicroseconds = sumMicroseconds
    }

    public static var empty: HistogramSnapshot {
        HistogramSnapshot(counts: Array(repeating: 0, count: LatencyBuckets.count), sumMicroseconds: 0)
    }

    /// The number of observations (derived from the buckets, so it always matches them).
    public var count: Int64 { counts.reduce(0, +) }

    public static func + (a: HistogramSnapshot, b: HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot(counts: zip(a.counts, b.counts).map { $0 + $1 }, sumMicroseconds: a.sumMicroseconds + b.sumMicroseconds)
    }

    /// The estimated `q`-quantile (0...1) in microseconds, interpolating linearly inside the bucket
    /// it falls in (as Prometheus's histogram_quantile does); nil without observations. A quantile
    /// in the overflow bucket is reported as the highest bound.
    public func percentile(_ q: Double) -> Int64? {
        let total = count
        guard total > 0 else { return nil }
        let rank = max(0, min(1, q)) * Double(total)
        var cumulative: Int64 = 0
        let bounds = LatencyBuckets.boundsMicroseconds
        for (index, bucketCount) in counts.enumerated() where bucketCount > 0 {
            let before = cumulative
            cumulative += bucketCount
            guard Double(cumulative) >= rank else { continue }
            guard index < bounds.count else { return bounds[bounds.count - 1] }
            let lower = index == 0 ? 0 : Double(bounds[index - 1])
            let upper = Double(bounds[index])
            let fraction = (rank - Double(before)) / Double(bucketCount)
            return Int64((lower + (upper - lower) * fraction).rounded())
        }
        return bounds[bounds.count - 1]
    }
}
