#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A mistake in traffic settings, worded for the user: the flag or file and what is wrong.
public struct TrafficError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The traffic `drive`, `run` and a lab's `traffic:` ask for, as given (flags or a plan
/// file), and the one place that turns it into a `DriverConfiguration`: every command that
/// sends load reads its flags into this and calls `configuration`, so a flag means the same
/// everywhere. Pure apart from reading a body file.
public struct TrafficSettings: Sendable {
    /// Target URLs with their weights; empty: the plan's, else `defaultTarget`.
    public var targets: [(url: String, weight: Double)] = []
    /// `--weights 3,1`: one weight per target URL, in order.
    public var weights: String?
    public var plan: PlanFile?
    // The shape (at most one of closed loop and the open-loop shapes).
    public var concurrency: Int?
    /// `--ramp-up`: the closed loop's slots open evenly over this long.
    public var rampUp: String?
    public var rate: String?
    public var poisson = false
    public var rampTo: String?
    public var rampOver: String?
    public var steps: String?
    public var stepEvery = "10s"
    public var burst: Int?
    public var burstEvery = "1s"
    public var shard: String?
    // Limits.
    public var duration: String?
    public var requests: UInt64?
    // Each request.
    public var model: String?
    public var message: String?
    public var stream = false
    public var headers: [String] = []
    public var bodyFile: String?
    public var method: String?
    // The engine.
    public var maxInFlight: Int?
    public var timeout: String?
    public var connectTimeout = "10s"
    public var http2 = false
    public var seed: UInt64?
    /// `drive --trace`: a W3C `traceparent` per request, its trace id recorded.
    public var trace = false

    public init() {}

    /// Whether any flag says how to drive (closed loop, or an open-loop shape).
    public var hasShape: Bool { concurrency != nil || rate != nil || rampTo != nil || steps != nil || burst != nil }

    /// The driver's configuration. `defaultTarget` is used when neither the settings nor the
    /// plan name a target (a lab's first route); a target that is a path (`/http-429`) goes to
    /// `base` (the lab's gateway). `defaultShape` drives when nothing else says how (the
    /// dashboard's 2/s); without one, a run needs a shape. `defaultDuration` ends an otherwise
    /// endless run (`drive`'s 10 s, like wrk); nil lets it run until stopped.
    public func configuration(defaultTarget: String? = nil, base: String? = nil, defaultShape: Workload? = nil,
                              defaultDuration: Nanos? = 10_000_000_000,
                              environment: [String: String] = [:]) throws(TrafficError) -> DriverConfiguration {
        var list = targets
        if list.isEmpty, let p = plan { list = p.targets.map { ($0.url, $0.weight) } }
        if list.isEmpty, let defaultTarget { list = [(defaultTarget, 1)] }
        guard !list.isEmpty else { throw TrafficError("no target: give a URL, e.g. failover-lab drive http://127.0.0.1:8080/http-429") }
        if let weights {
            let ws = weights.split(separator: ",").map { Double(Self.trim($0)) }
            guard ws.count == list.count, ws.allSatisfy({ $0 != nil && $0! >= 0 && $0! <= 1e9 }) else {
                throw TrafficError("--weights \(weights): give one number in 0...1e9 per target URL (\(list.count) URLs)")
            }
            for i in list.indices { list[i].weight = ws[i]! }
        }
        for i in list.indices where list[i].url.hasPrefix("/") {
            guard let base else { throw TrafficError("target \(list[i].url): a path needs a gateway to send to; give a full URL") }
            list[i].url = base + list[i].url
        }
        for t in list { try Self.checkURL(t.url, what: "target") }
        let specs = try list.map { t throws(TrafficError) in try spec(url: t.url) }
        let mix = RequestMix(specs, weights: list.map(\.weight))

        let duration = try durationValue() ?? plan?.duration
        let requestLimit = requests ?? plan?.requests
        let workload: Workload
        let shapes = [rate != nil || rampTo != nil, steps != nil, burst != nil].filter { $0 }.count
        if concurrency != nil && shapes > 0 {
            throw TrafficError("--concurrency (closed loop) cannot be combined with --rate, --steps or --burst (open loop)")
        }
        if poisson && rate == nil { throw TrafficError("--poisson needs --rate") }
        if rampTo != nil && rate == nil { throw TrafficError("--ramp-to needs --rate, the rate to start from") }
        if let n = concurrency {
            guard n > 0, n <= Units.maxConcurrency else { throw TrafficError("--concurrency \(n): give 1...\(Units.maxConcurrency)") }
            workload = .closedLoop(concurrency: n)
        } else if shapes > 0 {
            workload = .openLoop(try phases(duration: duration))
        } else if let p = plan, let phases = p.phases {
            workload = .openLoop(phases)
        } else if let p = plan, let n = p.concurrency {
            workload = .closedLoop(concurrency: n)
        } else if let defaultShape {
            workload = defaultShape
        } else {
            throw TrafficError("say how to drive: --concurrency N (closed loop), --rate R (open loop) or --plan FILE")
        }
        var config = DriverConfiguration(workload: workload, mix: mix, duration: duration, requestLimit: requestLimit)
        if let rampUp {
            guard case .closedLoop = workload else { throw TrafficError("--ramp-up opens a closed loop's slots: it needs --concurrency (for an open loop, --rate with --ramp-to)") }
            let ramp = try Self.positiveDuration(rampUp, flag: "--ramp-up")
            guard ramp <= Self.longestRampUp else { throw TrafficError("--ramp-up \(rampUp): at most 1h") }
            config.rampUp = ramp
        }
        if config.duration == nil && config.requestLimit == nil, let defaultDuration {
            switch workload {
            case .closedLoop:
                config.duration = defaultDuration
            case .openLoop(let ph) where ph.contains(where: { $0.duration == nil }):
                config.duration = defaultDuration
            default:
                break
            }
        }
        try applyEngine(to: &config)
        if let shard {
            do {
                try config.applyShard(try Shard.parse(shard, environment: environment))
            } catch {
                throw TrafficError("--shard \(shard): \(error)")
            }
        }
        return config
    }

