import Foundation

/// Every profile block Alloy's `pyroscope.scrape` knows, plus `profile.custom "name"`.
public enum ProfileKind: String, Sendable, CaseIterable {
    case processCPU = "process_cpu"
    case memory
    case godeltaprofMemory = "godeltaprof_memory"
    case mutex
    case godeltaprofMutex = "godeltaprof_mutex"
    case block
    case godeltaprofBlock = "godeltaprof_block"
    case goroutine
    case fgprof
    case custom

    /// Alloy's defaults for the built-in blocks: (path, enabled, delta).
    var alloyDefaults: (path: String, enabled: Bool, delta: Bool) {
        switch self {
        case .processCPU: return ("/debug/pprof/profile", true, true)
        case .memory: return ("/debug/pprof/allocs", true, false)
        case .block: return ("/debug/pprof/block", true, false)
        case .goroutine: return ("/debug/pprof/goroutine", true, false)
        case .mutex: return ("/debug/pprof/mutex", true, false)
        case .fgprof: return ("/debug/fgprof", false, true)
        case .godeltaprofMemory: return ("/debug/pprof/delta_heap", false, false)
        case .godeltaprofMutex: return ("/debug/pprof/delta_mutex", false, false)
        case .godeltaprofBlock: return ("/debug/pprof/delta_block", false, false)
        case .custom: return ("", false, false)
        }
    }

    /// The series `__name__`: godeltaprof endpoints serve the same profile types as the plain ones.
    var seriesName: String {
        switch self {
        case .godeltaprofMemory: return "memory"
        case .godeltaprofMutex: return "mutex"
        case .godeltaprofBlock: return "block"
        default: return rawValue
        }
    }

    /// Whether the endpoint returns totals since process start (the normalizer must compute deltas).
    var isCumulative: Bool {
        switch self {
        case .memory, .mutex, .block: return true
        default: return false
        }
    }
}

/// One profile endpoint of a scrape job, after defaults and `path_prefix` are applied.
public struct ProfileEndpoint: Sendable, Equatable {
    public var kind: ProfileKind
    /// The block's name (`process_cpu`) or, for `profile.custom "x"`, its label.
    public var name: String
    public var path: String
    public var enabled: Bool
    /// Appends `?seconds=N` to the request (the target profiles for N seconds before answering).
    public var delta: Bool
    /// `__name__` of the published series.
    public var seriesName: String { kind == .custom ? name : kind.seriesName }
    public var cumulative: Bool { kind.isCumulative }
}

public struct BasicAuth: Sendable, Equatable {
    public var username: String
    public var password: String?
    public var passwordFile: String?

    public init(username: String, password: String? = nil, passwordFile: String? = nil) {
        self.username = username
        self.password = password
        self.passwordFile = passwordFile
    }
}

public struct TLSSettings: Sendable, Hashable {
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
    public var insecureSkipVerify: Bool = false
}

/// How requests of a job authenticate. Files are read at every scrape, so rotated secrets are picked up.
public struct ScrapeCredentials: Sendable, Equatable {
    public var basicAuth: BasicAuth?
    public var bearerToken: String?
    public var bearerTokenFile: String?
    public static let none = ScrapeCredentials()

    public init(basicAuth: BasicAuth? = nil, bearerToken: String? = nil, bearerTokenFile: String? = nil) {
        self.basicAuth = basicAuth
        self.bearerToken = bearerToken
        self.bearerTokenFile = bearerTokenFile
    }
}

/// Where a job's (or a relabel component's) targets come from.
public indirect enum TargetSource: Sendable {
    case literal([LabelSet])
    /// The targets a discovery component exports, by its id ("discovery.KIND.LABEL").
    case discovered(String)
    case relabel(String)
    case concat([TargetSource])
}

/// A `pyroscope.scrape "label"` block.
public struct ScrapeJob: Sendable {
    public var label: String
    public var jobName: String
    /// Kiln extension: the tenant the job's profiles are stored under.
    public var tenant: String
    public var targets: TargetSource
    /// Labels of the `pyroscope.write` components profiles are forwarded to.
    public var forwardTo: [String]
    public var scrapeInterval: Duration
    public var scrapeTimeout: Duration
    public var deltaProfilingDuration: Duration
    public var scheme: String
    public var credentials: ScrapeCredentials
    public var tls: TLSSettings?
    /// Kiln extension: responses larger than this are rejected.
    public var bodySizeLimit: Int
    /// All profile endpoints, enabled or not, built-ins first in Alloy's order, then custom ones.
    public var profiles: [ProfileEndpoint]

    public var enabledProfiles: [ProfileEndpoint] { profiles.filter(\.enabled) }

    public func profile(_ kind: ProfileKind) -> ProfileEndpoint? { profiles.first { $0.kind == kind } }

    /// Path and query of a request for `profile`, e.g. `/debug/pprof/profile?seconds=14`.
    public func requestPath(for profile: ProfileEndpoint) -> String {
        guard profile.delta else { return profile.path }
        let separator = profile.path.contains("?") ? "&" : "?"
        return profile.path + separator + "seconds=\(deltaProfilingDuration.wholeSeconds)"
    }

    /// Alloy extends the timeout of `seconds=` requests by the profiling duration.
    public func timeout(for profile: ProfileEndpoint) -> Duration {
        profile.delta ? scrapeTimeout + deltaProfilingDuration : scrapeTimeout
    }
}

