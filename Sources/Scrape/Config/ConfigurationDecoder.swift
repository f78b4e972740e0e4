import Foundation
import KilnFoundation

/// Reads one block's body: rejects unknown and duplicate attributes or blocks, hands out typed values.
struct BodyReader {
    let owner: String
    let ownerPosition: SourcePosition
    private var attributes: [String: Attribute] = [:]
    private(set) var blocks: [Block] = []
    let environment: [String: String]

    init(
        _ statements: [Statement], owner: String, at position: SourcePosition, attributes allowed: Set<String>,
        blocks allowedBlocks: Set<String>, environment: [String: String]
    ) throws(ConfigError) {
        self.owner = owner
        self.ownerPosition = position
        self.environment = environment
        for statement in statements {
            switch statement {
            case .attribute(let a):
                guard allowed.contains(a.name) else {
                    let hint = allowedBlocks.contains(a.name) ? " (\"\(a.name)\" is a block: write \(a.name) { ... })" : ""
                    throw ConfigError("unknown attribute \"\(a.name)\" in \(owner)\(hint)", at: a.position)
                }
                if attributes[a.name] != nil {
                    throw ConfigError("attribute \"\(a.name)\" set twice in \(owner)", at: a.position)
                }
                attributes[a.name] = a
            case .block(let b):
                guard allowedBlocks.contains(b.name) else {
                    let hint = allowed.contains(b.name) ? " (\"\(b.name)\" is an attribute: write \(b.name) = ...)" : ""
                    throw ConfigError("unknown block \"\(b.name)\" in \(owner)\(hint)", at: b.position)
                }
                blocks.append(b)
            }
        }
    }

    func has(_ name: String) -> Bool { attributes[name] != nil }
    func attribute(_ name: String) -> Attribute? { attributes[name] }

    func required(_ name: String) throws(ConfigError) -> Attribute {
        guard let a = attributes[name] else {
            throw ConfigError("missing required attribute \"\(name)\" in \(owner)", at: ownerPosition)
        }
        return a
    }

    func string(_ name: String) throws(ConfigError) -> String? {
        guard let a = attributes[name] else { return nil }
        return try Values.string(a.value, what: name, environment: environment)
    }

    func bool(_ name: String) throws(ConfigError) -> Bool? {
        guard let a = attributes[name] else { return nil }
        guard case .bool(let b, _) = a.value else {
            throw ConfigError("\"\(name)\" must be a bool, found \(a.value.kindName)", at: a.value.position)
        }
        return b
    }

    func integer(_ name: String) throws(ConfigError) -> Int64? {
        guard let a = attributes[name] else { return nil }
        guard case .number(let n, let p) = a.value else {
            throw ConfigError("\"\(name)\" must be a number, found \(a.value.kindName)", at: a.value.position)
        }
        guard n == n.rounded(), abs(n) < 9e18 else { throw ConfigError("\"\(name)\" must be a whole number", at: p) }
        return Int64(n)
    }

    func duration(_ name: String) throws(ConfigError) -> Duration? {
        guard let a = attributes[name] else { return nil }
        let text = try Values.string(a.value, what: name, environment: environment)
        guard let d = DurationText.parse(text) else {
            throw ConfigError(
                "\"\(name)\" is not a valid duration: \"\(text)\" (write e.g. \"15s\", \"1m30s\", \"500ms\")", at: a.value.position)
        }
        return d
    }

    func stringList(_ name: String) throws(ConfigError) -> [String]? {
        guard let a = attributes[name] else { return nil }
        guard case .list(let items, _) = a.value else {
            throw ConfigError("\"\(name)\" must be a list of strings, found \(a.value.kindName)", at: a.value.position)
        }
        var out: [String] = []
        for item in items { out.append(try Values.string(item, what: "element of \(name)", environment: environment)) }
        return out
    }

    func stringMap(_ name: String) throws(ConfigError) -> [String: String]? {
        guard let a = attributes[name] else { return nil }
        return try Values.stringMap(a.value, what: name, environment: environment)
    }

    func blocks(named name: String) -> [Block] { blocks.filter { $0.name == name } }

    func singleBlock(_ name: String) throws(ConfigError) -> Block? {
        let found = blocks(named: name)
        if found.count > 1 { throw ConfigError("block \"\(name)\" given twice in \(owner)", at: found[1].position) }
        return found.first
    }
}

enum Values {
    static func string(_ e: Expression, what: String, environment: [String: String]) throws(ConfigError) -> String {
        switch e {
        case .string(let s, _):
            return s
        case .call(let f, let args, let p) where f == ["sys", "env"] || f == ["env"]:
            guard args.count == 1, case .string(let name, _) = args[0] else {
                throw ConfigError("\(f.joined(separator: ".")) takes one string argument", at: p)
            }
            return environment[name] ?? ""
        default:
            throw ConfigError("\"\(what)\" must be a string, found \(e.kindName)", at: e.position)
        }
    }

