/// A YAML subset, enough for plan files: block mappings and sequences, `- key: value` items,
/// flow `[a, b]` and `{k: v}`, quoted scalars and `#` comments. Every node keeps its line.
public indirect enum YAMLNode: Sendable, Equatable {
    case scalar(String, line: Int)
    case list([YAMLNode], line: Int)
    case map([(key: String, value: YAMLNode)], line: Int)

    public static func == (a: YAMLNode, b: YAMLNode) -> Bool {
        switch (a, b) {
        case let (.scalar(x, l1), .scalar(y, l2)): return x == y && l1 == l2
        case let (.list(x, l1), .list(y, l2)): return x == y && l1 == l2
        case let (.map(x, l1), .map(y, l2)):
            return l1 == l2 && x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    public var line: Int {
        switch self {
        case let .scalar(_, l), let .list(_, l), let .map(_, l): return l
        }
    }

    public subscript(key: String) -> YAMLNode? {
        guard case let .map(entries, _) = self else { return nil }
        return entries.first { $0.key == key }?.value
    }

    public var scalar: String? { if case let .scalar(s, _) = self { return s } else { return nil } }
}

/// A plan-file problem, with the file and line.
public struct PlanError: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ path: String, _ line: Int, _ message: String) {
        description = line > 0 ? "\(path):\(line): \(message)" : "\(path): \(message)"
    }
}

public enum MiniYAML {
    struct Line {
        var indent: Int
        var text: String
        var number: Int
    }

