import Foundation
import Testing
@testable import Gateway

@Suite("Manifests")
struct ConfigTests {
    @Test("the bundled seed lab parses into its route, groups and providers")
    func seedLab() throws {
        let config = try ManifestLoader.load(files: [scenariosDirectory + "/http-429-lab.yaml"])
        #expect(config.warnings.isEmpty, "\(config.warnings)")
        #expect(config.routes.count == 1)
        let route = try #require(config.routes.first)
        #expect(route.qualifiedName == "enterprise-agentgateway/http-429")
        #expect(route.rules[0].matches == [PathMatch(kind: .pathPrefix, value: "/http-429")])
        #expect(route.rules[0].requestTimeout == .seconds(120))
        #expect(route.rules[0].backendRefs.map(\.name) == ["http-429"])
        let backend = try #require(config.backend(named: "http-429", namespace: "enterprise-agentgateway"))
        #expect(backend.groups.map { $0.map(\.name) } == [["http-429-provider"], ["openai-provider"]])
        let first = backend.groups[0][0]
        #expect(first.model == "gpt-5")
        #expect(first.upstreamAddress == UpstreamAddress(host: "http-429-server.enterprise-agentgateway.svc.cluster.local", port: 9959, tls: false))
        #expect(first.upstreamPath(forClientPath: "/http-429") == "/")
        #expect(first.policies.auth == .passthrough)
        let second = backend.groups[1][0]
        #expect(second.model == "gpt-4o-mini")
        #expect(second.upstreamAddress == UpstreamAddress(host: "api.openai.com", port: 443, tls: true))
        #expect(second.upstreamPath(forClientPath: "/http-429") == "/v1/chat/completions")
        #expect(second.policies.auth == .secretRef(name: "openai-secret"))
        let scenario = try #require(config.scenario)
        #expect(scenario.standIns.map(\.kind) == [.http429, .mockOpenAI])
        #expect(scenario.standIns[0].retryAfterSeconds == 60)
        #expect(scenario.secretsFromEnvironment["openai-secret"] == "OPENAI_API_KEY")
    }

    @Test("the seed lab's whole markdown manifests, with Deployment and Service, load with warnings only")
    func seedManifestsVerbatim() throws {
        let yaml = """
        apiVersion: v1
        kind: ServiceAccount
        metadata:
          name: http-429-server
          namespace: enterprise-agentgateway
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: http-429-server
        spec:
          type: ClusterIP
        """
        let config = try loadLab(yaml)
        #expect(config.warnings.map(\.location.line) == [1, 7])
        #expect(config.warnings[0].message.contains("ServiceAccount"))
    }

    static let base = """
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: r, namespace: ns}
    spec:
      rules:
        - matches: [{path: {type: PathPrefix, value: /x}}]
          backendRefs: [{name: b, group: agentgateway.dev, kind: AgentgatewayBackend}]
    ---
    apiVersion: agentgateway.dev/v1alpha1
    kind: AgentgatewayBackend
    metadata: {name: b, namespace: ns}
    spec:
      ai:
        groups:
          - providers:
              - name: p1
                openai: {model: m}
                host: 127.0.0.1
                port: 9
    """

    func errors(_ yaml: String) -> [ConfigDiagnostic] {
        do {
            _ = try loadLab(yaml, file: "bad.yaml")
            return []
        } catch let e as ConfigErrors {
            return e.diagnostics
        } catch {
            return [ConfigDiagnostic(severity: .error, location: SourceLocation(file: "?", line: -1), message: "\(error)")]
        }
    }

    @Test("a valid base loads")
    func baseLoads() throws {
        let config = try loadLab(Self.base)
        #expect(config.backends[0].groups[0][0].port == 9)
    }

