import Foundation
import PprofCodec
import TestSupport
import Testing

@Suite struct DecoderTests {
    @Test func decodesHandBuiltProfile() throws {
        let p = try PprofDecoder().decode(ProtoBytes.profile(sampleCount: 2, depth: 3, labels: 1))
        #expect(p.sampleCount == 2)
        #expect(Array(p.stack(1)) == [0, 0, 0])
        #expect(p.values == [10, 10])
        #expect(p.string(p.sampleTypes[0].type) == "cpu")
        #expect(p.labels(0).map { p.string($0.key) + "=" + p.string($0.str) } == ["k=v"])
        #expect(p.lines(of: 0).map { p.string(p.functions[Int($0.functionIndex)].name) } == ["main", "main"])
        let facts = ProfileFacts(p)
        #expect(facts.top == [ProfileFacts.TopRow(name: "main", flat: 20, cum: 20)])
    }

    @Test func namesEachFault() throws {
        func error(_ bytes: [UInt8], _ limits: PprofLimits = .default) -> PprofError? {
            do {
                _ = try PprofDecoder(limits: limits).decode(bytes)
                return nil
            } catch { return error }
        }
        #expect(error(ProtoBytes.profile(lineFunctionID: 0))?.message == "location 7: line 2 references function 0 (reserved)")
        #expect(error(ProtoBytes.profile(lineFunctionID: 9))?.message == "location 7: line 2 references unknown function 9")
        #expect(error(ProtoBytes.profile(values: 2))?.message == "sample 0 has 2 values, but the profile has 1 sample types")
        #expect(error([])?.kind == .empty)
        // A location id 0 and duplicate ids.
        #expect(error(ProtoBytes.profile(locationID: 0))?.message.contains("reserved") == true)
        var dup = ProtoBytes.profile()
        dup += ProtoBytes.build { $0.message(5, ProtoBytes.build { $0.field(1, 1) }) }.bytes
        #expect(error(dup)?.message == "multiple functions with the same id 1")
        // A string index outside the table.
        var badString = ProtoBytes.profile()
        badString += ProtoBytes.build { $0.field(14, 99) }.bytes
        #expect(error(badString)?.message.contains("string 99") == true)
        // A location that names a mapping the profile does not have.
        var badMapping = ProtoBytes.profile()
        badMapping +=
            ProtoBytes.build {
                $0.message(
                    4,
                    ProtoBytes.build {
                        $0.field(1, 8)
                        $0.field(2, 3)
                    })
            }.bytes
        #expect(error(badMapping)?.message == "location 8 references unknown mapping 3")
        // Unknown wire types, absurd lengths, over-long and truncated varints.
        #expect(error([0xa3, 0x01])?.message.contains("unknown wire type 3") == true)  // field 20
        #expect(error([0xa7, 0x01])?.message.contains("unknown wire type 7") == true)
        #expect(error([0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f])?.message.contains("exceeds the remaining") == true)
        #expect(error([0x48] + Array(repeating: 0xff, count: 10) + [0x01])?.message.contains("longer than 10 bytes") == true)
        #expect(error([0x48, 0xff, 0xff])?.message.contains("truncated varint") == true)
        #expect(error([0x48, 0x01])?.message.contains("missing string table") == true)
        // A known field with the wrong wire type.
        #expect(error([0x10, 0x01])?.message.contains("sample (field 2) has wire type 0") == true)
        // Limits.
        var limits = PprofLimits.default
        limits.maxSamples = 3
        #expect(error(ProtoBytes.profile(sampleCount: 4), limits)?.kind == .limit)
        limits = .default
        limits.maxLabelsPerSample = 2
        #expect(error(ProtoBytes.profile(labels: 3), limits)?.kind == .limit)
        #expect(error(ProtoBytes.profile(labels: 2), limits) == nil)
    }

    @Test func truncatesDeepStacksAndLongSymbols() throws {
        var limits = PprofLimits.default
        limits.maxStackDepth = 4
        limits.maxSymbolLength = 11  // "nanoseconds" fits exactly
        let long = String(repeating: "é", count: 20)  // 40 bytes of 2-byte characters
        let p = try PprofDecoder(limits: limits).decode(ProtoBytes.profile(sampleCount: 2, depth: 9, functionName: long))
        #expect(p.truncatedStacks == 2)
        #expect(p.stack(0).count == 4 && p.stack(1).count == 4)
        #expect(p.truncatedStrings == 1)
        // 11 bytes would split the 6th "é": cut back to 10.
        #expect(p.string(p.functions[0].name) == String(repeating: "é", count: 5))
    }

    @Test func packedAndUnpackedRepeatedScalarsAgree() throws {
        let unpacked = try PprofDecoder().decode(ProtoBytes.profile(depth: 3))
        let packed = try PprofDecoder().decode(PprofEncoder.encode(unpacked))
        #expect(Array(packed.stack(0)) == Array(unpacked.stack(0)))
        #expect(packed.values == unpacked.values)
    }