public struct WriteEndpoint: Sendable, Equatable {
    public var url: String
    public var name: String?
    public var remoteTimeout: Duration
    public var headers: [String: String]
    /// `basic_auth` or `bearer_token(_file)` sent as `Authorization` (files are read at every push).
    public var credentials: ScrapeCredentials

    public init(
        url: String, name: String? = nil, remoteTimeout: Duration = .seconds(10), headers: [String: String] = [:],
        credentials: ScrapeCredentials = .none
    ) {
        self.url = url
        self.name = name
        self.remoteTimeout = remoteTimeout
        self.headers = headers
        self.credentials = credentials
    }
}

/// Kiln extension of `pyroscope.write`: publish raw profiles to Kafka.
public struct KafkaWrite: Sendable, Equatable {
    public var brokers: [String]
    public var topic: String
    /// librdkafka properties passed through unchanged (TLS, SASL, ...).
    public var options: [String: String]
}

/// A `pyroscope.write "label"` block.
public struct WriteComponent: Sendable, Equatable {
    public var label: String
    public var endpoints: [WriteEndpoint]
    public var kafka: KafkaWrite?
    public var externalLabels: [String: String]
}

/// A `discovery.relabel "label"` block; exports `output`.
public struct RelabelComponent: Sendable {
    public var label: String
    public var targets: TargetSource
    public var rules: [RelabelRule]
}

/// A `discovery.file "label"` block; exports `targets`.
public struct FileDiscoveryComponent: Sendable, Equatable {
    public var label: String
    /// Absolute paths or glob patterns (`*`, `?`, `[...]` in the last path element).
    public var files: [String]
    public var refreshInterval: Duration
}

/// A `discovery.http "label"` block (Prometheus HTTP service discovery); exports `targets`.
public struct HTTPDiscoveryComponent: Sendable, Equatable {
    public var label: String
    public var url: String
    public var refreshInterval: Duration
    public var credentials: ScrapeCredentials
    public var tls: TLSSettings?
}

/// A `discovery.dns "label"` block; exports `targets`.
public struct DNSDiscoveryComponent: Sendable, Equatable {
    public var label: String
    public var names: [String]
    public var type: DNSResolver.RecordType
    /// The port of A and AAAA targets (SRV records carry their own).
    public var port: Int
    public var refreshInterval: Duration
}

/// A `discovery.kubernetes "label"` block; exports `targets`.
public struct KubernetesDiscoveryComponent: Sendable, Equatable {
    public enum Role: String, Sendable, CaseIterable {
        case pod, service, endpoints, endpointslice, node
    }
    /// A `selectors` block: label and field selectors the API server applies to one role's objects.
    public struct Selector: Sendable, Equatable {
        public var role: Role
        public var label: String?
        public var field: String?
    }
    public var label: String
    public var role: Role
    /// Where the API server is: explicit, from a kubeconfig file, or (neither given) in-cluster.
    public var apiServer: String?
    public var kubeconfigFile: String?
    /// Namespaces to watch; empty with `ownNamespace` false: all.
    public var namespaces: [String] = []
    public var ownNamespace = false
    public var selectors: [Selector] = []
    public var attachNodeMetadata = false
    public var attachNamespaceMetadata = false
    public var credentials = ScrapeCredentials()
    public var tls: TLSSettings?
}

/// The validated contents of an Alloy configuration file (the subset Kiln supports).
public struct ScrapeConfiguration: Sendable {
    public var scrapeJobs: [ScrapeJob]
    public var writers: [String: WriteComponent]
    public var relabelers: [String: RelabelComponent]
    public var fileDiscoveries: [String: FileDiscoveryComponent]
    public var httpDiscoveries: [String: HTTPDiscoveryComponent] = [:]
    public var dnsDiscoveries: [String: DNSDiscoveryComponent] = [:]
    public var kubernetesDiscoveries: [String: KubernetesDiscoveryComponent] = [:]

    public static let defaultScrapeInterval: Duration = .seconds(15)
    public static let defaultScrapeTimeout: Duration = .seconds(10)
    public static let defaultTenant = "anonymous"
    public static let defaultBodySizeLimit = 64 << 20
    public static let defaultRefreshInterval: Duration = .seconds(300)
    /// Alloy's `discovery.http` default.
    public static let defaultHTTPRefreshInterval: Duration = .seconds(60)
    /// Alloy's `discovery.dns` default.
    public static let defaultDNSRefreshInterval: Duration = .seconds(30)
    public static let defaultKafkaTopic = "kiln.profiles.raw"

    /// Parses and validates `text`. `file` names the file in error messages; relative paths in
    /// `discovery.file` resolve against `baseDirectory` (the config file's folder when loaded from disk).
    public static func parse(
        _ text: String, file: String, baseDirectory: URL? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigError) -> ScrapeConfiguration {
        let statements = try AlloyParser.parse(text, file: file)
        var decoder = ConfigurationDecoder(baseDirectory: baseDirectory, environment: environment)
        return try decoder.decode(statements, file: file)
    }

    /// Reads and parses a configuration file; errors name the file by its last path component.
    public static func load(
        contentsOf url: URL,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ScrapeConfiguration {
        let text = try String(contentsOf: url, encoding: .utf8)
        return try parse(
            text, file: url.lastPathComponent, baseDirectory: url.deletingLastPathComponent(),
            environment: environment)
    }
}
