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
        if contentType?.contains("text/event-stream") == true {
            var usage = Usage()
            let text = String(decoding: bytes, as: UTF8.self)
            for line in text.split(separator: "\n") where line.hasPrefix("data:") {
                let payload = line.dropFirst(5).trimmingCharacters(in: .whitespaces)
                guard payload != "[DONE]", let object = parse(Data(payload.utf8)) else { continue }
                merge(object, into: &usage)
            }
            return usage
        }
        var usage = Usage()
        if let object = parse(Data(bytes)) { merge(object, into: &usage) }
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