    static func stringMap(_ e: Expression, what: String, environment: [String: String]) throws(ConfigError) -> [String: String] {
        guard case .object(let fields, _) = e else {
            throw ConfigError("\"\(what)\" must be an object of strings, found \(e.kindName)", at: e.position)
        }
        var out: [String: String] = [:]
        for f in fields { out[f.key] = try string(f.value, what: "\(what).\(f.key)", environment: environment) }
        return out
    }
}

/// Turns the syntax tree into a `ScrapeConfiguration`, resolving references between components.
struct ConfigurationDecoder {
    let baseDirectory: URL?
    let environment: [String: String]
    /// The `discovery.http` components, known before any `targets` reference is resolved.
    var httpDiscoveries: [String: HTTPDiscoveryComponent] = [:]
    var dnsDiscoveries: [String: DNSDiscoveryComponent] = [:]
    var kubernetesDiscoveries: [String: KubernetesDiscoveryComponent] = [:]

    static let scrapeAttributes: Set<String> = [
        "targets", "forward_to", "job_name", "scrape_interval", "scrape_timeout", "delta_profiling_duration",
        "scheme", "bearer_token", "bearer_token_file", "tenant", "body_size_limit",
    ]

    mutating func decode(_ statements: [Statement], file: String) throws(ConfigError) -> ScrapeConfiguration {
        var scrapeBlocks: [Block] = []
        var writers: [String: WriteComponent] = [:]
        var relabelBlocks: [String: Block] = [:]
        var files: [String: FileDiscoveryComponent] = [:]
        var seen: [String: SourcePosition] = [:]

        for statement in statements {
            guard case .block(let block) = statement else {
                if case .attribute(let a) = statement {
                    throw ConfigError(
                        "attribute \"\(a.name)\" is not allowed at the top level; put it inside a component block", at: a.position)
                }
                continue
            }
            let known = [
                "pyroscope.scrape", "pyroscope.write", "discovery.relabel", "discovery.file", "discovery.http", "discovery.dns",
                "discovery.kubernetes",
            ]
            guard known.contains(block.name) else {
                throw ConfigError(
                    "unsupported component \"\(block.name)\" (Kiln supports \(known.joined(separator: ", ")))", at: block.position)
            }
            guard let label = block.label, !label.isEmpty else {
                throw ConfigError("component \"\(block.name)\" needs a label, e.g. \(block.name) \"default\" { ... }", at: block.position)
            }
            guard Relabeling.isValidLabelName(label) else {
                throw ConfigError("component label \"\(label)\" must be an identifier (letters, digits, _)", at: block.position)
            }
            let id = "\(block.name).\(label)"
            if let first = seen[id] {
                throw ConfigError("component \(block.displayName) is defined twice (first at line \(first.line))", at: block.position)
            }
            seen[id] = block.position
            switch block.name {
            case "pyroscope.scrape": scrapeBlocks.append(block)
            case "pyroscope.write": writers[label] = try decodeWrite(block, label: label)
            case "discovery.relabel": relabelBlocks[label] = block
            case "discovery.http": httpDiscoveries[label] = try decodeHTTP(block, label: label)
            case "discovery.dns": dnsDiscoveries[label] = try decodeDNS(block, label: label)
            case "discovery.kubernetes": kubernetesDiscoveries[label] = try decodeKubernetes(block, label: label)
            default: files[label] = try decodeFile(block, label: label)
            }
        }

        var relabelers: [String: RelabelComponent] = [:]
        for (label, block) in relabelBlocks {
            let reader = try BodyReader(
                block.body, owner: block.displayName, at: block.position,
                attributes: ["targets"], blocks: ["rule"], environment: environment)
            let targets = try targetSource(try reader.required("targets").value, relabels: relabelBlocks, files: files)
            var rules: [RelabelRule] = []
            for ruleBlock in reader.blocks(named: "rule") { rules.append(try decodeRule(ruleBlock)) }
            relabelers[label] = RelabelComponent(label: label, targets: targets, rules: rules)
        }
        try checkRelabelCycles(relabelers, blocks: relabelBlocks)

        var jobs: [ScrapeJob] = []
        for block in scrapeBlocks {
            jobs.append(try decodeScrape(block, writers: writers, relabels: relabelBlocks, files: files))
        }
        return ScrapeConfiguration(
            scrapeJobs: jobs, writers: writers, relabelers: relabelers, fileDiscoveries: files, httpDiscoveries: httpDiscoveries,
            dnsDiscoveries: dnsDiscoveries, kubernetesDiscoveries: kubernetesDiscoveries)
    }

