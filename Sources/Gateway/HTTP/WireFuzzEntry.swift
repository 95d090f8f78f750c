import NIOCore

/// Entry points for fuzz targets (and tests): the gateway's wire handling on bytes, with
/// no sockets. Whatever the bytes, these return or throw; they never trap.
public enum WireFuzzEntry {
    /// Why the gateway refuses the bytes, and the status the client would get.
    public struct Refused: Error, CustomStringConvertible, Sendable {
        public var status: Int
        public var description: String
    }

    /// One request as the gateway would forward it: the origin-form target it routes on,
    /// the client's header lines it copies upstream (framing ones are never among them),
    /// and the de-chunked body.
    public struct Request: Sendable {
        public var method: String
        public var target: String
        public var forwardedHeaders: [(name: String, value: String)]
        public var body: [UInt8]
    }

    /// Parses `bytes` as one client connection's requests, each checked as `ProxyHandler`
    /// checks it (head limits, names, Host, framing, target). Throws at the first refusal;
    /// a request cut short at the end is left out. `readSize`: the bytes arrive in reads of
    /// this size (the result must not depend on it).
    public static func parseRequests(_ bytes: [UInt8], readSize: Int = .max, limits: (maxTarget: Int, maxHead: Int) = (8 * 1024, 64 * 1024)) throws(Refused) -> [Request] {
        let collector = Collector(kind: .request)
        let parser = MessageParser(kind: .request)
        parser.limits = MessageParser.Limits(maxTarget: limits.maxTarget, maxHead: limits.maxHead)
        parser.delegate = collector
        try collector.run(parser, bytes, readSize: readSize)
        return collector.requests
    }

    /// Parses `bytes` as an upstream's responses and returns their statuses; throws when
    /// the gateway would count the response as broken (502).
    public static func parseResponses(_ bytes: [UInt8], readSize: Int = .max) throws(Refused) -> [Int] {
        let collector = Collector(kind: .response)
        let parser = MessageParser(kind: .response)
        parser.delegate = collector
        try collector.run(parser, bytes, readSize: readSize)
        return collector.statuses
    }

    /// What the access log reads of a streamed answer's body fed in pieces (`StreamUsageTap`):
    /// the model and token counts, and the most bytes held between two pieces. `cuts`: the
    /// offsets where one piece ends and the next begins.
    public static func streamUsage(_ bytes: [UInt8], cuts: [Int]) -> (model: String?, input: Int?, output: Int?, mostHeld: Int) {
        var tap = StreamUsageTap()
        var most = 0
        var start = 0
        for end in cuts.filter({ $0 > 0 && $0 < bytes.count }).sorted() + [bytes.count] where end > start {
            bytes[start..<end].withUnsafeBytes { tap.feed($0) }
            most = max(most, tap.heldBytes)
            start = end
        }
        return (tap.usage.model, tap.usage.inputTokens, tap.usage.outputTokens, most)
    }

    /// The longest event `streamUsage` holds while its end has not come.
    public static var streamUsageLimit: Int { StreamUsageTap.limit }

    private final class Collector: MessageParserDelegate {
        let kind: MessageParser.Kind
        var requests: [Request] = []
        var statuses: [Int] = []
        var body: [UInt8] = []

        init(kind: MessageParser.Kind) { self.kind = kind }

        func run(_ parser: MessageParser, _ bytes: [UInt8], readSize: Int) throws(Refused) {
            let step = max(1, readSize)
            var offset = 0
            while offset < bytes.count {
                let end = bytes.count - offset > step ? offset + step : bytes.count
                var buffer = ByteBuffer(bytes: bytes[offset..<end])
                offset = end
                while buffer.readableBytes > 0 {
                    let before = buffer.readableBytes
                    do {
                        try parser.feed(&buffer)
                    } catch {
                        let failure = error as? MessageParser.Failure
                        throw Refused(status: failure?.status ?? 400, description: failure?.description ?? "\(error)")
                    }
                    if buffer.readableBytes == before { throw Refused(status: 400, description: "no progress") }
                }
            }
        }

        func parsedHead(_ parser: MessageParser) -> Bool {
            let failure = parser.withHead { head -> MessageParser.Failure? in
                switch kind {
                case .request:
                    if let failure = HeadCheck.request(&head) { return failure }
                    switch RequestTarget.originForm(head.uri, method: head.method) {
                    case .success(let target): head.uri = target
                    case .failure(let failure): return failure
                    }
                    return nil
                case .response:
                    return HeadCheck.response(&head)
                }
            }
            if let failure { parser.stop(failure) }
            body = []
            return true
        }

        func parsedBody(_ parser: MessageParser, _ part: ByteBuffer) {
            body.append(contentsOf: part.readableBytesView)
        }

        func parsedEnd(_ parser: MessageParser) {
            let head = parser.head
            switch kind {
            case .request:
                var forwarded: [(name: String, value: String)] = []
                for i in 0..<head.headers.count where !Exchange.isNotForwarded(requestHeaderAt: i, of: head.headers, retrying: false) {
                    if let named = head.connectionNamed, named.contains(i) { continue }
                    forwarded.append((head.headers.name(at: i), head.headers.value(at: i)))
                }
                requests.append(Request(method: head.method, target: head.uri, forwardedHeaders: forwarded, body: body))
            case .response:
                statuses.append(head.status)
            }
        }
    }
}
