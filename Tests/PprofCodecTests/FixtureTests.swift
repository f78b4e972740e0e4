import Foundation
import PprofCodec
import TestSupport
import Testing

/// Every file in fixtures/pprof against the facts `go tool pprof` (and its parser) gave for it.
@Suite(.requires(.fixtures))
struct FixtureTests {
    @Test(arguments: Fixtures.names())
    func matchesOracle(name: String) throws {
        let files = try Fixtures.expected()
        let entry = try #require(files[name] as? [String: Any], "\(name) has no entry in EXPECTED.json")
        let accepted = try #require(entry["accepted"] as? Bool)
        let bytes = try Fixtures.bytes(name)
        let decoded: Result<PprofProfile, PprofError>
        do { decoded = .success(try PprofDecoder().decode(bytes)) } catch { decoded = .failure(error) }

        guard accepted else {
            if case .success = decoded {
                Issue.record("\(name): accepted, but go tool pprof rejects it: \(entry["error"] ?? "")")
            }
            if case .failure(let e) = decoded {
                #expect(!e.message.isEmpty && !e.message.contains("\n"), "\(name): error must be one line")
            }
            return
        }
        let profile: PprofProfile
        switch decoded {
        case .success(let p): profile = p
        case .failure(let e):
            Issue.record("\(name): rejected (\(e)), but go tool pprof accepts it")
            return
        }
        let level = try #require(entry["file_level"] as? [String: Any])
        let facts = ProfileFacts(profile)

        #expect(facts.numSamples == (level["num_samples"] as? Int), "\(name) num_samples")
        #expect(facts.numLocations == (level["num_locations"] as? Int), "\(name) num_locations")
        #expect(facts.numFunctions == (level["num_functions"] as? Int), "\(name) num_functions")
        #expect(facts.numMappings == (level["num_mappings"] as? Int), "\(name) num_mappings")
        #expect(facts.timeNanos == level["time_nanos"].int64, "\(name) time_nanos")
        #expect(facts.durationNanos == level["duration_nanos"].int64, "\(name) duration_nanos")
        #expect(facts.period == level["period"].int64, "\(name) period")

        let types = (level["sample_types"] as? [[String: Any]] ?? []).map {
            ProfileFacts.ValueType(type: $0["type"] as! String, unit: $0["unit"] as! String)
        }
        #expect(facts.sampleTypes == types, "\(name) sample types")
        let totals = (level["totals"] as? [Any] ?? []).map { ($0 as Any?).int64 }
        #expect(facts.totals.map(\.total) == totals, "\(name) totals")
        #expect(facts.defaultSampleIndex == entry["default_sample_index"] as? Int, "\(name) default sample index")

        let want = (entry["top5_flat"] as? [[String: Any]] ?? []).map {
            ProfileFacts.TopRow(
                name: $0["name"] as! String, flat: ($0["flat"] as Any?).int64 ?? .min,
                cum: ($0["cum"] as Any?).int64 ?? .min)
        }
        #expect(facts.top == want, "\(name) top rows")
        if let nodes = entry["function_nodes"] as? Int {
            #expect(facts.topNodeCount == nodes, "\(name) function node count")
        }
    }

    @Test func everyFixtureHasAnExpectation() throws {
        let files = try Fixtures.expected()
        let names = Fixtures.names()
        #expect(names.count >= 40)
        for n in names { #expect(files[n] != nil, "\(n) is not described in EXPECTED.json") }
    }
}
