import Yams

/// A plan-file problem, with the file and line.
public struct PlanError: Error, Equatable, CustomStringConvertible {
    public var description: String
    /// The line (0 when the problem is with the file as a whole) and the message without the place,
    /// for callers that report places their own way (a lab file's `spec.traffic`).
    public var line: Int
    public var message: String
    public init(_ path: String, _ line: Int, _ message: String) {
        description = line > 0 ? "\(path):\(line): \(message)" : "\(path): \(message)"
        self.line = line
        self.message = message
    }
}

/// The YAML of a plan file, read with Yams: each node keeps its line (`mark`), so every
/// error, unknown keys included, names `file:line`.
struct PlanYAML {
    let path: String

    /// The document's root node; nil for an empty file. YAML errors carry Yams' position.
    func root(_ text: String) throws(PlanError) -> Node? {
        try checkNesting(text)
        do {
            return try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw planError(error, text)
        } catch {
            throw PlanError(path, 0, "not valid YAML: \(error)")
        }
    }

    /// A plan is small and shallow. Yams builds nodes recursively, so a hostile file of
    /// 50,000 `[` (or `- - - ...`) would overflow the stack: refuse it before Yams sees it.
    static let maxBytes = 1 << 20
    static let maxDepth = 64

    func checkNesting(_ text: String) throws(PlanError) {
        guard text.utf8.count <= Self.maxBytes else { throw PlanError(path, 0, "larger than \(Self.maxBytes) bytes; a plan is a short file") }
        var flow = 0, line = 1, column = 0, leading = true, comment = false
        var quote: UInt8 = 0, escaped = false
        var previous: UInt8 = 0x0A
        for b in text.utf8 {
            defer { previous = b }
            if b == 0x0A {
                line += 1; column = 0; leading = true; comment = false
                continue // a quoted scalar may span lines: `quote` stays
            }
            column += 1
            if comment { continue }
            if quote != 0 {
                if escaped { escaped = false } else if quote == 0x22, b == 0x5C { escaped = true } else if b == quote { quote = 0 }
                continue
            }
            // Block nesting needs a column each (indentation or `- `/`? `/`: ` indicators).
            if leading, b != 0x20, b != 0x2D, b != 0x3F, b != 0x3A, b != 0x09 { leading = false }
            if leading, column > Self.maxDepth * 4 {
                throw PlanError(path, line, "nested deeper than a plan needs (more than \(Self.maxDepth * 4) columns of indentation)")
            }
            // Quotes open a scalar, and `#` a comment, only where a token starts; `it's` is plain text.
            let tokenStart = previous == 0x0A || previous == 0x20 || previous == 0x09 || previous == 0x5B || previous == 0x7B
                || previous == 0x2C || previous == 0x3A || previous == 0x2D || previous == 0x3F
            switch b {
            case 0x22 where tokenStart, 0x27 where tokenStart: quote = b
            case 0x23 where previous == 0x0A || previous == 0x20 || previous == 0x09: comment = true
            case 0x5B, 0x7B:
                flow += 1
                if flow > Self.maxDepth { throw PlanError(path, line, "nested deeper than \(Self.maxDepth) brackets") }
            case 0x5D, 0x7D: flow = max(0, flow - 1)
            default: break
            }
        }
    }

    func planError(_ error: YamlError, _ text: String) -> PlanError {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            if mark.line >= 1, mark.line <= lines.count,
               lines[mark.line - 1].prefix(while: { $0 == " " || $0 == "\t" }).contains("\t") {
                return PlanError(path, mark.line, "tabs are not allowed for indentation; use spaces")
            }
            let why = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ", ")
            return PlanError(path, mark.line, "not valid YAML: " + why)
        case let .duplicatedKeysInMapping(duplicates, context):
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return PlanError(path, context.mark.line, "\(keys) \(duplicates.count == 1 ? "appears" : "appear") twice")
        default:
            return PlanError(path, 0, "not valid YAML: \(error)")
        }
    }

    /// A mapping's entries with string keys, whatever they are (empty if not a mapping).
    func entriesIgnoringUnknown(_ node: Node) -> [(key: String, value: Node)] {
        guard case let .mapping(mapping) = node else { return [] }
        return mapping.compactMap { k, v in scalar(k).map { ($0, v) } }
    }

    func line(_ node: Node) -> Int { node.mark?.line ?? 0 }

    func fail(_ node: Node, _ message: String) -> PlanError { PlanError(path, line(node), message) }

    /// The text of a scalar; nil for a mapping or a list.
    func scalar(_ node: Node) -> String? {
        if case let .scalar(s) = node { return s.string }
        return nil
    }

    /// A mapping's entries in file order, with string keys; nil if `node` is not a mapping.
    /// Keys not in `known` are errors at the key's line.
    func entries(_ node: Node, known: [String], unknown: (String) -> String) throws(PlanError)
        -> [(key: String, value: Node)]? {
        guard case let .mapping(mapping) = node else { return nil }
        var out: [(key: String, value: Node)] = []
        for (k, v) in mapping {
            guard let key = scalar(k), !key.isEmpty else { throw fail(k, "a key must be a plain name") }
            guard known.contains(key) else { throw fail(k, unknown(key)) }
            out.append((key, v))
        }
        return out
    }
}

