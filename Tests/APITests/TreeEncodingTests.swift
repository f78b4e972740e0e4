import Foundation
import Query
import Testing

@testable import QueryAPI

/// Pyroscope's `PROFILE_FORMAT_TREE` bytes, read back by a decoder written here from the format's
/// definition: depth first from a virtual root, each node `uvarint(len(name)) name uvarint(self)
/// uvarint(children)`.
@Suite("Tree encoding")
struct TreeEncodingTests {
    struct Node: Equatable {
        var name: String
        var selfValue: UInt64
        var children: [Node]
        var total: UInt64 { selfValue + children.reduce(0) { $0 + $1.total } }
    }

    static func decode(_ data: Data) throws -> Node {
        let bytes = [UInt8](data)
        var i = 0
        func uvarint() throws -> UInt64 {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard i < bytes.count else { throw DecodeError() }
                let b = bytes[i]
                i += 1
                v |= UInt64(b & 0x7f) << shift
                if b < 0x80 { return v }
                shift += 7
            }
        }
        func node() throws -> Node {
            let length = Int(try uvarint())
            guard i + length <= bytes.count else { throw DecodeError() }
            let name = String(decoding: bytes[i..<i + length], as: UTF8.self)
            i += length
            let selfValue = try uvarint()
            let count = try uvarint()
            return Node(name: name, selfValue: selfValue, children: try (0..<count).map { _ in try node() })
        }
        let root = try node()
        guard i == bytes.count else { throw DecodeError() }
        return root
    }

    struct DecodeError: Error {}

    static func tree(_ stacks: [([String], Int64)]) -> (StackTree, NameTable) {
        var names = NameTable()
        var tree = StackTree()
        for (frames, value) in stacks { tree.add(rootFirst: frames.map { names.intern($0) }, value: value) }
        return (tree, names)
    }

    @Test("every stack's value sits on its leaf, shared callers are one node, the root holds the total")
    func shape() throws {
        let (tree, names) = Self.tree([
            (["main", "work", "sort"], 70), (["main", "work", "hash"], 20),
            (["main", "gc"], 9), (["main"], 1),
        ])
        let root = try Self.decode(TreeEncoding.encode(tree, names: names, maxNodes: 1000))
        #expect(root.name == "")
        #expect(root.total == 100)
        let main = try #require(root.children.first)
        #expect(root.children.count == 1 && main.name == "main" && main.selfValue == 1)
        let work = try #require(main.children.first { $0.name == "work" })
        #expect(Set(work.children.map(\.name)) == ["sort", "hash"])
        #expect(work.children.first { $0.name == "sort" }?.selfValue == 70)
        #expect(work.total == 90)
        #expect(main.children.first { $0.name == "gc" }?.selfValue == 9)
    }

    @Test("max_nodes folds the smallest nodes into \"other\" and keeps the total")
    func maxNodes() throws {
        let stacks = (0..<50).map { (["main", "f\($0)"], Int64($0 + 1)) }
        let (tree, names) = Self.tree(stacks)
        let full = try Self.decode(TreeEncoding.encode(tree, names: names, maxNodes: 1000))
        let cut = try Self.decode(TreeEncoding.encode(tree, names: names, maxNodes: 10))
        #expect(full.total == UInt64((1...50).reduce(0, +)))
        #expect(cut.total == full.total)
        func count(_ n: Node) -> Int { 1 + n.children.reduce(0) { $0 + count($1) } }
        #expect(count(cut) < count(full))
        #expect(cut.children.first?.children.contains { $0.name == "other" } == true)
        // The largest function survives the cut with its own value.
        #expect(cut.children.first?.children.first { $0.name == "f49" }?.selfValue == 50)
    }

    @Test("an empty tree is one empty root")
    func empty() throws {
        let root = try Self.decode(TreeEncoding.encode(StackTree(), names: NameTable(), maxNodes: 10))
        #expect(root == Node(name: "", selfValue: 0, children: []))
    }
}