    // MARK: pyroscope.scrape

    func decodeScrape(
        _ block: Block, writers: [String: WriteComponent], relabels: [String: Block],
        files: [String: FileDiscoveryComponent]
    ) throws(ConfigError) -> ScrapeJob {
        let label = block.label!
        let reader = try BodyReader(
            block.body, owner: block.displayName, at: block.position,
            attributes: Self.scrapeAttributes,
            blocks: ["basic_auth", "tls_config", "profiling_config"], environment: environment)
        let targets = try targetSource(try reader.required("targets").value, relabels: relabels, files: files)

        let forwardAttr = try reader.required("forward_to")
        guard case .list(let receivers, _) = forwardAttr.value else {
            throw ConfigError(
                "\"forward_to\" must be a list of receivers such as [pyroscope.write.default.receiver], found \(forwardAttr.value.kindName)",
                at: forwardAttr.value.position)
        }
        var forwardTo: [String] = []
        for receiver in receivers {
            guard case .reference(let path, let p) = receiver else {
                throw ConfigError(
                    "\"forward_to\" elements must be references like pyroscope.write.NAME.receiver, found \(receiver.kindName)",
                    at: receiver.position)
            }
            guard path.count == 4, path[0] == "pyroscope", path[1] == "write", path[3] == "receiver" else {
                throw ConfigError(
                    "\"forward_to\" element \(path.joined(separator: ".")) is not a pyroscope.write receiver (expected pyroscope.write.NAME.receiver)",
                    at: p)
            }
            guard writers[path[2]] != nil else {
                throw ConfigError("\"forward_to\" refers to pyroscope.write \"\(path[2])\", which is not defined", at: p)
            }
            forwardTo.append(path[2])
        }

        let interval = try reader.duration("scrape_interval") ?? ScrapeConfiguration.defaultScrapeInterval
        if interval < .seconds(2) {
            throw ConfigError(
                "scrape_interval must be at least 2s, got \(DurationText.format(interval))",
                at: reader.attribute("scrape_interval")!.value.position)
        }
        let timeout = try reader.duration("scrape_timeout") ?? ScrapeConfiguration.defaultScrapeTimeout
        if timeout <= .zero {
            throw ConfigError("scrape_timeout must be greater than 0", at: reader.attribute("scrape_timeout")!.value.position)
        }
        let delta: Duration
        if let d = try reader.duration("delta_profiling_duration") {
            if !(d > .seconds(1) && d <= interval - .seconds(1)) {
                throw ConfigError(
                    "delta_profiling_duration must be greater than 1s and at most scrape_interval - 1s (\(DurationText.format(interval - .seconds(1)))), got \(DurationText.format(d))",
                    at: reader.attribute("delta_profiling_duration")!.value.position)
            }
            delta = d
        } else {
            delta = interval - .seconds(1)
        }

        let scheme = try reader.string("scheme") ?? "http"
        guard scheme == "http" || scheme == "https" else {
            throw ConfigError("scheme must be \"http\" or \"https\", got \"\(scheme)\"", at: reader.attribute("scheme")!.value.position)
        }
        let tenant = try reader.string("tenant") ?? ScrapeConfiguration.defaultTenant
        if tenant.isEmpty { throw ConfigError("tenant must not be empty", at: reader.attribute("tenant")!.value.position) }

        let credentials = try decodeCredentials(reader, owner: block.displayName, at: block.position)

        let tls = try decodeTLS(reader)

        let bodyLimit = try reader.integer("body_size_limit").map(Int.init) ?? ScrapeConfiguration.defaultBodySizeLimit
        if bodyLimit <= 0 {
            throw ConfigError("body_size_limit must be a positive number of bytes", at: reader.attribute("body_size_limit")!.value.position)
        }

        let profiles = try decodeProfiles(try reader.singleBlock("profiling_config"))
        return ScrapeJob(
            label: label, jobName: try reader.string("job_name") ?? "pyroscope.scrape.\(label)",
            tenant: tenant, targets: targets, forwardTo: forwardTo, scrapeInterval: interval,
            scrapeTimeout: timeout, deltaProfilingDuration: delta, scheme: scheme,
            credentials: credentials, tls: tls, bodySizeLimit: bodyLimit, profiles: profiles)
    }

