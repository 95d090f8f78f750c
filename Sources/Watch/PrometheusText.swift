import Wire

/// A request counter by backend and status, summed over the other labels (route, reason...).
public struct RequestCounts: Sendable, Hashable {
    public struct Key: Sendable, Hashable, Comparable {
        public var backend: String
        public var status: String
        public init(backend: String, status: String) {
            self.backend = backend
            self.status = status
        }
        public static func < (a: Key, b: Key) -> Bool { (a.backend, a.status) < (b.backend, b.status) }
    }
    public var counts: [Key: Double] = [:]
    /// Samples of the counter that could not be read (bad value, bad labels): counted.
    public var badSamples = 0

    public init(counts: [Key: Double] = [:], badSamples: Int = 0) {
        self.counts = counts
        self.badSamples = badSamples
    }

    public var total: Double { counts.values.reduce(0, +) }
}

/// Reads agentgateway's request counter from Prometheus text (exposition format 0.0.4).
/// Hostile input: lines and labels are bounded, values must be finite and not negative.
public enum PrometheusText {
    public static let requestCounter = "agentgateway_requests_total"
    public static let maxBytes = 16 << 20
    static let maxLineBytes = 64 * 1024
    static let maxSeries = 100_000

    public static func requestCounts(_ text: String, metric: String = requestCounter) -> RequestCounts {
        var out = RequestCounts()
        guard text.utf8.count <= maxBytes else { out.badSamples = 1; return out }
        var series = 0
        for line in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            guard line.first != UInt8(ascii: "#") else { continue }
            guard line.starts(with: metric.utf8) else { continue }
            let after = line.dropFirst(metric.utf8.count)
            // `agentgateway_requests_total_created` and the like are other series.
            guard let next = after.first, next == UInt8(ascii: "{") || next == UInt8(ascii: " ") else { continue }
            series += 1
            guard series <= maxSeries, line.count <= maxLineBytes, let (labels, value) = sample(after) else {
                out.badSamples += 1
                continue
            }
            let key = RequestCounts.Key(backend: labels["backend"] ?? "unknown", status: labels["status"] ?? "unknown")
            out.counts[key, default: 0] += value
        }
        return out
    }

    /// `{a="x",b="y"} 12 [timestamp]` or ` 12`: labels and the value; nil when malformed.
    static func sample(_ bytes: Substring.UTF8View.SubSequence) -> ([String: String], Double)? {
        var labels: [String: String] = [:]
        var i = bytes.startIndex
        if bytes[i] == UInt8(ascii: "{") {
            i = bytes.index(after: i)
            while true {
                while i < bytes.endIndex, bytes[i] == UInt8(ascii: " ") || bytes[i] == UInt8(ascii: ",") { i = bytes.index(after: i) }
                guard i < bytes.endIndex else { return nil }
                if bytes[i] == UInt8(ascii: "}") { i = bytes.index(after: i); break }
                let nameStart = i
                while i < bytes.endIndex, bytes[i] != UInt8(ascii: "=") { i = bytes.index(after: i) }
                guard i < bytes.endIndex else { return nil }
                let name = String(decoding: bytes[nameStart..<i], as: UTF8.self).trimmingSpaces
                i = bytes.index(after: i)
                guard i < bytes.endIndex, bytes[i] == UInt8(ascii: "\"") else { return nil }
                i = bytes.index(after: i)
                var value: [UInt8] = []
                var closed = false
                while i < bytes.endIndex {
                    let b = bytes[i]
                    i = bytes.index(after: i)
                    if b == UInt8(ascii: "\\") {
                        guard i < bytes.endIndex else { return nil }
                        let e = bytes[i]
                        i = bytes.index(after: i)
                        value.append(e == UInt8(ascii: "n") ? UInt8(ascii: "\n") : e)
                    } else if b == UInt8(ascii: "\"") {
                        closed = true
                        break
                    } else {
                        value.append(b)
                    }
                }
                guard closed, labels.count < 64 else { return nil }
                labels[name] = String(decoding: value.prefix(256), as: UTF8.self)
            }
        }
        let rest = String(decoding: bytes[i...], as: UTF8.self).split(separator: " ", omittingEmptySubsequences: true)
        guard let first = rest.first, rest.count <= 2, let value = Double(first), value.isFinite, value >= 0 else { return nil }
        return (labels, value)
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
