import Foundation
import Wire

/// Builds OpenAI-shaped answers for the mock OpenAI stand-in.
public enum MockOpenAI {
    /// The http-429 server's body, byte for byte as the lab shows it.
    public static let rateLimitBody = #"{"error":{"message":"Rate limit exceeded","type":"rate_limit_error"}}"#

    /// The assistant's reply: sums like "What is 2+2?" are worked out ("2 + 2 equals 4."),
    /// anything else gets a fixed sentence. The prompt is a client's: the arithmetic
    /// reports overflow instead of trapping, and numbers too large for Int are said to be.
    public static func reply(to prompt: String) -> String {
        if let sum = Sum.first(in: prompt) {
            let shown = sum.op == "x" || sum.op == "×" ? "*" : sum.op
            guard let a = Int(sum.left), let b = Int(sum.right) else {
                return "\(sum.left) \(shown) \(sum.right): that number is too large for me to work out."
            }
            let (result, overflow): (Int, Bool)
            switch sum.op {
            case "+": (result, overflow) = a.addingReportingOverflow(b)
            case "-": (result, overflow) = a.subtractingReportingOverflow(b)
            default: (result, overflow) = a.multipliedReportingOverflow(by: b)
            }
            if overflow { return "\(a) \(shown) \(b): the answer is too large for me to work out." }
            return "\(a) \(shown) \(b) equals \(result)."
        }
        return "This is the mock OpenAI stand-in of failover-lab; your request reached group 2."
    }

    /// The first sum in a prompt: `-?digits`, spaces, one of `+ - * x ×`, spaces, `-?digits`
    /// (ASCII digits), the leftmost one in the prompt's first 2,000 bytes. A scan of the
    /// bytes, linear: it replaced a Swift `Regex` whose matching cost milliseconds a request
    /// in debug builds and tens of microseconds in release, on the stand-in's one event loop.
    struct Sum: Equatable {
        var left: String
        var op: String
        var right: String

        static func first(in prompt: String) -> Sum? {
            var utf8 = Array(prompt.utf8.prefix(2000))
            // A cut in the middle of a character would not decode; the scan is byte-wise anyway.
            utf8.append(0)
            let n = utf8.count - 1
            func isDigit(_ i: Int) -> Bool { i < n && utf8[i] >= 0x30 && utf8[i] <= 0x39 }
            func isSpace(_ i: Int) -> Bool { i < n && (utf8[i] == 0x20 || (utf8[i] >= 0x09 && utf8[i] <= 0x0D)) }
            /// A number at `i` (optional minus, then digits): its end, or nil.
            func number(at i: Int) -> Int? {
                var j = i
                if j < n && utf8[j] == 0x2D { j += 1 }
                guard isDigit(j) else { return nil }
                while isDigit(j) { j += 1 }
                return j
            }
            var i = 0
            while i < n {
                guard let leftEnd = number(at: i) else { i += 1; continue }
                var j = leftEnd
                while isSpace(j) { j += 1 }
                var opEnd: Int?
                if j < n, [0x2B, 0x2D, 0x2A, 0x78].contains(utf8[j]) {
                    opEnd = j + 1
                } else if j + 1 < n, utf8[j] == 0xC3, utf8[j + 1] == 0x97 {  // ×
                    opEnd = j + 2
                }
                if let opEnd {
                    var k = opEnd
                    while isSpace(k) { k += 1 }
                    if let rightEnd = number(at: k) {
                        func text(_ a: Int, _ b: Int) -> String { String(decoding: utf8[a..<b], as: UTF8.self) }
                        return Sum(left: text(i, leftEnd), op: text(j, opEnd), right: text(k, rightEnd))
                    }
                }
                // No sum starts anywhere inside this number either: they would all end where it ends.
                i = max(i + 1, leftEnd)
            }
            return nil
        }
    }

    /// A rough token count: about four characters a token, at least one per word.
    public static func tokenCount(_ text: String) -> Int {
        let words = text.split(whereSeparator: { $0.isWhitespace }).count
        return max(words, (text.count + 3) / 4)
    }

    /// Parsed request: the model, the last user message, the whole prompt's tokens, stream flags.
    public struct Request {
        public var model: String
        public var lastUserMessage: String
        public var promptTokens: Int
        public var stream: Bool
        public var includeUsage: Bool
        /// `max_completion_tokens` (else `max_tokens`), capped at `ModelShape.mostTokens`; nil when absent or below 1.
        public var maxTokens: Int? = nil
    }

    public static func parse(_ body: Data) -> Request? {
        guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else { return nil }
        let messages = object["messages"] as? [[String: Any]] ?? []
        var prompt = 0
        var last = ""
        for message in messages {
            // A string, or (newer clients) a list of parts whose `text`s count.
            var content = message["content"] as? String ?? ""
            if let parts = message["content"] as? [[String: Any]] {
                content = parts.compactMap { $0["text"] as? String }.joined(separator: " ")
            }
            prompt += tokenCount(content) + 4  // per-message framing, as OpenAI counts it
            if message["role"] as? String == "user" { last = content }
        }
        let options = object["stream_options"] as? [String: Any]
        let limit = (object["max_completion_tokens"] as? NSNumber ?? object["max_tokens"] as? NSNumber)?.doubleValue
        return Request(model: object["model"] as? String ?? "", lastUserMessage: last, promptTokens: prompt + 3,
                       stream: object["stream"] as? Bool ?? false, includeUsage: options?["include_usage"] as? Bool ?? false,
                       maxTokens: ModelShape.requestedTokens(limit))
    }