/// A traffic plan file: targets with weights, the request, and either open-loop phases or a
/// closed-loop concurrency, plus the run's limits. Flags given on the command line win.
public struct PlanFile: Sendable {
    public struct Target: Sendable, Equatable {
        public var url: String
        public var weight: Double
    }

    public var path: String
    public var targets: [Target] = []
    public var phases: [Phase]?
    public var concurrency: Int?
    public var duration: Nanos?
    public var requests: UInt64?
    public var maxInFlight: Int?
    public var timeout: Nanos?
    public var seed: UInt64?
    public var model: String?
    public var message: String?
    public var stream: Bool?
    public var method: String?
    public var headers: [String] = []
    /// Resolved against the plan file's folder.
    public var bodyFile: String?

    static let topKeys = ["targets", "target", "request", "phases", "concurrency", "duration", "requests",
                          "max-in-flight", "timeout", "seed"]
    static let requestKeys = ["model", "message", "stream", "method", "headers", "body-file"]

    public static func load(path: String) throws(PlanError) -> PlanFile {
        let reader: LineReader
        do { reader = try LineReader(path: path) } catch { throw PlanError(path, 0, "cannot read the plan: \(error)") }
        var lines: [String] = []
        var total = 0
        while let l = reader.next() {
            total += l.utf8.count + 1
            guard total <= PlanYAML.maxBytes else { throw PlanError(path, reader.lineNumber, "larger than \(PlanYAML.maxBytes) bytes; a plan is a short file") }
            lines.append(l)
        }
        if reader.overlongLines > 0 { throw PlanError(path, 0, "a line longer than \(LineReader.maxLineBytes >> 20) MiB; a plan is a short file") }
        return try parse(lines.joined(separator: "\n"), path: path)
    }

    public static func parse(_ text: String, path: String) throws(PlanError) -> PlanFile {
        guard let root = try PlanYAML(path: path).root(text) else { return PlanFile(path: path) }
        return try parse(root: root, path: path)
    }

