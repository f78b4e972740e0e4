import Foundation
import LoadGen
import PprofCodec
import TestSupport
import Testing

/// The pool every run sends from: real fixtures, perturbed, still valid pprof with the totals it claims.
@Suite struct PayloadFactoryTests {
    static func pool(kinds: [ProfileKind] = ProfileKind.allCases, variants: Int = 4, seed: UInt64 = 7) throws -> PayloadPool {
        let dir = TestEnvironment.fixturesDir
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("pprof").path) else {
            throw LoadGenError("the shared pprof fixtures are not at \(dir.path)/pprof (set KILN_FIXTURES_DIR)")
        }
        return try PayloadFactory(variantsPerFixture: variants, seed: seed).makePool(kinds: kinds, fixturesDir: dir)
    }

    @Test(.requires(.fixtures)) func everyVariantDecodesWithTheTotalsItClaims() throws {
        let pool = try Self.pool()
        #expect(pool.missingFixtures.isEmpty, "fixtures named by ProfileKind are missing: \(pool.missingFixtures)")
        for kind in ProfileKind.allCases { #expect(pool.byKindAndFixture[kind]?.isEmpty == false, "no variants for \(kind)") }
        for variant in pool.variants {
            #expect(variant.bytes.prefix(2).elementsEqual([0x1F, 0x8B]), "\(variant.fixture) variant is not gzipped")
            let p = try PprofDecoder().decode(variant.bytes)
            #expect(p.sampleCount == variant.sampleCount)
            #expect(p.sampleCount >= 1)
            #expect(p.timeNanos == 0, "the send sets the time, not the payload")
            var sums: [String: Int64] = [:]
            for s in 0..<p.sampleCount {
                #expect(!p.stack(s).isEmpty, "\(variant.fixture): a variant keeps only samples with a stack")
                for (t, st) in p.sampleTypes.enumerated() {
                    sums["\(p.string(st.type))/\(p.string(st.unit))", default: 0] += p.values(s)[p.values(s).startIndex + t]
                }
            }
            #expect(sums == variant.totals, "\(variant.fixture)")
        }
    }

    @Test(.requires(.fixtures)) func variantsOfOneFixtureDiffer() throws {
        let pool = try Self.pool(kinds: [.cpu, .heap], variants: 6)
        for fixtures in pool.byKindAndFixture.values {
            for indices in fixtures {
                let variants = indices.map { pool.variants[$0] }
                let original = try PprofDecoder().decode(
                    [UInt8](
                        FileManager.default.contents(
                            atPath: PayloadFactory.pprofDirectory(TestEnvironment.fixturesDir).appendingPathComponent(variants[0].fixture)
                                .path)!))
                #expect(variants.allSatisfy { $0.sampleCount <= original.sampleCount })
                #expect(Set(variants.map(\.bytes)).count == variants.count, "\(variants[0].fixture): identical variants")
                if original.sampleCount >= 20 {
                    // Random subsets (50–100 %) of a profile with many samples differ in size.
                    #expect(Set(variants.map(\.sampleCount)).count > 1, "\(variants[0].fixture): every variant kept the same samples")
                }
            }
        }
    }

    @Test(.requires(.fixtures)) func theSameSeedBuildsTheSamePool() throws {
        let a = try Self.pool(kinds: [.mutex], seed: 3)
        let b = try Self.pool(kinds: [.mutex], seed: 3)
        let c = try Self.pool(kinds: [.mutex], seed: 4)
        #expect(a.variants.map(\.bytes) == b.variants.map(\.bytes))
        #expect(a.variants.map(\.bytes) != c.variants.map(\.bytes))
    }

    @Test func aMissingFixturesFolderIsNamed() throws {
        let dir = URL(fileURLWithPath: "/nonexistent-kiln-fixtures-\(UUID().uuidString)")
        #expect { try PayloadFactory().makePool(kinds: [.cpu], fixturesDir: dir) } throws: { error in
            "\(error)".contains(dir.path) && "\(error)".contains("--fixtures")
        }
    }

    @Test(.requires(.fixtures)) func theFleetSpreadsLabelsAndVisitsEveryTarget() throws {
        let pool = try Self.pool(kinds: [.cpu, .goroutine], variants: 2)
        let fleet = Fleet(services: 5, instances: 3, kinds: [.cpu, .goroutine], pool: pool)
        #expect(fleet.targets.count == 30)
        #expect(Set(fleet.targets.map(\.service)).count == 5)
        #expect(Set(fleet.targets.map { $0.labels.first { $0.0 == "region" }!.1 }).count == Fleet.regions.count)
        #expect(Set(fleet.targets.map { $0.labelSet }).count == 15, "cpu and goroutine of one instance share labels; instances differ")
        let picked = (0..<30).map { fleet.pick($0).target }
        #expect(Set(picked).count == 30, "one round of sends visits every target once")
        for i in 0..<60 {
            let (t, v) = fleet.pick(i)
            #expect(fleet.targets[t].variants.contains(v))
            #expect(pool.variants[v].kind == fleet.targets[t].kind)
        }
        let windows = (0..<50).map { Fleet.window(index: $0, nowNanos: 1_000_000_000_000_000_000) }
        #expect(Set(windows.map(\.end)).count > 10, "profile times vary")
        #expect(windows.allSatisfy { $0.end - $0.start == 10_000_000_000 && $0.end <= 1_000_000_000_000_000_000 })
    }
}
