import NIOCore

/// What one exchange decides, as a value: an input and the time in, an action out, after
/// the style of async-http-client's connection state machines. It does no I/O and reads
/// no clock, so retries, backoff, the stale keep-alive retry, the request deadline and the
/// upstream head timeout are tested with fake time (`ExchangeMachineTests`). `Exchange`
/// performs the actions on its event loop and arms one timer at `nextDeadline`.
struct ExchangeMachine {
    /// What the route allows; fixed for the exchange's life.
    struct Policy {
        /// Further tries after the first, on which statuses, with what backoff (nil: none).
        var retry: RetryPolicy?
        /// The body is small enough to be sent again.
        var retryable: Bool
        /// The route's request timeout, retries and backoff included.
        var requestTimeout: Duration?
        /// Time from a try's send to the upstream's response head.
        var headTimeout: Duration?
    }

    enum State: Equatable {
        /// Not started.
        case idle
        /// A connection for a try is being opened (or the try is being prepared).
        case connecting
        /// The request went out; waiting for the response head.
        case awaitingHead
        /// A 429 whose small body is read before deciding (quota or rate).
        case holding
        /// Waiting out the retry backoff (a failed response may still be draining).
        case backoff
        /// The response goes to the client. `pendingSuccess`: its outcome is recorded at the end.
        case streaming(pendingSuccess: Bool)
        case done
    }

    /// Why a try ended without a response to pass on.
    enum TryFailure: Equatable {
        case connect
        case timeout
        case broken
    }

    enum Input: Equatable {
        /// The request was routed and its body read.
        case start
        /// The try's request was written to a connection.
        case sent
        /// No connection could be opened for the try.
        case connectFailed
        /// The upstream closed before a head. `reused`: on a kept-alive connection.
        case closedBeforeHead(reused: Bool)
        /// The upstream sent bytes that are not HTTP.
        case malformed
        /// A response head. `failure`: the balancer counts it as a failure (recorded; any
        /// eviction is in force).
        case head(status: Int, failure: Bool)
        /// A held 429's body has been read; `failure` as for `head`, now quota is known.
        case heldEnded(failure: Bool)
        /// The response body ended.
        case ended
        /// The response broke off after its head.
        case brokeOff
        /// The timer at `nextDeadline` fired.
        case timer
        /// The gateway answered the client itself (no provider, bad request…).
        case answered
        /// The client went away.
        case clientClosed
    }

    enum Action: Equatable {
        case none
        /// Choose a provider and send the request: a new try.
        case attempt
        /// Send the same try again on a fresh connection: the kept-alive one was stale.
        case reconnect
        /// Read the 429's body before deciding.
        case hold
        /// The try failed with no response: record it, give up its connection, then `next`.
        case tryFailed(TryFailure, next: Next)
        /// A failed response will be retried: let its body drain, then `next`.
        case discard(next: Next)
        /// Send the response head to the client and stream the body.
        case respond
        /// The response to the client is complete. `recordSuccess`: its outcome was not
        /// recorded at the head (it was not a failure) and is recorded now.
        case finish(recordSuccess: Bool)
        /// The response broke off mid-body: end the client's response and close.
        /// `recordFailure`: the try counts as broken (it had not been recorded as a failure).
        case finishBroken(recordFailure: Bool)
        /// The request timeout passed while the response was streaming.
        case timeoutWhileStreaming
        /// The request timeout passed between tries: answer 504.
        case timeout
        /// The client left: give back what the try holds, log, stop.
        case abandon
    }

    /// What follows a failed try.
    enum Next: Equatable {
        /// Try again at once.
        case attempt
        /// Try again when the backoff timer fires.
        case backoff
        /// No more tries: answer with this status.
        case answer(status: Int)
    }

    let policy: Policy
    private(set) var state = State.idle
    /// Tries that have ended; the try in flight is number `tries + 1`.
    private(set) var tries = 0
    private var staleRetryUsed = false
    private(set) var requestDeadline: NIODeadline?
    private(set) var headDeadline: NIODeadline?
    private(set) var backoffUntil: NIODeadline?

    init(policy: Policy) {
        self.policy = policy
    }

    /// The earliest time the machine wants a `.timer` input, if any.
    var nextDeadline: NIODeadline? {
        var next = requestDeadline
        if let d = headDeadline, next.map({ d < $0 }) ?? true { next = d }
        if let d = backoffUntil, next.map({ d < $0 }) ?? true { next = d }
        return next
    }