    @Test("wrong type names file:line and the field")
    func wrongType() {
        let e = errors(Self.base.replacingOccurrences(of: "port: 9", with: "port: nine"))
        #expect(e.count == 1)
        #expect(e.first?.location == SourceLocation(file: "bad.yaml", line: 19, column: e.first?.location.column ?? 0))
        #expect(e.first?.message.contains("port must be a whole number") == true)
        #expect(e.first?.description.hasPrefix("bad.yaml:19: error:") == true)
    }

    @Test("missing provider name is an error at the provider")
    func missingName() {
        let e = errors(Self.base.replacingOccurrences(of: "- name: p1\n", with: "- id: p1\n"))
        #expect(e.contains { $0.message.contains("name is required") && $0.location.line == 16 })
    }

    @Test("duplicate provider names are an error naming both places")
    func duplicateProvider() {
        let yaml = Self.base + """

                  - name: p1
                    openai: {model: m}
              - providers:
                  - name: p1
                    openai: {}
        """
        let e = errors(yaml)
        #expect(e.count == 2)
        #expect(e.allSatisfy { $0.message.contains("duplicate provider name p1") && $0.message.contains("bad.yaml:16") })
    }

    @Test("a backendRef to nothing is an error at the backendRef")
    func danglingBackendRef() {
        let e = errors(Self.base.replacingOccurrences(of: "backendRefs: [{name: b,", with: "backendRefs: [{name: nope,"))
        #expect(e.count == 1)
        #expect(e.first?.location.line == 7)
        #expect(e.first?.message.contains("ns/nope") == true)
    }

    @Test("host without port, path with pathPrefix, and no provider kind are errors")
    func providerShape() {
        let e = errors(Self.base.replacingOccurrences(of: "            port: 9", with: "            path: /a\n            pathPrefix: /b")
                                .replacingOccurrences(of: "openai: {model: m}", with: "model: m"))
        let messages = e.map(\.message).joined(separator: "\n")
        #expect(messages.contains("exactly one provider kind"))
        #expect(!e.isEmpty)
        let e2 = errors(Self.base.replacingOccurrences(of: "            port: 9", with: "            path: /a\n            pathPrefix: /b"))
        #expect(e2.map(\.message).contains { $0.contains("host and port go together") })
        #expect(e2.map(\.message).contains { $0.contains("set path or pathPrefix, not both") })
    }

    @Test("a provider name that could break a header line is an error")
    func providerName() {
        let e = errors(Self.base.replacingOccurrences(of: "- name: p1", with: "- name: \"p1\\r\\nx-evil: 1\""))
        #expect(e.count == 1)
        #expect(e.first?.location.line == 16)
        #expect(e.first?.message.contains("may hold only letters, digits") == true)
    }

    @Test("a bad duration says what was wrong and where")
    func badDuration() {
        let yaml = Self.base.replacingOccurrences(of: "      backendRefs:", with: "      timeouts: {request: 12 parsecs}\n      backendRefs:")
        let e = errors(yaml)
        #expect(e.count == 1)
        #expect(e.first?.location.line == 7)
        #expect(e.first?.message.contains("invalid duration \"12 parsecs\"") == true)
    }

    @Test("broken YAML reports its line")
    func brokenYAML() {
        let e = errors("apiVersion: v1\nkind: Secret\nmetadata: {name: x\n  oops: [\n")
        #expect(e.count == 1)
        #expect(e.first?.message.hasPrefix("not valid YAML") == true)
        #expect((e.first?.location.line ?? 0) >= 3)
    }

    @Test("unknown fields are warnings with their line; nothing fails")
    func unknownField() throws {
        let config = try loadLab(Self.base.replacingOccurrences(of: "            port: 9", with: "            port: 9\n            weight: 3"))
        try #require(config.warnings.count == 1)
        #expect(config.warnings[0].location.line == 20)
        #expect(config.warnings[0].message.contains("providers[0].weight"))
    }

