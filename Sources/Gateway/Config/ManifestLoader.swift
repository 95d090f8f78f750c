import Wire
import Foundation
import Yams

/// Turns multi-document YAML manifests (the ones a user would `kubectl apply`) into a
/// validated `LabConfig`. Errors carry file:line and stop everything; warnings do not.
public enum ManifestLoader {
    static let backendKinds = ["AgentgatewayBackend", "EnterpriseAgentgatewayBackend"]
    static let policyKinds = ["AgentgatewayPolicy", "EnterpriseAgentgatewayPolicy"]
    /// Kinds a lab file may carry that the gateway has no use for; skipped with a note.
    static let ignoredKinds = ["ServiceAccount", "Deployment", "Service", "Namespace", "Gateway", "ConfigMap"]

    /// Reads and validates the given files.
    /// `checks` adds what other targets find in the configuration (the Lab target's step
    /// grammars), reported with the loader's own errors, all at once.
    public static func load(files: [String], checks: (LabConfig) -> [ConfigDiagnostic] = { _ in [] }) throws -> LabConfig {
        var sources: [(file: String, text: String)] = []
        for file in files {
            var isDirectory: ObjCBool = false
            let reason: String?
            if !FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) {
                reason = "no such file"
            } else if isDirectory.boolValue {
                reason = "is a directory, not a lab file"
            } else if let attributes = try? FileManager.default.attributesOfItem(atPath: URL(fileURLWithPath: file).resolvingSymlinksInPath().path),
                      let type = attributes[.type] as? FileAttributeType, type != .typeRegular {
                // A FIFO or device (/dev/zero) would be read forever.
                reason = "not a regular file"
            } else if let size = (try? FileManager.default.attributesOfItem(atPath: URL(fileURLWithPath: file).resolvingSymlinksInPath().path))?[.size] as? NSNumber,
                      size.int64Value > Int64(maxFileSize) {
                reason = "larger than \(maxFileSize >> 20) MB; lab files are a few kilobytes"
            } else if let text = try? String(contentsOfFile: file, encoding: .utf8) {
                sources.append((file, text))
                reason = nil
            } else {
                reason = "not readable as UTF-8 text"
            }
            if let reason {
                throw ConfigErrors(diagnostics: [ConfigDiagnostic(
                    severity: .error, location: SourceLocation(file: file, line: 0), message: "cannot read lab file: \(reason)")])
            }
        }
        return try load(sources: sources, checks: checks)
    }

    /// Reads and validates YAML texts, each named by the file it came from.
    public static func load(sources: [(file: String, text: String)], checks: (LabConfig) -> [ConfigDiagnostic] = { _ in [] }) throws -> LabConfig {
        var config = LabConfig()
        var diagnostics: [ConfigDiagnostic] = []
        for source in sources {
            let reader = YAMLReader(file: source.file)
            let documents = readDocuments(source.text, reader: reader, into: &config)
            if documents == 0 && !reader.hasErrors {
                reader.error(at: SourceLocation(file: source.file, line: 0),
                             "the lab file holds no YAML documents (it is empty or only comments); expected HTTPRoute, AgentgatewayBackend and other manifests")
            }
            diagnostics += reader.diagnostics
            config.files.append(source.file)
        }
        let validator = YAMLReader(file: sources.first?.file ?? "<config>")
        validate(&config, reader: validator)
        diagnostics += validator.diagnostics
        diagnostics += checks(config)
        let errors = diagnostics.filter { $0.severity == .error }
        if !errors.isEmpty { throw ConfigErrors(diagnostics: errors) }
        config.warnings = diagnostics.filter { $0.severity == .warning }
        return config
    }

    /// The largest lab file read (bytes); lab files are a few kilobytes.
    public static let maxFileSize = 4 << 20

    /// Reads every document of one file; returns how many non-empty documents it held.
    @discardableResult
    private static func readDocuments(_ text: String, reader: YAMLReader, into config: inout LabConfig) -> Int {
        if text.utf8.count > maxFileSize {
            reader.error(at: SourceLocation(file: reader.file, line: 0), "the lab file is larger than \(maxFileSize >> 20) MB")
            return 0
        }
        // Nesting depth needs no check here: libyaml stops at 1,000 levels with a parser
        // error and its line, before Yams' recursive node building could overflow.
        let parser: Parser
        do {
            parser = try Parser(yaml: text)
        } catch let error as YamlError {
            reader.error(at: yamlErrorLocation(error, file: reader.file), "not valid YAML: \(yamlErrorMessage(error))")
            return 0
        } catch {
            reader.error(at: SourceLocation(file: reader.file, line: 0), "not valid YAML: \(error)")
            return 0
        }
        var count = 0
        while true {
            let document: Node?
            do {
                document = try parser.nextRoot()
            } catch let error as YamlError {
                reader.error(at: yamlErrorLocation(error, file: reader.file), "not valid YAML: \(yamlErrorMessage(error))")
                return count
            } catch {
                reader.error(at: SourceLocation(file: reader.file, line: 0), "not valid YAML: \(error)")
                return count
            }
            guard let document else { return count }
            if case .scalar(let s) = document, s.string.isEmpty { continue }
            count += 1
            readDocument(document, reader: reader, into: &config)
        }
    }

    private static func yamlErrorLocation(_ error: YamlError, file: String) -> SourceLocation {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _):
            return SourceLocation(file: file, line: mark.line, column: mark.column)
        case .composer(_, _, let mark, _):
            return SourceLocation(file: file, line: mark.line, column: mark.column)
        case .duplicatedKeysInMapping(_, let context):
            return SourceLocation(file: file, line: context.mark.line, column: context.mark.column)
        case .reader(_, let offset?, _, let yaml):
            // libyaml reports a byte offset into the UTF-8 text; count the lines before it.
            let line = 1 + yaml.utf8.prefix(max(0, offset)).reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
            return SourceLocation(file: file, line: line)
        default:
            return SourceLocation(file: file, line: 0)
        }
    }

    private static func yamlErrorMessage(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _), .composer(let context, let problem, _, _):
            return [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ", ")
        case .reader(let problem, _, let value, _):
            // Yams' own description repeats the line; the location already says where.
            return value >= 0 && value < 0x110000 ? "\(problem) (character U+\(String(value, radix: 16, uppercase: true)))" : problem
        case .duplicatedKeysInMapping(let duplicates, _):
            // The error's context holds the whole file; name only the keys.
            let keys = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
            return "a mapping has the key \(keys) more than once (this is the first); each key may appear once"
        default:
            return "\(error)"
        }
    }

    private static func readDocument(_ node: Node, reader: YAMLReader, into config: inout LabConfig) {
        guard case .mapping = node else {
            reader.error(node, "a manifest must be a mapping with apiVersion and kind, found \(reader.describe(node))")
            return
        }
        let kind = node["kind"]?.string
        let known: [String]
        switch kind {
        case "Secret": known = ["apiVersion", "kind", "metadata", "data", "stringData", "type"]
        default: known = ["apiVersion", "kind", "metadata", "spec", "status"]
        }
        guard let doc = reader.mapping(node, at: kind ?? "document", known: known) else { return }
        guard let kind = doc.requiredString("kind") else { return }
        if let ignored = ignoredKinds.first(where: { $0 == kind }) {
            reader.warning(node, "\(ignored) is not used by the in-process gateway; skipped")
            return
        }
        let meta = doc.mapping("metadata", known: ["name", "namespace", "labels", "annotations"])
        guard let meta else {
            reader.error(node, "\(kind) needs metadata.name")
            return
        }
        guard let name = meta.requiredString("name") else { return }
        let namespace = meta.string("namespace") ?? "default"
        let location = reader.location(node)
        switch kind {
        case "HTTPRoute":
            if let route = readRoute(doc, name: name, namespace: namespace, location: location, reader: reader) {
                config.routes.append(route)
            }
        case _ where backendKinds.contains(kind):
            if let backend = readBackend(doc, kind: kind, name: name, namespace: namespace, location: location, reader: reader) {
                config.backends.append(backend)
            }
        case _ where policyKinds.contains(kind):
            if let policy = readPolicy(doc, kind: kind, name: name, namespace: namespace, location: location, reader: reader) {
                config.policies.append(policy)
            }
        case "Secret":
            config.secrets.append(readSecret(doc, name: name, namespace: namespace, location: location, reader: reader))
        case "Scenario":
            if config.scenario != nil {
                reader.error(node, "a second Scenario document; a lab has one")
            }
            config.scenario = readScenario(doc, name: name, location: location, reader: reader)
        default:
            reader.warning(node, "unknown kind \(kind) is ignored")
        }
    }

    // MARK: HTTPRoute

    private static func readRoute(_ doc: Fields, name: String, namespace: String, location: SourceLocation, reader: YAMLReader) -> Route? {
        guard let spec = doc.mapping("spec", known: ["parentRefs", "hostnames", "rules"]) else {
            reader.error(doc.node, "HTTPRoute \(name) needs a spec")
            return nil
        }
        var rules: [RouteRule] = []
        for (i, ruleNode) in spec.sequence("rules").enumerated() {
            let path = "spec.rules[\(i)]"
            guard let rule = reader.mapping(ruleNode, at: path, known: ["name", "matches", "backendRefs", "timeouts", "retry", "filters"]) else { continue }
            if rule.has("filters") { reader.warning(rule["filters"], "\(path).filters are not applied by the in-process gateway") }
            var matches: [PathMatch] = []
            for (j, matchNode) in rule.sequence("matches").enumerated() {
                guard let match = reader.mapping(matchNode, at: "\(path).matches[\(j)]", known: ["path", "headers", "queryParams", "method"]) else { continue }
                for other in ["headers", "queryParams", "method"] where match.has(other) {
                    reader.warning(match[other], "\(path).matches[\(j)].\(other) is not matched by the in-process gateway")
                }
                guard let pathMatch = match.mapping("path", known: ["type", "value"]) else { continue }
                let typeText = pathMatch.string("type") ?? "PathPrefix"
                guard let type = PathMatch.Kind(rawValue: typeText) else {
                    reader.error(pathMatch["type"], "\(path).matches[\(j)].path.type must be PathPrefix or Exact, found \"\(typeText)\"")
                    continue
                }
                let value = pathMatch.string("value") ?? "/"
                if !value.hasPrefix("/") {
                    reader.error(pathMatch["value"], "\(path).matches[\(j)].path.value must start with /, found \"\(value)\"")
                    continue
                }
                matches.append(PathMatch(kind: type, value: value))
            }
            if matches.isEmpty && !rule.has("matches") { matches = [PathMatch(kind: .pathPrefix, value: "/")] }
            var refs: [BackendRef] = []
            for (j, refNode) in rule.sequence("backendRefs").enumerated() {
                guard let ref = reader.mapping(refNode, at: "\(path).backendRefs[\(j)]", known: ["name", "namespace", "group", "kind", "port", "weight"]) else { continue }
                guard let refName = ref.requiredString("name") else { continue }
                let kind = ref.string("kind") ?? "Service"
                refs.append(BackendRef(name: refName, namespace: ref.string("namespace") ?? namespace, kind: kind, location: reader.location(refNode)))
            }
            if refs.count > 1 {
                reader.warning(rule["backendRefs"], "\(path) has \(refs.count) backendRefs; only the first is used")
            }
            var timeout: Duration?
            if let timeouts = rule.mapping("timeouts", known: ["request", "backendRequest"]) {
                timeout = timeouts.duration("request")
                if timeouts.has("backendRequest") { reader.warning(timeouts["backendRequest"], "\(path).timeouts.backendRequest is not applied; use request") }
            }
            let retry = readRetry(rule.mapping("retry", known: ["attempts", "backoff", "codes"]))
            rules.append(RouteRule(matches: matches, backendRefs: refs, requestTimeout: timeout, retry: retry, location: reader.location(ruleNode)))
        }
        if rules.isEmpty { reader.error(doc.node, "HTTPRoute \(name) has no rules") }
        return Route(name: name, namespace: namespace, location: location, rules: rules)
    }

    private static func readRetry(_ retry: Fields?) -> RetryPolicy? {
        guard let retry else { return nil }
        let attempts = retry.int("attempts", range: 0...100) ?? 1
        let backoff = retry.duration("backoff")
        var codes: [Int] = []
        for node in retry.sequence("codes") {
            guard let code = YAMLReader.integer(node), (100...599).contains(code) else {
                retry.reader.error(node, "\(retry.path).codes must hold HTTP status codes (100-599), found \(retry.reader.describe(node))")
                continue
            }
            codes.append(code)
        }
        return RetryPolicy(attempts: attempts, backoff: backoff, codes: codes)
    }

    // MARK: AgentgatewayBackend

    static let providerKinds = ["openai", "anthropic", "gemini", "vertex", "bedrock", "azureopenai", "azure"]

    private static func readBackend(_ doc: Fields, kind: String, name: String, namespace: String, location: SourceLocation, reader: YAMLReader) -> Backend? {
        guard let spec = doc.mapping("spec", known: ["ai", "policies", "static", "mcp"]) else {
            reader.error(doc.node, "\(kind) \(name) needs a spec")
            return nil
        }
        guard let ai = spec.mapping("ai", known: ["groups", "provider"]) else {
            reader.error(spec.node, "\(kind) \(name): spec.ai is required (only AI backends are supported)")
            return nil
        }
        if ai.has("provider") {
            reader.error(ai["provider"], "spec.ai.provider is not supported here; list providers under spec.ai.groups[].providers")
        }
        var groups: [[Provider]] = []
        for (g, groupNode) in ai.sequence("groups").enumerated() {
            let gpath = "spec.ai.groups[\(g)]"
            guard let group = reader.mapping(groupNode, at: gpath, known: ["providers"]) else { continue }
            var providers: [Provider] = []
            for (p, providerNode) in group.sequence("providers").enumerated() {
                if let provider = readProvider(providerNode, path: "\(gpath).providers[\(p)]", reader: reader) {
                    providers.append(provider)
                }
            }
            if providers.isEmpty { reader.error(groupNode, "\(gpath) has no providers") }
            groups.append(providers)
        }
        let policies = readProviderPolicies(spec.mapping("policies", known: policyFields), reader: reader)
        return Backend(name: name, namespace: namespace, kind: kind, location: location, groups: groups, policies: policies)
    }

    static let policyFields = ["auth", "health", "backendTLS", "tls", "ai", "http", "tcp", "mcp"]

    private static func readProvider(_ node: Node, path: String, reader: YAMLReader) -> Provider? {
        guard let fields = reader.mapping(node, at: path, known: ["name", "host", "port", "path", "pathPrefix", "policies"] + providerKinds) else { return nil }
        guard let name = fields.requiredString("name") else { return nil }
        // The name goes into the x-failover-attempts header and the log: keep it a plain token.
        if !name.isEmpty && !name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }) {
            reader.error(fields["name"], "provider name \"\(name)\" may hold only letters, digits, '-', '_' and '.'")
        }
        let kinds = providerKinds.filter { fields.has($0) }
        guard kinds.count == 1 else {
            reader.error(node, "provider \(name) must name exactly one provider kind (openai, ...), found \(kinds.isEmpty ? "none" : kinds.joined(separator: ", "))")
            return nil
        }
        guard kinds[0] == "openai" else {
            reader.error(fields[kinds[0]], "provider \(name): kind \(kinds[0]) is not supported yet; use openai (OpenAI-compatible)")
            return nil
        }
        var model: String?
        if let openai = fields.mapping("openai", known: ["model"]) {
            model = openai.string("model")
            if model?.isEmpty == true { model = nil }
        }
        let host = fields.string("host")
        let port = fields.int("port", range: 1...65535)
        if fields.has("host") != fields.has("port") {
            reader.error(node, "provider \(name): host and port go together; set both or neither")
        }
        if let host, !isPlainHost(host) {
            reader.error(fields["host"], "provider \(name): host \"\(host)\" must be a host name or IP address (letters, digits, '-', '.', ':' and [] only)")
        }
        let upstreamPath = fields.string("path")
        let pathPrefix = fields.string("pathPrefix")
        // Both go into the upstream request line: anything but a plain origin-form path
        // (a space, CR, LF) would change the request.
        for (key, value) in [("path", upstreamPath), ("pathPrefix", pathPrefix)] {
            if let value, !isOriginFormPath(value) {
                reader.error(fields[key], "provider \(name): \(key) \"\(value)\" must start with / and hold only URL characters (no spaces or control characters)")
            }
        }
        if upstreamPath != nil && pathPrefix != nil {
            reader.error(fields["pathPrefix"], "provider \(name): set path or pathPrefix, not both")
        }
        let policies = readProviderPolicies(fields.mapping("policies", known: policyFields), reader: reader)
        return Provider(name: name, kind: .openai, model: model, host: host, port: port, path: upstreamPath,
                        pathPrefix: pathPrefix, policies: policies, location: reader.location(node))
    }

    private static func readProviderPolicies(_ fields: Fields?, reader: YAMLReader) -> ProviderPolicies {
        guard let fields else { return ProviderPolicies() }
        for other in ["backendTLS", "tls", "ai", "http", "tcp", "mcp"] where fields.has(other) {
            reader.warning(fields[other], "\(fields.path).\(other) is not applied by the in-process gateway")
        }
        return ProviderPolicies(auth: readAuth(fields.mapping("auth", known: ["passthrough", "secretRef", "key"])),
                                health: readHealth(fields.mapping("health", known: ["unhealthyCondition", "eviction"])))
    }

    private static func readAuth(_ auth: Fields?) -> AuthPolicy? {
        guard let auth else { return nil }
        let set = ["passthrough", "secretRef", "key"].filter { auth.has($0) }
        guard set.count == 1 else {
            auth.reader.error(auth.node, "\(auth.path) must set exactly one of passthrough, secretRef, key")
            return nil
        }
        switch set[0] {
        case "passthrough":
            return .passthrough
        case "secretRef":
            guard let ref = auth.mapping("secretRef", known: ["name"]), let name = ref.requiredString("name") else { return nil }
            return .secretRef(name: name)
        default:
            guard let key = auth.string("key") else { return nil }
            if let problem = headerValueProblem(key) {
                auth.reader.error(auth["key"], "\(auth.path).key \(problem); it is sent as a header value")
                return nil
            }
            return .key(key)
        }
    }

    private static func readHealth(_ health: Fields?) -> HealthPolicy? {
        guard let health else { return nil }
        var eviction = EvictionSettings()
        if let ev = health.mapping("eviction", known: ["duration", "consecutiveFailures", "healthThreshold", "restoreHealth"]) {
            eviction.duration = ev.duration("duration")
            eviction.consecutiveFailures = ev.int("consecutiveFailures", range: 1...10_000)
            eviction.healthThreshold = ev.number("healthThreshold", range: 0...100).map { $0 / 100 }
            eviction.restoreHealth = ev.number("restoreHealth", range: 0...100).map { $0 / 100 }
        }
        let text = health.string("unhealthyCondition")
        var condition: UnhealthyCondition?
        if let text {
            do {
                condition = try UnhealthyCondition.parse(text)
            } catch {
                health.reader.error(health["unhealthyCondition"], "\(health.path).\(error)")
            }
        }
        return HealthPolicy(unhealthyCondition: text, condition: condition, eviction: eviction, location: health.location)
    }

    // MARK: Policies

    private static func readPolicy(_ doc: Fields, kind: String, name: String, namespace: String, location: SourceLocation, reader: YAMLReader) -> Policy? {
        guard let spec = doc.mapping("spec", known: ["targetRefs", "targetSelectors", "backend", "traffic", "frontend"]) else {
            reader.error(doc.node, "\(kind) \(name) needs a spec")
            return nil
        }
        var refs: [Policy.TargetRef] = []
        for (i, refNode) in spec.sequence("targetRefs").enumerated() {
            guard let ref = reader.mapping(refNode, at: "spec.targetRefs[\(i)]", known: ["group", "kind", "name", "sectionName"]),
                  let refKind = ref.requiredString("kind"), let refName = ref.requiredString("name") else { continue }
            refs.append(Policy.TargetRef(kind: refKind, name: refName, sectionName: ref.string("sectionName"), location: reader.location(refNode)))
        }
        if refs.isEmpty { reader.error(spec.node, "\(kind) \(name) needs spec.targetRefs") }
        for other in ["targetSelectors", "frontend"] where spec.has(other) {
            reader.warning(spec[other], "spec.\(other) is not applied by the in-process gateway")
        }
        let backend = readProviderPolicies(spec.mapping("backend", known: policyFields), reader: reader)
        var timeout: Duration?
        var retry: RetryPolicy?
        if let traffic = spec.mapping("traffic", known: ["timeouts", "retry", "rateLimit", "cors", "headerModifiers"]) {
            if let timeouts = traffic.mapping("timeouts", known: ["request"]) { timeout = timeouts.duration("request") }
            retry = readRetry(traffic.mapping("retry", known: ["attempts", "backoff", "codes"]))
            for other in ["rateLimit", "cors", "headerModifiers"] where traffic.has(other) {
                reader.warning(traffic[other], "spec.traffic.\(other) is not applied by the in-process gateway")
            }
        }
        return Policy(name: name, namespace: namespace, kind: kind, location: location, targetRefs: refs,
                      backend: backend, requestTimeout: timeout, retry: retry)
    }

    // MARK: Secret

    private static func readSecret(_ doc: Fields, name: String, namespace: String, location: SourceLocation, reader: YAMLReader) -> Secret {
        var authorization: String?
        var authorizationNode: Node?
        if let data = doc.mapping("data", known: ["Authorization"]) {
            if let encoded = data.string("Authorization") {
                if let decoded = Data(base64Encoded: encoded.trimmingCharacters(in: .whitespacesAndNewlines)), let text = String(data: decoded, encoding: .utf8) {
                    authorization = text
                    authorizationNode = data["Authorization"]
                } else {
                    reader.error(data["Authorization"], "Secret \(name): data.Authorization is not valid base64")
                }
            }
        }
        if let stringData = doc.mapping("stringData", known: ["Authorization"]), let text = stringData.string("Authorization") {
            authorization = text
            authorizationNode = stringData["Authorization"]
        }
        if let value = authorization, let problem = headerValueProblem(value) {
            reader.error(authorizationNode, "Secret \(namespace)/\(name): Authorization \(problem); it is sent as a header value")
            authorization = nil
        }
        return Secret(name: name, namespace: namespace, location: location, authorization: authorization)
    }

    /// Why `value` cannot go into an HTTP header as it is (after trimming the surrounding
    /// whitespace and newlines, as the gateway does), or nil when it can. A CR or LF
    /// inside would end the header and inject others into the upstream request.
    public static func headerValueProblem(_ value: String) -> String? {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        for (offset, scalar) in trimmed.unicodeScalars.enumerated() {
            let v = scalar.value
            if v < 0x20 && v != 0x09 || v == 0x7F || (0x80...0x9F).contains(v) {
                let name: String
                switch v {
                case 0x0D: name = "CR"
                case 0x0A: name = "LF"
                case 0x00: name = "NUL"
                default: name = String(format: "U+%04X", v)
                }
                return "holds a control character (\(name)) at character \(offset + 1)"
            }
        }
        return nil
    }

    // MARK: Scenario

    private static func readScenario(_ doc: Fields, name: String, location: SourceLocation, reader: YAMLReader) -> Scenario? {
        guard let spec = doc.mapping("spec", known: ["description", "standIns", "secretsFromEnv", "traffic", "steps", "faults", "expect"]) else {
            reader.error(doc.node, "Scenario \(name) needs a spec")
            return nil
        }
        var standIns: [StandInSpec] = []
        for (i, node) in spec.sequence("standIns").enumerated() {
            let path = "spec.standIns[\(i)]"
            guard let fields = reader.mapping(node, at: path, known: ["name", "kind", "answers", "retryAfter", "behavior", "latency", "tokenDelay", "model"]),
                  let standInName = fields.requiredString("name"), let kindText = fields.requiredString("kind") else { continue }
            guard let kind = StandInSpec.Kind(rawValue: kindText) else {
                let kinds = StandInSpec.Kind.allCases.map(\.rawValue).joined(separator: ", ")
                reader.error(fields["kind"], "\(path).kind must be one of \(kinds), found \"\(kindText)\"")
                continue
            }
            var answers: [String] = []
            if case .scalar? = fields["answers"], let one = fields.string("answers") {
                answers = [one]
            } else {
                for item in fields.sequence("answers") {
                    guard case .scalar(let scalar) = item else {
                        reader.error(item, "\(path).answers must hold host:port strings, found \(reader.describe(item))")
                        continue
                    }
                    answers.append(scalar.string)
                }
            }
            for address in answers where !isHostPort(address) {
                reader.error(fields["answers"], "\(path).answers: \"\(address)\" is not host:port")
            }
            if standIns.contains(where: { $0.name == standInName }) {
                reader.error(node, "\(path): a second stand-in named \(standInName)")
            }
            standIns.append(StandInSpec(name: standInName, kind: kind, answers: answers,
                                        retryAfterSeconds: fields.int("retryAfter", range: 0...86_400 * 366),
                                        behavior: fields.string("behavior"), latency: fields.duration("latency", maximum: StandInSpec.longestDelay),
                                        tokenDelay: fields.duration("tokenDelay", maximum: StandInSpec.longestDelay), location: reader.location(node),
                                        model: readModelShape(fields, path: path, reader: reader)))
        }
        var fromEnv: [String: String] = [:]
        if let secrets = spec["secretsFromEnv"] {
            if case .mapping(let mapping) = secrets {
                for (key, value) in mapping {
                    guard case .scalar(let k) = key, case .scalar(let v) = value, !v.string.isEmpty else {
                        reader.error(key, "spec.secretsFromEnv must map secret names to environment variable names")
                        continue
                    }
                    fromEnv[k.string] = v.string
                }
            } else {
                reader.error(secrets, "spec.secretsFromEnv must map secret names to environment variables")
            }
        }
        var traffic: ScenarioTraffic?
        if let node = spec["traffic"] {
            if case .mapping = node {
                traffic = ScenarioTraffic(node: node, location: reader.location(node))
            } else {
                reader.error(node, "spec.traffic must be a mapping with the keys of a drive --plan file (phases, concurrency, request, ...), found \(reader.describe(node))")
            }
        }
        var steps: [ScenarioStep] = []
        for (i, node) in spec.sequence("steps").enumerated() {
            if let step = readStep(node, index: i, standIns: standIns, reader: reader) { steps.append(step) }
        }
        return Scenario(name: name, description: spec.string("description"), location: location, standIns: standIns,
                        secretsFromEnvironment: fromEnv, traffic: traffic, steps: steps)
    }

    static let stepFields = ["name", "say", "set", "send", "return", "for", "until", "timeout", "expect"]

    /// One of `spec.steps`. Its structure, durations and names are checked here; the texts of
    /// other grammars (behaviours, expectations) are kept with their lines for the Lab target,
    /// which reads them with the one parser each has.
    private static func readStep(_ node: Node, index: Int, standIns: [StandInSpec], reader: YAMLReader) -> ScenarioStep? {
        let path = "spec.steps[\(index)]"
        guard let fields = reader.mapping(node, at: path, known: stepFields, strict: true) else { return nil }
        let name = fields.string("name") ?? "step \(index + 1)"
        let say = fields.string("say")
        var settings: [ScenarioStep.Setting] = []
        if let setNode = fields["set"] {
            if case .mapping(let mapping) = setNode {
                for (key, value) in mapping {
                    guard case .scalar(let k) = key, case .scalar(let v) = value else {
                        reader.error(key, "\(path).set maps stand-in names to behaviours, like {http-429: \"429 retry-after=60\"}")
                        continue
                    }
                    guard standIns.contains(where: { $0.name == k.string }) else {
                        let names = standIns.map(\.name).joined(separator: ", ")
                        reader.error(key, "\(path).set: no stand-in named \(k.string); the Scenario's stand-ins: \(names.isEmpty ? "none" : names)")
                        continue
                    }
                    settings.append(ScenarioStep.Setting(standIn: k.string, behavior: SourcedText(v.string, at: reader.location(value))))
                }
            } else {
                reader.error(setNode, "\(path).set must map stand-in names to behaviours, found \(reader.describe(setNode))")
            }
        }
        let send = fields.int("send", range: 0...ScenarioStep.largestSend) ?? 0
        var returns: [SourcedText] = []
        for item in scalarList(fields, "return", what: "provider names", reader: reader) {
            returns.append(item)
        }
        let expect = scalarList(fields, "expect", what: "expectations such as \"status[429] == 1\"", reader: reader)
        let end: ScenarioStep.End?
        switch (fields.has("for"), fields.has("until")) {
        case (true, true):
            reader.error(fields["until"], "\(path): give for: DURATION or until: EXPECTATION, not both")
            end = nil
        case (true, false):
            if fields.has("timeout") { reader.error(fields["timeout"], "\(path).timeout goes with until:; a for: step ends at its duration") }
            end = fields.duration("for", maximum: ScenarioStep.longestStep).map { .duration($0) }
        case (false, true):
            let timeout = fields.has("timeout") ? fields.duration("timeout", maximum: ScenarioStep.longestStep) : ScenarioStep.defaultTimeout
            if let text = fields.string("until"), let timeout {
                if text.isEmpty {
                    reader.error(fields["until"], "\(path).until must be an expectation such as \"provider[openai-provider] >= 1\"")
                    end = nil
                } else {
                    end = .until(SourcedText(text, at: reader.location(fields["until"])), timeout: timeout)
                }
            } else {
                end = nil
            }
        case (false, false):
            reader.error(node, "\(path) (\(name)) needs for: DURATION or until: EXPECTATION (with timeout:)")
            end = nil
        }
        // A step with errors is kept (the errors reject the file anyway) so that the Lab target
        // also reads its texts: every mistake of a file is reported at once.
        return ScenarioStep(name: name, say: say, set: settings, send: send, returns: returns, end: end ?? .duration(.zero),
                            expect: expect, location: reader.location(node))
    }

    /// A field that holds one string or a list of strings, each with its own line.
    private static func scalarList(_ fields: Fields, _ key: String, what: String, reader: YAMLReader) -> [SourcedText] {
        guard let node = fields[key] else { return [] }
        if case .scalar(let one) = node {
            return one.string.isEmpty ? [] : [SourcedText(one.string, at: reader.location(node))]
        }
        var out: [SourcedText] = []
        for item in fields.sequence(key) {
            guard case .scalar(let scalar) = item, !scalar.string.isEmpty else {
                reader.error(item, "\(fields.path).\(key) must hold \(what), found \(reader.describe(item))")
                continue
            }
            out.append(SourcedText(scalar.string, at: reader.location(item)))
        }
        return out
    }

    /// A stand-in's `model:`: the text form (`ttft 300ms tokens 50-200 rate 50/s jitter 10%`)
    /// or a mapping of the same knobs; each bad value is reported at its own line.
    static func readModelShape(_ fields: Fields, path: String, reader: YAMLReader) -> ModelShape? {
        guard let node = fields["model"] else { return nil }
        if case .scalar(let scalar) = node {
            do {
                return try ModelShape.parse(scalar.string)
            } catch {
                reader.error(node, "\(path).model: \(error)")
                return nil
            }
        }
        guard let knobs = fields.mapping("model", known: ["ttft", "tokens", "rate", "jitter"]) else { return nil }
        var shape = ModelShape()
        var ok = true
        for key in ["ttft", "tokens", "rate", "jitter"] {
            guard let value = knobs[key] else { continue }
            guard case .scalar(let scalar) = value else {
                reader.error(value, "\(path).model.\(key) must be a single value, found \(reader.describe(value))")
                ok = false
                continue
            }
            let text = scalar.string.lowercased()
            do {
                switch key {
                case "ttft": shape.ttftNanos = try ModelShape.ttft(text)
                case "tokens": shape.length = try ModelShape.length(text)
                case "rate": shape.rate = try ModelShape.rate(text)
                default: shape.jitterPercent = try ModelShape.jitter(text)
                }
            } catch {
                reader.error(value, "\(path).model.\(key): \(error.reason)")
                ok = false
            }
        }
        return ok ? shape : nil
    }

    /// A DNS name or an IP literal, as a `Host` header may carry it.
    static func isPlainHost(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 253 && text.unicodeScalars.allSatisfy { s in
            s.isASCII && (s.properties.isAlphabetic || ("0"..."9").contains(s) || "-.:[]_".unicodeScalars.contains(s))
        }
    }

    /// An origin-form path: `/` then visible ASCII other than `#`.
    static func isOriginFormPath(_ text: String) -> Bool {
        text.hasPrefix("/") && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "#") }
    }

    private static func isHostPort(_ text: String) -> Bool {
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex else { return false }
        return Int(text[text.index(after: colon)...]).map { (1...65535).contains($0) } ?? false
    }

    // MARK: Cross-document checks

    private static func validate(_ config: inout LabConfig, reader: YAMLReader) {
        for backend in config.backends {
            var seen: [String: SourceLocation] = [:]
            for provider in backend.groups.joined() {
                if let first = seen[provider.name] {
                    reader.error(at: provider.location, "duplicate provider name \(provider.name) in \(backend.kind) \(backend.name) (first at \(first))")
                } else {
                    seen[provider.name] = provider.location
                }
            }
        }
        for route in config.routes {
            for rule in route.rules {
                for ref in rule.backendRefs {
                    if ManifestLoader.backendKinds.contains(ref.kind) || ref.kind == "Service" {
                        if config.backend(named: ref.name, namespace: ref.namespace) == nil {
                            reader.error(at: ref.location, "HTTPRoute \(route.name) refers to \(ref.kind) \(ref.namespace)/\(ref.name), which is not defined in the given files")
                        }
                    } else {
                        reader.error(at: ref.location, "HTTPRoute \(route.name): backendRef kind \(ref.kind) is not supported; use AgentgatewayBackend")
                    }
                }
                if rule.backendRefs.isEmpty {
                    reader.error(at: rule.location, "HTTPRoute \(route.name) has a rule with no backendRefs")
                }
            }
        }
        for policy in config.policies {
            for ref in policy.targetRefs {
                switch ref.kind {
                case _ where backendKinds.contains(ref.kind):
                    guard let backend = config.backend(named: ref.name, namespace: policy.namespace) else {
                        reader.error(at: ref.location, "\(policy.kind) \(policy.name) targets \(ref.kind) \(ref.name), which is not defined")
                        continue
                    }
                    if let section = ref.sectionName, !backend.groups.joined().contains(where: { $0.name == section }) {
                        reader.error(at: ref.location, "\(policy.kind) \(policy.name) targets provider \(section) of \(ref.name), which has no such provider")
                    }
                case "HTTPRoute":
                    if !config.routes.contains(where: { $0.name == ref.name && $0.namespace == policy.namespace }) {
                        reader.error(at: ref.location, "\(policy.kind) \(policy.name) targets HTTPRoute \(ref.name), which is not defined")
                    }
                default:
                    reader.warning(at: ref.location, "\(policy.kind) \(policy.name): targetRef kind \(ref.kind) is ignored")
                }
            }
        }
        if let scenario = config.scenario {
            let providers = Set(config.backends.flatMap { $0.groups.joined().map(\.name) })
            for step in scenario.steps {
                for name in step.returns where !providers.contains(name.text) {
                    reader.error(at: name.location, "step \(step.name): return: no provider named \(name.text); the lab's providers: \(providers.sorted().joined(separator: ", "))")
                }
            }
        }
        if config.routes.isEmpty && !config.backends.isEmpty {
            reader.warning(at: config.backends[0].location, "no HTTPRoute: the gateway will answer every path with 404")
        }
    }
}