    func decodeProfiles(_ block: Block?) throws(ConfigError) -> [ProfileEndpoint] {
        let builtIns = ProfileKind.allCases.filter { $0 != .custom }
        var blockNames = Set(builtIns.map { "profile.\($0.rawValue)" })
        blockNames.insert("profile.custom")
        var prefix = ""
        var configured: [String: Block] = [:]
        var customBlocks: [Block] = []
        if let block {
            let reader = try BodyReader(
                block.body, owner: "profiling_config", at: block.position,
                attributes: ["path_prefix"], blocks: blockNames, environment: environment)
            prefix = try reader.string("path_prefix") ?? ""
            for b in reader.blocks {
                if b.name == "profile.custom" {
                    guard let l = b.label, !l.isEmpty else {
                        throw ConfigError(
                            "profile.custom needs a label naming the profile, e.g. profile.custom \"heap\" { ... }", at: b.position)
                    }
                    if customBlocks.contains(where: { $0.label == l }) {
                        throw ConfigError("profile.custom \"\(l)\" is defined twice", at: b.position)
                    }
                    customBlocks.append(b)
                } else {
                    if let l = b.label { throw ConfigError("block \(b.name) takes no label, found \"\(l)\"", at: b.position) }
                    if configured[b.name] != nil { throw ConfigError("block \(b.name) given twice in profiling_config", at: b.position) }
                    configured[b.name] = b
                }
            }
        }
        // Blocks not written keep Alloy's defaults.
        var out: [ProfileEndpoint] = []
        for kind in builtIns {
            let defaults = kind.alloyDefaults
            var endpoint = ProfileEndpoint(
                kind: kind, name: kind.rawValue, path: defaults.path,
                enabled: defaults.enabled, delta: defaults.delta)
            if let b = configured["profile.\(kind.rawValue)"] {
                let r = try BodyReader(
                    b.body, owner: b.name, at: b.position, attributes: ["enabled", "path", "delta"],
                    blocks: [], environment: environment)
                endpoint.enabled = try r.bool("enabled") ?? endpoint.enabled
                endpoint.path = try r.string("path") ?? endpoint.path
                endpoint.delta = try r.bool("delta") ?? endpoint.delta
                if let p = r.attribute("path"), !endpoint.path.hasPrefix("/") {
                    throw ConfigError("path must start with '/', got \"\(endpoint.path)\"", at: p.value.position)
                }
            }
            endpoint.path = prefix + endpoint.path
            out.append(endpoint)
        }
        for b in customBlocks {
            let r = try BodyReader(
                b.body, owner: b.displayName, at: b.position, attributes: ["enabled", "path", "delta"],
                blocks: [], environment: environment)
            let pathAttr = try r.required("path")
            let path = try Values.string(pathAttr.value, what: "path", environment: environment)
            if !path.hasPrefix("/") { throw ConfigError("path must start with '/', got \"\(path)\"", at: pathAttr.value.position) }
            guard let enabled = try r.bool("enabled") else {
                throw ConfigError("missing required attribute \"enabled\" in \(b.displayName)", at: b.position)
            }
            out.append(
                ProfileEndpoint(
                    kind: .custom, name: b.label!, path: prefix + path, enabled: enabled,
                    delta: try r.bool("delta") ?? false))
        }
        return out
    }

    // MARK: targets and references

    func targetSource(_ e: Expression, relabels: [String: Block], files: [String: FileDiscoveryComponent]) throws(ConfigError)
        -> TargetSource
    {
        switch e {
        case .list(let items, _):
            var targets: [LabelSet] = []
            for item in items {
                guard case .object(let fields, _) = item else {
                    throw ConfigError(
                        "each target must be an object such as {\"__address__\" = \"host:port\"}, found \(item.kindName)", at: item.position
                    )
                }
                var labels: LabelSet = [:]
                for f in fields {
                    labels[f.key] = try Values.string(f.value, what: "target label \(f.key)", environment: environment)
                }
                guard let address = labels["__address__"], !address.isEmpty else {
                    throw ConfigError("target has no \"__address__\" label", at: item.position)
                }
                targets.append(labels)
            }
            return .literal(targets)
        case .reference(let path, let p):
            let dotted = path.joined(separator: ".")
            if path.count == 4, path[0] == "discovery", path[1] == "relabel" {
                guard relabels[path[2]] != nil else {
                    throw ConfigError("reference to undefined component discovery.relabel \"\(path[2])\"", at: p)
                }
                guard path[3] == "output" else {
                    throw ConfigError("discovery.relabel exports \"output\" as targets, not \"\(path[3])\"", at: p)
                }
                return .relabel(path[2])
            }
            // Discovery components export `targets`: (is the label defined, the source it names).
            if path.count == 4, path[0] == "discovery" {
                let name = path[2]
                let defined: Bool? =
                    switch path[1] {
                    case "file": files[name] != nil
                    case "http": httpDiscoveries[name] != nil
                    case "dns": dnsDiscoveries[name] != nil
                    case "kubernetes": kubernetesDiscoveries[name] != nil
                    default: nil
                    }
                if let defined {
                    guard defined else {
                        throw ConfigError("reference to undefined component discovery.\(path[1]) \"\(name)\"", at: p)
                    }
                    guard path[3] == "targets" else {
                        throw ConfigError("discovery.\(path[1]) exports \"targets\", not \"\(path[3])\"", at: p)
                    }
                    return .discovered("discovery.\(path[1]).\(name)")
                }
            }
            throw ConfigError(
                "\(dotted) is not a target list (use a list of objects, discovery.relabel.NAME.output or discovery.file|http|dns|kubernetes.NAME.targets)",
                at: p)
        case .call(let f, let args, _) where f == ["array", "concat"]:
            var parts: [TargetSource] = []
            for a in args { parts.append(try targetSource(a, relabels: relabels, files: files)) }
            return .concat(parts)
        default:
            throw ConfigError(
                "\"targets\" must be a list of objects or a reference to discovered targets, found \(e.kindName)", at: e.position)
        }
    }

