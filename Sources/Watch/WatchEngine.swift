import Foundation

/// The sources `watch` reads, each with the replica it belongs to.
public struct WatchSources: Sendable, Equatable {
    public struct Source: Sendable, Equatable {
        public var replica: String
        /// For access logs without a `NAME=`: lines with a `kubectl logs --prefix` name use that.
        public var named: Bool
        public var location: String
    }
    public var admins: [Source] = []
    public var logs: [Source] = []
    public var metrics: [Source] = []
    /// Our own records (`drive --record`, `run --record`): a sharded run's files, say.
    public var records: [Source] = []

    public init() {}

    /// Reads the repeatable `[NAME=]VALUE` flags. Unnamed admin URLs are named by their
    /// host:port; an unnamed log or metrics URL belongs to the one admin's replica when there
    /// is exactly one, else to its file name or host:port.
    public static func parse(admin: [String], accessLog: [String], metrics: [String], records: [String] = []) throws(SourceError) -> WatchSources {
        var out = WatchSources()
        for text in admin {
            let (name, value) = split(text)
            let url = try checkedURL(value, flag: "--admin", given: text, trimming: "/config_dump")
            out.admins.append(Source(replica: try replicaName(name, flag: "--admin", given: text) ?? hostPort(url), named: name != nil, location: url))
        }
        let sole = out.admins.count == 1 ? out.admins[0].replica : nil
        for text in accessLog {
            let (name, value) = split(text)
            guard !value.isEmpty else { throw SourceError("--access-log \(text): give a file or - (standard input)") }
            let fallback = sole ?? (value == "-" ? "stdin" : (value as NSString).lastPathComponent)
            out.logs.append(Source(replica: try replicaName(name, flag: "--access-log", given: text) ?? fallback, named: name != nil, location: value))
        }
        if out.logs.filter({ $0.location == "-" }).count > 1 { throw SourceError("--access-log -: standard input can be read once") }
        for text in metrics {
            let (name, value) = split(text)
            let url = try checkedURL(value, flag: "--metrics", given: text, trimming: nil)
            out.metrics.append(Source(replica: try replicaName(name, flag: "--metrics", given: text) ?? sole ?? hostPort(url), named: name != nil, location: url))
        }
        for text in records {
            let (name, value) = split(text)
            guard !value.isEmpty, value != "-" else { throw SourceError("--records \(text): give a records file (drive --record FILE)") }
            // Each file its own row source, named by the file: shard-2.jsonl is shard-2.
            let base = ((value as NSString).lastPathComponent as NSString).deletingPathExtension
            out.records.append(Source(replica: try replicaName(name, flag: "--records", given: text) ?? base, named: name != nil, location: value))
        }
        guard !(out.admins.isEmpty && out.logs.isEmpty && out.metrics.isEmpty && out.records.isEmpty) else {
            throw SourceError("nothing to watch: give --admin URL, --access-log FILE|-, --metrics URL or --records FILE")
        }
        return out
    }

    static func split(_ text: String) -> (String?, String) {
        // `NAME=` only when what is before `=` is not part of a URL or path.
        if let eq = text.firstIndex(of: "="), !text[..<eq].contains("/"), !text[..<eq].contains(":") {
            return (String(text[..<eq]), String(text[text.index(after: eq)...]))
        }
        return (nil, text)
    }

    static func replicaName(_ name: String?, flag: String, given: String) throws(SourceError) -> String? {
        guard let name else { return nil }
        guard !name.isEmpty, name.count <= 64, name.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != "\"" }) else {
            throw SourceError("\(flag) \(given): NAME must be 1-64 visible ASCII characters, like gw-a")
        }
        return name
    }

    static func checkedURL(_ value: String, flag: String, given: String, trimming suffix: String?) throws(SourceError) -> String {
        var url = value
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw SourceError("\(flag) \(given): give an http:// or https:// URL, like http://127.0.0.1:15000")
        }
        guard url.utf8.count <= 2048, url.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw SourceError("\(flag) \(given): the URL has spaces or control characters")
        }
        if let suffix, url.hasSuffix(suffix) { url.removeLast(suffix.count) }
        while url.hasSuffix("/") { url.removeLast() }
        guard !hostPort(url).isEmpty else { throw SourceError("\(flag) \(given): the URL has no host") }
        return url
    }

    static func hostPort(_ url: String) -> String {
        let afterScheme = url.components(separatedBy: "://").dropFirst().joined(separator: "://")
        return String(afterScheme.split(separator: "/", maxSplits: 1).first ?? "")
    }
}

