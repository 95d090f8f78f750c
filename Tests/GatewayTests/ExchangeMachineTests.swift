import NIOCore
import Testing
@testable import Gateway

/// The exchange's decisions with fake time: no sockets, no sleeps.
@Suite("Exchange machine")
struct ExchangeMachineTests {
    typealias M = ExchangeMachine
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func at(_ ms: Int64) -> NIODeadline { t0 + .milliseconds(ms) }

    func machine(retry: RetryPolicy? = nil, retryable: Bool = true, timeout: Duration? = nil, head: Duration? = nil) -> M {
        M(policy: .init(retry: retry, retryable: retryable, requestTimeout: timeout, headTimeout: head))
    }

    let retries = RetryPolicy(attempts: 2, backoff: .milliseconds(200), codes: [429, 503])

    @Test func plainSuccess() {
        var m = machine(head: .seconds(120))
        #expect(m.handle(.start, now: at(0)) == .attempt)
        #expect(m.handle(.sent, now: at(1)) == .none)
        #expect(m.nextDeadline == at(1) + .seconds(120))
        #expect(m.handle(.head(status: 200, failure: false), now: at(5)) == .respond)
        #expect(m.state == .streaming(pendingSuccess: true))
        #expect(m.nextDeadline == nil)
        #expect(m.handle(.ended, now: at(6)) == .finish(recordSuccess: true))
        #expect(m.state == .done)
        #expect(m.tries == 1)
    }

    @Test func failedStatusWithoutRetryGoesToTheClient() {
        var m = machine()
        _ = m.handle(.start, now: at(0)); _ = m.handle(.sent, now: at(0))
        #expect(m.handle(.head(status: 503, failure: true), now: at(3)) == .respond)
        #expect(m.state == .streaming(pendingSuccess: false))
        #expect(m.handle(.brokeOff, now: at(4)) == .finishBroken(recordFailure: false), "already recorded as a failure at the head")
    }

    @Test func a429IsHeldThenRetriedAfterTheBackoff() {
        var m = machine(retry: retries, timeout: .seconds(2))
        _ = m.handle(.start, now: at(0)); _ = m.handle(.sent, now: at(0))
        #expect(m.handle(.head(status: 429, failure: true), now: at(2)) == .hold)
        #expect(m.handle(.heldEnded(failure: true), now: at(3)) == .discard(next: .backoff))
        #expect(m.state == .backoff)
        #expect(m.nextDeadline == at(203))
        #expect(m.handle(.timer, now: at(150)) == .none, "too early")
        #expect(m.handle(.timer, now: at(203)) == .attempt)
        _ = m.handle(.sent, now: at(204))
        #expect(m.handle(.head(status: 200, failure: false), now: at(210)) == .respond)
        #expect(m.tries == 2)
    }

    @Test func retriesRunOut() {
        var m = machine(retry: RetryPolicy(attempts: 2, backoff: nil, codes: [503]))
        _ = m.handle(.start, now: at(0))
        for _ in 0..<2 {
            _ = m.handle(.sent, now: at(0))
            #expect(m.handle(.head(status: 503, failure: true), now: at(1)) == .discard(next: .attempt))
            #expect(m.state == .connecting)
        }
        _ = m.handle(.sent, now: at(2))
        #expect(m.handle(.head(status: 503, failure: true), now: at(3)) == .respond, "the third 503 goes to the client")
        #expect(m.tries == 3)
    }

    @Test func aStatusNotInCodesIsNotRetried() {
        var m = machine(retry: retries)
        _ = m.handle(.start, now: at(0)); _ = m.handle(.sent, now: at(0))
        #expect(m.handle(.head(status: 500, failure: true), now: at(1)) == .respond)
    }

    @Test func aBigBodyIsNotRetried() {
        var m = machine(retry: retries, retryable: false)
        _ = m.handle(.start, now: at(0)); _ = m.handle(.sent, now: at(0))
        #expect(m.handle(.head(status: 503, failure: true), now: at(1)) == .respond)
        var c = machine(retry: retries, retryable: false)
        _ = c.handle(.start, now: at(0))
        #expect(c.handle(.connectFailed, now: at(1)) == .tryFailed(.connect, next: .answer(status: 502)))
    }

    @Test func connectFailuresAreRetriedThen502() {
        var m = machine(retry: RetryPolicy(attempts: 1, backoff: nil, codes: [429]))
        _ = m.handle(.start, now: at(0))
        #expect(m.handle(.connectFailed, now: at(1)) == .tryFailed(.connect, next: .attempt))
        #expect(m.handle(.connectFailed, now: at(2)) == .tryFailed(.connect, next: .answer(status: 502)))
        #expect(m.state == .done)
    }

    @Test func aStaleKeptAliveConnectionIsRetriedOnceOnAFreshOne() {
        var m = machine()
        _ = m.handle(.start, now: at(0)); _ = m.handle(.sent, now: at(0))
        #expect(m.handle(.closedBeforeHead(reused: true), now: at(1)) == .reconnect)
        _ = m.handle(.sent, now: at(2))
        #expect(m.handle(.closedBeforeHead(reused: true), now: at(3)) == .tryFailed(.connect, next: .answer(status: 502)))
        #expect(m.tries == 1, "the stale connection is not a try of its own")
    }