    func checkRelabelCycles(_ relabelers: [String: RelabelComponent], blocks: [String: Block]) throws(ConfigError) {
        func references(_ s: TargetSource) -> [String] {
            switch s {
            case .relabel(let n): return [n]
            case .concat(let parts): return parts.flatMap(references)
            case .literal, .discovered: return []
            }
        }
        for start in relabelers.keys.sorted() {
            var stack = [start]
            var visited = Set<String>()
            while let name = stack.popLast() {
                for next in references(relabelers[name]?.targets ?? .literal([])) {
                    if next == start {
                        throw ConfigError("discovery.relabel \"\(start)\" depends on its own output", at: blocks[start]!.position)
                    }
                    if visited.insert(next).inserted { stack.append(next) }
                }
            }
        }
    }

    // MARK: discovery.relabel rules

    func decodeRule(_ block: Block) throws(ConfigError) -> RelabelRule {
        let r = try BodyReader(
            block.body, owner: "rule", at: block.position,
            attributes: ["source_labels", "separator", "regex", "modulus", "target_label", "replacement", "action"],
            blocks: [], environment: environment)
        var action = RelabelAction.replace
        if let a = try r.string("action") {
            guard let parsed = RelabelAction(rawValue: a.lowercased()) else {
                throw ConfigError(
                    "unknown relabel action \"\(a)\" (use one of \(RelabelAction.allCases.map(\.rawValue).joined(separator: ", ")))",
                    at: r.attribute("action")!.value.position)
            }
            action = parsed
        }
        let pattern = try r.string("regex") ?? "(.*)"
        let modulus = try r.integer("modulus") ?? 0
        if modulus < 0 { throw ConfigError("modulus must not be negative", at: r.attribute("modulus")!.value.position) }
        let rule: RelabelRule
        do {
            rule = try RelabelRule(
                sourceLabels: try r.stringList("source_labels") ?? [], separator: try r.string("separator") ?? ";",
                regex: pattern, modulus: UInt64(modulus), targetLabel: try r.string("target_label") ?? "",
                replacement: try r.string("replacement") ?? "$1", action: action)
        } catch let e as ConfigError {
            throw e
        } catch {
            throw ConfigError(
                "invalid regex \"\(pattern)\": \(error.localizedDescription)", at: r.attribute("regex")?.value.position ?? block.position)
        }
        if let problem = rule.validationProblem { throw ConfigError(problem, at: block.position) }
        return rule
    }

    /// `bearer_token`, `bearer_token_file` or a `basic_auth { username, password | password_file }` block
    /// (of a scrape job, or of a `pyroscope.write` endpoint).
    func decodeCredentials(_ reader: BodyReader, owner: String, at position: SourcePosition) throws(ConfigError) -> ScrapeCredentials {
        var credentials = ScrapeCredentials()
        credentials.bearerToken = try reader.string("bearer_token")
        credentials.bearerTokenFile = try reader.string("bearer_token_file")
        if let auth = try reader.singleBlock("basic_auth") {
            let r = try BodyReader(
                auth.body, owner: "basic_auth", at: auth.position,
                attributes: ["username", "password", "password_file"], blocks: [], environment: environment)
            let username = try Values.string(try r.required("username").value, what: "username", environment: environment)
            if r.has("password") && r.has("password_file") {
                throw ConfigError("basic_auth takes password or password_file, not both", at: r.attribute("password_file")!.position)
            }
            credentials.basicAuth = BasicAuth(
                username: username, password: try r.string("password"),
                passwordFile: try r.string("password_file"))
        }
        let authCount = [credentials.basicAuth != nil, credentials.bearerToken != nil, credentials.bearerTokenFile != nil].filter { $0 }
            .count
        if authCount > 1 {
            throw ConfigError("at most one of basic_auth, bearer_token and bearer_token_file may be set in \(owner)", at: position)
        }
        return credentials
    }

