import CHTTPParser
import NIOCore

/// What a `MessageParser` finds, handed over while `feed` runs.
protocol MessageParserDelegate: AnyObject {
    /// A message's head is complete (`parser.head`). Return false when the message has no
    /// body whatever its headers say (the response to a HEAD request).
    func parsedHead(_ parser: MessageParser) -> Bool
    /// A piece of the body, de-chunked; it shares storage with the fed buffer.
    func parsedBody(_ parser: MessageParser, _ part: ByteBuffer)
    /// The message is complete. `feed` returns right after this, so the next message
    /// on the connection is parsed only when the owner is ready for it.
    func parsedEnd(_ parser: MessageParser)
}

/// The head of one HTTP/1.1 message as parsed.
struct MessageHead {
    /// Requests: the method, e.g. "POST".
    var method = ""
    /// Requests: the target as sent, e.g. "/http-429".
    var uri = ""
    /// Responses: the status code.
    var status = 0
    /// Responses: the reason phrase as sent.
    var reason = ""
    /// http-parser's `unsigned short`s, next to the flags below (a smaller head: every open
    /// stream holds a few).
    var versionMajor: UInt16 = 1
    var versionMinor: UInt16 = 1
    /// Whether the connection may carry another message after this one.
    var keepAlive = true
    /// The body is chunked.
    var chunked = false
    var headers = WireHeaders()
    /// Fields a `connection` header names (hop-by-hop, never forwarded); nil when it names
    /// none beyond `close` and `keep-alive`, the usual case.
    var connectionNamed: [Int]?
    /// The body's length, when a `content-length` gave it (last: its tag byte needs no padding after it).
    var contentLength: Int?

    var isHTTP10: Bool { versionMajor == 1 && versionMinor == 0 }
}

/// An HTTP/1.1 parser over one connection (Node's http-parser): fed bytes as they arrive,
/// it hands over heads, de-chunked body pieces and message ends to its delegate, and stops
/// after each message. It allocates nothing per message beyond the head's strings.
final class MessageParser {
    enum Kind { case request, response }

    /// Why the input is not HTTP (or not HTTP this gateway takes).
    struct Failure: Error, CustomStringConvertible {
        var name: String
        var description: String
        /// The status a client gets for it: 400, or 414/431 for a target or head over the limits.
        var status = 400
    }

    /// Limits on a message's head, counted as the parser hands it over: the target's bytes,
    /// and the header lines' bytes (name, value and 4 bytes of `: ` and CRLF each).
    struct Limits {
        var maxTarget = 8 * 1024
        var maxHead = 64 * 1024
    }

    var limits = Limits()

    let kind: Kind
    unowned(unsafe) var delegate: MessageParserDelegate?
    /// The head of the message being read (complete once `parsedHead` was called).
    private(set) var head = MessageHead()

    private let parser: UnsafeMutablePointer<http_parser>
    /// The buffer being parsed and the address of its first readable byte, while `feed` runs.
    private var current = ByteBuffer()
    private var currentBase: UnsafeRawPointer?
    /// The last callback was a header name: a name cut by the end of a read goes on in the
    /// next `feed`'s first callback.
    private var lastWasName = false
    private var nameMayContinue = false
    private var pendingURI: [UInt8] = []
    private var pendingReason: [UInt8] = []
    /// Bytes of header lines in the current head, counted against `limits.maxHead`.
    private var headBytes = 0
    /// For telling a folded header line (obs-fold, refused as nginx does) from a value cut
    /// by the end of a read: the last callback was a value; callbacks so far in this feed;
    /// the last feed ended in a line break and whitespace (a fold may go on in the next).
    private var lastWasValue = false
    private var callbacksThisFeed = 0
    private var tailMayFold = false
    /// Why the delegate or a limit stopped the parse; thrown by `feed`.
    private var stopped: Failure?
    /// Between a head and its end.
    private(set) var inMessage = false

    init(kind: Kind) {
        self.kind = kind
        parser = .allocate(capacity: 1)
        http_parser_init(parser, kind == .request ? HTTP_REQUEST : HTTP_RESPONSE)
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        parser.deallocate()
    }

    /// Parses as much of `buffer` as makes up the current message (or all of it), and moves
    /// its reader index past what was parsed. Throws when the bytes are not HTTP.
    func feed(_ buffer: inout ByteBuffer) throws {
        if isPaused { http_parser_pause(parser, 0) }
        let count = buffer.readableBytes
        guard count > 0 else { return }
        current = buffer
        nameMayContinue = lastWasName
        callbacksThisFeed = 0
        let parsed = buffer.withUnsafeReadableBytes { raw -> Int in
            currentBase = raw.baseAddress
            defer { currentBase = nil }
            let parsed = raw.withMemoryRebound(to: CChar.self) { chars in
                http_parser_execute(parser, Self.settings, chars.baseAddress, count)
            }
            if inHead { tailMayFold = Self.endsInLineBreakAndSpace(raw, previous: tailMayFold) }
            return parsed
        }
        current = ByteBuffer()
        let errno = parser.pointee.http_errno
        if errno != 0 && !isPaused {
            if let stopped { throw stopped }
            throw failure(errno)
        }
        buffer.moveReaderIndex(forwardBy: min(parsed, count))
    }

