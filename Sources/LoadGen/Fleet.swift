import Foundation
import ProfileModel

/// A synthetic fleet: `services` × `instances` × `kinds` profile streams (targets), each with the labels a
/// real deployment carries. A service draws all its profiles of one kind from one fixture (its own stack
/// mix); each send picks one of that fixture's variants.
public struct Fleet: Sendable {
    public struct Target: Sendable {
        public var service: String
        public var kind: ProfileKind
        /// Labels besides `service_name`, in the order written to `/ingest`'s `name`.
        public var labels: [(String, String)]
        /// Variant indices this target draws from.
        public var variants: [Int]
        /// `/ingest`'s `name` parameter, percent-encoded once.
        public var ingestName: String
        /// The envelope's labels for raw-topic sends (service_name included).
        public var labelSet: LabelSet
    }

    public static let regions = ["us-east-1", "eu-west-1", "ap-southeast-2"]
    public let targets: [Target]
    /// A fixed shuffle of target indices: consecutive sends go to different targets, every target equally often.
    let order: [Int]

    public init(services: Int, instances: Int, kinds: [ProfileKind], pool: PayloadPool, seed: UInt64 = 1) {
        var targets: [Target] = []
        for s in 0..<max(1, services) {
            let service = String(format: "loadgen-svc-%03d", s)
            for i in 0..<max(1, instances) {
                let labels = [
                    ("instance", "10.\(s / 250).\(s % 250).\(i + 10):6060"),
                    ("region", Self.regions[(s + i) % Self.regions.count]),
                    ("namespace", "team-\(s % 7)"),
                    ("env", "load"),
                ]
                for kind in kinds {
                    let fixtures = pool.byKindAndFixture[kind] ?? [[0]]
                    let variants = fixtures[s % fixtures.count]
                    targets.append(
                        Target(
                            service: service, kind: kind, labels: labels, variants: variants,
                            ingestName: Self.ingestName(service, labels),
                            labelSet: LabelSet([Label(LabelName.serviceName, service)] + labels.map { Label($0.0, $0.1) })))
                }
            }
        }
        self.targets = targets
        var rng = SplitMix64(seed: seed ^ 0x5EED)
        order = Array(targets.indices).shuffled(using: &rng)
    }

    /// The target and variant of send number `index` (a pure function, so workers share no generator).
    public func pick(_ index: Int) -> (target: Int, variant: Int) {
        let target = order[index % order.count]
        let variants = targets[target].variants
        let variant = variants[Int(SplitMix64.mix(UInt64(index)) % UInt64(variants.count))]
        return (target, variant)
    }

    /// Profile time of send `index`: now minus 0–10 s, as a fleet's profiles arrive with their own collection
    /// windows. Returns (start, end) in nanoseconds; windows are 10 s long.
    public static func window(index: Int, nowNanos: Int64) -> (start: Int64, end: Int64) {
        let back = Int64(SplitMix64.mix(UInt64(index) &+ 0xA11CE) % 10_000) * 1_000_000
        let end = nowNanos - back
        return (end - 10_000_000_000, end)
    }

    static func ingestName(_ service: String, _ labels: [(String, String)]) -> String {
        let text = service + "{" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
        return percentEncode(text)
    }

    static func percentEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
