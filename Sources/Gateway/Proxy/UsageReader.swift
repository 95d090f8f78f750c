import Foundation

/// Reads `model` and `usage` from a chat completion, or from the chunks of a
/// Server-Sent Events stream, for the access log.
enum UsageReader {
    struct Usage {
        var model: String?
        var inputTokens: Int?
        var outputTokens: Int?
    }

    static func read(_ bytes: some Collection<UInt8>, contentType: String?) -> Usage {
        if contentType.map(isEventStream) == true {
            var usage = Usage()
            let text = String(decoding: bytes, as: UTF8.self)
            for line in text.split(separator: "\n") where line.hasPrefix("data:") {
                let payload = line.dropFirst(5).trimmingCharacters(in: .whitespaces)
                guard payload != "[DONE]", let object = parse(Data(payload.utf8)) else { continue }
                merge(object, into: &usage)
            }
            return usage
        }
        let scanned = bytes.withContiguousStorageIfAvailable(scan) ?? Array(bytes).withUnsafeBufferPointer(scan)
        if let usage = scanned { return usage }
        var usage = Usage()
        if let object = parse(Data(bytes)) { merge(object, into: &usage) }
        return usage
    }

    /// `text/event-stream`, with or without parameters (compared without Foundation).
    static func isEventStream(_ contentType: String) -> Bool {
        contentType.utf8.starts(with: "text/event-stream".utf8)
    }

    static let modelKey = Array("model".utf8)
    static let usageKey = Array("usage".utf8)
    static let promptTokensKey = Array("prompt_tokens".utf8)
    static let completionTokensKey = Array("completion_tokens".utf8)

    /// Reads a chat completion's `model` and `usage` without decoding the whole body;
    /// nil when the body is not the plain shape this expects.
    static func scan(_ b: UnsafeBufferPointer<UInt8>) -> Usage? {
        guard let ranges = TopLevelJSON.valueRanges(b, modelKey, usageKey) else { return nil }
        var usage = Usage()
        if let model = ranges.first {
            guard let text = TopLevelJSON.plainString(b, model) else { return nil }
            usage.model = text
        }
        if let counts = ranges.second {
            let inner = UnsafeBufferPointer(rebasing: b[counts])
            guard let values = TopLevelJSON.valueRanges(inner, promptTokensKey, completionTokensKey) else { return usage }
            usage.inputTokens = values.first.flatMap { TopLevelJSON.digits(inner, $0) }
            usage.outputTokens = values.second.flatMap { TopLevelJSON.digits(inner, $0) }
        }
        return usage
    }

    private static func parse(_ data: Data) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }

    private static func merge(_ object: [String: Any], into usage: inout Usage) {
        if let model = object["model"] as? String { usage.model = model }
        if let counts = object["usage"] as? [String: Any] {
            if let input = counts["prompt_tokens"] as? Int { usage.inputTokens = input }
            if let output = counts["completion_tokens"] as? Int { usage.outputTokens = output }
        }
    }
}