public struct SourceError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Runs the sources, each on its own thread, and hands every event to `sink` (from those
/// threads). Admin URLs are polled every `interval` (`GET URL/config_dump`); an unreachable
/// one is retried at the same pace. Logs are followed like `tail -F`; metrics scraped.
public final class WatchEngine: @unchecked Sendable {
    public let sources: WatchSources
    public let interval: Double
    public let start: ContinuousClock.Instant
    private let sink: @Sendable (WatchEvent) -> Void
    private let lock = NSLock()
    private var stopped = false
    private var followers: [LogFollower] = []
    private var threads: [Thread] = []
    private let finished = DispatchGroup()

    public init(sources: WatchSources, interval: Double, start: ContinuousClock.Instant = .now, sink: @escaping @Sendable (WatchEvent) -> Void) {
        self.sources = sources
        self.interval = max(0.05, interval)
        self.start = start
        self.sink = sink
    }

    public var now: Double {
        let c = (ContinuousClock.now - start).components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }

    var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }
    private var endedSources = 0

    /// True when every source has ended: only standard input ends by itself (files are
    /// followed and URLs polled until stopped).
    public var allEnded: Bool {
        lock.lock(); defer { lock.unlock() }
        return endedSources >= sources.admins.count + sources.logs.count + sources.metrics.count + sources.records.count
    }

    public func run() {
        for s in sources.admins { spawn("watch admin \(s.replica)") { [self] in poll(s, metrics: false) } }
        for s in sources.metrics { spawn("watch metrics \(s.replica)") { [self] in poll(s, metrics: true) } }
        for s in sources.logs {
            let follower = LogFollower(path: s.location)
            lock.lock(); followers.append(follower); lock.unlock()
            spawn("watch log \(s.replica)") { [self] in follow(s, follower) }
        }
        for s in sources.records {
            let follower = LogFollower(path: s.location)
            lock.lock(); followers.append(follower); lock.unlock()
            spawn("watch records \(s.replica)") { [self] in follow(s, follower, records: true) }
        }
    }

    /// Stops every source; polls in progress end within their timeout. Standard input,
    /// blocked in a read, is left to the process's exit.
    public func stop() {
        lock.lock()
        stopped = true
        let f = followers
        lock.unlock()
        for follower in f { follower.stop() }
    }

    private func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let t = Thread(block: body)
        t.name = name
        t.stackSize = 1 << 20
        t.start()
    }

    private func poll(_ s: WatchSources.Source, metrics: Bool) {
        let url = metrics ? s.location : s.location + "/config_dump"
        guard let client = HTTPGet(timeout: max(1, min(5, interval * 4)), maxBytes: metrics ? PrometheusText.maxBytes : ConfigDumpParser.maxBytes) else {
            sink(.note("\(s.replica): cannot make an HTTP client for \(url)", at: now))
            return
        }
        var next = now
        while !isStopped {
            let at = now
            switch client.get(url) {
            case .failure(let f):
                if metrics {
                    sink(.problem(replica: s.replica, url: url, message: f.description, at: at))
                } else {
                    sink(.unreachable(replica: s.replica, url: s.location, reason: f.description, at: at))
                }
            case .success(let r) where r.status != 200:
                if metrics {
                    sink(.problem(replica: s.replica, url: url, message: "answered HTTP \(r.status)", at: at))
                } else {
                    sink(.unreachable(replica: s.replica, url: s.location, reason: "answered HTTP \(r.status)", at: at))
                }
            case .success(let r):
                if metrics {
                    sink(.metrics(replica: s.replica, url: url, at: at, PrometheusText.requestCounts(String(decoding: r.body, as: UTF8.self))))
                } else {
                    switch ConfigDumpParser.parse(bytes: r.body) {
                    case .success(let dump): sink(.dump(replica: s.replica, at: at, dump))
                    case .failure(let p): sink(.problem(replica: s.replica, url: s.location, message: p.message, at: at))
                    }
                }
            }
            // The next poll on the interval's grid; a slow answer skips the missed ones.
            next += interval
            let t = now
            if next < t { next = t + interval - (t - next).truncatingRemainder(dividingBy: interval) }
            while !isStopped && now < next { Thread.sleep(forTimeInterval: min(0.05, max(0.001, next - now))) }
        }
    }

    private func follow(_ s: WatchSources.Source, _ follower: LogFollower, records: Bool = false) {
        follower.run(maxLine: AccessLogParser.maxLineBytes, line: { bytes in
            let at = now
            if records {
                // Our records: a request row each; anything else is skipped and counted.
                if let r = RecordLine.request(bytes) {
                    sink(.request(replica: s.replica, at: at, r))
                } else {
                    sink(.skipped(replica: s.replica, at: at, .notJSON))
                }
                return
            }
            switch AccessLogParser.parse(bytes: bytes) {
            case .request(let r):
                // A `kubectl logs --prefix` name says which replica, unless the flag named one.
                let replica = (!s.named ? r.replica : nil) ?? s.replica
                sink(.request(replica: replica, at: at, r))
            case .skipped(let why):
                sink(.skipped(replica: s.replica, at: at, why))
            }
        }, notice: { n in
            let text: String
            switch n {
            case .waiting(let p): text = "\(s.replica): waiting for \(p) to exist"
            case .opened(let p): text = "\(s.replica): following \(p)"
            case .rotated(let p): text = "\(s.replica): \(p) was replaced (rotated): following the new file"
            case .truncated(let p): text = "\(s.replica): \(p) was truncated: reading from its start"
            case .ended(let p): text = "\(s.replica): \(p) ended"
            }
            sink(.note(text, at: now))
        })
        lock.lock(); endedSources += 1; lock.unlock()
    }
}

/// Events waiting for the output's thread: sources append under a lock, the output takes
/// them all once per turn. Bounded: past the limit the oldest requests are dropped and counted.
public final class WatchInbox: @unchecked Sendable {
    private let lock = NSLock()
    private var pending: [WatchEvent] = []
    private var droppedCount = 0
    public let limit: Int

    public init(limit: Int = 500_000) { self.limit = limit }

    public func push(_ e: WatchEvent) {
        lock.lock()
        if pending.count >= limit {
            pending.removeFirst(pending.count / 2)
            droppedCount += limit / 2
        }
        pending.append(e)
        lock.unlock()
    }

    public func take() -> [WatchEvent] {
        lock.lock()
        defer { lock.unlock() }
        let out = pending
        pending.removeAll(keepingCapacity: true)
        return out
    }

    public var dropped: Int { lock.lock(); defer { lock.unlock() }; return droppedCount }
}