    // MARK: pyroscope.write

    func decodeWrite(_ block: Block, label: String) throws(ConfigError) -> WriteComponent {
        let reader = try BodyReader(
            block.body, owner: block.displayName, at: block.position,
            attributes: ["external_labels"], blocks: ["endpoint", "kafka"], environment: environment)
        var endpoints: [WriteEndpoint] = []
        for e in reader.blocks(named: "endpoint") {
            let r = try BodyReader(
                e.body, owner: "endpoint", at: e.position,
                attributes: ["url", "name", "remote_timeout", "headers", "bearer_token", "bearer_token_file"],
                blocks: ["basic_auth"], environment: environment)
            let urlAttr = try r.required("url")
            let url = try Values.string(urlAttr.value, what: "url", environment: environment)
            guard let parsed = URL(string: url), let scheme = parsed.scheme, ["http", "https"].contains(scheme), parsed.host != nil else {
                throw ConfigError("endpoint url must be an http(s) URL, got \"\(url)\"", at: urlAttr.value.position)
            }
            endpoints.append(
                WriteEndpoint(
                    url: url, name: try r.string("name"),
                    remoteTimeout: try r.duration("remote_timeout") ?? .seconds(10),
                    headers: try r.stringMap("headers") ?? [:],
                    credentials: try decodeCredentials(r, owner: "endpoint", at: e.position)))
        }
        var kafka: KafkaWrite?
        if let k = try reader.singleBlock("kafka") {
            let r = try BodyReader(
                k.body, owner: "kafka", at: k.position, attributes: ["brokers", "topic", "options"],
                blocks: [], environment: environment)
            let brokersAttr = try r.required("brokers")
            let brokers: [String]
            if case .list = brokersAttr.value {
                brokers = try r.stringList("brokers") ?? []
            } else {
                brokers = try Values.string(brokersAttr.value, what: "brokers", environment: environment)
                    .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            }
            if brokers.isEmpty { throw ConfigError("kafka brokers must name at least one host:port", at: brokersAttr.value.position) }
            let topic = try r.string("topic") ?? ScrapeConfiguration.defaultKafkaTopic
            if topic.isEmpty { throw ConfigError("kafka topic must not be empty", at: r.attribute("topic")!.value.position) }
            kafka = KafkaWrite(brokers: brokers, topic: topic, options: try r.stringMap("options") ?? [:])
        }
        if endpoints.isEmpty && kafka == nil {
            throw ConfigError("\(block.displayName) needs an endpoint { url = ... } or a kafka { brokers = ... } block", at: block.position)
        }
        return WriteComponent(
            label: label, endpoints: endpoints, kafka: kafka,
            externalLabels: try reader.stringMap("external_labels") ?? [:])
    }

    /// A `tls_config { ca_file, cert_file, key_file, insecure_skip_verify }` block, if any. `server_name` is
    /// refused by name: the HTTP client cannot send another name than the URL's host yet.
    func decodeTLS(_ reader: BodyReader) throws(ConfigError) -> TLSSettings? {
        guard let t = try reader.singleBlock("tls_config") else { return nil }
        let r = try BodyReader(
            t.body, owner: "tls_config", at: t.position,
            attributes: ["ca_file", "cert_file", "key_file", "insecure_skip_verify", "server_name"],
            blocks: [], environment: environment)
        if let serverName = r.attribute("server_name") {
            throw ConfigError(
                "tls_config server_name is not supported yet (Kiln checks the certificate against the URL's host); connect by that name instead",
                at: serverName.position)
        }
        let settings = TLSSettings(
            caFile: try r.string("ca_file"), certFile: try r.string("cert_file"),
            keyFile: try r.string("key_file"),
            insecureSkipVerify: try r.bool("insecure_skip_verify") ?? false)
        if (settings.certFile == nil) != (settings.keyFile == nil) {
            throw ConfigError("tls_config needs both cert_file and key_file, or neither", at: t.position)
        }
        return settings
    }

    /// A discovery component's `refresh_interval` (its `default` when absent); it must be positive.
    func refreshInterval(_ r: BodyReader, default defaultInterval: Duration) throws(ConfigError) -> Duration {
        let refresh = try r.duration("refresh_interval") ?? defaultInterval
        if refresh <= .zero {
            throw ConfigError("refresh_interval must be greater than 0", at: r.attribute("refresh_interval")!.value.position)
        }
        return refresh
    }

