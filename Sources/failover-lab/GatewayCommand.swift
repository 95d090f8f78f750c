import ArgumentParser
import Foundation
import Gateway
import Lab
import NIOCore

/// `failover-lab gateway`: the lab's gateway and stand-ins, headless.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Run the in-process gateway and the lab's stand-ins, headless, with an access log.",
        discussion: """
        Reads the lab files, starts the stand-ins their Scenario names (each on a free \
        loopback port), and serves the routes. Once listening it prints \
        'listening on http://HOST:PORT' to stderr; each request gives one access-log \
        JSON line (stdout by default). Try the seed lab:

          curl -v localhost:8080/http-429 -H "Content-Type: application/json" \\
            -d '{"model": "", "messages": [{"role": "user", "content": "What is 2+2?"}]}'
        """)

    @OptionGroup var lab: LabFileArguments

    @Option(help: "Address to listen on.")
    var listen = "127.0.0.1"

    @Option(help: "Port to listen on; 0 picks a free one.")
    var port = 8080

    @Option(name: .customLong("access-log"), help: ArgumentHelp("Where access-log lines go: a file (appended, one write per line) or - for stdout.", valueName: "path|-"))
    var accessLog = "-"

    @Option(name: .customLong("admin-port"), help: "Admin port, on --admin-listen (loopback by default): GET /health/providers, GET /metrics, GET /standins, POST /standins/NAME/behavior. 0 picks a free one.")
    var adminPort = 15020

    @Flag(name: .customLong("no-admin"), help: "Do not open the admin port.")
    var noAdmin = false

    @Option(help: "Event-loop threads serving clients, each with its own upstream connection pool (default: one per core).")
    var threads = System.coreCount

    @Option(name: .customLong("log-body"), help: ArgumentHelp("Add response.body to the access log, cut to this many bytes.", valueName: "bytes"))
    var logBody: Int?

    @OptionGroup var labFlags: LabFlags

    @OptionGroup var admin: AdminFlags


    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535, got \(port)") }
        guard (0...65535).contains(adminPort) else { throw ValidationError("--admin-port must be 0...65535, got \(adminPort)") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be 1...64, got \(threads)") }
        // A negative cut would trap when the first response body is logged.
        if let logBody, logBody < 0 { throw ValidationError("--log-body must be 0 or more bytes, got \(logBody)") }
    }

    func run() async throws {
        let config = try lab.load()
        var settings = LabSettings()
        try labFlags.apply(to: &settings)
        settings.options.host = listen
        settings.ports = [port]
        settings.options.gateway.threads = threads
        settings.options.gateway.logResponseBody = logBody
        settings.options.adminPort = noAdmin ? nil : adminPort
        admin.apply(to: &settings.options)
        do {
            settings.options.accessLog = accessLog == "-" ? .standardOutput : try AccessLogWriter(path: accessLog)
        } catch {
            Console.error("failover-lab: --access-log: \(error)")
            throw ExitCode(2)
        }
        let running: RunningLab
        do {
            running = try await LabBuilder.start(config: config, settings: settings)
        } catch {
            throw error.exit()
        }
        let options = settings.options
        for standIn in running.standIns {
            Console.error("stand-in \(standIn.name) on http://\(standIn.address) (\(standIn.behavior))")
        }
        if let admin = running.admin {
            let host = admin.host.contains(":") ? "[\(admin.host)]" : admin.host
            Console.error("admin on http://\(host):\(admin.port) (GET /health/providers, /metrics; POST /standins/NAME/behavior)")
        }
        Console.error("listening on \(running.gatewayURL)")
        _ = await Signals.waitForTermination()
        // Drain: no new connections; requests in flight finish (up to --drain-timeout).
        // A second signal ends the process at once.
        Console.error("draining (up to \(options.gateway.drainTimeout.compactDescription); a second signal quits at once)")
        Task.detached {
            _ = await Signals.waitForTermination()
            Console.error("failover-lab: second signal, exiting without draining")
            Foundation.exit(130)
        }
        await running.stop()
    }
}