    @Test func gzipBombFailsFast() throws {
        // 1 GiB of zeros, compressed in 1 MiB steps so the test never holds it.
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        let gz = GzipStream(level: 9)
        zeros.withUnsafeBytes { for _ in 0..<1024 { gz.write($0) } }
        let bomb = gz.finish()
        #expect(bomb.count < 4 << 20)
        let start = ContinuousClock.now
        #expect {
            _ = try PprofDecoder().decode(bomb)
        } throws: { ($0 as? PprofError)?.kind == .limit }
        let elapsed = ContinuousClock.now - start
        // The cap, not the clock, stops the bomb; the bound only catches a decoder that inflates it all
        // (tests share 2 cores, so it is generous).
        #expect(elapsed < .seconds(30), "bomb took \(elapsed) to reject")
    }

    @Test func concatenatedGzipMembersAreOneProfile() throws {
        let raw = ProtoBytes.profile(depth: 2)
        let half = raw.count / 2
        let twoMembers = Gzip.compress(Array(raw[..<half])) + Gzip.compress(Array(raw[half...]))
        let p = try PprofDecoder().decode(twoMembers)
        #expect(p.sampleCount == 1 && p.stack(0).count == 2)
    }
}

@Suite(.requires(.fixtures))
struct FixtureCodecTests {
    static func accepted() -> [String] {
        let files = (try? Fixtures.expected()) ?? [:]
        return Fixtures.names().filter { ((files[$0] as? [String: Any])?["accepted"] as? Bool) == true }
    }

    @Test(arguments: accepted())
    func roundTrip(name: String) throws {
        let p = try PprofDecoder().decode(Fixtures.bytes(name))
        for bytes in [PprofEncoder.encode(p), PprofEncoder.encodeGzip(p)] {
            let q = try PprofDecoder().decode(bytes)
            #expect(ProfileFacts(p) == ProfileFacts(q), "\(name) facts")
            #expect(p.sampleLocations == q.sampleLocations && p.sampleLocationStarts == q.sampleLocationStarts, "\(name) stacks")
            #expect(p.values == q.values && p.labels == q.labels && p.sampleLabelStarts == q.sampleLabelStarts, "\(name) values/labels")
            #expect(p.locations == q.locations && p.lines == q.lines, "\(name) locations")
            #expect(p.functions == q.functions && p.mappings == q.mappings, "\(name) functions/mappings")
            #expect(p.stringCount == q.stringCount)
            #expect((0..<p.stringCount).allSatisfy { p.stringBytes(Int32($0)).elementsEqual(q.stringBytes(Int32($0))) }, "\(name) strings")
            #expect(
                p.timeNanos == q.timeNanos && p.durationNanos == q.durationNanos && p.period == q.period && p.periodType == q.periodType)
            #expect(p.comments == q.comments && p.defaultSampleType == q.defaultSampleType && p.dropFrames == q.dropFrames)
        }
    }

    /// Every prefix of a real profile (decompressed) is handled: no crash, and only prefixes that end on
    /// a field boundary after the whole string table can decode, and then they hold every sample.
    @Test func truncatedInputsGiveErrors() throws {
        let name = try #require(Fixtures.names().first { $0 == "go_cpu_report_sample.pb.gz" } ?? Self.accepted().first)
        let full = try PprofDecoder().decode(Fixtures.bytes(name))
        let raw = PprofEncoder.encode(full)
        var decodedPrefixes = 0
        for n in 0..<raw.count {
            do {
                let p = try PprofDecoder().decode(Array(raw[..<n]))
                decodedPrefixes += 1
                #expect(p.sampleCount == full.sampleCount, "prefix \(n) decoded with \(p.sampleCount) samples")
            } catch {
                #expect(!error.message.isEmpty)
            }
        }
        #expect(decodedPrefixes < 64, "\(decodedPrefixes) of \(raw.count) prefixes decoded")
        // Truncated gzip: every 97th prefix of the compressed file.
        let gz = try Fixtures.bytes(name)
        for n in stride(from: 0, to: gz.count, by: 97) {
            #expect(throws: PprofError.self) { _ = try PprofDecoder().decode(Array(gz[..<n])) }
        }
    }

    /// Rejected fixtures name the fault in one line; dotnet's function id 0 in pprof's words.
    @Test func rejectionsNameTheFault() throws {
        try #require(Fixtures.names().contains("dotnet_3_function_id0.pb"), "dotnet_3_function_id0.pb is not in \(Fixtures.dir.path)")
        #expect {
            _ = try PprofDecoder().decode(Fixtures.bytes("dotnet_3_function_id0.pb"))
        } throws: { ($0 as? PprofError)?.message == "found function with reserved id 0" }
    }
}
