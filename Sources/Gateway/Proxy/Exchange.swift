import Foundation
import NIOCore
import CHTTPParser
import Wire
import NIOPosix

/// One client request on its way through the gateway: route, choose a provider, send,
/// stream the answer back, retry when the policy says so, and log. Lives on one event loop.
final class Exchange: UpstreamResponseDelegate {
    private let runtime: GatewayRuntime
    private let pool: UpstreamPool
    /// Cleared when the exchange finishes (the handler holds the exchange until then).
    private var handler: ProxyHandler?
    private let context: ChannelHandlerContext
    private let head: MessageHead
    private var body: ByteBuffer

    private let started = ContinuousClock.now
    private let wallStart = Date()
    /// The decisions (tries, retries, backoff, deadlines); this class performs them.
    private var machine = ExchangeMachine(policy: .init(retry: nil, retryable: false, requestTimeout: nil, headTimeout: nil))
    /// The current try's upstream connection, from its send until its response is done.
    private var connection: UpstreamConnection?
    /// A failed response being read to its end (and dropped) while the next try runs.
    private var draining: UpstreamConnection?
    /// A 429's head and the body read so far, held until its end to tell quota from rate
    /// (boxed: most exchanges never hold one, and every open one would carry its room).
    private final class HeldResponse {
        let head: MessageHead
        var body = ByteBuffer()
        init(head: MessageHead) { self.head = head }
    }
    private var held: HeldResponse?
    /// The deadline this exchange has in its loop's `RequestDeadlines`.
    private var armed: NIODeadline?
    /// The request is logged and its answer is out (or the client is gone).
    private var finished = false
    /// The route's index in the plan (-1 before one matched): the plan is immutable, and an
    /// index is 8 bytes where a copy of the route was 96 in every open exchange.
    private var routeIndex = -1
    private var route: PlannedRoute? { routeIndex >= 0 ? runtime.plan.routes[routeIndex] : nil }
    /// What the gateway reads of the client's JSON (which Foundation has validated).
    private var peek = RequestPeek()
    private var attempts: [AttemptRecord] = []
    private var choice: ProviderChoice?
    /// The provider this try was sent to (with its per-request constants): a reference,
    /// not a copy of the provider (544 bytes in every open exchange).
    private var chosen: ProviderWire?
    /// The chosen provider's per-request constants.
    private var wire: ProviderWire?
    private var attemptStarted = ContinuousClock.now
    private var sentModel: String?
    /// Where this exchange sits in its loop's `RequestDeadlines` (-1: not there).
    var deadlineSlot = -1

    deinit {
        if deadlineSlot >= 0 { pool.deadlines.remove(self) }
    }
    private var responseStatus: Int?
    // Flags next to an optional's tag byte: laid out in order, they take no room of their own.
    /// The response is Server-Sent Events: its usage is read as its events pass.
    private var responseIsStream = false
    /// `stream_options.include_usage` was added to the client's request.
    private var injectedStreamOptions = false
    /// A whole answer's body (up to `responseCopyLimit`), read for its usage when it ends;
    /// for a stream, only with `logResponseBody`, its last events.
    private var responseCopy: ByteBuffer?
    private var responseBytes = 0
    private var streamUsage = StreamUsageTap()
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
    /// The request's trace while tracing is on; nil (one check per hook) when it is off.
    private var trace: TraceBuilder?
    /// The current try's `traceparent` for the upstream.
    private var tryParent: TraceParent?
    private var lastChunkAt: ContinuousClock.Instant?

    init(runtime: GatewayRuntime, pool: UpstreamPool, handler: ProxyHandler, context: ChannelHandlerContext, head: MessageHead, body: ByteBuffer) {
        self.runtime = runtime
        self.pool = pool
        self.handler = handler
        self.context = context
        self.head = head
        self.body = body
    }

    private var backendIndex: Int { runtime.plan.routes[routeIndex].backendIndex }

    // MARK: Start