/// The switches for where the gateway does better than agentgateway (all on by default).
struct BalancerFlags: ParsableArguments {
    @Flag(name: .customLong("no-half-open"), help: "When an eviction ends, return the provider at once (agentgateway's plain time-based return) instead of sending one probe first.")
    var noHalfOpen = false

    @Flag(name: .customLong("no-forward-deadlines"), help: "Let a later, shorter reset hint shorten a live eviction.")
    var noForwardDeadlines = false

    @Flag(name: .customLong("no-quota-classification"), help: "Do not tell 429 'quota' (hint over 10 minutes or insufficient_quota) from 429 'rate'.")
    var noQuotaClassification = false

    @Flag(name: .customLong("no-retry-hint"), help: "Do not add retry-after-ms: 100 to a response that evicted its provider while another provider can serve the retry (by default SDKs then retry at once instead of sleeping the upstream's retry-after).")
    var noRetryHint = false

    // Eviction limit (issue 10, input hardening).
    @Option(name: .customLong("max-eviction"), help: ArgumentHelp("The longest a provider is evicted, whatever a reset hint or health policy asks (1s to 8784h). Longer hints are cut to it and still shown as 429 quota.", valueName: "duration"))
    var maxEviction = "1h"

    /// `--max-eviction` read; only after `validate()` passed.
    var maxEvictionDuration: Duration { (try? GoDuration.parse(maxEviction)) ?? BalancerOptions.defaultMaxEviction }

    func validate() throws {
        let value: Duration
        do {
            value = try GoDuration.parse(maxEviction)
        } catch {
            throw ValidationError("--max-eviction: \(error)")
        }
        guard value >= .seconds(1), value <= RateLimitHint.ceiling else {
            throw ValidationError("--max-eviction must be from 1s to 8784h (366 days), got \(maxEviction)")
        }
    }

    var options: BalancerOptions {
        BalancerOptions(deadlinesOnlyMoveForward: !noForwardDeadlines, halfOpen: !noHalfOpen, classifyQuota: !noQuotaClassification,
                        maxEviction: maxEvictionDuration)
    }

    /// Sets the balancer switches and the failover retry hint, the same for `gateway` and `run`.
    func apply(to gateway: inout GatewayOptions) {
        gateway.balancer = options
        gateway.failoverRetryHint = noRetryHint ? nil : .milliseconds(100)
    }
}

// MARK: - Limits and timeouts (gateway and run)

/// The gateway's limits against slow and hostile clients and hanging upstreams.
struct LimitFlags: ParsableArguments {
    @Option(name: .customLong("client-header-timeout"), help: ArgumentHelp("Time to read a request's head, from its first byte (from the accept for a connection's first request); then 408, or a plain close when nothing came.", valueName: "duration"))
    var clientHeaderTimeout = "30s"

    @Option(name: .customLong("client-body-timeout"), help: ArgumentHelp("Longest pause within a request body; then 408 and close.", valueName: "duration"))
    var clientBodyTimeout = "30s"

    @Option(name: .customLong("idle-timeout"), help: ArgumentHelp("How long a keep-alive client connection may wait for its next request before it is closed.", valueName: "duration"))
    var idleTimeout = "60s"

    @Option(name: .customLong("upstream-header-timeout"), help: ArgumentHelp("Time to an upstream's response head when the route sets no timeout; then 504.", valueName: "duration"))
    var upstreamHeaderTimeout = "120s"

    @Option(name: .customLong("max-connections"), help: ArgumentHelp("Client connections served at once; past it new ones are closed at once (default: half of `ulimit -n` after a reserve of 64, now \(GatewayOptions.defaultMaxConnections())).", valueName: "n"))
    var maxConnections: Int?

    @Option(name: .customLong("max-body-buffer"), help: ArgumentHelp("Request body bytes held per connection (the gateway reads a whole body before sending it); larger bodies get 413. Takes k, M suffixes (KiB, MiB).", valueName: "bytes"))
    var maxBodyBuffer = "8M"

