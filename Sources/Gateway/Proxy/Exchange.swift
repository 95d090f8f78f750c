import Foundation
import NIOCore
import CHTTPParser
import Wire
import NIOPosix

/// One client request on its way through the gateway: route, choose a provider, send,
/// stream the answer back, retry when the policy says so, and log. Lives on one event loop.
final class Exchange: UpstreamResponseDelegate {
    private enum Phase {
        case preparing
        case connecting
        case awaitingHead(UpstreamConnection)
        /// Reading a response that will be retried; its body is dropped.
        case discarding(UpstreamConnection)
        /// A 429 whose (small) body is read before deciding, to tell quota from rate.
        case holding(UpstreamConnection, MessageHead, ByteBuffer)
        case backoff
        /// Sending the upstream's response to the client. `pendingSuccess` when its
        /// outcome is recorded at the end (successes are; failures are at the head).
        case streaming(UpstreamConnection, pendingSuccess: Bool)
        case done
    }

    private let runtime: GatewayRuntime
    private let pool: UpstreamPool
    /// Cleared when the exchange finishes (the handler holds the exchange until then).
    private var handler: ProxyHandler?
    private let context: ChannelHandlerContext
    private let head: MessageHead
    private var body: ByteBuffer

    private let started = ContinuousClock.now
    private let wallStart = Date()
    private var phase = Phase.preparing
    private var route: PlannedRoute?
    /// What the gateway reads of the client's JSON (which Foundation has validated).
    private var peek = RequestPeek()
    private var attempts: [AttemptRecord] = []
    private var choice: ProviderChoice?
    private var provider: PlannedProvider?
    /// The chosen provider's per-request constants.
    private var wire: ProviderWire?
    private var attemptStarted = ContinuousClock.now
    private var sentModel: String?
    private var staleRetryUsed = false
    /// Where this exchange sits in its loop's `RequestDeadlines` (-1: not there).
    var deadlineSlot = -1

    deinit {
        if deadlineSlot >= 0 { pool.deadlines.remove(self) }
    }
    private var responseStatus: Int?
    private var responseContentType: String?
    private var responseCopy: ByteBuffer?
    private var responseBytes = 0
    /// The response is Server-Sent Events: its copy keeps the tail, where `usage` is.
    private var responseIsStream = false
    /// `stream_options.include_usage` was added to the client's request.
    private var injectedStreamOptions = false
    /// Bytes for the client not yet written: the head, small body parts and framing go
    /// out together, in one write, when the upstream's read burst ends.
    private var outgoing: ByteBuffer?
    /// The response's body goes to the client in chunked framing.
    private var chunkedToClient = false
    /// The response has no body (HEAD, 204, 304).
    private var bodiless = false
    /// The client is closed after the response (HTTP/1.0 with no length, or asked to).
    private var closeAfterResponse = false
    private var firstChunkAt: ContinuousClock.Instant?
    private var lastChunkAt: ContinuousClock.Instant?

    init(runtime: GatewayRuntime, pool: UpstreamPool, handler: ProxyHandler, context: ChannelHandlerContext, head: MessageHead, body: ByteBuffer) {
        self.runtime = runtime
        self.pool = pool
        self.handler = handler
        self.context = context
        self.head = head
        self.body = body
    }

    private var backendIndex: Int { route!.backendIndex }

    // MARK: Start

    func start() {
        guard let route = runtime.plan.route(forPath: head.uri) else {
            reject(status: 404, message: "no route matches path \(head.uri)", type: "not_found_error", reason: "no_route")
            return
        }
        self.route = route
        guard body.readableBytes > 0 else {
            reject(status: 400, message: "request body is empty; expected a JSON chat completion request", type: "invalid_request_error", reason: "bad_request")
            return
        }
        if let scanned = body.withUnsafeReadableBytes({ RequestScan.peek($0.bindMemory(to: UInt8.self)) }) {
            peek = scanned
        } else {
            // Not decided by the fast scan: Foundation's answer (and error message) stands.
            do {
                peek = try Self.decoder.decode(RequestPeek.self, from: Data(body.readableBytesView))
            } catch DecodingError.typeMismatch {
                reject(status: 400, message: "request body must be a JSON object", type: "invalid_request_error", reason: "bad_request")
                return
            } catch {
                reject(status: 400, message: "request body is not valid JSON: \(jsonErrorText(error))", type: "invalid_request_error", reason: "bad_request")
                return
            }
        }
        // As agentgateway does: ask a stream for its usage chunk, so tokens can be counted.
        injectedStreamOptions = peek.stream == true && peek.includeUsage == nil
        if let timeout = route.requestTimeout {
            pool.deadlines.add(self, deadline: .now() + .nanoseconds(Int64(timeout.seconds * 1e9)))
        }
        attempt()
    }