    /// Reads a plan from an already composed YAML node (a lab file's `spec.traffic`): the same
    /// reading as a plan file's, with the node's lines. `path` names the file in errors and is
    /// the folder `body-file` is resolved against.
    public static func parse(root: Node, path: String) throws(PlanError) -> PlanFile {
        let yaml = PlanYAML(path: path)
        var plan = PlanFile(path: path)
        if case let .scalar(s) = root, s.string.isEmpty { return plan } // a lone '---'
        guard let entries = try yaml.entries(root, known: topKeys, unknown: {
            "unknown key '\($0)'; use " + topKeys.joined(separator: ", ")
        }) else { throw yaml.fail(root, "a plan is a mapping of keys (targets, phases, ...)") }
        func fail(_ node: Node, _ message: String) -> PlanError { yaml.fail(node, message) }
        func string(_ node: Node, _ what: String) throws(PlanError) -> String {
            guard let s = yaml.scalar(node), !s.isEmpty else { throw fail(node, "\(what) must be a value") }
            return s
        }
        func duration(_ node: Node, _ what: String) throws(PlanError) -> Nanos {
            let s = try string(node, what)
            do { return try Units.duration(s) } catch { throw fail(node, "\(what): \(error)") }
        }
        func rate(_ node: Node, _ what: String) throws(PlanError) -> Double {
            let s = try string(node, what)
            do { return try Units.rate(s) } catch { throw fail(node, "\(what): \(error)") }
        }
        func int(_ node: Node, _ what: String) throws(PlanError) -> Int {
            let s = try string(node, what)
            guard let v = Int(s), v >= 0 else { throw fail(node, "\(what): '\(s)' is not a whole number") }
            return v
        }
        for (key, node) in entries {
            switch key {
            case "target":
                plan.targets = [Target(url: try string(node, "target"), weight: 1)]
            case "targets":
                guard case let .sequence(items) = node else { throw fail(node, "targets is a list of URLs or {url, weight}") }
                for item in items {
                    if let s = yaml.scalar(item) {
                        plan.targets.append(Target(url: s, weight: 1))
                    } else {
                        guard let fields = try yaml.entries(item, known: ["url", "weight"], unknown: {
                            "unknown target key '\($0)'; use url, weight"
                        }) else { throw fail(item, "a target is a URL or {url, weight}") }
                        guard let u = fields.first(where: { $0.key == "url" })?.value else { throw fail(item, "a target needs a url") }
                        var w = 1.0
                        if let wn = fields.first(where: { $0.key == "weight" })?.value {
                            guard let v = Double(try string(wn, "weight")), v >= 0, v <= 1e9 else { throw fail(wn, "weight must be a number in 0...1e9") }
                            w = v
                        }
                        plan.targets.append(Target(url: try string(u, "url"), weight: w))
                    }
                }
            case "request":
                guard let fields = try yaml.entries(node, known: requestKeys, unknown: {
                    "unknown request key '\($0)'; use " + requestKeys.joined(separator: ", ")
                }) else { throw fail(node, "request is a mapping (" + requestKeys.joined(separator: ", ") + ")") }
                for (k, v) in fields {
                    switch k {
                    case "model": plan.model = yaml.scalar(v) ?? ""
                    case "message": plan.message = try string(v, "message")
                    case "method": plan.method = try string(v, "method").uppercased()
                    case "stream":
                        let s = try string(v, "stream")
                        guard s == "true" || s == "false" else { throw fail(v, "stream is true or false") }
                        plan.stream = s == "true"
                    case "body-file":
                        let f = try string(v, "body-file")
                        if f.hasPrefix("/") {
                            plan.bodyFile = f
                        } else {
                            let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
                            plan.bodyFile = dir + "/" + f
                        }
                    case "headers":
                        switch v {
                        case let .sequence(items):
                            for item in items { plan.headers.append(try string(item, "header")) }
                        case let .mapping(hs):
                            for (hk, hv) in hs {
                                guard let name = yaml.scalar(hk), let value = yaml.scalar(hv) else {
                                    throw fail(hk, "a header is 'Name: value'")
                                }
                                plan.headers.append("\(name): \(value)")
                            }
                        default: throw fail(v, "headers is a list of 'Name: value' or a mapping")
                        }
                    default: // entries() let only the known keys through
                        break
                    }
                }
            case "phases":
                guard case let .sequence(items) = node else { throw fail(node, "phases is a list") }
                var phases: [Phase] = []
                for item in items { phases.append(try phase(item)) }
                plan.phases = phases
            case "concurrency":
                let n = try int(node, "concurrency")
                guard n > 0, n <= Units.maxConcurrency else { throw fail(node, "concurrency must be 1...\(Units.maxConcurrency)") }
                plan.concurrency = n
            case "duration": plan.duration = try duration(node, "duration")
            case "requests": plan.requests = UInt64(try int(node, "requests"))
            case "max-in-flight":
                let n = try int(node, "max-in-flight")
                guard n > 0, n <= Units.maxConcurrency else { throw fail(node, "max-in-flight must be 1...\(Units.maxConcurrency)") }
                plan.maxInFlight = n
            case "timeout": plan.timeout = try duration(node, "timeout")
            case "seed": plan.seed = UInt64(try int(node, "seed"))
            default: // entries() let only the known keys through
                break
            }
        }
        if plan.phases != nil, plan.concurrency != nil {
            throw PlanError(path, 0, "a plan has either phases (open loop) or concurrency (closed loop), not both")
        }

        func phase(_ item: Node) throws(PlanError) -> Phase {
            guard case .mapping = item else { throw fail(item, "a phase is a mapping such as {constant: 100/s, for: 10s}") }
            let kinds = ["constant", "poisson", "ramp", "steps", "burst"]
            let present = yaml.entriesIgnoringUnknown(item).filter { kinds.contains($0.key) }
            guard present.count == 1 else {
                throw fail(item, "a phase has exactly one of constant, poisson, ramp, steps, burst")
            }
            guard let fields = try yaml.entries(item, known: kinds + ["for", "to", "every", "rate"], unknown: {
                "unknown phase key '\($0)'; use for, to, every, rate"
            }) else { throw fail(item, "a phase is a mapping") }
            func field(_ key: String) -> Node? { fields.first { $0.key == key }?.value }
            let length: Nanos? = try field("for").map { (n: Node) throws(PlanError) -> Nanos in try duration(n, "for") }
            let (kind, value) = present[0]
            switch kind {
            case "constant":
                return Phase(.constant(rate: try rate(value, "constant")), duration: length)
            case "poisson":
                return Phase(.poisson(rate: try rate(value, "poisson")), duration: length)
            case "ramp":
                var from: Double, to: Double
                if let s = yaml.scalar(value), s.contains("->") {
                    let parts = s.components("->")
                    guard parts.count == 2, let a = Units.parseRate(parts[0]), let b = Units.parseRate(parts[1]) else {
                        throw fail(value, "ramp: write '50/s -> 500/s' or ramp: 50/s with to: 500/s")
                    }
                    from = a
                    to = b
                } else {
                    from = try rate(value, "ramp")
                    guard let t = field("to") else { throw fail(item, "ramp needs to: RATE (or 'ramp: 50/s -> 500/s')") }
                    to = try rate(t, "to")
                }
                guard let length else { throw fail(item, "ramp needs for: DURATION") }
                return Phase(.ramp(from: from, to: to, over: length), duration: length)
            case "steps":
                guard case let .sequence(rs) = value else { throw fail(value, "steps is a list of rates, [100/s, 200/s]") }
                var rates: [Double] = []
                for r in rs { rates.append(try rate(r, "steps")) }
                guard let e = field("every") else { throw fail(item, "steps needs every: DURATION") }
                return Phase(.steps(rates: rates, every: try duration(e, "every")), duration: length)
            default: // burst
                let size = try int(value, "burst")
                guard size > 0, size <= Units.maxConcurrency else { throw fail(value, "burst must be 1...\(Units.maxConcurrency)") }
                guard let e = field("every") else { throw fail(item, "burst needs every: DURATION") }
                let base = try field("rate").map { (n: Node) throws(PlanError) -> Double in try rate(n, "rate") } ?? 0
                return Phase(.bursts(size: size, every: try duration(e, "every"), baseRate: base), duration: length)
            }
        }
        return plan
    }
}

