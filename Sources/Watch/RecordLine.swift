import Driver
import Wire

/// One line of our own records (`drive --record`, `run --record`) as a request row, so
/// `watch --records` shows a sharded run's files as they grow. Hostile bytes: the record
/// reader checks every field; a line it refuses is nil (skipped and counted).
enum RecordLine {
    static func request(_ bytes: ArraySlice<UInt8>) -> LoggedRequest? {
        guard bytes.count <= AccessLogParser.maxLineBytes else { return nil }
        let line = String(decoding: bytes, as: UTF8.self)
        guard let r = try? RequestRecord(line: line) else { return nil }
        let attempts = (r.attempts ?? []).map { a in
            FailoverAttempts.Entry(provider: a.provider, outcome: a.status.map { .status($0) } ?? .init(word: a.failure ?? "error"))
        }
        return LoggedRequest(time: nil, status: r.status, endpoint: r.url, provider: r.provider,
                             latency: r.latency.map { Double($0) / 1e9 }, model: r.model, tokens: r.tokens?.total,
                             attempts: attempts, error: r.error)
    }
}