    @Test func aFreshConnectionClosedBeforeTheHeadIsAFailedTry() {
        var m = machine()
        _ = m.handle(.start, now: at(0)); _ = m.handle(.sent, now: at(0))
        #expect(m.handle(.closedBeforeHead(reused: false), now: at(1)) == .tryFailed(.connect, next: .answer(status: 502)))
    }

    @Test func malformedAndOutOfRangeStatusesAreBroken() {
        var m = machine()
        _ = m.handle(.start, now: at(0)); _ = m.handle(.sent, now: at(0))
        #expect(m.handle(.malformed, now: at(1)) == .tryFailed(.broken, next: .answer(status: 502)))
        for status in [0, 99, 600, 999] {
            var n = machine()
            _ = n.handle(.start, now: at(0)); _ = n.handle(.sent, now: at(0))
            #expect(n.handle(.head(status: status, failure: false), now: at(1)) == .tryFailed(.broken, next: .answer(status: 502)))
        }
        var h = machine()
        _ = h.handle(.start, now: at(0)); _ = h.handle(.sent, now: at(0)); _ = h.handle(.head(status: 429, failure: true), now: at(0))
        #expect(h.handle(.brokeOff, now: at(1)) == .tryFailed(.broken, next: .answer(status: 502)), "a 429 whose body broke off")
    }

    @Test func theHeadTimeoutEndsATryAndMayRetry() {
        var m = machine(retry: RetryPolicy(attempts: 1, backoff: nil, codes: []), head: .milliseconds(500))
        _ = m.handle(.start, now: at(0)); _ = m.handle(.sent, now: at(10))
        #expect(m.nextDeadline == at(510))
        #expect(m.handle(.timer, now: at(509)) == .none)
        #expect(m.handle(.timer, now: at(510)) == .tryFailed(.timeout, next: .attempt))
        _ = m.handle(.sent, now: at(511))
        #expect(m.handle(.timer, now: at(1011)) == .tryFailed(.timeout, next: .answer(status: 504)))
    }

    @Test func theRequestTimeoutBoundsTriesAndBackoff() {
        // In flight: the try is recorded as timed out and the client gets 504.
        var m = machine(retry: retries, timeout: .seconds(2), head: .seconds(120))
        _ = m.handle(.start, now: at(0)); _ = m.handle(.sent, now: at(0))
        #expect(m.nextDeadline == at(2000), "the request deadline comes before the head timeout")
        #expect(m.handle(.timer, now: at(2000)) == .tryFailed(.timeout, next: .answer(status: 504)))
        #expect(m.state == .done)
        // In backoff: 504 with no try in flight.
        var b = machine(retry: RetryPolicy(attempts: 2, backoff: .seconds(5), codes: [503]), timeout: .seconds(1))
        _ = b.handle(.start, now: at(0)); _ = b.handle(.sent, now: at(0))
        #expect(b.handle(.head(status: 503, failure: true), now: at(10)) == .discard(next: .backoff))
        #expect(b.nextDeadline == at(1000))
        #expect(b.handle(.timer, now: at(1000)) == .timeout)
        // While streaming.
        var s = machine(timeout: .seconds(1))
        _ = s.handle(.start, now: at(0)); _ = s.handle(.sent, now: at(0)); _ = s.handle(.head(status: 200, failure: false), now: at(1))
        #expect(s.handle(.timer, now: at(1000)) == .timeoutWhileStreaming)
        #expect(s.handle(.ended, now: at(1001)) == .none, "nothing after the end")
    }

    @Test func theClientLeaving() {
        var m = machine(retry: retries, timeout: .seconds(2))
        _ = m.handle(.start, now: at(0)); _ = m.handle(.sent, now: at(0))
        #expect(m.handle(.clientClosed, now: at(1)) == .abandon)
        #expect(m.nextDeadline == nil)
        #expect(m.handle(.head(status: 200, failure: false), now: at(2)) == .none)
        #expect(m.handle(.clientClosed, now: at(3)) == .none)
    }

    @Test func staleInputsDoNothing() {
        var m = machine()
        #expect(m.handle(.head(status: 200, failure: false), now: at(0)) == .none)
        #expect(m.handle(.timer, now: at(0)) == .none)
        _ = m.handle(.start, now: at(0))
        #expect(m.handle(.start, now: at(0)) == .none)
        #expect(m.handle(.ended, now: at(0)) == .none)
    }

    @Test func hugeDurationsSaturate() {
        let far = M.adding(.seconds(Int64.max), to: t0)
        #expect(far > t0 + .seconds(86_400 * 365 * 99))
        #expect(M.adding(.seconds(-5), to: t0) == t0)
        var m = machine(timeout: .seconds(Int64.max), head: .seconds(Int64.max))
        _ = m.handle(.start, now: at(0)); _ = m.handle(.sent, now: at(0))
        #expect(m.handle(.timer, now: at(1)) == .none)
    }
}