extension String {
    func components(_ separator: String) -> [String] {
        var parts: [String] = []
        var rest = Substring(self)
        while let r = rest.firstRange(of: separator) {
            parts.append(String(rest[..<r.lowerBound]).trimmed(" "))
            rest = rest[r.upperBound...]
        }
        parts.append(String(rest).trimmed(" "))
        return parts
    }
}

/// One of N copies of a run (`drive --shard K/N`), so N machines (the pods of a Kubernetes
/// Indexed Job, or any job runner) together make the plan's load:
///
/// - open loop: every rate divided by N (a burst's size divided like concurrency);
/// - closed loop: concurrency divided, the remainder going to the first shards
///   (10 over 3 shards: 4, 3, 3); `--requests` divided the same way;
/// - `seq` interleaved: shard K numbers its requests K, K+N, K+2N, ..., so the shards'
///   records never share a `seq` and together count 0, 1, 2, ... as one run would;
/// - the seed offset by K, so Poisson gaps and target picks differ between shards.
///
/// The duration is not divided: every shard runs the whole of it.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    /// K, from 0 (as `JOB_COMPLETION_INDEX` counts).
    public let index: Int
    /// N.
    public let count: Int

    /// The most shards a run splits into.
    public static let most = 10_000

    public init(index: Int, count: Int) throws(ShardError) {
        guard (1...Self.most).contains(count) else { throw ShardError("the shard count must be 1...\(Self.most), found \(count)") }
        guard (0..<count).contains(index) else {
            throw ShardError("shard \(index) of \(count) does not exist: K runs from 0 to \(count - 1) (as JOB_COMPLETION_INDEX does)")
        }
        self.index = index
        self.count = count
    }

    public var description: String { "\(index)/\(count)" }

    /// The environment variable that gives K for `--shard /N`: a Kubernetes Indexed Job's.
    public static let indexVariable = "JOB_COMPLETION_INDEX"

    /// Reads `K/N`, or `/N` with K from `JOB_COMPLETION_INDEX`. Both numbers are a user's
    /// (a flag, an environment variable): checked, with what was wrong.
    public static func parse(_ text: String, environment: [String: String]) throws(ShardError) -> Shard {
        let parts = text.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw ShardError("give K/N (shard K of N, K from 0) or /N (K from \(indexVariable)), found \"\(text)\"") }
        func number(_ s: Substring, _ what: String) throws(ShardError) -> Int {
            let t = String(s)
            guard !t.isEmpty, t.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                throw ShardError("\(what) must be a whole number from 0, found \"\(s)\"")
            }
            // Nine digits are below Int.max and well above Shard.most: Int(t) cannot fail.
            guard t.utf8.count <= 9, let n = Int(t) else { throw ShardError("\(what) is too large (shards: at most \(Self.most)), found \"\(s)\"") }
            return n
        }
        let count = try number(parts[1], "N (the shard count) in \"\(text)\"")
        let index: Int
        if parts[0].isEmpty {
            guard let env = environment[indexVariable] else {
                throw ShardError("\"\(text)\" takes K from \(indexVariable), which is not set; give K/N")
            }
            index = try number(Substring(env), "\(indexVariable)")
        } else {
            index = try number(parts[0], "K (the shard index) in \"\(text)\"")
        }
        return try Shard(index: index, count: count)
    }

    /// This shard's part of `n` things: n/N, plus one for the first n%N shards.
    public func share(of n: UInt64) -> UInt64 {
        let (q, r) = n.quotientAndRemainder(dividingBy: UInt64(count))
        return q + (UInt64(index) < r ? 1 : 0)
    }

    /// This shard's part of the workload; a closed loop or a burst too small to give every
    /// shard at least one request is an error (the shard would do nothing).
    public func share(of workload: Workload) throws(ShardError) -> Workload {
        let n = Double(count)
        switch workload {
        case .closedLoop(let concurrency):
            guard concurrency >= count else {
                throw ShardError("concurrency \(concurrency) cannot be split over \(count) shards: give at least one request in flight a shard")
            }
            return .closedLoop(concurrency: Int(share(of: UInt64(concurrency))))  // checked: at most concurrency, an Int
        case .openLoop(let phases):
            var out: [Phase] = []
            for phase in phases {
                let pacing: Pacing
                switch phase.pacing {
                case .constant(let rate): pacing = .constant(rate: rate / n)
                case .poisson(let rate): pacing = .poisson(rate: rate / n)
                case .ramp(let from, let to, let over): pacing = .ramp(from: from / n, to: to / n, over: over)
                case .steps(let rates, let every): pacing = .steps(rates: rates.map { $0 / n }, every: every)
                case .bursts(let size, let every, let baseRate):
                    guard size >= count else {
                        throw ShardError("a burst of \(size) cannot be split over \(count) shards: give at least one request a shard")
                    }
                    pacing = .bursts(size: Int(share(of: UInt64(size))), every: every, baseRate: baseRate / n)  // checked: at most size
                }
                out.append(Phase(pacing, duration: phase.duration))
            }
            return .openLoop(out)
        case .replay:
            throw ShardError("a replay is not split into shards; split its log instead")
        }
    }

    /// This shard's `--requests`; an error when it would get none.
    public func share(ofRequests n: UInt64) throws(ShardError) -> UInt64 {
        guard n >= UInt64(count) else { throw ShardError("--requests \(n) cannot be split over \(count) shards: give at least one request a shard") }
        return share(of: n)
    }

    /// The `seq` of this shard's `i`-th request (from 0): K + N·i. Wrapping only past
    /// 2^64 / N requests, which no run reaches.
    @inline(__always) public func seq(_ i: UInt64) -> UInt64 {
        UInt64(index) &+ i &* UInt64(count)
    }

    /// The seed this shard runs with.
    public func seed(_ base: UInt64) -> UInt64 { base &+ UInt64(index) }
}

/// A `--shard` value that could not be used.
public struct ShardError: Error, Equatable, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension DriverConfiguration {
    /// Makes this configuration shard K of N's part of the run: the workload's and
    /// `requestLimit`'s shares, the seed + K, and `seq` K + N·i (see `Shard`).
    public mutating func applyShard(_ shard: Shard) throws(ShardError) {
        workload = try shard.share(of: workload)
        if let n = requestLimit { requestLimit = try shard.share(ofRequests: n) }
        seed = shard.seed(seed)
        self.shard = shard
    }
}