    func start() {
        if let sampler = runtime.traceSampler {
            let incoming = head.headers.first("traceparent").flatMap { TraceParent(header: $0.utf8) }
            trace = TraceBuilder(incoming: incoming, sampler: sampler, wall: wallStart, origin: started, random: &pool.traceRandom)
        }
        guard let index = runtime.plan.routeIndex(forPath: head.uri) else {
            reject(status: 404, message: "no route matches path \(head.uri)", type: "not_found_error", reason: "no_route")
            return
        }
        routeIndex = index
        let route = runtime.plan.routes[index]
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
            // Foundation takes invalid UTF-8 and numbers no Double holds (1e999999): not forwarded.
            if let offset = body.withUnsafeReadableBytes({ RequestScan.strictFailure($0.bindMemory(to: UInt8.self)) }) {
                reject(status: 400, message: "request body is not strict JSON at byte \(offset): invalid UTF-8, a lone surrogate escape, a number out of range or nesting deeper than 512", type: "invalid_request_error", reason: "bad_request")
                return
            }
            // The fast scan leaves escaped and repeated keys to Foundation, which keeps one
            // `model` of several: refuse those, so no upstream reads a model the log does not name.
            if case .failure(let refusal) = body.withUnsafeReadableBytes({ ModelSplice.find($0.bindMemory(to: UInt8.self)) }) {
                reject(status: 400, message: refusal.reason, type: "invalid_request_error", reason: "bad_request")
                return
            }
        }
        // As agentgateway does: ask a stream for its usage chunk, so tokens can be counted.
        injectedStreamOptions = peek.stream == true && peek.includeUsage == nil
        machine = ExchangeMachine(policy: .init(
            retry: route.retry, retryable: body.readableBytes <= runtime.options.maxRetryBody,
            requestTimeout: route.requestTimeout,
            // The time to the response head is bounded even when the route sets no timeout.
            headTimeout: route.requestTimeout == nil ? runtime.options.upstreamHeaderTimeout : nil))
        handle(.start)
    }

    // MARK: Decisions

    /// Hands `input` to the machine and performs its action; `error` says what happened
    /// when the action answers the client with an error. Then arms the one timer the
    /// machine wants (request deadline, head timeout or backoff).
    /// `responding`: the response head the client gets if the machine says `.respond` (only
    /// a head or a held 429's end can), and whether the balancer counted it a failure. Passed
    /// along, not kept: every open exchange would carry its room.
    private func handle(_ input: ExchangeMachine.Input, error: @autoclosure () -> String = "", responding: (head: MessageHead, failed: Bool)? = nil) {
        let action = machine.handle(input, now: .now())  // read only when a deadline is set
        perform(action, error: error, responding: responding)
        rearm()
    }

    private func perform(_ action: ExchangeMachine.Action, error: () -> String, responding: (head: MessageHead, failed: Bool)? = nil) {
        switch action {
        case .none:
            break
        case .attempt:
            attempt()
        case .reconnect:
            reconnect()
        case .hold:
            held?.body = context.channel.allocator.buffer(capacity: 256)
        case .tryFailed(let failure, let next):
            let outcome: AttemptOutcome
            let word: String
            switch failure {
            case .connect: outcome = .connectFailed; word = "connect"
            case .timeout: outcome = .timedOut; word = "timeout"
            case .broken: outcome = .broken; word = "broken"
            }
            if let choice {
                noteEvictions(runtime.record(outcome, for: choice, backend: backendIndex, latency: .now - attemptStarted, now: .now))
                attempts.append(attemptRecord(status: nil, failure: word))
                trace?.endTry(status: nil, failure: word, now: .now)
                self.choice = nil
            }
            if let connection { pool.discard(connection) }
            connection = nil
            held = nil
            after(next, error: error, timedOut: failure == .timeout)
        case .discard(let next):
            // The failed response's body is read to its end, then its connection goes back.
            draining = connection
            connection = nil
            choice = nil
            after(next, error: error, timedOut: false)
        case .respond:
            if let responding { writeResponseHead(responding.head, failed: responding.failed) }
        case .finish(let recordSuccess):
            if let connection { pool.release(connection) }
            connection = nil
            if recordSuccess, let choice {
                noteEvictions(runtime.record(.response(status: responseStatus ?? 200, resetHint: nil, quotaExhausted: false), for: choice, backend: backendIndex, latency: .now - attemptStarted, now: .now))
                self.choice = nil
            }
            finish(status: responseStatus ?? 200, error: nil, reason: (responseStatus ?? 200) >= 400 ? "upstream_status" : nil, closeClient: closeAfterResponse, sendEnd: true)
        case .finishBroken(let recordFailure):
            if let connection { pool.discard(connection) }
            connection = nil
            if recordFailure, let choice {
                noteEvictions(runtime.record(.broken, for: choice, backend: backendIndex, latency: .now - attemptStarted, now: .now))
                self.choice = nil
            }
            finish(status: responseStatus ?? 502, error: error(), reason: "upstream_broken", closeClient: true)
        case .timeoutWhileStreaming:
            if let connection { pool.discard(connection) }
            connection = nil
            if let choice {
                noteEvictions(runtime.record(.timedOut, for: choice, backend: backendIndex, latency: .now - attemptStarted, now: .now))
                self.choice = nil
            }
            finish(status: responseStatus ?? 504, error: "request timeout while streaming the response", reason: "timeout", closeClient: true)
        case .timeout:
            if let draining { pool.discard(draining) }
            draining = nil
            reject(status: 504, message: "request timeout", type: "upstream_error", reason: "timeout")
        case .abandon:
            for c in [connection, draining] { if let c { pool.discard(c) } }
            connection = nil
            draining = nil
            if let choice { runtime.cancel(choice, backend: backendIndex) }
            choice = nil
            finish(status: responseStatus ?? 499, error: "client closed the connection", reason: "client_closed", closeClient: false)
        }
    }

    /// What follows a failed try: the next try now, a backoff (the timer is armed), or the answer.
    private func after(_ next: ExchangeMachine.Next, error: () -> String, timedOut: Bool) {
        switch next {
        case .attempt:
            attempt()
        case .backoff:
            trace?.beginBackoff(now: .now)
        case .answer(let status):
            reject(status: status, message: error(), type: "upstream_error", reason: timedOut ? "timeout" : "upstream_connect")
        }
    }

    /// Keeps this exchange's entry in `RequestDeadlines` at the machine's next deadline.
    private func rearm() {
        let next = machine.nextDeadline
        guard next != armed else { return }
        if armed != nil { pool.deadlines.remove(self) }
        armed = next
        if let next { pool.deadlines.add(self, deadline: next) }
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

    /// A new try: choose a provider, then send on an idle connection or a new one.
    private func attempt() {
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
        self.chosen = wire
        self.sentModel = model
        attemptStarted = .now
        if trace != nil {
            tryParent = trace!.beginTry(provider: provider.name, group: provider.group, endpoint: wire!.endpoint, now: attemptStarted, random: &pool.traceRandom)
        }
        guard let upstreamBody = makeUpstreamBody() else {
            runtime.cancel(choice, backend: backendIndex)
            reject(status: 400, message: "request body cannot be forwarded as JSON", type: "invalid_request_error", reason: "bad_request")
            return
        }
        let key = UpstreamKey(address: provider.connect, serverName: provider.connect.tls ? provider.declared.host : nil)
        if let idle = pool.idleConnection(key) {
            send(on: idle, body: upstreamBody, provider: provider)
            return
        }
        connect(key, body: upstreamBody, provider: provider)
    }

    /// The same try on a fresh connection: the kept-alive one had been closed by the upstream.
    private func reconnect() {
        guard let provider = chosen?.provider else { return }
        let key = UpstreamKey(address: provider.connect, serverName: provider.connect.tls ? provider.declared.host : nil)
        connect(key, body: makeUpstreamBody() ?? ByteBuffer(), provider: provider)
    }

    private func connect(_ key: UpstreamKey, body upstreamBody: ByteBuffer, provider: PlannedProvider) {
        let tryNumber = machine.tries
        pool.connect(key).assumeIsolated().whenComplete { [self] result in
            // Still the try that asked for it (not timed out, not ended by the client).
            guard machine.state == .connecting, machine.tries == tryNumber, connection == nil else {
                if case .success(let connection) = result { pool.release(connection) }
                return
            }
            switch result {
            case .success(let connection):
                send(on: connection, body: upstreamBody, provider: provider)
            case .failure(let error):
                handle(.connectFailed, error: "upstream connect error: \(Self.describe(error)) (\(provider.name) at \(provider.connect))")
            }
        }
    }

    private func send(on connection: UpstreamConnection, body upstreamBody: ByteBuffer, provider: PlannedProvider) {
        connection.delegate = self
        connection.requests += 1
        connection.expectsNoBody = head.method == "HEAD"
        self.connection = connection
        let path = provider.spec.upstreamPath(forClientPath: head.uri)
        let headers = head.headers
        var out = context.channel.allocator.buffer(capacity: 192 + headers.bytes.count + 4 * headers.count + upstreamBody.readableBytes)
        out.writeString(head.method)
        out.writeStaticString(" ")
        out.writeString(path)
        out.writeStaticString(" HTTP/1.1\r\n")
        let retrying = !attempts.isEmpty
        for i in 0..<headers.count where !Self.isNotForwarded(requestHeaderAt: i, of: headers, retrying: retrying) {
            if let named = head.connectionNamed, named.contains(i) { continue }
            // Traced: the try's own traceparent replaces the client's.
            if trace != nil && headers.nameIs("traceparent", at: i) { continue }
            headers.write(fieldAt: i, to: &out)
        }
        if let tryParent {
            out.writeStaticString("traceparent: ")
            out.writeTraceParent(tryParent)
            out.writeStaticString("\r\n")
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
        handle(.sent)
    }

    /// Puts the evictions a try's outcome caused on its span (tracing on only).
    private func noteEvictions(_ events: [BalancerEvent]) {
        guard trace != nil else { return }
        for event in events {
            if case .evicted(let duration, let reason, let times) = event.kind {
                trace!.evicted(provider: event.provider, reason: reason.description, duration: duration, times: times, now: .now)
            }
        }
    }

    /// The record of the current try.
    private func attemptRecord(status: Int?, failure: String?) -> AttemptRecord {
        AttemptRecord(provider: chosen?.provider.name ?? "?", group: chosen?.provider.group ?? 0, status: status, failure: failure,
                      sequence: choice?.sequence ?? 0, probe: choice?.isProbe ?? false, failOpen: choice?.failOpen ?? false)
    }

    // MARK: Upstream response

    func upstreamHead(_ responseHead: MessageHead, on connection: UpstreamConnection) {
        guard connection === self.connection, machine.state == .awaitingHead else { return }
        if responseHead.status == 429 {
            held = HeldResponse(head: responseHead)
            handle(.head(status: 429, failure: true))
            return
        }
        decide(responseHead, quotaExhausted: false)
    }

    /// Records the outcome (a failure's eviction is in force before anything else happens),
    /// then lets the machine choose: retry, or send the response to the client.
    private func decide(_ responseHead: MessageHead, quotaExhausted: Bool) {
        guard let choice, chosen != nil else { return }
        let status = responseHead.status
        var hint: Duration?
        if status == 429 || status >= 500 {
            hint = RateLimitHint.resetDelay(headers: responseHead.headers.pairs, now: Date())
        }
        let outcome = AttemptOutcome.response(status: status, resetHint: hint, quotaExhausted: quotaExhausted)
        let failed = runtime.isFailure(outcome, for: choice, backend: backendIndex)
        if failed {
            noteEvictions(runtime.record(outcome, for: choice, backend: backendIndex, latency: .now - attemptStarted, now: .now))
        }
        attempts.append(attemptRecord(status: status, failure: nil))
        trace?.endTry(status: status, failure: nil, now: .now)
        if held != nil {
            held = nil
            handle(.heldEnded(failure: failed), responding: (responseHead, failed))
        } else {
            handle(.head(status: status, failure: failed), responding: (responseHead, failed))
        }
    }

    /// Starts the client's response: the upstream's head, re-framed, with `x-failover-attempts`.
    private func writeResponseHead(_ responseHead: MessageHead, failed: Bool) {
        guard let choice else { return }
        let status = responseHead.status
        let retryHint = failed ? runtime.options.failoverRetryHint.flatMap { runtime.failoverReady(after: choice, backend: backendIndex) ? $0 : nil } : nil
        if failed { self.choice = nil }
        responseStatus = status
        let headers = responseHead.headers
        responseIsStream = headers.first("content-type").map(UsageReader.isEventStream) ?? false
        bodiless = head.method == "HEAD" || status == 204 || status == 304
        let lengthKnown = responseHead.contentLength != nil && !responseHead.chunked
        if !bodiless && !lengthKnown {
            if head.isHTTP10 { closeAfterResponse = true } else { chunkedToClient = true }
        }
        if !head.keepAlive || pool.clients.draining { closeAfterResponse = true }
        // Room for a small body too, so head and body leave in one buffer without regrowing it.
        let bodyRoom = min(responseHead.contentLength ?? 0, Self.copyLimit)
        var out = context.channel.allocator.buffer(capacity: 256 + headers.bytes.count + 4 * headers.count + bodyRoom)
        Self.writeStatusLine(status: status, reason: responseHead.reason, http10: head.isHTTP10, to: &out)
        for i in 0..<headers.count where !Self.isNotForwarded(responseHeaderAt: i, of: headers, chunked: chunkedToClient) {
            if let named = responseHead.connectionNamed, named.contains(i) { continue }
            headers.write(fieldAt: i, to: &out)
        }
        if chunkedToClient {
            out.writeStaticString("transfer-encoding: chunked\r\n")
        } else if let length = responseHead.contentLength {
            out.writeHeader("content-length", length)
        }
        out.writeStaticString("x-failover-attempts: ")
        writeAttempts(to: &out)
        out.writeStaticString("\r\n")
        if let retryHint, !headers.contains("retry-after-ms") {
            out.writeHeader("retry-after-ms", Checked.clampedInt(retryHint.seconds * 1000, 0...Int.max))
        }
        writeConnectionHeader(to: &out)
        out.writeStaticString("\r\n")
        outgoing = out
    }

    func upstreamBody(_ buffer: ByteBuffer, on connection: UpstreamConnection) {
        guard connection === self.connection else { return }
        if let held {
            var part = buffer
            held.body.writeBuffer(&part)
            return
        }
        guard case .streaming = machine.state else { return }
        responseBytes += buffer.readableBytes
        let now = ContinuousClock.now
        if firstChunkAt == nil { firstChunkAt = now }
        lastChunkAt = now
        if responseIsStream {
            buffer.withUnsafeReadableBytes { streamUsage.feed($0) }
            // The access log's `response.body`, when asked for, shows a stream's last events.
            if runtime.options.logResponseBody != nil { keepStreamTail(buffer) }
            emit(buffer)
            return
        }
        let limit = runtime.options.responseCopyLimit
        if responseCopy == nil {
            if buffer.readableBytes <= limit {
                // A whole answer in one part (the usual case): kept as it came, without a copy.
                responseCopy = buffer
                emit(buffer)
                return
            }
            responseCopy = context.channel.allocator.buffer(capacity: min(limit, max(buffer.readableBytes, 256)))
        }
        if responseCopy!.readableBytes < limit {
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

    /// Keeps a stream's last two whole events and what follows, for the access log's
    /// `response.body`. An event longer than `streamTail` keeps only its end.
    private func keepStreamTail(_ buffer: ByteBuffer) {
        if responseCopy == nil { responseCopy = context.channel.allocator.buffer(capacity: 512) }
        var part = buffer
        if part.readableBytes > Self.streamTail { part.moveReaderIndex(forwardBy: part.readableBytes - Self.streamTail) }
        // Room made at the front before the buffer would grow: it stays the size of its last events.
        if part.readableBytes > responseCopy!.writableBytes && responseCopy!.readerIndex > 0 { responseCopy!.discardReadBytes() }
        responseCopy!.writeBuffer(&part)
        Self.keepLastEvents(&responseCopy!, tail: Self.streamTail)
    }

    func upstreamReadComplete(on connection: UpstreamConnection) {
        guard connection === self.connection, case .streaming = machine.state else { return }
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
        if connection === draining {
            draining = nil
            pool.release(connection)
            return
        }
        guard connection === self.connection else {
            pool.release(connection)
            return
        }
        if let held {
            let quota = held.body.readableBytesView.firstRange(of: Array("insufficient_quota".utf8)) != nil
            decide(held.head, quotaExhausted: quota)
            if connection === draining {
                // Retried: this response is already whole.
                draining = nil
                pool.release(connection)
                return
            }
            guard case .streaming = machine.state else { return }
            let body = held.body
            held.body = ByteBuffer()
            upstreamBody(body, on: connection)
        }
        handle(.ended)
    }

    func upstreamFailed(_ error: Error, on connection: UpstreamConnection) {
        if connection === draining {
            draining = nil
            pool.discard(connection)
            return
        }
        guard connection === self.connection else { return }
        let where_ = "\(chosen?.provider.name ?? "?") at \(chosen?.provider.connect.description ?? "?")"
        switch machine.state {
        case .awaitingHead:
            pool.discard(connection)
            self.connection = nil
            if error is UpstreamMalformed {
                handle(.malformed, error: "\(error) (\(where_))")
            } else {
                handle(.closedBeforeHead(reused: connection.requests > 1),
                       error: "upstream closed the connection before responding (\(where_)): \(Self.describe(error))")
            }
        case .holding:
            handle(.brokeOff, error: "upstream response broke off (\(where_)): \(Self.describe(error))")
        case .streaming:
            handle(.brokeOff, error: "upstream response broke off after \(responseBytes) bytes: \(Self.describe(error))")
        default:
            pool.discard(connection)
            self.connection = nil
        }
    }

    /// The client's JSON with the model this try sends. The model is spliced into the
    /// client's bytes; only when that cannot be done (stream options added, an escaped
    /// key) is the whole body encoded again.
    private func makeUpstreamBody() -> ByteBuffer? {
        guard let model = sentModel else { return nil }
        // The provider's own model is quoted once, in its ProviderWire.
        let quoted = model == chosen?.provider.model ? wire?.quotedModel ?? JSONLine.quoted(model) : JSONLine.quoted(model)
        if !injectedStreamOptions || !peek.hasStreamOptions,
           var spliced = Self.splice(quoted: quoted, into: body, hasModel: peek.hasModel, place: peek.modelPlace, allocator: context.channel.allocator) {
            // No `stream_options` at all: ours goes in first, as bytes (the object has a
            // `model` now, so a comma follows). Re-encoding the body cost ~60 µs a request.
            if injectedStreamOptions { Self.insertStreamOptions(into: &spliced) }
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
    static let streamOptionsMember = Array("\"stream_options\":{\"include_usage\":true},".utf8)

    /// Puts `"stream_options":{"include_usage":true},` just inside the top-level object of
    /// `body`, which has at least one member and no `stream_options`.
    static func insertStreamOptions(into body: inout ByteBuffer) {
        guard let open = body.readableBytesView.firstIndex(of: UInt8(ascii: "{")) else { return }
        let at = open - body.readableBytesView.startIndex + 1
        var out = ByteBufferAllocator().buffer(capacity: body.readableBytes + streamOptionsMember.count)
        out.writeBytes(body.readableBytesView.prefix(at))
        out.writeBytes(streamOptionsMember)
        out.writeBytes(body.readableBytesView.dropFirst(at))
        body = out
    }

    /// The fields of a chat completion request the gateway acts on. Decoding it validates
    /// the whole body as JSON without building a dictionary of it.
    struct RequestPeek: Decodable {
        var model: String?
        var hasModel = false
        var stream: Bool?
        var includeUsage: Bool?
        /// The body has a top-level `stream_options`, whatever its value.
        var hasStreamOptions = false
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
            hasStreamOptions = c.contains(.stream_options)
            if hasStreamOptions, let options = try? c.nestedContainer(keyedBy: Key.self, forKey: .stream_options) {
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
                // Keys compared after unescaping; a body naming `model` twice is refused.
                guard case .success(let found) = ModelSplice.find(bytes) else { return nil }
                model = found.value
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

    /// The deadline this exchange asked for passed (called by the loop's `RequestDeadlines`,
    /// which has already let go of the entry): the request timeout, the upstream head
    /// timeout or the end of a backoff.
    func timerFired() {
        armed = nil
        handle(.timer, error: route?.requestTimeout == nil
            ? "no response head from the upstream within \(runtime.options.upstreamHeaderTimeout.compactDescription) (--upstream-header-timeout; the route sets no timeout)"
            : "request timeout")
    }

    func clientClosed() {
        handle(.clientClosed)
    }

    // MARK: Answers

    /// Answers the client with a JSON error made by the gateway.
    func reject(status: Int, message: String, type: String, reason: String, closeAfter: Bool = false) {
        _ = machine.handle(.answered, now: .now())  // not read: .answered sets no deadline
        var line = JSONLine()
        line.add("message", message)
        line.add("type", type)
        let payload = "{\"error\":\(line.finish())}"
        if closeAfter || !head.keepAlive || pool.clients.draining { closeAfterResponse = true }
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
        if finished { return }
        finished = true
        armed = nil
        pool.deadlines.remove(self)
        var usage = UsageReader.Usage()
        if responseIsStream {
            usage = streamUsage.usage
        } else if let copy = responseCopy {
            usage = UsageReader.read(copy.readableBytesView)
        }
        let last = attempts.last
        var log = RequestLog(
            time: wallStart, route: routeIndex >= 0 ? runtime.plan.routes[routeIndex].name : nil, endpoint: wire?.endpoint,
            method: head.method, path: head.uri, status: status, duration: .now - started,
            providerKind: chosen.map { _ in "openai" }, requestModel: sentModel, responseModel: usage.model,
            inputTokens: usage.inputTokens, outputTokens: usage.outputTokens,
            provider: last?.provider, group: last?.group, attempts: attempts, error: error, reason: reason)
        if responseIsStream, let first = firstChunkAt, (200..<300).contains(status) {
            log.timeToFirstToken = first - attemptStarted
            if let last = lastChunkAt, let tokens = usage.outputTokens, tokens > 1 {
                log.timePerOutputToken = (last - first) / (tokens - 1)
            }
        }
        if trace != nil {
            log.routeMatchPath = routeIndex >= 0 ? runtime.plan.routes[routeIndex].matches.first?.value : nil
            log.trace = trace!.finish(now: .now, reason: reason)
        }
        if let limit = runtime.options.logResponseBody, let copy = responseCopy {
            log.responseBody = String(decoding: copy.readableBytesView.prefix(limit), as: UTF8.self)
        }
        let line = runtime.finished(log, backend: routeIndex >= 0 ? backendIndex : nil, pool: pool)
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

    /// The longest event of a stream held while its end has not come (`StreamUsageTap`; a
    /// longer one is skipped: the usage chunk is under 1 KiB from OpenAI-style providers), and
    /// the most of a stream's end kept for the access log's `response.body`.
    static let streamTail = 4 * 1024

    /// Cuts a stream's copy to its last two whole events and the part of the next one
    /// that came (the usage chunk and `[DONE]` are the last two), and to at most `tail`
    /// bytes when those are longer. Events end with a blank line (`\n\n` or `\r\n\r\n`).
    static func keepLastEvents(_ copy: inout ByteBuffer, tail: Int) {
        let cut: Int? = copy.withUnsafeReadableBytes { bytes -> Int? in
            // Scans back for the third-to-last event end: what comes before it goes.
            var ends = 0
            var i = bytes.count - 1
            while i >= 1 {
                if bytes[i] == 0x0A && (bytes[i - 1] == 0x0A || (i >= 3 && bytes[i - 1] == 0x0D && bytes[i - 2] == 0x0A)) {
                    ends += 1
                    if ends == 3 { return i + 1 }
                    i -= bytes[i - 1] == 0x0D ? 2 : 1
                }
                i -= 1
            }
            return nil
        }
        var drop = cut ?? 0
        if copy.readableBytes - drop > tail { drop = copy.readableBytes - tail }
        if drop > 0 { copy.moveReaderIndex(forwardBy: drop) }
    }

    /// Hop-by-hop and recomputed headers are not copied from the client: framing (length,
    /// chunking, connection and what it names), host, type and credentials are the gateway's
    /// own. Names were checked to be tokens and values free of control bytes (`HeadCheck`).
    static func isNotForwarded(requestHeaderAt i: Int, of headers: WireHeaders, retrying: Bool) -> Bool {
        headers.nameIs("host", at: i) || headers.nameIs("content-length", at: i) || headers.nameIs("content-type", at: i)
            || headers.nameIs("connection", at: i) || headers.nameIs("keep-alive", at: i) || headers.nameIs("proxy-connection", at: i)
            || headers.nameIs("transfer-encoding", at: i) || headers.nameIs("te", at: i) || headers.nameIs("trailer", at: i)
            || headers.nameIs("upgrade", at: i) || headers.nameIs("expect", at: i) || headers.nameIs("authorization", at: i)
            || headers.nameIs("proxy-authorization", at: i) || headers.nameIs("http2-settings", at: i)
            || (retrying && headers.nameIs("x-retry-attempt", at: i))
    }

    /// Hop-by-hop headers are not copied from the upstream, nor its framing (the gateway
    /// writes its own length or chunking), nor an `x-failover-attempts` (the gateway writes its own).
    static func isNotForwarded(responseHeaderAt i: Int, of headers: WireHeaders, chunked: Bool) -> Bool {
        headers.nameIs("connection", at: i) || headers.nameIs("keep-alive", at: i) || headers.nameIs("proxy-connection", at: i)
            || headers.nameIs("transfer-encoding", at: i) || headers.nameIs("te", at: i) || headers.nameIs("trailer", at: i)
            || headers.nameIs("upgrade", at: i) || headers.nameIs("x-failover-attempts", at: i)
            || headers.nameIs("proxy-authenticate", at: i) || headers.nameIs("content-length", at: i)
    }
}