    public static func parse(_ text: String, path: String) throws(PlanError) -> YAMLNode {
        var lines: [Line] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var s = String(raw)
            if s.hasSuffix("\r") { s.removeLast() }
            s = stripComment(s)
            let indent = s.prefix(while: { $0 == " " }).count
            if s.contains("\t"), s.prefix(while: { $0 == " " || $0 == "\t" }).contains("\t") {
                throw PlanError(path, i + 1, "tabs are not allowed for indentation; use spaces")
            }
            let body = s.trimmed(" ")
            if body.isEmpty || body == "---" { continue }
            lines.append(Line(indent: indent, text: body, number: i + 1))
        }
        guard !lines.isEmpty else { return .map([], line: 1) }
        var index = 0
        let node = try block(&lines, &index, indent: lines[0].indent, path: path)
        if index < lines.count {
            throw PlanError(path, lines[index].number, "unexpected indentation")
        }
        return node
    }

    static func stripComment(_ s: String) -> String {
        var inSingle = false, inDouble = false
        var prev: Character = " "
        var out = ""
        for c in s {
            if c == "'" && !inDouble { inSingle.toggle() }
            if c == "\"" && !inSingle { inDouble.toggle() }
            if c == "#" && !inSingle && !inDouble && (prev == " " || out.isEmpty) { break }
            out.append(c)
            prev = c
        }
        return out
    }

    static func block(_ lines: inout [Line], _ i: inout Int, indent: Int, path: String) throws(PlanError) -> YAMLNode {
        let first = lines[i]
        if first.text == "-" || first.text.hasPrefix("- ") {
            var items: [YAMLNode] = []
            while i < lines.count, lines[i].indent == indent, lines[i].text == "-" || lines[i].text.hasPrefix("- ") {
                let line = lines[i]
                let rest = line.text == "-" ? "" : String(line.text.dropFirst(2)).trimmed(" ")
                if rest.isEmpty {
                    i += 1
                    if i < lines.count, lines[i].indent > indent {
                        items.append(try block(&lines, &i, indent: lines[i].indent, path: path))
                    } else {
                        items.append(.scalar("", line: line.number))
                    }
                } else if splitKey(rest) != nil && !rest.hasPrefix("{") && !rest.hasPrefix("[") && !isQuoted(rest) {
                    // "- key: value": a mapping whose first entry sits on the dash line.
                    lines[i] = Line(indent: indent + 2, text: rest, number: line.number)
                    items.append(try block(&lines, &i, indent: indent + 2, path: path))
                } else {
                    items.append(try flowOrScalar(rest, line: line.number, path: path))
                    i += 1
                }
            }
            return .list(items, line: first.number)
        }
        var entries: [(key: String, value: YAMLNode)] = []
        while i < lines.count, lines[i].indent == indent {
            let line = lines[i]
            guard let (key, value) = splitKey(line.text) else {
                throw PlanError(path, line.number, "expected 'key: value', found '\(line.text)'")
            }
            if entries.contains(where: { $0.key == key }) {
                throw PlanError(path, line.number, "'\(key)' appears twice")
            }
            i += 1
            if value.isEmpty {
                if i < lines.count, lines[i].indent > indent {
                    entries.append((key, try block(&lines, &i, indent: lines[i].indent, path: path)))
                } else if i < lines.count, lines[i].indent == indent, lines[i].text.hasPrefix("- ") {
                    // A sequence may sit at the key's own indentation.
                    entries.append((key, try block(&lines, &i, indent: indent, path: path)))
                } else {
                    entries.append((key, .scalar("", line: line.number)))
                }
            } else {
                entries.append((key, try flowOrScalar(value, line: line.number, path: path)))
            }
        }
        if i < lines.count, lines[i].indent > indent {
            throw PlanError(path, lines[i].number, "unexpected indentation")
        }
        return .map(entries, line: first.number)
    }

    static func isQuoted(_ s: String) -> Bool { s.hasPrefix("\"") || s.hasPrefix("'") }

    /// Splits `key: value` at the first `: ` (or a trailing `:`) outside quotes.
    static func splitKey(_ s: String) -> (String, String)? {
        var inSingle = false, inDouble = false
        let chars = Array(s)
        for (k, c) in chars.enumerated() {
            if c == "'" && !inDouble { inSingle.toggle() }
            if c == "\"" && !inSingle { inDouble.toggle() }
            if c == ":" && !inSingle && !inDouble && (k + 1 == chars.count || chars[k + 1] == " ") {
                var key = String(chars[0..<k]).trimmed(" ")
                if isQuoted(key), key.count >= 2 { key = String(key.dropFirst().dropLast()) }
                guard !key.isEmpty else { return nil }
                return (key, String(chars[(k + 1)...]).trimmed(" "))
            }
        }
        return nil
    }

    static func unquote(_ s: String) -> String {
        if s.count >= 2, s.hasPrefix("\""), s.hasSuffix("\"") {
            if let v = try? JSONValue.parse(s), let str = v.string { return str }
            return String(s.dropFirst().dropLast())
        }
        if s.count >= 2, s.hasPrefix("'"), s.hasSuffix("'") {
            return String(s.dropFirst().dropLast()).replacingAll("''", with: "'")
        }
        return s
    }

    static func flowOrScalar(_ s: String, line: Int, path: String) throws(PlanError) -> YAMLNode {
        if s.hasPrefix("[") {
            guard s.hasSuffix("]") else { throw PlanError(path, line, "unclosed '['") }
            let inner = String(s.dropFirst().dropLast())
            var items: [YAMLNode] = []
            for part in splitFlow(inner) where !part.isEmpty {
                items.append(try flowOrScalar(part, line: line, path: path))
            }
            return .list(items, line: line)
        }
        if s.hasPrefix("{") {
            guard s.hasSuffix("}") else { throw PlanError(path, line, "unclosed '{'") }
            var entries: [(key: String, value: YAMLNode)] = []
            for part in splitFlow(String(s.dropFirst().dropLast())) where !part.isEmpty {
                guard let (k, v) = splitKey(part) else { throw PlanError(path, line, "expected 'key: value' in '{...}', found '\(part)'") }
                entries.append((k, try flowOrScalar(v, line: line, path: path)))
            }
            return .map(entries, line: line)
        }
        return .scalar(unquote(s), line: line)
    }

    static func splitFlow(_ s: String) -> [String] {
        var parts: [String] = []
        var depth = 0
        var inSingle = false, inDouble = false
        var cur = ""
        for c in s {
            if c == "'" && !inDouble { inSingle.toggle() }
            if c == "\"" && !inSingle { inDouble.toggle() }
            if !inSingle && !inDouble {
                if c == "[" || c == "{" { depth += 1 }
                if c == "]" || c == "}" { depth -= 1 }
                if c == "," && depth == 0 {
                    parts.append(cur.trimmed(" "))
                    cur = ""
                    continue
                }
            }
            cur.append(c)
        }
        parts.append(cur.trimmed(" "))
        return parts
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound] + replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
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

    public static func load(path: String) throws(PlanError) -> PlanFile {
        let reader: LineReader
        do { reader = try LineReader(path: path) } catch { throw PlanError(path, 0, "cannot read the plan: \(error)") }
        var lines: [String] = []
        while let l = reader.next() { lines.append(l) }
        return try parse(lines.joined(separator: "\n"), path: path)
    }

    public static func parse(_ text: String, path: String) throws(PlanError) -> PlanFile {
        let root = try MiniYAML.parse(text, path: path)
        guard case let .map(entries, _) = root else { throw PlanError(path, root.line, "a plan is a mapping of keys (targets, phases, ...)") }
        var plan = PlanFile(path: path)
        func fail(_ node: YAMLNode, _ message: String) -> PlanError { PlanError(path, node.line, message) }
        func string(_ node: YAMLNode, _ what: String) throws(PlanError) -> String {
            guard let s = node.scalar, !s.isEmpty else { throw fail(node, "\(what) must be a value") }
            return s
        }
        func duration(_ node: YAMLNode, _ what: String) throws(PlanError) -> Nanos {
            let s = try string(node, what)
            guard let d = Units.parseDuration(s) else { throw fail(node, "\(what): '\(s)' is not a duration (30s, 500ms, 1m)") }
            return d
        }
        func rate(_ node: YAMLNode, _ what: String) throws(PlanError) -> Double {
            let s = try string(node, what)
            guard let r = Units.parseRate(s) else { throw fail(node, "\(what): '\(s)' is not a rate (200/s, 12000/m)") }
            return r
        }
        func int(_ node: YAMLNode, _ what: String) throws(PlanError) -> Int {
            let s = try string(node, what)
            guard let v = Int(s), v >= 0 else { throw fail(node, "\(what): '\(s)' is not a whole number") }
            return v
        }
        for (key, node) in entries {
            switch key {
            case "target":
                plan.targets = [Target(url: try string(node, "target"), weight: 1)]
            case "targets":
                guard case let .list(items, _) = node else { throw fail(node, "targets is a list of URLs or {url, weight}") }
                for item in items {
                    if let s = item.scalar {
                        plan.targets.append(Target(url: s, weight: 1))
                    } else {
                        guard let u = item["url"] else { throw fail(item, "a target needs a url") }
                        var w = 1.0
                        if let wn = item["weight"] {
                            guard let v = Double(try string(wn, "weight")), v >= 0 else { throw fail(wn, "weight must be a number >= 0") }
                            w = v
                        }
                        plan.targets.append(Target(url: try string(u, "url"), weight: w))
                    }
                }
            case "request":
                guard case let .map(fields, _) = node else { throw fail(node, "request is a mapping (model, message, stream, headers, body-file, method)") }
                for (k, v) in fields {
                    switch k {
                    case "model": plan.model = v.scalar ?? ""
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
                        case let .list(items, _):
                            for item in items { plan.headers.append(try string(item, "header")) }
                        case let .map(hs, _):
                            for (hk, hv) in hs { plan.headers.append("\(hk): \(hv.scalar ?? "")") }
                        default: throw fail(v, "headers is a list of 'Name: value' or a mapping")
                        }
                    default:
                        throw fail(v, "unknown request key '\(k)'; use model, message, stream, method, headers, body-file")
                    }
                }
            case "phases":
                guard case let .list(items, _) = node else { throw fail(node, "phases is a list") }
                var phases: [Phase] = []
                for item in items { phases.append(try phase(item)) }
                plan.phases = phases
            case "concurrency":
                let n = try int(node, "concurrency")
                guard n > 0 else { throw fail(node, "concurrency must be at least 1") }
                plan.concurrency = n
            case "duration": plan.duration = try duration(node, "duration")
            case "requests": plan.requests = UInt64(try int(node, "requests"))
            case "max-in-flight":
                let n = try int(node, "max-in-flight")
                guard n > 0 else { throw fail(node, "max-in-flight must be at least 1") }
                plan.maxInFlight = n
            case "timeout": plan.timeout = try duration(node, "timeout")
            case "seed": plan.seed = UInt64(try int(node, "seed"))
            default:
                throw fail(node, "unknown key '\(key)'; use " + topKeys.joined(separator: ", "))
            }
        }
        if plan.phases != nil, plan.concurrency != nil {
            throw PlanError(path, 0, "a plan has either phases (open loop) or concurrency (closed loop), not both")
        }

        func phase(_ item: YAMLNode) throws(PlanError) -> Phase {
            guard case let .map(fields, _) = item else { throw fail(item, "a phase is a mapping such as {constant: 100/s, for: 10s}") }
            let kinds = ["constant", "poisson", "ramp", "steps", "burst"]
            let present = fields.filter { kinds.contains($0.key) }
            guard present.count == 1 else {
                throw fail(item, "a phase has exactly one of constant, poisson, ramp, steps, burst")
            }
            let allowed = Set(kinds + ["for", "to", "every", "rate"])
            for (k, v) in fields where !allowed.contains(k) {
                throw fail(v, "unknown phase key '\(k)'; use for, to, every, rate")
            }
            let length: Nanos? = try item["for"].map { (n: YAMLNode) throws(PlanError) -> Nanos in try duration(n, "for") }
            let (kind, value) = present[0]
            switch kind {
            case "constant":
                return Phase(.constant(rate: try rate(value, "constant")), duration: length)
            case "poisson":
                return Phase(.poisson(rate: try rate(value, "poisson")), duration: length)
            case "ramp":
                var from: Double, to: Double
                if let s = value.scalar, s.contains("->") {
                    let parts = s.components("->")
                    guard parts.count == 2, let a = Units.parseRate(parts[0]), let b = Units.parseRate(parts[1]) else {
                        throw fail(value, "ramp: write '50/s -> 500/s' or ramp: 50/s with to: 500/s")
                    }
                    from = a
                    to = b
                } else {
                    from = try rate(value, "ramp")
                    guard let t = item["to"] else { throw fail(item, "ramp needs to: RATE (or 'ramp: 50/s -> 500/s')") }
                    to = try rate(t, "to")
                }
                guard let length else { throw fail(item, "ramp needs for: DURATION") }
                return Phase(.ramp(from: from, to: to, over: length), duration: length)
            case "steps":
                guard case let .list(rs, _) = value else { throw fail(value, "steps is a list of rates, [100/s, 200/s]") }
                var rates: [Double] = []
                for r in rs { rates.append(try rate(r, "steps")) }
                guard let e = item["every"] else { throw fail(item, "steps needs every: DURATION") }
                return Phase(.steps(rates: rates, every: try duration(e, "every")), duration: length)
            default: // burst
                let size = try int(value, "burst")
                guard let e = item["every"] else { throw fail(item, "burst needs every: DURATION") }
                let base = try item["rate"].map { (n: YAMLNode) throws(PlanError) -> Double in try rate(n, "rate") } ?? 0
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