    private static let decoder = JSONDecoder()

    /// Foundation's own words on where the JSON breaks (asked again only on this error path).
    private func jsonErrorText(_ error: Error) -> String {
        do {
            _ = try JSONSerialization.jsonObject(with: Data(body.readableBytesView), options: [.fragmentsAllowed])
        } catch {
            let ns = error as NSError
            return (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
        }
        return "\(error)"
    }

    // MARK: Attempts

    private func attempt() {
        phase = .preparing
        guard let choice = runtime.choose(backend: backendIndex, now: .now) else {
            reject(status: 503, message: "no healthy backends: \(runtime.plan.backends[backendIndex].name) has no providers", type: "upstream_error", reason: "no_providers")
            return
        }
        let provider = runtime.plan.backends[backendIndex].groups[choice.provider.group][choice.provider.index]
        wire = runtime.wire[backendIndex][choice.provider.group][choice.provider.index]
        let requested = peek.model.flatMap { $0.isEmpty ? nil : $0 }
        guard let model = provider.model ?? requested else {
            runtime.cancel(choice, backend: backendIndex)
            reject(status: 400, message: "model not specified", type: "invalid_request_error", reason: "model_missing")
            return
        }
        self.choice = choice
        self.provider = provider
        self.sentModel = model
        attemptStarted = .now
        guard let upstreamBody = makeUpstreamBody() else {
            runtime.cancel(choice, backend: backendIndex)
            reject(status: 400, message: "request body cannot be forwarded as JSON", type: "invalid_request_error", reason: "bad_request")
            return
        }
        let key = UpstreamKey(address: provider.connect, serverName: provider.connect.tls ? provider.declared.host : nil)
        phase = .connecting
        let attemptNumber = attempts.count
        if let idle = pool.idleConnection(key) {
            send(on: idle, body: upstreamBody, provider: provider)
            return
        }
        pool.connect(key).assumeIsolated().whenComplete { [self] result in
            guard case .connecting = phase, attempts.count == attemptNumber else {
                if case .success(let connection) = result { pool.release(connection) }
                return
            }
            switch result {
            case .success(let connection):
                send(on: connection, body: upstreamBody, provider: provider)
            case .failure(let error):
                attemptFailed(.connectFailed, failure: "connect", error: "upstream connect error: \(Self.describe(error)) (\(provider.name) at \(provider.connect))")
            }
        }
    }

    private func send(on connection: UpstreamConnection, body upstreamBody: ByteBuffer, provider: PlannedProvider) {
        connection.delegate = self
        connection.requests += 1
        connection.expectsNoBody = head.method == "HEAD"
        phase = .awaitingHead(connection)
        let path = provider.spec.upstreamPath(forClientPath: head.uri)
        let headers = head.headers
        var out = context.channel.allocator.buffer(capacity: 192 + headers.bytes.count + 4 * headers.count + upstreamBody.readableBytes)
        out.writeString(head.method)
        out.writeStaticString(" ")
        out.writeString(path)
        out.writeStaticString(" HTTP/1.1\r\n")
        let retrying = !attempts.isEmpty
        for i in 0..<headers.count where !Self.isNotForwarded(requestHeaderAt: i, of: headers, retrying: retrying) {
            headers.write(fieldAt: i, to: &out)
        }
        out.writeBytes(wire!.headerLines)
        out.writeHeader("content-length", upstreamBody.readableBytes)
        if case .passthrough = provider.auth, let value = headers.first("authorization") {
            out.writeHeader("authorization", value)
        }
        if retrying { out.writeHeader("x-retry-attempt", attempts.count) }
        out.writeStaticString("\r\n")
        var payload = upstreamBody
        out.writeBuffer(&payload)
        connection.channel.writeAndFlush(out, promise: nil)
    }

    /// A try ended with no response: record it, then retry or answer with an error.
    private func attemptFailed(_ outcome: AttemptOutcome, failure: String, error: String) {
        guard let choice, provider != nil else { return }
        runtime.record(outcome, for: choice, backend: backendIndex, latency: .now - attemptStarted, now: .now)
        attempts.append(attemptRecord(status: nil, failure: failure))
        self.choice = nil
        if shouldRetry(status: nil) {
            retryAfterBackoff()
            return
        }
        let status = outcome == .timedOut ? 504 : 502
        reject(status: status, message: error, type: "upstream_error", reason: outcome == .timedOut ? "timeout" : "upstream_connect")
    }

    /// The record of the current try.
    private func attemptRecord(status: Int?, failure: String?) -> AttemptRecord {
        AttemptRecord(provider: provider?.name ?? "?", group: provider?.group ?? 0, status: status, failure: failure,
                      sequence: choice?.sequence ?? 0, probe: choice?.isProbe ?? false, failOpen: choice?.failOpen ?? false)
    }

    private func shouldRetry(status: Int?) -> Bool {
        guard let retry = route?.retry, attempts.count <= retry.attempts, body.readableBytes <= runtime.options.maxRetryBody else { return false }
        guard let status else { return true }
        return retry.codes.contains(status)
    }

    private func retryAfterBackoff() {
        phase = .backoff
        let backoff = route?.retry?.backoff ?? .zero
        if backoff == .zero {
            attempt()
        } else {
            context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(backoff.seconds * 1e9))) { [self] in
                if case .backoff = phase { attempt() }
            }
        }
    }

    // MARK: Upstream response

    func upstreamHead(_ responseHead: MessageHead, on connection: UpstreamConnection) {
        guard case .awaitingHead(let current) = phase, current === connection else { return }
        if responseHead.status == 429 {
            phase = .holding(connection, responseHead, context.channel.allocator.buffer(capacity: 256))
            return
        }
        respond(to: responseHead, on: connection, quotaExhausted: false)
    }

    /// Records the outcome (a failure's eviction is in force before the response is passed
    /// on), then retries or starts sending the response to the client.
    private func respond(to responseHead: MessageHead, on connection: UpstreamConnection, quotaExhausted: Bool) {
        guard let choice, provider != nil else { return }
        let status = responseHead.status
        var hint: Duration?
        if status == 429 || status >= 500 {
            hint = RateLimitHint.resetDelay(headers: responseHead.headers.pairs, now: Date())
        }
        let outcome = AttemptOutcome.response(status: status, resetHint: hint, quotaExhausted: quotaExhausted)
        let failed = runtime.isFailure(outcome, for: choice, backend: backendIndex)
        if failed {
            runtime.record(outcome, for: choice, backend: backendIndex, latency: .now - attemptStarted, now: .now)
        }
        attempts.append(attemptRecord(status: status, failure: nil))
        if failed && shouldRetry(status: status) {
            self.choice = nil
            phase = .discarding(connection)
            retryAfterBackoff()
            return
        }
        phase = .streaming(connection, pendingSuccess: !failed)
        let retryHint = failed ? runtime.options.failoverRetryHint.flatMap { runtime.failoverReady(after: choice, backend: backendIndex) ? $0 : nil } : nil
        if failed { self.choice = nil }
        responseStatus = status
        let headers = responseHead.headers
        responseContentType = headers.first("content-type")
        responseIsStream = responseContentType.map(UsageReader.isEventStream) ?? false
        bodiless = head.method == "HEAD" || status == 204 || status == 304
        let lengthKnown = responseHead.contentLength != nil && !responseHead.chunked
        if !bodiless && !lengthKnown {
            if head.isHTTP10 { closeAfterResponse = true } else { chunkedToClient = true }
        }
        if !head.keepAlive { closeAfterResponse = true }
        // Room for a small body too, so head and body leave in one buffer without regrowing it.
        let bodyRoom = min(responseHead.contentLength ?? 0, Self.copyLimit)
        var out = context.channel.allocator.buffer(capacity: 256 + headers.bytes.count + 4 * headers.count + bodyRoom)
        Self.writeStatusLine(status: status, reason: responseHead.reason, http10: head.isHTTP10, to: &out)
        for i in 0..<headers.count where !Self.isNotForwarded(responseHeaderAt: i, of: headers, chunked: chunkedToClient) {
            headers.write(fieldAt: i, to: &out)
        }
        if chunkedToClient { out.writeStaticString("transfer-encoding: chunked\r\n") }
        out.writeStaticString("x-failover-attempts: ")
        writeAttempts(to: &out)
        out.writeStaticString("\r\n")
        if let retryHint, !headers.contains("retry-after-ms") {
            out.writeHeader("retry-after-ms", Int(retryHint.seconds * 1000))
        }
        writeConnectionHeader(to: &out)
        out.writeStaticString("\r\n")
        outgoing = out
    }

    func upstreamBody(_ buffer: ByteBuffer, on connection: UpstreamConnection) {
        if case .holding(let current, let responseHead, var held) = phase, current === connection {
            phase = .preparing  // drop the reference so `held` is appended in place
            var part = buffer
            held.writeBuffer(&part)
            phase = .holding(current, responseHead, held)
            return
        }
        guard case .streaming(let current, _) = phase, current === connection else { return }
        responseBytes += buffer.readableBytes
        let now = ContinuousClock.now
        if firstChunkAt == nil { firstChunkAt = now }
        lastChunkAt = now
        let limit = runtime.options.responseCopyLimit
        if responseCopy == nil {
            if !responseIsStream && buffer.readableBytes <= limit {
                // A whole answer in one part (the usual case): kept as it came, without a copy.
                responseCopy = buffer
                emit(buffer)
                return
            }
            responseCopy = context.channel.allocator.buffer(capacity: min(limit, max(buffer.readableBytes, 256)))
        }
        if responseIsStream {
            // Keep the tail: the usage chunk comes last. A cut first line is skipped when read.
            var part = buffer
            responseCopy!.writeBuffer(&part)
            if responseCopy!.readableBytes > Self.streamTail * 2 {
                responseCopy!.moveReaderIndex(forwardBy: responseCopy!.readableBytes - Self.streamTail)
                responseCopy!.discardReadBytes()
            }
        } else if responseCopy!.readableBytes < limit {
            var slice = buffer
            if let part = slice.readSlice(length: min(slice.readableBytes, limit - responseCopy!.readableBytes)) {
                var part = part
                responseCopy!.writeBuffer(&part)
            }
        }
        // Flushed when the upstream read ends (or with the response's end), so parts that
        // arrive together leave together, and a stream's parts still go out as they come.
        emit(buffer)
    }

    func upstreamReadComplete(on connection: UpstreamConnection) {
        guard case .streaming(let current, _) = phase, current === connection else { return }
        flushOut()
    }

    /// Queues a body part for the client, in chunked framing when the response is chunked.
    private func emit(_ part: ByteBuffer) {
        guard !bodiless, part.readableBytes > 0 else { return }
        var part = part
        if outgoing == nil { outgoing = context.channel.allocator.buffer(capacity: min(part.readableBytes + 16, Self.copyLimit + 16)) }
        if chunkedToClient {
            outgoing!.writeHex(part.readableBytes)
            outgoing!.writeStaticString("\r\n")
        }
        if part.readableBytes <= Self.copyLimit {
            outgoing!.writeBuffer(&part)
        } else {
            // Large parts go out as they are, after what was queued before them.
            context.write(NIOAny(outgoing!), promise: nil)
            context.write(NIOAny(part), promise: nil)
            outgoing = context.channel.allocator.buffer(capacity: 16)
        }
        if chunkedToClient { outgoing!.writeStaticString("\r\n") }
    }

    /// Writes what is queued for the client and flushes.
    private func flushOut() {
        guard let out = outgoing else { return }
        outgoing = nil
        if out.readableBytes > 0 { context.write(NIOAny(out), promise: nil) }
        context.flush()
    }

    /// Body parts up to this size are copied next to the head and framing, so a response
    /// leaves in one write; larger ones are written as they are.
    static let copyLimit = 16 * 1024

    func upstreamEnd(on connection: UpstreamConnection) {
        if case .holding(let current, let responseHead, let held) = phase, current === connection {
            let quota = held.readableBytesView.firstRange(of: Array("insufficient_quota".utf8)) != nil
            respond(to: responseHead, on: connection, quotaExhausted: quota)
            if case .streaming = phase { upstreamBody(held, on: connection) }
        }
        switch phase {
        case .discarding(let current) where current === connection:
            pool.release(connection)
        case .streaming(let current, let pendingSuccess) where current === connection:
            pool.release(connection)
            if pendingSuccess, let choice {
                runtime.record(.response(status: responseStatus ?? 200, resetHint: nil, quotaExhausted: false), for: choice, backend: backendIndex, latency: .now - attemptStarted, now: .now)
                self.choice = nil
            }
            finish(status: responseStatus ?? 200, error: nil, reason: (responseStatus ?? 200) >= 400 ? "upstream_status" : nil, closeClient: closeAfterResponse, sendEnd: true)
        default:
            pool.release(connection)
        }
    }

    func upstreamFailed(_ error: Error, on connection: UpstreamConnection) {
        switch phase {
        case .awaitingHead(let current) where current === connection:
            pool.discard(connection)
            if error is UpstreamMalformed {
                attemptFailed(.broken, failure: "broken", error: "\(error) (\(provider?.name ?? "?") at \(provider?.connect.description ?? "?"))")
                return
            }
            if connection.requests > 1 && !staleRetryUsed, let provider {
                // A kept-alive connection the upstream had already closed: try once on a fresh one.
                staleRetryUsed = true
                phase = .connecting
                let attemptNumber = attempts.count
                let key = connection.key
                let data = makeUpstreamBody() ?? ByteBuffer()
                pool.connect(key).assumeIsolated().whenComplete { [self] result in
                    guard case .connecting = phase, attempts.count == attemptNumber else { return }
                    switch result {
                    case .success(let fresh): send(on: fresh, body: data, provider: provider)
                    case .failure(let error): attemptFailed(.connectFailed, failure: "connect", error: "upstream connect error: \(Self.describe(error)) (\(provider.name) at \(provider.connect))")
                    }
                }
                return
            }
            attemptFailed(.connectFailed, failure: "connect", error: "upstream closed the connection before responding (\(provider?.name ?? "?") at \(provider?.connect.description ?? "?")): \(Self.describe(error))")
        case .streaming(let current, let pendingSuccess) where current === connection:
            pool.discard(connection)
            if pendingSuccess, let choice {
                runtime.record(.broken, for: choice, backend: backendIndex, latency: .now - attemptStarted, now: .now)
                self.choice = nil
            }
            finish(status: responseStatus ?? 502, error: "upstream response broke off after \(responseBytes) bytes: \(Self.describe(error))", reason: "upstream_broken", closeClient: true)
        case .discarding(let current) where current === connection:
            pool.discard(connection)
        case .holding(let current, _, _) where current === connection:
            pool.discard(connection)
            attemptFailed(.broken, failure: "broken", error: "upstream response broke off (\(provider?.name ?? "?") at \(provider?.connect.description ?? "?")): \(Self.describe(error))")
        default:
            break
        }
    }

    /// The client's JSON with the model this try sends. The model is spliced into the
    /// client's bytes; only when that cannot be done (stream options added, an escaped
    /// key) is the whole body encoded again.
    private func makeUpstreamBody() -> ByteBuffer? {
        guard let model = sentModel else { return nil }
        // The provider's own model is quoted once, in its ProviderWire.
        let quoted = model == provider?.model ? wire?.quotedModel ?? JSONLine.quoted(model) : JSONLine.quoted(model)
        if !injectedStreamOptions, let spliced = Self.splice(quoted: quoted, into: body, hasModel: peek.hasModel, place: peek.modelPlace, allocator: context.channel.allocator) {
            return spliced
        }
        guard var upstreamJSON = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] else { return nil }
        upstreamJSON["model"] = model
        if injectedStreamOptions {
            var options = upstreamJSON["stream_options"] as? [String: Any] ?? [:]
            options["include_usage"] = true
            upstreamJSON["stream_options"] = options
        }
        guard let data = try? JSONSerialization.data(withJSONObject: upstreamJSON) else { return nil }
        return context.channel.allocator.buffer(bytes: data)
    }

    static let modelKey = Array("model".utf8)

    /// The fields of a chat completion request the gateway acts on. Decoding it validates
    /// the whole body as JSON without building a dictionary of it.
    struct RequestPeek: Decodable {
        var model: String?
        var hasModel = false
        var stream: Bool?
        var includeUsage: Bool?
        /// Where the top-level `model` value sits, when the fast scan read the body.
        var modelPlace = ModelPlace.unknown

        enum ModelPlace {
            /// Foundation read the body: the splice looks for it.
            case unknown
            case absent
            /// The value's bytes, quotes included.
            case at(Range<Int>)
        }

        init() {}

        enum Key: String, CodingKey { case model, stream, stream_options, include_usage }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: Key.self)
            hasModel = c.contains(.model)
            model = try? c.decodeIfPresent(String.self, forKey: .model)
            stream = try? c.decodeIfPresent(Bool.self, forKey: .stream)
            // Only when present: a missing key would make nestedContainer throw, and a thrown
            // error costs more than the rest of the decoding.
            if c.contains(.stream_options), let options = try? c.nestedContainer(keyedBy: Key.self, forKey: .stream_options) {
                includeUsage = try? options.decodeIfPresent(Bool.self, forKey: .include_usage)
            }
        }
    }

    /// `body` with its top-level `model` value replaced by `model` (or `model` added first).
    static func splice(model: String, into body: ByteBuffer, hasModel: Bool, allocator: ByteBufferAllocator) -> ByteBuffer? {
        splice(quoted: JSONLine.quoted(model), into: body, hasModel: hasModel, allocator: allocator)
    }

    /// `body` with its top-level `model` value replaced by `quoted` (a JSON string literal).
    /// `place`: where the value is, when the request scan already found it.
    static func splice(quoted: [UInt8], into body: ByteBuffer, hasModel: Bool, place: RequestPeek.ModelPlace = .unknown, allocator: ByteBufferAllocator) -> ByteBuffer? {
        body.withUnsafeReadableBytes { raw -> ByteBuffer? in
            let bytes = raw.bindMemory(to: UInt8.self)
            let model: Range<Int>?
            switch place {
            case .at(let range): model = range
            case .absent: model = nil
            case .unknown:
                guard let found = TopLevelJSON.valueRanges(bytes, modelKey) else { return nil }
                model = found.first
            }
            var out = allocator.buffer(capacity: bytes.count + quoted.count + 12)
            if let range = model {
                out.writeBytes(UnsafeBufferPointer(rebasing: bytes[..<range.lowerBound]))
                out.writeBytes(quoted)
                out.writeBytes(UnsafeBufferPointer(rebasing: bytes[range.upperBound...]))
                return out
            }
            guard !hasModel, let open = bytes.firstIndex(of: UInt8(ascii: "{")) else { return nil }
            let rest = UnsafeBufferPointer(rebasing: bytes[(open + 1)...])
            let empty = rest.first { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 } == UInt8(ascii: "}")
            out.writeBytes(UnsafeBufferPointer(rebasing: bytes[...open]))
            out.writeString("\"model\":")
            out.writeBytes(quoted)
            if !empty { out.writeString(",") }
            out.writeBytes(rest)
            return out
        }
    }

    // MARK: Timeout and client

    /// The route's request timeout passed (called by the loop's `RequestDeadlines`).
    func timedOut() {
        switch phase {
        case .connecting, .awaitingHead, .backoff, .discarding, .holding:
            if case .awaitingHead(let connection) = phase { pool.discard(connection) }
            if case .discarding(let connection) = phase { pool.discard(connection) }
            if case .holding(let connection, _, _) = phase { pool.discard(connection) }
            if let choice, provider != nil {
                runtime.record(.timedOut, for: choice, backend: backendIndex, latency: .now - attemptStarted, now: .now)
                attempts.append(attemptRecord(status: nil, failure: "timeout"))
                self.choice = nil
            }
            phase = .preparing
            reject(status: 504, message: "request timeout", type: "upstream_error", reason: "timeout")
        case .streaming(let connection, _):
            pool.discard(connection)
            if let choice {
                runtime.record(.timedOut, for: choice, backend: backendIndex, latency: .now - attemptStarted, now: .now)
                self.choice = nil
            }
            finish(status: responseStatus ?? 504, error: "request timeout while streaming the response", reason: "timeout", closeClient: true)
        case .preparing, .done:
            break
        }
    }

    func clientClosed() {
        switch phase {
        case .done: return
        case .awaitingHead(let connection), .discarding(let connection), .streaming(let connection, _), .holding(let connection, _, _):
            pool.discard(connection)
        default: break
        }
        if let choice { runtime.cancel(choice, backend: backendIndex) }
        choice = nil
        finish(status: responseStatus ?? 499, error: "client closed the connection", reason: "client_closed", closeClient: false)
    }

    // MARK: Answers

    /// Answers the client with a JSON error made by the gateway.
    func reject(status: Int, message: String, type: String, reason: String, closeAfter: Bool = false) {
        var line = JSONLine()
        line.add("message", message)
        line.add("type", type)
        let payload = "{\"error\":\(line.finish())}"
        if closeAfter || !head.keepAlive { closeAfterResponse = true }
        chunkedToClient = false
        bodiless = false
        var out = context.channel.allocator.buffer(capacity: 256 + payload.utf8.count)
        Self.writeStatusLine(status: status, reason: "", http10: head.isHTTP10, to: &out)
        out.writeStaticString("content-type: application/json\r\n")
        out.writeHeader("content-length", payload.utf8.count)
        if !attempts.isEmpty {
            out.writeStaticString("x-failover-attempts: ")
            writeAttempts(to: &out)
            out.writeStaticString("\r\n")
        }
        writeConnectionHeader(to: &out)
        out.writeStaticString("\r\n")
        out.writeString(payload)
        outgoing = out
        finish(status: status, error: message, reason: reason, closeClient: closeAfterResponse, sendEnd: true)
    }

    /// `HTTP/1.x CODE REASON`: the upstream's reason, or the standard one.
    static func writeStatusLine(status: Int, reason: String, http10: Bool, to out: inout ByteBuffer) {
        out.writeStaticString(http10 ? "HTTP/1.0 " : "HTTP/1.1 ")
        out.writeDecimal(status)
        out.writeStaticString(" ")
        if reason.isEmpty {
            out.writeBytes(UnsafeRawBufferPointer(start: http_status_str(http_status(UInt32(status))), count: strlen(http_status_str(http_status(UInt32(status))))))
        } else {
            out.writeString(reason)
        }
        out.writeStaticString("\r\n")
    }

    /// The value of `x-failover-attempts`, by Wire's one writer, straight into the buffer.
    private func writeAttempts(to out: inout ByteBuffer) {
        for (i, attempt) in attempts.enumerated() {
            FailoverAttempts.write(provider: attempt.provider, outcome: attempt.outcome, first: i == 0, into: &out)
        }
    }

    /// `connection: close` when the client is closed after this response; `keep-alive`
    /// for an HTTP/1.0 client that asked to keep it.
    private func writeConnectionHeader(to out: inout ByteBuffer) {
        if closeAfterResponse {
            out.writeStaticString("connection: close\r\n")
        } else if head.isHTTP10 {
            out.writeStaticString("connection: keep-alive\r\n")
        }
    }

    /// Logs the request, then ends the response (`sendEnd`) and closes the client when asked.
    /// The log line is written before the client can see the response complete: the last
    /// bytes are flushed by the loop's flusher, after this pass's log lines.
    private func finish(status: Int, error: String?, reason: String?, closeClient: Bool, sendEnd: Bool = false) {
        if case .done = phase { return }
        phase = .done
        pool.deadlines.remove(self)
        var usage = UsageReader.Usage()
        if let copy = responseCopy {
            usage = UsageReader.read(copy.readableBytesView, contentType: responseContentType)
        }
        let last = attempts.last
        var log = RequestLog(
            time: wallStart, route: route?.name, endpoint: wire?.endpoint,
            method: head.method, path: head.uri, status: status, duration: .now - started,
            providerKind: provider.map { _ in "openai" }, requestModel: sentModel, responseModel: usage.model,
            inputTokens: usage.inputTokens, outputTokens: usage.outputTokens,
            provider: last?.provider, group: last?.group, attempts: attempts, error: error, reason: reason)
        if responseIsStream, let first = firstChunkAt, (200..<300).contains(status) {
            log.timeToFirstToken = first - attemptStarted
            if let last = lastChunkAt, let tokens = usage.outputTokens, tokens > 1 {
                log.timePerOutputToken = (last - first) / (tokens - 1)
            }
        }
        if let limit = runtime.options.logResponseBody, let copy = responseCopy {
            log.responseBody = String(decoding: copy.readableBytesView.prefix(limit), as: UTF8.self)
        }
        let line = runtime.finished(log, backend: route?.backendIndex)
        handler?.exchangeFinished(self)
        handler = nil
        if sendEnd {
            if chunkedToClient {
                if outgoing == nil { outgoing = context.channel.allocator.buffer(capacity: 8) }
                outgoing!.writeStaticString("0\r\n\r\n")
            }
            if let out = outgoing, out.readableBytes > 0 { context.write(NIOAny(out), promise: nil) }
        }
        outgoing = nil
        if closeClient {
            pool.flusher.add(line)
            pool.flusher.writeLog()
            context.flush()
            context.close(promise: nil)
        } else {
            pool.flusher.completed(line: line, context: context)
        }
    }

    static func describe(_ error: Error) -> String {
        if let io = error as? IOError { return io.description }
        if let connect = error as? NIOConnectionError, let first = connect.connectionErrors.first {
            return "\(first.error)"
        }
        return "\(error)"
    }

    /// How much of a streamed response's end is kept to read its usage chunk.
    static let streamTail = 32 * 1024

    /// Hop-by-hop and recomputed headers are not copied from the client.
    static func isNotForwarded(requestHeaderAt i: Int, of headers: WireHeaders, retrying: Bool) -> Bool {
        headers.nameIs("host", at: i) || headers.nameIs("content-length", at: i) || headers.nameIs("content-type", at: i)
            || headers.nameIs("connection", at: i) || headers.nameIs("keep-alive", at: i) || headers.nameIs("proxy-connection", at: i)
            || headers.nameIs("transfer-encoding", at: i) || headers.nameIs("te", at: i) || headers.nameIs("trailer", at: i)
            || headers.nameIs("upgrade", at: i) || headers.nameIs("expect", at: i) || headers.nameIs("authorization", at: i)
            || headers.nameIs("proxy-authorization", at: i) || (retrying && headers.nameIs("x-retry-attempt", at: i))
    }

    /// Hop-by-hop headers are not copied from the upstream, nor its length when the body is
    /// re-framed, nor an `x-failover-attempts` (the gateway writes its own).
    static func isNotForwarded(responseHeaderAt i: Int, of headers: WireHeaders, chunked: Bool) -> Bool {
        headers.nameIs("connection", at: i) || headers.nameIs("keep-alive", at: i) || headers.nameIs("proxy-connection", at: i)
            || headers.nameIs("transfer-encoding", at: i) || headers.nameIs("te", at: i) || headers.nameIs("trailer", at: i)
            || headers.nameIs("upgrade", at: i) || headers.nameIs("x-failover-attempts", at: i)
            || (chunked && headers.nameIs("content-length", at: i))
    }
}