    /// Tells the parser the peer closed the connection: a body that runs to the close ends
    /// here. Returns whether the current message is complete (or none had begun).
    func feedEOF() -> Bool {
        if isPaused { http_parser_pause(parser, 0) }
        let wasInMessage = inMessage
        _ = http_parser_execute(parser, Self.settings, nil, 0)
        if parser.pointee.http_errno != 0 && !isPaused { return !wasInMessage }
        return !inMessage
    }

    /// The bytes end in LF and maybe spaces or tabs (or are all spaces and tabs after such
    /// an end): a value that goes on in the next read, with no name first, is then a fold
    /// (http-parser hands a folded line over as more value, its leading whitespace included).
    private static func endsInLineBreakAndSpace(_ raw: UnsafeRawBufferPointer, previous: Bool) -> Bool {
        var i = raw.count - 1
        while i >= 0, raw[i] == 0x20 || raw[i] == 0x09 { i -= 1 }
        if i < 0 { return previous }
        return raw[i] == 0x0A
    }

    /// Whether a value callback at `at` continues the last value across a folded line.
    private func isFold(_ at: UnsafePointer<CChar>?) -> Bool {
        guard lastWasValue else { return false }
        if callbacksThisFeed > 0 { return true }  // within one read a value comes in one piece
        guard let at, let base = currentBase else { return false }
        return UnsafeRawPointer(at) - base > 0 || tailMayFold
    }

    private var isPaused: Bool { parser.pointee.http_errno == HPE_PAUSED.rawValue }

    private func failure(_ errno: UInt32) -> Failure {
        let code = http_errno(errno)
        // http-parser's own cap on a head (80 KiB as Debian builds it) is above ours, but say 431 for it too.
        return Failure(name: String(cString: http_errno_name(code)), description: String(cString: http_errno_description(code)),
                       status: code == HPE_HEADER_OVERFLOW ? 431 : 400)
    }

    /// Lets the delegate check and amend the head in `parsedHead` (the target made
    /// origin-form, say) without copying it.
    func withHead<R>(_ body: (inout MessageHead) -> R) -> R {
        body(&head)
    }

    /// Stops the parse from a delegate callback: `feed` throws `failure`. Only in `parsedHead`.
    func stop(_ failure: Failure) {
        stopped = failure
    }

    /// What was read of a request so far (for the log line of a request refused on the wire):
    /// the method once http-parser has it, and the target's bytes.
    var requestSoFar: (method: String, target: String) {
        if inMessage && !head.method.isEmpty { return (head.method, head.uri) }
        let method = pendingURI.isEmpty && !inMessage ? "" : Self.methodName(http_method(parser.pointee.method))
        return (method, String(decoding: pendingURI.prefix(limits.maxTarget), as: UTF8.self))
    }

    /// A message has begun and its head is not complete yet.
    var inHead: Bool { inMessage && !headDone }
    private var headDone = false

    // MARK: Callbacks

    private static func of(_ p: UnsafeMutablePointer<http_parser>?) -> MessageParser {
        Unmanaged<MessageParser>.fromOpaque(p!.pointee.data).takeUnretainedValue()
    }

    private func begin() {
        // The last message's storage is reused once its reader has let go of it.
        var headers = head.headers
        head = MessageHead()
        headers.removeAll()
        if headers.bytes.capacity == 0 { headers.reserve(bytes: 256, fields: 8) }
        head.headers = headers
        pendingURI.removeAll(keepingCapacity: true)
        pendingReason.removeAll(keepingCapacity: true)
        headBytes = 0
        headDone = false
        lastWasValue = false
        tailMayFold = false
        lastWasName = false
        nameMayContinue = false
        inMessage = true
    }

    /// Lets go of the current head's header storage (it is otherwise kept to be reused by
    /// the next message): for a response that streams, so an open stream does not hold a
    /// copy of headers already passed on. The next head reserves new storage.
    func releaseHeaderStorage() {
        head.headers = WireHeaders()
    }

    /// The method's name: the common ones without building a String from C each time.
    static func methodName(_ method: http_method) -> String {
        switch method {
        case HTTP_POST: "POST"
        case HTTP_GET: "GET"
        case HTTP_PUT: "PUT"
        case HTTP_DELETE: "DELETE"
        case HTTP_HEAD: "HEAD"
        case HTTP_OPTIONS: "OPTIONS"
        case HTTP_PATCH: "PATCH"
        default: String(cString: http_method_str(method))
        }
    }