    @Test("an unresolvable secretRef is an error only for a real provider")
    func secretRef() throws {
        let real = Self.base.replacingOccurrences(of: "            host: 127.0.0.1\n            port: 9", with: "            policies: {auth: {secretRef: {name: key}}}")
        let config = try loadLab(real, file: "bad.yaml")
        #expect(throws: ConfigErrors.self) { try config.plan(PlanOptions()) }
        do {
            _ = try config.plan(PlanOptions())
        } catch let e as ConfigErrors {
            #expect(e.diagnostics.first?.location.line == 16)
            #expect(e.diagnostics.first?.message.contains("Secret ns/key") == true)
        }
        // Answered by a stand-in: no secret needed.
        let standIn = UpstreamAddress(host: "127.0.0.1", port: 1234, tls: false)
        let plan = try config.plan(PlanOptions(standIns: ["api.openai.com:443": ("openai", standIn)]))
        #expect(plan.backends[0].groups[0][0].connect == standIn)
        #expect(plan.backends[0].groups[0][0].auth == ResolvedAuth.none)
        // With a Secret it resolves, and one leading "Bearer " is stripped.
        let withSecret = real + "\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: key, namespace: ns}\ndata: {Authorization: \(Data("Bearer sk-test".utf8).base64EncodedString())}\n"
        let resolved = try loadLab(withSecret).plan(PlanOptions())
        #expect(resolved.backends[0].groups[0][0].auth == .bearer("sk-test"))
    }

    @Test("real upstreams take the seed lab's secret from OPENAI_API_KEY, and fail clearly without it")
    func realUpstreams() throws {
        let config = try ManifestLoader.load(files: [scenariosDirectory + "/http-429-lab.yaml"])
        let standIn = UpstreamAddress(host: "127.0.0.1", port: 1, tls: false)
        let mapping: [String: (name: String, address: UpstreamAddress)] = [
            "http-429-server.enterprise-agentgateway.svc.cluster.local:9959": ("http-429", standIn),
            "api.openai.com:443": ("openai", standIn),
        ]
        let plan = try config.plan(PlanOptions(standIns: mapping, realUpstreams: true, environment: ["OPENAI_API_KEY": "sk-abc"]))
        let openai = plan.backends[0].groups[1][0]
        #expect(openai.connect == UpstreamAddress(host: "api.openai.com", port: 443, tls: true))
        #expect(openai.auth == .bearer("sk-abc"))
        #expect(plan.backends[0].groups[0][0].connect == standIn)
        do {
            _ = try config.plan(PlanOptions(standIns: mapping, realUpstreams: true, environment: [:]))
            Issue.record("expected an error without OPENAI_API_KEY")
        } catch let e as ConfigErrors {
            #expect(e.description.contains("set OPENAI_API_KEY"))
            #expect(e.description.contains("http-429-lab.yaml:"))
        }
    }

    @Test("policies attach by targetRefs; provider-level wins over backend-level")
    func policyTargets() throws {
        let yaml = Self.base.replacingOccurrences(of: "            port: 9", with: "            port: 9\n            policies: {auth: {passthrough: {}}}\n          - name: p2\n            openai: {model: m}\n            host: 127.0.0.1\n            port: 10") + """

        ---
        apiVersion: agentgateway.dev/v1alpha1
        kind: AgentgatewayPolicy
        metadata: {name: pol, namespace: ns}
        spec:
          targetRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: b}]
          backend:
            auth: {key: "Bearer sk-inline"}
        """
        let config = try loadLab(yaml)
        let plan = try config.plan(PlanOptions())
        #expect(plan.backends[0].groups[0][0].auth == .passthrough)
        #expect(plan.backends[0].groups[0][1].auth == .bearer("sk-inline"))
        #expect(config.policySources(for: config.backends[0].groups[0][1], in: config.backends[0]).first?.contains("AgentgatewayPolicy pol") == true)
    }

    @Test("a policy targeting nothing is an error")
    func policyToNothing() {
        let yaml = Self.base + "\n---\napiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayPolicy\nmetadata: {name: pol, namespace: ns}\nspec:\n  targetRefs: [{kind: AgentgatewayBackend, name: zz, sectionName: p1}]\n"
        let e = errors(yaml)
        #expect(e.count == 1)
        #expect(e.first?.location.line == 25)
        #expect(e.first?.message.contains("AgentgatewayBackend zz") == true)
    }

