/// A small read-only hash table from names (byte strings) to a one-byte value, probed without hashing
/// through `Hasher` and without building a `String`: lookups run once per function call in a query.
struct NameTable: Sendable {
    private var hashes: [UInt64]
    private var names: [[UInt8]]
    private var values: [UInt8]
    private let mask: Int

    var isEmpty: Bool { count == 0 }
    private var count = 0

    /// Values of repeated names are OR-ed together.
    init(_ entries: [(name: [UInt8], value: UInt8)]) {
        var capacity = 8
        while capacity < entries.count * 2 { capacity *= 2 }
        hashes = Array(repeating: 0, count: capacity)
        names = Array(repeating: [], count: capacity)
        values = Array(repeating: 0, count: capacity)
        mask = capacity - 1
        for entry in entries { insert(entry.name, entry.value) }
    }

    private mutating func insert(_ name: [UInt8], _ value: UInt8) {
        let hash = name.withUnsafeBufferPointer { Self.hash($0) }
        var slot = Int(truncatingIfNeeded: hash) & mask
        while hashes[slot] != 0 {
            if hashes[slot] == hash && names[slot] == name {
                values[slot] |= value
                return
            }
            slot = (slot + 1) & mask
        }
        hashes[slot] = hash
        names[slot] = name
        values[slot] = value
        count += 1
    }

    /// The value stored for `name`, or 0.
    func value(for name: UnsafeBufferPointer<UInt8>) -> UInt8 {
        if count == 0 { return 0 }
        let hash = Self.hash(name)
        var slot = Int(truncatingIfNeeded: hash) & mask
        while hashes[slot] != 0 {
            if hashes[slot] == hash && names[slot].elementsEqual(name) { return values[slot] }
            slot = (slot + 1) & mask
        }
        return 0
    }

    /// FNV-1a, never 0 (0 marks an empty slot).
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h &*= 0x0000_0100_0000_01B3
        }
        return h | 1
    }
}