    private func headersComplete() -> Int32 {
        headDone = true
        let p = parser.pointee
        head.versionMajor = p.http_major
        head.versionMinor = p.http_minor
        head.keepAlive = http_should_keep_alive(parser) != 0
        head.chunked = p.flags & UInt32(F_CHUNKED.rawValue) != 0
        head.contentLength = p.flags & UInt32(F_CONTENTLENGTH.rawValue) != 0 ? Int(p.content_length) : nil
        switch kind {
        case .request:
            head.method = Self.methodName(http_method(p.method))
            head.uri = String(decoding: pendingURI, as: UTF8.self)
        case .response:
            head.status = Int(p.status_code)
            head.reason = String(decoding: pendingReason, as: UTF8.self)
        }
        let hasBody = delegate?.parsedHead(self) ?? true
        if stopped != nil { return -1 }  // http-parser: HPE_CB_headers_complete, the parse ends
        return hasBody ? 0 : 1
    }

    private func body(_ at: UnsafePointer<CChar>?, _ length: Int) {
        guard let at, let base = currentBase else { return }
        let offset = UnsafeRawPointer(at) - base
        guard let part = current.getSlice(at: current.readerIndex + offset, length: length) else { return }
        delegate?.parsedBody(self, part)
    }

    private func end() -> Int32 {
        inMessage = false
        // Keep-alive can change with the end of a body that ran to the close.
        head.keepAlive = head.keepAlive && http_should_keep_alive(parser) != 0
        delegate?.parsedEnd(self)
        http_parser_pause(parser, 1)
        return 0
    }

    /// The callbacks, made once and never changed: every parser on every event-loop thread
    /// reads them (http-parser takes them as `const`), so they are an immutable pointer.
    nonisolated(unsafe) private static let settings: UnsafePointer<http_parser_settings> = {
        var s = http_parser_settings()
        http_parser_settings_init(&s)
        s.on_message_begin = { p in MessageParser.of(p).begin(); return 0 }
        s.on_url = { p, at, length in
            let me = MessageParser.of(p)
            guard me.pendingURI.count + length <= me.limits.maxTarget else {
                me.stopped = Failure(name: "URI_TOO_LONG", description: "request target longer than \(me.limits.maxTarget) bytes", status: 414)
                return -1
            }
            me.pendingURI.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
            return 0
        }
        s.on_status = { p, at, length in
            let me = MessageParser.of(p)
            guard me.pendingReason.count + length <= 1024 else {
                me.stopped = Failure(name: "REASON_TOO_LONG", description: "reason phrase longer than 1024 bytes")
                return -1
            }
            me.pendingReason.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
            return 0
        }
        s.on_header_field = { p, at, length in
            let me = MessageParser.of(p)
            if me.headDone { return me.trailer() }
            let piece = UnsafeRawBufferPointer(start: at, count: length)
            if me.nameMayContinue && !me.head.headers.isEmpty {
                me.head.headers.continueName(piece)
            } else {
                me.head.headers.appendName(piece)
                me.headBytes += 4
            }
            me.nameMayContinue = false
            me.lastWasName = true
            me.lastWasValue = false
            me.callbacksThisFeed += 1
            me.headBytes += length
            return me.headBytes > me.limits.maxHead ? me.headTooLarge() : 0
        }
        s.on_header_value = { p, at, length in
            let me = MessageParser.of(p)
            if me.headDone { return me.trailer() }
            if me.isFold(at) {
                me.stopped = Failure(name: "OBS_FOLD", description: "folded header line (obs-fold) in \(me.head.headers.isEmpty ? "a header" : me.head.headers.name(at: me.head.headers.count - 1))")
                return -1
            }
            me.head.headers.appendValue(UnsafeRawBufferPointer(start: at, count: length))
            me.nameMayContinue = false
            me.lastWasName = false
            me.lastWasValue = true
            me.callbacksThisFeed += 1
            me.headBytes += length
            return me.headBytes > me.limits.maxHead ? me.headTooLarge() : 0
        }
        s.on_headers_complete = { p in MessageParser.of(p).headersComplete() }
        s.on_body = { p, at, length in MessageParser.of(p).body(at, length); return 0 }
        s.on_message_complete = { p in MessageParser.of(p).end() }
        let pointer = UnsafeMutablePointer<http_parser_settings>.allocate(capacity: 1)
        pointer.initialize(to: s)
        return UnsafePointer(pointer)
    }()

    /// A field after a chunked body (a trailer). A request's is refused: nothing upstream
    /// needs one, and http-parser, built non-strict, reads bytes after a bare CR in the
    /// chunk framing as trailer lines, so accepting them would let framing differ from
    /// other parsers'. A response's are dropped (the gateway writes no trailers).
    private func trailer() -> Int32 {
        guard kind == .request else { return 0 }
        stopped = Failure(name: "TRAILERS", description: "trailer fields after a chunked request body are not accepted")
        return -1
    }

    private func headTooLarge() -> Int32 {
        stopped = Failure(name: "HEAD_TOO_LARGE", description: "header fields larger than \(limits.maxHead) bytes", status: 431)
        return -1
    }
}