    @Test("Go durations", arguments: [
        ("120s", 120.0), ("100ms", 0.1), ("1m30s", 90.0), ("2h", 7200.0), ("1.5s", 1.5), ("6m0s", 360.0), ("0", 0.0),
    ])
    func durations(text: String, seconds: Double) throws {
        #expect(abs(try GoDuration.parse(text).seconds - seconds) < 1e-9)
    }

    @Test("bad Go durations", arguments: ["", "10", "5 minutes", "1x", "s", "-1s"])
    func badDurations(text: String) {
        #expect(throws: GoDuration.ParseError.self) { try GoDuration.parse(text) }
    }

    @Test("routing: exact before prefix, longest prefix, segment-aware")
    func routing() throws {
        let yaml = """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: r}
        spec:
          rules:
            - matches: [{path: {type: PathPrefix, value: /http-429}}]
              backendRefs: [{name: a, kind: AgentgatewayBackend}]
            - matches: [{path: {type: PathPrefix, value: /http-429/deep}}]
              backendRefs: [{name: b, kind: AgentgatewayBackend}]
            - matches: [{path: {type: Exact, value: /http-429/x}}]
              backendRefs: [{name: c, kind: AgentgatewayBackend}]
        ---
        apiVersion: agentgateway.dev/v1alpha1
        kind: AgentgatewayBackend
        metadata: {name: a}
        spec: {ai: {groups: [{providers: [{name: p, openai: {}}]}]}}
        ---
        apiVersion: agentgateway.dev/v1alpha1
        kind: AgentgatewayBackend
        metadata: {name: b}
        spec: {ai: {groups: [{providers: [{name: p, openai: {}}]}]}}
        ---
        apiVersion: agentgateway.dev/v1alpha1
        kind: AgentgatewayBackend
        metadata: {name: c}
        spec: {ai: {groups: [{providers: [{name: p, openai: {}}]}]}}
        """
        let plan = try loadLab(yaml).plan(PlanOptions(standIns: ["api.openai.com:443": ("o", UpstreamAddress(host: "127.0.0.1", port: 1, tls: false))]))
        func backend(_ path: String) -> String? { plan.route(forPath: path).map { plan.backends[$0.backendIndex].name } }
        #expect(backend("/http-429") == "default/a")
        #expect(backend("/http-429/y?q=1") == "default/a")
        #expect(backend("/http-4290") == nil)
        #expect(backend("/http-429/deep/er") == "default/b")
        #expect(backend("/http-429/x") == "default/c")
        #expect(backend("/other") == nil)
    }

    @Test("path matches are segment-aware and ignore the query")
    func pathMatchSegments() {
        let prefix = PathMatch(kind: .pathPrefix, value: "/http-429")
        for path in ["/http-429", "/http-429/x", "/http-429?x=1", "/http-429/v1/chat/completions?a=b"] {
            #expect(prefix.matches(path), "\(path)")
        }
        for path in ["/http-4290", "/http-42", "/other", "", "/http-429x/y"] {
            #expect(!prefix.matches(path), "\(path)")
        }
        let slashed = PathMatch(kind: .pathPrefix, value: "/lab/")
        #expect(slashed.matches("/lab") && slashed.matches("/lab/x") && !slashed.matches("/labs"))
        #expect(PathMatch(kind: .pathPrefix, value: "/").matches("/anything"))
        let exact = PathMatch(kind: .exact, value: "/a")
        #expect(exact.matches("/a") && exact.matches("/a?q=1"))
        #expect(!exact.matches("/a/") && !exact.matches("/ab") && !exact.matches("/"))
        #expect(PathMatch(kind: .pathPrefix, value: "/é").matches("/é/x"))
    }
}