    @Option(name: .customLong("drain-timeout"), help: ArgumentHelp("On SIGTERM or SIGINT: how long requests in flight may take to finish before they are cut.", valueName: "duration"))
    var drainTimeout = "10s"

    /// Durations take Go's forms (300ms, 30s, 2m, 1h30m) and must lie in 1ms...24h (drain 0...1h).
    static func duration(_ text: String, flag: String, allowZero: Bool = false, most: Duration = .seconds(86_400)) throws -> Duration {
        // Bounded before parsing: no more than 16 characters and 6 digits a number, so no
        // parse can overflow (at most about 2 x 999999h), whatever the parser does with it.
        var run = 0
        for c in text.utf8 {
            run = (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) ? run + 1 : 0
            guard run <= 6, text.utf8.count <= 16 else { throw ValidationError("--\(flag) \(text): too large; at most \(most.compactDescription)") }
        }
        let value: Duration
        do {
            value = try GoDuration.parse(text)
        } catch {
            throw ValidationError("--\(flag) \(text): \(error)")
        }
        let least: Duration = allowZero ? .zero : .milliseconds(1)
        guard value >= least, value <= most else {
            throw ValidationError("--\(flag) \(text): must be \(allowZero ? "0s" : "1ms")...\(most.compactDescription)")
        }
        return value
    }

    /// `8388608`, `64k`, `8M` (binary units), at most 1 GiB.
    static func bytes(_ text: String, flag: String) throws -> Int {
        var digits = Substring(text.trimmingCharacters(in: .whitespaces))
        var scale = 1
        switch digits.last?.lowercased() {
        case "k": scale = 1024; digits = digits.dropLast()
        case "m": scale = 1024 * 1024; digits = digits.dropLast()
        case "g": scale = 1024 * 1024 * 1024; digits = digits.dropLast()
        default: break
        }
        guard let n = Int(digits), n > 0 else { throw ValidationError("--\(flag) \(text): write a positive number of bytes, e.g. 8M, 512k, 65536") }
        let (total, overflow) = n.multipliedReportingOverflow(by: scale)
        guard !overflow, total <= 1 << 30 else { throw ValidationError("--\(flag) \(text): at most 1G") }
        return total
    }

    func validate() throws {
        _ = try Self.duration(clientHeaderTimeout, flag: "client-header-timeout")
        _ = try Self.duration(clientBodyTimeout, flag: "client-body-timeout")
        _ = try Self.duration(idleTimeout, flag: "idle-timeout")
        _ = try Self.duration(upstreamHeaderTimeout, flag: "upstream-header-timeout")
        _ = try Self.duration(drainTimeout, flag: "drain-timeout", allowZero: true, most: .seconds(3600))
        _ = try Self.bytes(maxBodyBuffer, flag: "max-body-buffer")
        if let maxConnections { guard (1...1_000_000).contains(maxConnections) else { throw ValidationError("--max-connections must be 1...1000000, got \(maxConnections)") } }
    }

    /// Sets the options (already validated, so the parses succeed).
    func apply(to options: inout GatewayOptions) {
        if let d = try? Self.duration(clientHeaderTimeout, flag: "") { options.clientHeaderTimeout = d }
        if let d = try? Self.duration(clientBodyTimeout, flag: "") { options.clientBodyTimeout = d }
        if let d = try? Self.duration(idleTimeout, flag: "") { options.idleTimeout = d }
        if let d = try? Self.duration(upstreamHeaderTimeout, flag: "") { options.upstreamHeaderTimeout = d }
        if let d = try? Self.duration(drainTimeout, flag: "", allowZero: true, most: .seconds(3600)) { options.drainTimeout = d }
        if let n = try? Self.bytes(maxBodyBuffer, flag: "") { options.maxRequestBody = n }
        if let maxConnections { options.maxConnections = maxConnections }
    }
}