    /// `now` is read only when the input sets a deadline or a timer fired: most inputs on
    /// the data path need no clock.
    mutating func handle(_ input: Input, now clock: @autoclosure () -> NIODeadline) -> Action {
        switch input {
        case .start:
            guard state == .idle else { return .none }
            requestDeadline = policy.requestTimeout.map { Self.adding($0, to: clock()) }
            state = .connecting
            return .attempt

        case .sent:
            guard state == .connecting else { return .none }
            state = .awaitingHead
            headDeadline = policy.headTimeout.map { Self.adding($0, to: clock()) }
            return .none

        case .connectFailed:
            guard state == .connecting else { return .none }
            return failTry(.connect, now: clock())

        case .closedBeforeHead(let reused):
            switch state {
            case .awaitingHead where reused && !staleRetryUsed:
                staleRetryUsed = true
                headDeadline = nil
                state = .connecting
                return .reconnect
            case .awaitingHead:
                return failTry(.connect, now: clock())
            case .holding:
                return failTry(.broken, now: clock())
            default:
                return .none
            }

        case .malformed:
            guard state == .awaitingHead || state == .holding else { return .none }
            return failTry(.broken, now: clock())

        case .head(let status, let failure):
            guard state == .awaitingHead else { return .none }
            headDeadline = nil
            guard (100...599).contains(status) else { return failTry(.broken, now: clock()) }
            if status == 429 {
                state = .holding
                return .hold
            }
            return decide(status: status, failure: failure, now: clock())

        case .heldEnded(let failure):
            guard state == .holding else { return .none }
            return decide(status: 429, failure: failure, now: clock())

        case .ended:
            guard case .streaming(let pendingSuccess) = state else { return .none }
            end()
            return .finish(recordSuccess: pendingSuccess)

        case .brokeOff:
            switch state {
            case .streaming(let pendingSuccess):
                end()
                return .finishBroken(recordFailure: pendingSuccess)
            case .holding:
                return failTry(.broken, now: clock())
            default:
                return .none
            }

        case .timer:
            return timer(now: clock())

        case .answered:
            end()
            return .none

        case .clientClosed:
            guard state != .done else { return .none }
            end()
            return .abandon
        }
    }

    private mutating func timer(now: NIODeadline) -> Action {
        if let d = requestDeadline, d <= now {
            switch state {
            case .idle, .done:
                return .none
            case .streaming:
                end()
                return .timeoutWhileStreaming
            case .connecting, .awaitingHead, .holding:
                // The try in flight is recorded as timed out; no other can start in time.
                tries += 1
                end()
                return .tryFailed(.timeout, next: .answer(status: 504))
            case .backoff:
                end()
                return .timeout
            }
        }
        if let d = headDeadline, d <= now, state == .awaitingHead || state == .holding {
            return failTry(.timeout, now: now)
        }
        if let d = backoffUntil, d <= now, state == .backoff {
            backoffUntil = nil
            state = .connecting
            return .attempt
        }
        return .none
    }

    /// A head (or a held 429's end) that goes to the client, or is retried.
    private mutating func decide(status: Int, failure: Bool, now: @autoclosure () -> NIODeadline) -> Action {
        tries += 1
        if failure, let next = retryNext(status: status) {
            start(next, now: now())
            return .discard(next: next)
        }
        state = .streaming(pendingSuccess: !failure)
        return .respond
    }

    /// A try ended with nothing to pass on: retry, back off, or answer.
    private mutating func failTry(_ failure: TryFailure, now: @autoclosure () -> NIODeadline) -> Action {
        tries += 1
        headDeadline = nil
        guard let next = retryNext(status: nil) else {
            end()
            return .tryFailed(failure, next: .answer(status: failure == .timeout ? 504 : 502))
        }
        start(next, now: now())
        return .tryFailed(failure, next: next)
    }

    private mutating func start(_ next: Next, now: @autoclosure () -> NIODeadline) {
        switch next {
        case .attempt:
            state = .connecting
        case .backoff:
            state = .backoff
            backoffUntil = Self.adding(policy.retry?.backoff ?? .zero, to: now())
        case .answer:
            end()
        }
    }

    /// One more try is allowed after the ones that ended, for this status (nil: no response).
    private func retryNext(status: Int?) -> Next? {
        guard let retry = policy.retry, tries <= retry.attempts, policy.retryable else { return nil }
        if let status, !retry.codes.contains(status) { return nil }
        return (retry.backoff ?? .zero) > .zero ? .backoff : .attempt
    }

    private mutating func end() {
        state = .done
        requestDeadline = nil
        headDeadline = nil
        backoffUntil = nil
    }

    /// `now + d`, saturating at a century instead of trapping on a huge duration.
    static func adding(_ d: Duration, to now: NIODeadline) -> NIODeadline {
        let (seconds, attoseconds) = d.components
        let century: Int64 = 100 * 365 * 86_400
        if seconds < 0 { return now }
        if seconds >= century { return now + .seconds(century) }
        return now + .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