    /// A non-streaming chat completion.
    public static func completion(for request: Request, id: String, created: Int) -> String {
        let text = reply(to: request.lastUserMessage)
        let completion = tokenCount(text)
        return """
        {"id":"\(id)","object":"chat.completion","created":\(created),"model":\(quote(request.model)),\
        "choices":[{"index":0,"message":{"role":"assistant","content":\(quote(text)),"refusal":null},"logprobs":null,"finish_reason":"stop"}],\
        "usage":{"prompt_tokens":\(request.promptTokens),"completion_tokens":\(completion),"total_tokens":\(request.promptTokens + completion)},\
        "system_fingerprint":"fp_failover_lab"}
        """
    }

    /// The SSE events of a streamed completion, each a full `data: ...\n\n` frame, ending with `[DONE]`.
    public static func streamEvents(for request: Request, id: String, created: Int) -> [String] {
        let text = reply(to: request.lastUserMessage)
        let head = #"{"id":"\#(id)","object":"chat.completion.chunk","created":\#(created),"model":\#(quote(request.model)),"system_fingerprint":"fp_failover_lab","choices":"#
        var events = [head + #"[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#]
        for piece in tokenPieces(text) {
            events.append(head + #"[{"index":0,"delta":{"content":\#(quote(piece))},"logprobs":null,"finish_reason":null}]}"#)
        }
        events.append(head + #"[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}"#)
        if request.includeUsage {
            let completion = tokenCount(text)
            events.append(head + #"[],"usage":{"prompt_tokens":\#(request.promptTokens),"completion_tokens":\#(completion),"total_tokens":\#(request.promptTokens + completion)}}"#)
        }
        return events.map(SSE.event) + [SSE.done]
    }

    // MARK: Shaped answers (a `ModelShape` is set): `count` tokens, built one at a time

    /// The `i`-th token (from 0) of a shaped answer: the reply's pieces, over again as needed.
    public static func shapedPiece(_ i: Int, of pieces: [String]) -> String {
        guard !pieces.isEmpty else { return " token" }
        let piece = pieces[i % pieces.count]
        return i >= pieces.count && i % pieces.count == 0 ? " " + piece : piece
    }

    /// The first part of every chunk of a streamed answer, up to `"choices":`.
    public static func chunkHead(for request: Request, id: String, created: Int) -> String {
        #"{"id":"\#(id)","object":"chat.completion.chunk","created":\#(created),"model":\#(quote(request.model)),"system_fingerprint":"fp_failover_lab","choices":"#
    }

    public static func roleEvent(head: String) -> String {
        SSE.event(head + #"[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#)
    }

    public static func tokenEvent(head: String, piece: String) -> String {
        SSE.event(head + #"[{"index":0,"delta":{"content":\#(quote(piece))},"logprobs":null,"finish_reason":null}]}"#)
    }

    /// The stop chunk (`length` when the request's limit cut the answer), the usage chunk when asked for, and `[DONE]`.
    public static func endEvents(head: String, request: Request, completionTokens: Int, cut: Bool) -> String {
        var out = SSE.event(head + #"[{"index":0,"delta":{},"logprobs":null,"finish_reason":"\#(cut ? "length" : "stop")"}]}"#)
        if request.includeUsage {
            let total = request.promptTokens.addingReportingOverflow(completionTokens)
            out += SSE.event(head + #"[],"usage":{"prompt_tokens":\#(request.promptTokens),"completion_tokens":\#(completionTokens),"total_tokens":\#(total.overflow ? Int.max : total.partialValue)}}"#)
        }
        return out + SSE.done
    }

    /// A non-streamed shaped completion of `count` tokens.
    public static func shapedCompletion(for request: Request, id: String, created: Int, count: Int, cut: Bool) -> String {
        let pieces = tokenPieces(reply(to: request.lastUserMessage))
        var text = ""
        for i in 0..<count { text += shapedPiece(i, of: pieces) }
        let total = request.promptTokens.addingReportingOverflow(count)
        return """
        {"id":"\(id)","object":"chat.completion","created":\(created),"model":\(quote(request.model)),\
        "choices":[{"index":0,"message":{"role":"assistant","content":\(quote(text)),"refusal":null},"logprobs":null,"finish_reason":"\(cut ? "length" : "stop")"}],\
        "usage":{"prompt_tokens":\(request.promptTokens),"completion_tokens":\(count),"total_tokens":\(total.overflow ? Int.max : total.partialValue)},\
        "system_fingerprint":"fp_failover_lab"}
        """
    }

    /// Splits text into word-sized pieces that concatenate back to it.
    public static func tokenPieces(_ text: String) -> [String] {
        var pieces: [String] = []
        var current = ""
        for ch in text {
            if ch == " " && !current.isEmpty {
                pieces.append(current)
                current = ""
            }
            current.append(ch)
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }

    static func quote(_ s: String) -> String {
        JSONString.quoted(s)
    }
}