    /// The engine settings (in-flight limit, timeouts, HTTP/2, seed) on a configuration made
    /// elsewhere (a replay).
    public func applyEngine(to config: inout DriverConfiguration) throws(TrafficError) {
        if let n = maxInFlight ?? plan?.maxInFlight {
            guard n > 0, n <= Units.maxConcurrency else { throw TrafficError("--max-in-flight \(n): give 1...\(Units.maxConcurrency)") }
            config.maxInFlight = n
        }
        if let timeout {
            config.timeout = try Self.positiveDuration(timeout, flag: "--timeout")
        } else if let t = plan?.timeout {
            config.timeout = t
        }
        config.connectTimeout = try Self.positiveDuration(connectTimeout, flag: "--connect-timeout")
        config.http2 = http2
        config.trace = trace
        config.seed = seed ?? plan?.seed ?? 1
    }

    public func durationValue() throws(TrafficError) -> Nanos? {
        guard let duration else { return nil }
        return try Self.positiveDuration(duration, flag: "--duration")
    }

    /// One request to `url`, as the flags and the plan describe it (flags win).
    public func spec(url: String) throws(TrafficError) -> RequestSpec {
        var all = plan?.headers ?? []
        for h in headers {
            guard let colon = h.firstIndex(of: ":"), colon != h.startIndex else {
                throw TrafficError("-H '\(h)': write a header as 'Name: value'")
            }
            all.append(h)
        }
        let method = (self.method ?? plan?.method ?? "POST").uppercased()
        if let path = bodyFile ?? plan?.bodyFile {
            let body = try Self.readFile(path, what: bodyFile != nil ? "--body-file" : "body-file in \(plan?.path ?? "the plan")")
            if !all.contains(where: { $0.lowercased().hasPrefix("content-type:") }), body.first == UInt8(ascii: "{") {
                all.insert("Content-Type: application/json", at: 0)
            }
            return RequestSpec(method: method, url: url, headers: all, body: body, model: RequestSpec.model(inBody: body))
        }
        if method == "GET" || method == "HEAD" {
            return RequestSpec(method: method, url: url, headers: all, body: nil, model: nil)
        }
        var spec = RequestSpec.chat(url: url, model: model ?? plan?.model ?? "", message: message ?? plan?.message ?? "What is 2+2?",
                                    stream: stream || (plan?.stream ?? false), headers: all)
        spec.method = method
        return spec
    }

    func phases(duration: Nanos?) throws(TrafficError) -> [Phase] {
        var base: Double?
        if let rate {
            do { base = try Units.rate(rate) } catch { throw TrafficError("--rate \(rate): \(error)") }
        }
        if let steps {
            var rates: [Double] = []
            for s in steps.split(separator: ",") {
                do { rates.append(try Units.rate(String(s))) } catch { throw TrafficError("--steps \(steps): \(error)") }
            }
            let every = try Self.positiveDuration(stepEvery, flag: "--step-every")
            if base != nil { throw TrafficError("--steps already sets the rates; drop --rate") }
            return [Phase(.steps(rates: rates, every: every))]
        }
        if let burst {
            guard burst > 0, burst <= Units.maxConcurrency else { throw TrafficError("--burst must be 1...\(Units.maxConcurrency)") }
            let every = try Self.positiveDuration(burstEvery, flag: "--burst-every")
            if poisson || rampTo != nil { throw TrafficError("--burst combines with an even --rate only") }
            return [Phase(.bursts(size: burst, every: every, baseRate: base ?? 0))]
        }
        guard let base else { throw TrafficError("--rate is needed") }
        if let rampTo {
            let to: Double
            do { to = try Units.rate(rampTo) } catch { throw TrafficError("--ramp-to \(rampTo): \(error)") }
            var over = duration
            if let rampOver { over = try Self.positiveDuration(rampOver, flag: "--ramp-over") }
            guard let over else { throw TrafficError("--ramp-to needs --duration (or --ramp-over) for the length of the ramp") }
            if poisson { throw TrafficError("--poisson with --ramp-to is not supported; use a plan with phases") }
            // The constant phase holds the end rate if the run is longer.
            return [Phase(.ramp(from: base, to: to, over: over)), Phase(.constant(rate: to))]
        }
        return [Phase(poisson ? .poisson(rate: base) : .constant(rate: base))]
    }