    // MARK: discovery.http

    func decodeHTTP(_ block: Block, label: String) throws(ConfigError) -> HTTPDiscoveryComponent {
        let r = try BodyReader(
            block.body, owner: block.displayName, at: block.position,
            attributes: ["url", "refresh_interval", "bearer_token", "bearer_token_file"], blocks: ["basic_auth", "tls_config"],
            environment: environment)
        let urlAttribute = try r.required("url")
        let url = try r.string("url") ?? ""
        guard let parsed = URL(string: url), parsed.scheme == "http" || parsed.scheme == "https", parsed.host != nil else {
            throw ConfigError("url must be an http:// or https:// URL, got \"\(url)\"", at: urlAttribute.value.position)
        }
        let refresh = try refreshInterval(r, default: ScrapeConfiguration.defaultHTTPRefreshInterval)
        return HTTPDiscoveryComponent(
            label: label, url: url, refreshInterval: refresh,
            credentials: try decodeCredentials(r, owner: block.displayName, at: block.position), tls: try decodeTLS(r))
    }

    // MARK: discovery.dns

    func decodeDNS(_ block: Block, label: String) throws(ConfigError) -> DNSDiscoveryComponent {
        let r = try BodyReader(
            block.body, owner: block.displayName, at: block.position,
            attributes: ["names", "refresh_interval", "type", "port"], blocks: [], environment: environment)
        let namesAttribute = try r.required("names")
        let names = try r.stringList("names") ?? []
        if names.isEmpty { throw ConfigError("\"names\" must name at least one DNS name", at: namesAttribute.value.position) }
        let typeText = (try r.string("type") ?? "SRV").uppercased()
        let type: DNSResolver.RecordType
        switch typeText {
        case "SRV": type = .srv
        case "A": type = .a
        case "AAAA": type = .aaaa
        default:
            throw ConfigError(
                "type must be SRV, A or AAAA, got \"\(typeText)\" (MX and NS are not supported yet)",
                at: r.attribute("type")!.value.position)
        }
        let port = try r.integer("port").map(Int.init) ?? 0
        if type != .srv, !(1...65535).contains(port) {
            throw ConfigError(
                "discovery.dns of type \(typeText) needs a port (1-65535)", at: r.attribute("port")?.value.position ?? block.position)
        }
        let refresh = try refreshInterval(r, default: ScrapeConfiguration.defaultDNSRefreshInterval)
        return DNSDiscoveryComponent(label: label, names: names, type: type, port: port, refreshInterval: refresh)
    }

    // MARK: discovery.kubernetes

