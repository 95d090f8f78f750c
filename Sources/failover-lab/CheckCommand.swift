import ArgumentParser
import Gateway
import Lab

/// `failover-lab check`: what the gateway understood of the lab files.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Read lab files and print what the gateway understood: routes, backends, groups, providers, auth, policies, warnings.",
        discussion: "Exits 0 when the files are valid (warnings allowed), 2 on errors, each with file:line.")

    @OptionGroup var lab: LabFileArguments

    @Flag(name: .customLong("real-upstreams"), help: "Check as `gateway --real-upstreams` would start: real providers need their secrets.")
    var realUpstreams = false

    func run() async throws {
        let config = try lab.load()
        var mapping: [String: (name: String, address: UpstreamAddress)] = [:]
        for spec in config.scenario?.standIns ?? [] {
            for declared in spec.answers {
                mapping[declared] = (spec.name, UpstreamAddress(host: "127.0.0.1", port: 0, tls: false))
            }
        }
        let behaviorProblems = StandInFleet.validate(config.scenario?.standIns ?? [])
        if !behaviorProblems.isEmpty {
            Console.error(ConfigErrors(diagnostics: behaviorProblems).description)
            throw ExitCode(2)
        }
        let plan: GatewayPlan
        do {
            plan = try config.plan(PlanOptions(standIns: mapping, realUpstreams: realUpstreams, environment: ProcessInfo.processInfo.environment))
        } catch let errors as ConfigErrors {
            Console.error(errors.description)
            throw ExitCode(2)
        }
        print(CheckReport.render(config, plan: plan))
    }
}

/// The text `check` prints.
enum CheckReport {
    static func describe(_ health: HealthPolicy) -> String {
        let condition = health.condition.map { "unhealthy when \($0)" } ?? "unhealthy on 5xx or no response (default)"
        let e = health.eviction
        var parts = [condition]
        var when: [String] = []
        if let n = e.consecutiveFailures { when.append("after \(n) failure(s) in a row") }
        if let t = e.healthThreshold { when.append("when health < \(Int(t * 100))%") }
        parts.append("evict " + (when.isEmpty ? "on every unhealthy response" : when.joined(separator: " or ")))
        parts.append("for \(e.duration?.compactDescription ?? "the reset hint, else the retry backoff, else 3s") x (times evicted + 1), at most --max-eviction (default 1h)")
        if let r = e.restoreHealth { parts.append("health \(Int(r * 100))% on return") }
        return parts.joined(separator: "; ")
    }

    /// A step in one line: what it does at its start, how it ends, what it expects.
    static func describe(_ step: ScenarioStep) -> String {
        var parts: [String] = []
        if !step.set.isEmpty { parts.append("set " + step.set.map { "\($0.standIn)=\($0.behavior.text)" }.joined(separator: ", ")) }
        if !step.returns.isEmpty { parts.append("return " + step.returns.map(\.text).joined(separator: ", ")) }
        if step.send > 0 { parts.append("send \(step.send)") }
        switch step.end {
        case .duration(let d): parts.append("for \(d.compactDescription)")
        case .until(let e, let timeout): parts.append("until \(e.text) (timeout \(timeout.compactDescription))")
        }
        if !step.expect.isEmpty { parts.append("expect " + step.expect.map(\.text).joined(separator: ", ")) }
        return parts.joined(separator: "; ")
    }

    /// `plan` is `config` resolved: it says which stand-in, if any, answers for each provider.
    static func render(_ config: LabConfig, plan: GatewayPlan) -> String {
        var out: [String] = []
        out.append("files: \(config.files.joined(separator: ", "))")
        if let scenario = config.scenario {
            out.append("scenario \(scenario.name) (\(scenario.location))")
            for spec in scenario.standIns {
                out.append("  stand-in \(spec.name): \(spec.kind.rawValue)\(spec.retryAfterSeconds.map { ", retry-after \($0)" } ?? ""), answers for \(spec.answers.joined(separator: ", "))")
            }
            if let traffic = scenario.traffic { out.append("  traffic: a drive plan (\(traffic.location))") }
            for (i, step) in scenario.steps.enumerated() {
                out.append("  step \(i + 1) \(step.name) (\(step.location)): " + describe(step))
            }
        } else {
            out.append("no Scenario: no stand-ins; every host/port is used as written")
        }
        for route in config.routes {
            out.append("route \(route.qualifiedName) (\(route.location))")
            for rule in route.rules {
                let matches = rule.matches.map { "\($0.kind.rawValue) \($0.value)" }.joined(separator: ", ")
                let refs = rule.backendRefs.map { "\($0.kind) \($0.namespace)/\($0.name)" }.joined(separator: ", ")
                var extras: [String] = []
                if let timeout = rule.requestTimeout { extras.append("timeout \(timeout.compactDescription)") }
                if let retry = rule.retry { extras.append("retry \(retry.attempts)x codes \(retry.codes) backoff \(retry.backoff?.compactDescription ?? "none")") }
                out.append("  \(matches) -> \(refs)\(extras.isEmpty ? "" : " [\(extras.joined(separator: "; "))]")")
            }
        }
        for (b, backend) in config.backends.enumerated() {
            out.append("backend \(backend.qualifiedName) (\(backend.kind), \(backend.location))")
            for (g, group) in backend.groups.enumerated() {
                out.append("  group \(g + 1)")
                for (p, provider) in group.enumerated() {
                    let declared = provider.upstreamAddress
                    let target = plan.backends[b].groups[g][p].standIn.map { "stand-in \($0)" } ?? (declared.tls ? "https://\(declared)" : "http://\(declared)")
                    let policies = config.effectivePolicies(for: provider, in: backend)
                    let path = provider.upstreamPath(forClientPath: "<client path>")
                    out.append("    \(provider.name): openai model \(provider.model ?? "(from request)"), upstream \(declared) path \(path) -> \(target), auth \(policies.auth?.kindDescription ?? "none")")
                    out.append("      health: \(policies.health.map(describe) ?? "lab mode (a 429 with a reset hint evicts for that long, at most --max-eviction, default 1h)")")
                    for note in config.policySources(for: provider, in: backend) {
                        out.append("      policy \(note)")
                    }
                }
            }
        }
        for secret in config.secrets {
            out.append("secret \(secret.namespace)/\(secret.name): \(secret.authorization == nil ? "no Authorization key" : "Authorization set")")
        }
        if config.warnings.isEmpty {
            out.append("no warnings")
        } else {
            out.append("\(config.warnings.count) warning(s):")
            out += config.warnings.map { "  \($0)" }
        }
        return out.joined(separator: "\n")
    }
}

import Foundation
