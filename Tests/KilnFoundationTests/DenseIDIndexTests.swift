import KilnFoundation
import Testing

/// The id index compares keys on every hash match, so colliding hashes cost probes, never a wrong id.
struct DenseIDIndexTests {
    @Test func collidingHashesStillFindTheirOwnKeys() {
        var index = DenseIDIndex()
        var keys: [Int] = []
        // 3 hashes for 3,000 keys (so both the stored tag and the slot collide), past several growths.
        func hash(_ key: Int) -> UInt64 { UInt64(key % 3) &* 0x9E37_79B9_7F4A_7C15 }
        for key in stride(from: 0, to: 3_000, by: 1) {
            let (id, isNew) = index.lookUpOrAdd(hash: hash(key)) { keys[Int($0)] == key }
            #expect(isNew && Int(id) == keys.count)
            keys.append(key)
        }
        for key in [0, 1, 2, 1_499, 2_999] {
            let (id, isNew) = index.lookUpOrAdd(hash: hash(key)) { keys[Int($0)] == key }
            #expect(!isNew && keys[Int(id)] == key)
            #expect(index.find(hash: hash(key)) { keys[Int($0)] == key } == id)
        }
        #expect(index.find(hash: hash(3_000)) { keys[Int($0)] == 3_000 } == nil)
        #expect(index.count == 3_000)
    }
}