    func decodeKubernetes(_ block: Block, label: String) throws(ConfigError) -> KubernetesDiscoveryComponent {
        typealias Role = KubernetesDiscoveryComponent.Role
        let r = try BodyReader(
            block.body, owner: block.displayName, at: block.position,
            attributes: ["role", "api_server", "kubeconfig_file", "bearer_token", "bearer_token_file"],
            blocks: ["namespaces", "selectors", "attach_metadata", "basic_auth", "tls_config"], environment: environment)
        let roleAttribute = try r.required("role")
        let roleText = try r.string("role") ?? ""
        guard let role = Role(rawValue: roleText) else {
            throw ConfigError(
                "role must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(roleText)\"",
                at: roleAttribute.value.position)
        }
        var component = KubernetesDiscoveryComponent(label: label, role: role)
        component.apiServer = try r.string("api_server").flatMap { $0.isEmpty ? nil : $0 }
        component.kubeconfigFile = try r.string("kubeconfig_file").flatMap { $0.isEmpty ? nil : $0 }
        if let server = component.apiServer {
            guard let url = URL(string: server), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                throw ConfigError(
                    "api_server must be an http:// or https:// URL, got \"\(server)\"", at: r.attribute("api_server")!.value.position)
            }
            if component.kubeconfigFile != nil {
                throw ConfigError(
                    "api_server and kubeconfig_file are mutually exclusive", at: r.attribute("kubeconfig_file")!.position)
            }
        }
        component.credentials = try decodeCredentials(r, owner: block.displayName, at: block.position)
        component.tls = try decodeTLS(r)
        if component.apiServer == nil, component.credentials != .none || component.tls != nil {
            // As Prometheus: in-cluster and kubeconfig connections bring their own credentials.
            throw ConfigError(
                "bearer_token, bearer_token_file, basic_auth and tls_config need api_server (in-cluster and kubeconfig connections bring their own credentials)",
                at: block.position)
        }
        if let n = try r.singleBlock("namespaces") {
            let nr = try BodyReader(
                n.body, owner: "namespaces", at: n.position, attributes: ["own_namespace", "names"], blocks: [],
                environment: environment)
            component.ownNamespace = try nr.bool("own_namespace") ?? false
            component.namespaces = try nr.stringList("names") ?? []
            if component.ownNamespace, component.apiServer != nil || component.kubeconfigFile != nil {
                // As Prometheus: only a pod knows its own namespace (its service account's namespace file).
                throw ConfigError(
                    "own_namespace works only in-cluster, not with api_server or kubeconfig_file: name the namespace in names",
                    at: nr.attribute("own_namespace")!.position)
            }
        }
        let allowedSelectorRoles: [Role: Set<Role>] = [
            .pod: [.pod, .node], .service: [.service], .node: [.node], .endpoints: [.pod, .service, .endpoints],
            .endpointslice: [.pod, .service, .endpointslice],
        ]
        for s in r.blocks(named: "selectors") {
            let sr = try BodyReader(
                s.body, owner: "selectors", at: s.position, attributes: ["role", "label", "field"], blocks: [],
                environment: environment)
            let text = try sr.string("role") ?? ""
            guard let selectorRole = Role(rawValue: text) else {
                throw ConfigError(
                    "selectors role must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(text)\"",
                    at: sr.attribute("role")?.value.position ?? s.position)
            }
            guard allowedSelectorRoles[role, default: []].contains(selectorRole) else {
                throw ConfigError(
                    "selectors for role \"\(selectorRole.rawValue)\" are not allowed with role \"\(role.rawValue)\" (allowed: \(allowedSelectorRoles[role, default: []].map(\.rawValue).sorted().joined(separator: ", ")))",
                    at: s.position)
            }
            if component.selectors.contains(where: { $0.role == selectorRole }) {
                throw ConfigError("selectors for role \"\(selectorRole.rawValue)\" are given twice", at: s.position)
            }
            let selector = KubernetesDiscoveryComponent.Selector(
                role: selectorRole, label: try sr.string("label").flatMap { $0.isEmpty ? nil : $0 },
                field: try sr.string("field").flatMap { $0.isEmpty ? nil : $0 })
            if let label = selector.label, let problem = KubernetesSelectors.labelSelectorProblem(label) {
                throw ConfigError("label selector \"\(label)\": \(problem)", at: sr.attribute("label")!.value.position)
            }
            if let field = selector.field, let problem = KubernetesSelectors.fieldSelectorProblem(field) {
                throw ConfigError("field selector \"\(field)\": \(problem)", at: sr.attribute("field")!.value.position)
            }
            component.selectors.append(selector)
        }
        if let a = try r.singleBlock("attach_metadata") {
            let ar = try BodyReader(
                a.body, owner: "attach_metadata", at: a.position, attributes: ["node", "namespace"], blocks: [],
                environment: environment)
            component.attachNodeMetadata = try ar.bool("node") ?? false
            component.attachNamespaceMetadata = try ar.bool("namespace") ?? false
            if component.attachNodeMetadata, ![.pod, .endpoints, .endpointslice].contains(role) {
                throw ConfigError(
                    "attach_metadata node works with roles pod, endpoints and endpointslice, not \"\(role.rawValue)\"",
                    at: ar.attribute("node")!.position)
            }
            if component.attachNamespaceMetadata, role == .node {
                throw ConfigError(
                    "attach_metadata namespace does not apply to role \"node\" (nodes have no namespace)",
                    at: ar.attribute("namespace")!.position)
            }
        }
        if component.role == .pod, !component.attachNodeMetadata, component.selectors.contains(where: { $0.role == .node }) {
            // Role pod reads nodes only for their metadata: without it, a node selector would select nothing.
            throw ConfigError(
                "selectors for role \"node\" apply to role \"pod\" only with attach_metadata { node = true }", at: block.position)
        }
        return component
    }

    // MARK: discovery.file

    func decodeFile(_ block: Block, label: String) throws(ConfigError) -> FileDiscoveryComponent {
        let r = try BodyReader(
            block.body, owner: block.displayName, at: block.position,
            attributes: ["files", "refresh_interval"], blocks: [], environment: environment)
        _ = try r.required("files")
        let files = try r.stringList("files") ?? []
        if files.isEmpty { throw ConfigError("\"files\" must name at least one file", at: r.attribute("files")!.value.position) }
        let refresh = try refreshInterval(r, default: ScrapeConfiguration.defaultRefreshInterval)
        let resolved = files.map { path -> String in
            if path.hasPrefix("/") || baseDirectory == nil { return path }
            return baseDirectory!.appendingPathComponent(path).path
        }
        return FileDiscoveryComponent(label: label, files: resolved, refreshInterval: refresh)
    }
}