    /// The longest `--ramp-up` (an hour): the slots' opening times stay exact integers.
    public static let longestRampUp: Nanos = 3_600_000_000_000

    /// A duration flag: > 0 and within `Units.maxDuration`.
    public static func positiveDuration(_ text: String, flag: String) throws(TrafficError) -> Nanos {
        let d: Nanos
        do { d = try Units.duration(text) } catch { throw TrafficError("\(flag) \(text): \(error)") }
        guard d > 0 else { throw TrafficError("\(flag) \(text): must be longer than 0") }
        return d
    }

    public static func checkURL(_ url: String, what: String) throws(TrafficError) {
        let lower = url.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://"), url.count > 8 else {
            throw TrafficError("\(what) '\(url)': not an http:// or https:// URL")
        }
    }

    /// The largest body file sent: the gateway buffers 8 MiB by default.
    public static let largestBody = 64 << 20

    /// A body file, whole; a regular file of at most `largestBody` bytes.
    public static func readFile(_ path: String, what: String) throws(TrafficError) -> [UInt8] {
        guard let f = fopen(path, "rb") else {
            throw TrafficError("\(what) \(path): cannot open: \(String(cString: strerror(errno)))")
        }
        defer { fclose(f) }
        var info = stat()
        guard fstat(fileno(f), &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw TrafficError("\(what) \(path): not a regular file")
        }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n <= 0 { break }
            guard out.count + n <= largestBody else { throw TrafficError("\(what) \(path): larger than \(largestBody >> 20) MiB") }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    static func trim(_ text: some StringProtocol) -> String {
        var s = Substring(text)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}

/// A replay as `replay` and `run --replay` ask for it, and the one place that makes its
/// driver configuration.
public struct ReplaySettings: Sendable {
    public var path: String
    /// Scheme, host, port (and a base path) each request keeps its path under; nil: records' own URLs.
    public var target: String?
    public var speed = "1x"
    public var maxGap: String?
    public var loop = false
    public var message = "What is 2+2?"
    public var stream = false
    public var headers: [String] = []

    public init(path: String) { self.path = path }

    /// The configuration (the engine settings and limits are the caller's), and the
    /// diagnostics that count what was replayed, skipped and malformed.
    public func configuration(duration: Nanos?, requests: UInt64?,
                              report: @escaping @Sendable (String) -> Void) throws(TrafficError) -> (DriverConfiguration, ReplayDiagnostics) {
        guard let speedValue = Units.parseSpeed(speed) else {
            throw TrafficError("--speed \(speed): write a factor from 0.000001x to 1000000x, such as 2x or 0.5x")
        }
        var gap: Nanos?
        if let maxGap {
            do { gap = try Units.duration(maxGap) } catch { throw TrafficError("--max-gap \(maxGap): \(error)") }
        }
        if let target { try TrafficSettings.checkURL(target, what: "--target") }
        for h in headers where !h.contains(":") { throw TrafficError("-H '\(h)': write a header as 'Name: value'") }
        // Opened once here so a missing file is a usage error, not an empty run.
        do { _ = try LineReader(path: path) } catch { throw TrafficError("\(error)") }
        let diagnostics = ReplayDiagnostics(report: report)
        let builder = ReplayRequestBuilder(target: target, message: message, stream: stream, headers: headers)
        let path = self.path, loop = self.loop, maxGapValue = gap
        let make: @Sendable () -> any ArrivalFeed = {
            do {
                return try ReplayFeed(path: path, builder: builder, speed: speedValue, maxGap: maxGapValue, loop: loop,
                                      diagnostics: diagnostics)
            } catch {
                diagnostics.bad("\(error)")
                return EmptyFeed()
            }
        }
        var config = DriverConfiguration(workload: .replay(make), mix: RequestMix([]), duration: duration, requestLimit: requests)
        if loop && config.duration == nil && config.requestLimit == nil { config.duration = 10_000_000_000 }
        return (config, diagnostics)
    }

    /// What was replayed, for the end of a run.
    public static func summary(_ diagnostics: ReplayDiagnostics, path: String) -> String {
        var note = "replayed \(diagnostics.entries) requests from \(path)"
        if diagnostics.skipped > 0 { note += "; skipped \(diagnostics.skipped) other lines" }
        if diagnostics.malformed > 0 { note += "; \(diagnostics.malformed) malformed lines" }
        return note
    }
}

/// A feed with nothing in it (the file vanished between the check and the run).
public struct EmptyFeed: ArrivalFeed {
    public init() {}
    public mutating func next() -> (offset: Nanos, request: RequestSpec)? { nil }
}
