import CShims
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Wire

/// A load driver: runs a workload on its own thread with libcurl's multi interface, one
/// event loop (epoll and `curl_multi_socket_action` on Linux, so a wake-up costs what is
/// ready, not a look at every open transfer; `curl_multi_poll` elsewhere), and hands each
/// finished request to a sink. Control calls (pause, rate, send-one, stop) are thread-safe
/// and wake the loop at once.
public final class Driver: @unchecked Sendable {
    /// libcurl 7.88.x (Debian 12's) adds a second HTTP/2 layer when it reuses a connection
    /// opened with prior knowledge (curl issue #10634, fixed in 8.0.0): every request on a
    /// reused h2c connection fails with "Error in the HTTP2 framing layer". On those versions
    /// `--http2` gives each http:// request a fresh h2c connection (still HTTP/2, not multiplexed).
    public static let http2ReuseBroken: Bool = {
        guard let info = curl_version_info(CURLVERSION_FIRST) else { return false }
        let v = info.pointee.version_num
        return v >= 0x07_58_00 && v < 0x08_00_00
    }()

    /// libcurl's version text, for notes.
    public static var curlVersion: String {
        guard let info = curl_version_info(CURLVERSION_FIRST), let v = info.pointee.version else { return "?" }
        return String(cString: v)
    }

    public let configuration: DriverConfiguration
    private let sink: RecordSink
    // Everything below is guarded by `lock`.
    private let lock = Condition()
    private var control = Control()
    private var statsValue = DriverStats()
    private var wakeHandle: UnsafeMutableRawPointer?
    /// With epoll: the eventfd that wakes the engine's wait (-1 without).
    private var wakeFD: Int32 = -1
    private var started = false
    private var done = false

    struct Control {
        var paused = false
        var newRate: Double?
        var newScale: Double?
        var sendNow = 0
        var stop = false
        var abort = false
    }

    public init(configuration: DriverConfiguration, sink: RecordSink) {
        self.configuration = configuration
        self.sink = sink
        control.paused = configuration.startPaused
    }

    private static let curlGlobal: Void = { _ = curl_global_init(3) }() // CURL_GLOBAL_ALL

    /// Starts the engine thread. Calling it twice does nothing.
    public func start() {
        lock.lock()
        if started { lock.unlock(); return }
        started = true
        lock.unlock()
        _ = Driver.curlGlobal
        startThread(name: "fl-driver") { [self] in
            // Otherwise it keeps its creator's name (often a Swift concurrency pool thread's).
            fl_set_thread_name("fl-driver")
            let engine = Engine(configuration: configuration, sink: sink, driver: self)
            engine.run()
        }
    }

    /// Runs to the end on the calling thread's behalf: start, then wait.
    public func run() {
        start()
        wait()
    }

    /// Blocks until the run has ended.
    public func wait() {
        lock.lock()
        while !done { lock.wait() }
        lock.unlock()
    }

    /// Blocks until the run has ended or `seconds` have passed; true when it has ended.
    public func wait(seconds: Double) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let deadline = fl_monotonic_ns() &+ Nanos(max(0, seconds) * 1e9)
        while !done {
            if !lock.wait(untilMonotonic: deadline) { return done }
        }
        return true
    }

    /// The counters so far.
    public var stats: DriverStats {
        lock.lock()
        defer { lock.unlock() }
        return statsValue
    }

    /// Stops starting requests; open-loop time spent paused is not scheduled.
    public func pause() { change { $0.paused = true } }
    public func resume() { change { $0.paused = false } }
    /// Switches an open-loop run to a constant rate from now on (ignored in closed loop and replay).
    public func setRate(_ perSecond: Double) { change { $0.newRate = max(0, perSecond) } }
    /// Scales whatever runs, from now on: an open-loop plan or a replay goes `factor` times as
    /// fast (its schedule, not a constant rate), a closed loop keeps `factor` times its
    /// concurrency in flight. 1 is the plan as written.
    public func setScale(_ factor: Double) { change { $0.newScale = factor } }
    /// Sends one extra request now, outside the schedule (also while paused).
    public func sendOne() { change { $0.sendNow += 1 } }
    /// Ends the run: no new requests; in-flight ones finish unless `abortInFlight`.
    public func stop(abortInFlight: Bool = false) {
        change {
            $0.stop = true
            if abortInFlight { $0.abort = true }
        }
    }

    private func change(_ body: (inout Control) -> Void) {
        lock.lock()
        body(&control)
        if wakeFD >= 0 {
            fl_wake_signal(wakeFD)
        } else if let m = wakeHandle {
            _ = curl_multi_wakeup(m)
        }
        lock.unlock()
    }

    // MARK: engine side

    fileprivate func attach(_ multi: UnsafeMutableRawPointer, wakeFD: Int32) {
        lock.lock()
        wakeHandle = multi
        self.wakeFD = wakeFD
        lock.unlock()
    }

    fileprivate func takeControl() -> Control {
        lock.lock()
        let c = control
        control.newRate = nil
        control.newScale = nil
        control.sendNow = 0
        lock.unlock()
        return c
    }

    fileprivate func publish(_ stats: DriverStats) {
        lock.lock()
        statsValue = stats
        lock.unlock()
    }

    fileprivate func finish(_ stats: DriverStats) {
        lock.lock()
        statsValue = stats
        wakeHandle = nil
        wakeFD = -1
        done = true
        lock.broadcast()
        lock.unlock()
    }
}

/// A request made ready for libcurl once: header list and body in stable memory.
final class PreparedRequest {
    let spec: RequestSpec
    /// The header lines of `headerList`, for a per-request copy (`--trace`).
    let lines: [String]
    let headerList: UnsafeMutablePointer<curl_slist>?
    let body: UnsafeMutableBufferPointer<UInt8>?
    static let userAgent = "User-Agent: failover-lab-driver/1"
    /// Bodies this large or larger get `Expect:` (libcurl sends `Expect: 100-continue` for none smaller).
    static let expectThreshold = 1024

    /// An http:// URL: HTTP/2 there is h2c with prior knowledge.
    let cleartext: Bool

    init(_ spec: RequestSpec) {
        self.spec = spec
        cleartext = spec.url.utf8.count >= 7 && spec.url.prefix(7).lowercased() == "http://"
        var list: UnsafeMutablePointer<curl_slist>?
        var lines = spec.headers
        // Without this, curl waits for 100-continue on larger bodies. libcurl never asks for it on
        // bodies under 1 KiB, and every line in the list costs it work on every request, so small
        // bodies go without the line: the same bytes go out.
        if (spec.body?.count ?? 0) >= PreparedRequest.expectThreshold,
           !lines.contains(where: { $0.lowercased().hasPrefix("expect:") }) {
            lines.append("Expect:")
        }
        // Sent as a header line rather than CURLOPT_USERAGENT, which libcurl formats anew for
        // every request (an aprintf and a search of the header list): the same bytes go out.
        if !lines.contains(where: { $0.lowercased().hasPrefix("user-agent:") }) { lines.append(PreparedRequest.userAgent) }
        for line in lines { list = curl_slist_append(list, line) }
        headerList = list
        self.lines = lines
        if let b = spec.body {
            let buf = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(1, b.count))
            _ = buf.initialize(from: b)
            body = UnsafeMutableBufferPointer(rebasing: buf[0..<b.count])
        } else {
            body = nil
        }
    }

    deinit {
        curl_slist_free_all(headerList)
        if let body, let base = body.baseAddress { base.deallocate() }
    }
}

final class ConnectionCounter {
    var opened: UInt64 = 0
}

/// The state of the request a transfer carries, and what libcurl's callbacks fill in while its
/// response arrives. It lives outside `Transfer`, in memory of its own, so that the callbacks
/// (several per response) and the engine reach it through a plain pointer: no reference
/// counting, and none of the dynamic exclusivity checks that every access to a stored property
/// of a class costs.
struct ResponseState {
    var prepared: PreparedRequest?
    var seq: UInt64 = 0
    var intended: Nanos = 0
    var sent: Nanos = 0
    /// `sent` as an absolute monotonic time, for the stream clock.
    var sentMono: Nanos = 0
    var late = false
    var active = false
    let captureLimit: Int
    var bytesIn = 0
    var capture = false
    var eventStream = false
    var body: [UInt8] = []
    var attemptsHeader: String?
    /// Content events of an event stream (TTFT, inter-token latency).
    var stream = StreamClock()

    init(captureLimit: Int) { self.captureLimit = captureLimit }

    /// Forgets the previous response (the body keeps its capacity).
    @inline(__always) mutating func reset() {
        bytesIn = 0
        startOver()
    }

    /// A new response head began (after a 100 Continue or a redirect), or a new request.
    @inline(__always) mutating func startOver() {
        // The body and the stream clock only change while `capture` or `eventStream` is set,
        // so a response that set none of the three left nothing to clear.
        guard capture || eventStream || attemptsHeader != nil else { return }
        capture = false
        eventStream = false
        if !body.isEmpty { body.removeAll(keepingCapacity: true) }
        attemptsHeader = nil
        stream = StreamClock()
    }
}

/// One easy handle and the state of the request it is carrying.
final class Transfer {
    let easy: UnsafeMutableRawPointer
    let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    let counter: ConnectionCounter
    /// The callbacks' user data.
    let response: UnsafeMutablePointer<ResponseState>
    var prepared: PreparedRequest? {
        get { response.pointee.prepared }
        set { response.pointee.prepared = newValue }
    }
    var seq: UInt64 {
        get { response.pointee.seq }
        set { response.pointee.seq = newValue }
    }
    var intended: Nanos {
        get { response.pointee.intended }
        set { response.pointee.intended = newValue }
    }
    var sent: Nanos {
        get { response.pointee.sent }
        set { response.pointee.sent = newValue }
    }
    var sentMono: Nanos {
        get { response.pointee.sentMono }
        set { response.pointee.sentMono = newValue }
    }
    var late: Bool {
        get { response.pointee.late }
        set { response.pointee.late = newValue }
    }
    var active: Bool {
        get { response.pointee.active }
        set { response.pointee.active = newValue }
    }
    /// `--trace`: this request's header list (the prepared one plus its `traceparent`) and trace id.
    var traceList: UnsafeMutablePointer<curl_slist>?
    var traceID: String?

    init(easy: UnsafeMutableRawPointer, counter: ConnectionCounter, captureLimit: Int) {
        self.easy = easy
        self.counter = counter
        response = .allocate(capacity: 1)
        response.initialize(to: ResponseState(captureLimit: captureLimit))
    }

    deinit {
        curl_easy_cleanup(easy)
        curl_slist_free_all(traceList)
        errorBuffer.deallocate()
        response.deinitialize(count: 1)
        response.deallocate()
    }

    @inline(__always) func reset() {
        errorBuffer[0] = 0
        response.pointee.reset()
    }
}

private let writeCallback: fl_curl_data_callback = { ptr, size, count, userdata in
    let n = size * count
    guard let userdata else { return n }
    let t = userdata.assumingMemoryBound(to: ResponseState.self)
    t.pointee.bytesIn &+= n
    guard let ptr, t.pointee.capture || t.pointee.eventStream else { return n }
    let p = UnsafeRawPointer(ptr).assumingMemoryBound(to: UInt8.self)
    if t.pointee.eventStream {
        // Only `data:` line starts and `"content":"x` are looked for; one clock read per callback with content.
        let k = t.pointee.stream.scanner.scan(p, n)
        if k > 0 { t.pointee.stream.arrived(k, at: fl_monotonic_ns()) }
    }
    if t.pointee.capture {
        let limit = t.pointee.captureLimit
        let have = t.pointee.body.count
        if have + n > limit {
            // Keep the tail: streams put `usage` at the end.
            let drop = min(have, have + n - limit)
            t.pointee.body.removeFirst(drop)
        }
        let kept = min(n, limit)
        t.pointee.body.append(contentsOf: UnsafeBufferPointer(start: p + (n - kept), count: kept))
    }
    return n
}

/// Whether byte `c` is `lower` (a lowercase needle byte) ignoring ASCII case: letters match either
/// case, anything else only itself.
@inline(__always) private func sameIgnoringCase(_ c: UInt8, _ lower: UInt8) -> Bool {
    c == lower || (c | 0x20 == lower && lower &- 0x61 < 26)
}

/// Whether `p` starts with `lower` ignoring ASCII case; the caller checked the length.
@inline(__always) private func matchesIgnoringCase(_ p: UnsafePointer<UInt8>, _ lower: StaticString) -> Bool {
    let l = lower.utf8Start
    for i in 0..<lower.utf8CodeUnitCount where !sameIgnoringCase(p[i], l[i]) { return false }
    return true
}

@inline(__always) private func hasPrefixIgnoringCase(_ p: UnsafePointer<UInt8>, _ n: Int, _ lower: StaticString) -> Bool {
    n >= lower.utf8CodeUnitCount && matchesIgnoringCase(p, lower)
}

@inline(__always) private func containsIgnoringCase(_ p: UnsafePointer<UInt8>, _ n: Int, _ lower: StaticString) -> Bool {
    let m = lower.utf8CodeUnitCount
    guard n >= m else { return false }
    let first = lower.utf8Start[0]
    for start in 0...(n - m) where sameIgnoringCase(p[start], first) && matchesIgnoringCase(p + start, lower) { return true }
    return false
}

private let headerCallback: fl_curl_data_callback = { ptr, size, count, userdata in
    let n = size * count
    guard let userdata, let ptr, n > 0 else { return n }
    let t = userdata.assumingMemoryBound(to: ResponseState.self)
    t.pointee.bytesIn &+= n
    let p = UnsafeRawPointer(ptr).assumingMemoryBound(to: UInt8.self)
    // Only three header names matter; most lines are out after one byte.
    switch p[0] | 0x20 {
    case UInt8(ascii: "h"):
        if hasPrefixIgnoringCase(p, n, "http/") {
            // A new response head (after a 100 Continue or a redirect): start over.
            t.pointee.startOver()
        }
    case UInt8(ascii: "x"):
        let name: StaticString = "x-failover-attempts:"
        if hasPrefixIgnoringCase(p, n, name) {
            let skip = name.utf8CodeUnitCount
            t.pointee.attemptsHeader = String(decoding: UnsafeBufferPointer(start: p + skip, count: n - skip), as: UTF8.self)
                .trimmed(" \t\r\n")
        }
    case UInt8(ascii: "c"):
        let name: StaticString = "content-type:"
        // Content-Length and Connection are out at the ninth byte.
        if n >= name.utf8CodeUnitCount, p[8] | 0x20 == UInt8(ascii: "t"), matchesIgnoringCase(p, name) {
            let skip = name.utf8CodeUnitCount
            let value = p + skip, m = n - skip
            if containsIgnoringCase(value, m, "event-stream") {
                t.pointee.capture = true
                t.pointee.eventStream = true
            } else if containsIgnoringCase(value, m, "json") {
                t.pointee.capture = true
            }
        }
    default:
        break
    }
    return n
}

private let sockoptCallback: fl_curl_sockopt_callback = { clientp, _, purpose in
    if let clientp, purpose == CURLSOCKTYPE_IPCXN {
        Unmanaged<ConnectionCounter>.fromOpaque(clientp).takeUnretainedValue().opened += 1
    }
    return 0 // CURL_SOCKOPT_OK
}

/// A scheduled request waiting for a slot.
struct PendingArrival {
    var seq: UInt64
    var intended: Nanos
    var request: PreparedRequest
    /// Its offset in the schedule (pacer or replay), before the warp; 0 for others.
    var scheduled: Nanos = 0
}

/// What the engine updates for every request. It sits behind a pointer because every access to
/// a stored property of a class is a dynamic exclusivity check; these are touched several times
/// per request. The counters are copied into `stats` when it is published.
struct EngineHot {
    /// Transfers not carrying a request; `Engine.all` owns them.
    var free: [Unmanaged<Transfer>] = []
    var inFlight = 0
    var nextSeq: UInt64 = 0
    var scheduled: UInt64 = 0
    var sent: UInt64 = 0
    var completed: UInt64 = 0
    var errors: UInt64 = 0
    var recordsSinceFlush = 0
    /// `stats.statusCounts`, without a hash per request.
    var statusTally = StatusTally()
    /// With epoll: its descriptor (the socket callback's), and libcurl's timer (absolute
    /// monotonic; 0 when none is set), which the timer callback keeps.
    var epollFD: Int32 = -1
    var curlTimer: Nanos = 0
}

/// libcurl tells which sockets to watch for what (CURL_POLL_IN 1, OUT 2, INOUT 3, REMOVE 4).
private let socketCallback: fl_curl_socket_callback = { _, fd, what, userp, _ in
    guard let userp else { return 0 }
    let hot = userp.assumingMemoryBound(to: EngineHot.self)
    if what == 4 {
        fl_epoll_forget(hot.pointee.epollFD, fd)
    } else {
        _ = fl_epoll_watch(hot.pointee.epollFD, fd, what & 3)
    }
    return 0
}

/// libcurl asks to be called back (`curl_multi_socket_action` with CURL_SOCKET_TIMEOUT) in
/// `ms` milliseconds; -1 cancels.
private let timerCallback: fl_curl_timer_callback = { _, ms, userp in
    guard let userp else { return 0 }
    let hot = userp.assumingMemoryBound(to: EngineHot.self)
    if ms < 0 {
        hot.pointee.curlTimer = 0
    } else {
        let (delta, overflow) = Nanos(max(0, ms)).multipliedReportingOverflow(by: 1_000_000)  // checked: max(0, _) is never negative
        hot.pointee.curlTimer = overflow ? .max : max(1, fl_monotonic_ns() &+ delta)
    }
    return 0
}

/// The loop itself; lives only on the driver's thread.
final class Engine {
    let config: DriverConfiguration
    let sink: RecordSink
    unowned let driver: Driver
    let multi: UnsafeMutableRawPointer
    let counter = ConnectionCounter()
    let timerFD: Int32
    /// epoll and the eventfd that wakes it (-1 both where there is no epoll: then `curl_multi_poll`).
    let epollFD: Int32
    let wakeFD: Int32
    let hot = UnsafeMutablePointer<EngineHot>.allocate(capacity: 1)
    var all: [Transfer] = []
    var inFlight: Int {
        get { hot.pointee.inFlight }
        set { hot.pointee.inFlight = newValue }
    }
    var backlog: [PendingArrival] = []
    var backlogHead = 0
    /// Counters per request live in `hot` until `syncStats()`.
    var stats = DriverStats()
    var startMono: Nanos = 0
    var startWall: Int64 = 0
    var nextSeq: UInt64 {
        get { hot.pointee.nextSeq }
        set { hot.pointee.nextSeq = newValue }
    }
    var recordsSinceFlush: Int {
        get { hot.pointee.recordsSinceFlush }
        set { hot.pointee.recordsSinceFlush = newValue }
    }
    var lastPublish: Nanos = 0

    // Schedule state.
    enum Feed {
        case closed(Int)
        case pacer(Pacer<SeededRandom>)
        case replay(ReadAheadFeed)
    }
    var feed: Feed
    var pickRNG: SeededRandom
    let picker: WeightedPicker
    let mixPrepared: [PreparedRequest]
    var replayCache: [RequestSpec: PreparedRequest] = [:]
    var nextArrival: PendingArrival?
    /// No more arrivals will be admitted (the feed ran out, a limit was hit, or a stop came).
    var scheduleDone = false
    /// The run was cut short (--duration, --requests, or a stop): late arrivals still waiting
    /// for a slot are recorded as never sent. When the schedule merely ran out (the end of a
    /// replay file or of a finite plan), they are all still sent, late.
    var cutShort = false
    var paused = false
    var pausedAt: Nanos = 0
    /// Schedule offsets to run time: pauses and the dashboard's scale.
    var warp = ScheduleWarp()
    var slots: Int
    /// The closed loop's concurrency as configured, which a scale multiplies.
    let baseSlots: Int

    init(configuration: DriverConfiguration, sink: RecordSink, driver: Driver) {
        config = configuration
        self.sink = sink
        self.driver = driver
        hot.initialize(to: EngineHot())
        multi = curl_multi_init()
        timerFD = fl_timer_create()
        var ep = Engine.forcePoll ? -1 : fl_epoll_create()
        var wake: Int32 = -1
        if ep >= 0 {
            wake = fl_wake_create()
            if wake < 0 || fl_epoll_watch(ep, wake, 1) != 0 || (timerFD >= 0 && fl_epoll_watch(ep, timerFD, 1) != 0) {
                fl_fd_close(wake)
                fl_fd_close(ep)
                (ep, wake) = (-1, -1)
            }
        }
        epollFD = ep
        wakeFD = wake
        hot.pointee.epollFD = ep
        if ep >= 0 {
            _ = fl_curl_multi_setopt_socket_callback(multi, socketCallback, UnsafeMutableRawPointer(hot))
            _ = fl_curl_multi_setopt_timer_callback(multi, timerCallback, UnsafeMutableRawPointer(hot))
        }
        pickRNG = SeededRandom(seed: configuration.seed &+ 0x5EED)
        picker = WeightedPicker(weights: configuration.mix.weights)
        mixPrepared = configuration.mix.requests.map(PreparedRequest.init)
        switch configuration.workload {
        case let .closedLoop(n):
            feed = .closed(max(1, n))
            slots = max(1, n)
        case let .openLoop(phases):
            feed = .pacer(Pacer(phases: phases, rng: SeededRandom(seed: configuration.seed)))
            slots = max(1, configuration.maxInFlight)
        case let .replay(make):
            feed = .replay(ReadAheadFeed(make))
            slots = max(1, configuration.maxInFlight)
        }
        baseSlots = slots
        _ = fl_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, slots)
        if configuration.http2 {
            _ = fl_curl_multi_setopt_long(multi, CURLMOPT_PIPELINING, 2) // CURLPIPE_MULTIPLEX
        }
    }

    deinit {
        if case let .replay(r) = feed { r.cancel() }
        for t in all { curl_multi_remove_handle(multi, t.easy) }
        hot.deinitialize(count: 1)
        hot.deallocate()
        all.removeAll()
        curl_multi_cleanup(multi)
        fl_timer_close(timerFD)
        fl_fd_close(wakeFD)
        fl_fd_close(epollFD)
    }

    @inline(__always) func now() -> Nanos { fl_monotonic_ns() &- startMono }

    /// `FAILOVER_LAB_DRIVER_POLL=1`: the `curl_multi_poll` loop even where epoll exists, to
    /// compare the two in one binary (only the value `1` is read).
    static let forcePoll: Bool = {
        guard let value = getenv("FAILOVER_LAB_DRIVER_POLL") else { return false }
        return String(cString: value) == "1"
    }()

    /// Whether the process environment names a proxy for libcurl, read once.
    static let proxyInEnvironment: Bool = {
        var entries: [String] = []
        var p = environ
        while let entry = p.pointee {
            entries.append(String(cString: entry))
            p += 1
        }
        return proxyConfigured(in: entries)
    }()

    /// Whether any `NAME=value` entry is one of libcurl's proxy variables: `http_proxy`,
    /// `HTTPS_PROXY`, `all_proxy`, `no_proxy` and the like all end in `_proxy`, in either case.
    static func proxyConfigured(in environment: [String]) -> Bool {
        environment.contains { entry in
            let name = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            return name.lowercased().hasSuffix("_proxy")
        }
    }

    func makeTransfer() -> Transfer? {
        guard let easy = curl_easy_init() else { return nil }
        let t = Transfer(easy: easy, counter: counter, captureLimit: config.bodyCaptureLimit)
        let me = Unmanaged.passUnretained(t).toOpaque()
        _ = fl_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = fl_curl_setopt_long(easy, CURLOPT_TCP_NODELAY, 1)
        _ = fl_curl_setopt_long(easy, CURLOPT_HTTP_VERSION,
                                config.http2 ? 5 /* CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE */ : 2 /* 1.1 */)
        if config.http2 && !Driver.http2ReuseBroken { _ = fl_curl_setopt_long(easy, CURLOPT_PIPEWAIT, 1) } // multiplex, not a connection each
        _ = fl_curl_setopt_data_callback(easy, CURLOPT_WRITEFUNCTION, writeCallback)
        _ = fl_curl_setopt_pointer(easy, CURLOPT_WRITEDATA, UnsafeMutableRawPointer(t.response))
        _ = fl_curl_setopt_data_callback(easy, CURLOPT_HEADERFUNCTION, headerCallback)
        _ = fl_curl_setopt_pointer(easy, CURLOPT_HEADERDATA, UnsafeMutableRawPointer(t.response))
        _ = fl_curl_setopt_pointer(easy, CURLOPT_PRIVATE, me)
        _ = fl_curl_setopt_pointer(easy, CURLOPT_ERRORBUFFER, t.errorBuffer)
        _ = fl_curl_setopt_sockopt_callback(easy, sockoptCallback)
        _ = fl_curl_setopt_pointer(easy, CURLOPT_SOCKOPTDATA, Unmanaged.passUnretained(counter).toOpaque())
        if !Engine.proxyInEnvironment {
            // libcurl reads the proxy variables (http_proxy, all_proxy, no_proxy, ...) from the
            // environment for every request. None is set: telling it so once, no proxy and no
            // exceptions, is the same behaviour without those look-ups.
            _ = fl_curl_setopt_string(easy, CURLOPT_PROXY, "")
            _ = fl_curl_setopt_string(easy, CURLOPT_NOPROXY, "")
        }
        _ = fl_curl_setopt_long(easy, CURLOPT_TIMEOUT_MS, Int(min(config.timeout / 1_000_000, Nanos(Int.max))))
        _ = fl_curl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(min(config.connectTimeout / 1_000_000, Nanos(Int.max))))
        all.append(t)
        return t
    }

    /// A free transfer, creating one while under the slot limit.
    func takeFree() -> Transfer? {
        // A scaled-down closed loop keeps its extra transfers idle.
        guard hot.pointee.inFlight < slots else { return nil }
        if let t = hot.pointee.free.popLast() { return t.takeUnretainedValue() }
        guard all.count < slots else { return nil }
        return makeTransfer()
    }

    var hasFreeSlot: Bool { hot.pointee.inFlight < slots && (!hot.pointee.free.isEmpty || all.count < slots) }

    func configure(_ t: Transfer, for p: PreparedRequest) {
        guard t.prepared !== p else { return }
        let e = t.easy
        let spec = p.spec
        _ = fl_curl_setopt_string(e, CURLOPT_URL, spec.url)
        if config.http2 && Driver.http2ReuseBroken {
            // See `Driver.http2ReuseBroken`: h2c with prior knowledge only on a fresh connection.
            let cleartext = p.cleartext ? 1 : 0
            _ = fl_curl_setopt_long(e, CURLOPT_FRESH_CONNECT, cleartext)
            _ = fl_curl_setopt_long(e, CURLOPT_FORBID_REUSE, cleartext)
        }
        _ = fl_curl_setopt_pointer(e, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(p.headerList))
        let method = spec.method.uppercased()
        _ = fl_curl_setopt_long(e, CURLOPT_NOBODY, method == "HEAD" ? 1 : 0)
        if let body = p.body {
            _ = fl_curl_setopt_off_t(e, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
            _ = fl_curl_setopt_pointer(e, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(body.baseAddress))
        } else if method != "HEAD" {
            _ = fl_curl_setopt_long(e, CURLOPT_HTTPGET, 1)
        }
        if method == "GET" || method == "HEAD" || (method == "POST" && p.body != nil) {
            _ = fl_curl_setopt_pointer(e, CURLOPT_CUSTOMREQUEST, nil)
        } else {
            _ = fl_curl_setopt_string(e, CURLOPT_CUSTOMREQUEST, method)
        }
        t.prepared = p
    }

    /// Hands `a` to libcurl on `t`. `dueNow`: closed loop, where a request is due the moment it
    /// is sent, so the one clock reading taken just before libcurl gets it is both times.
    func launch(_ t: Transfer, _ arrival: PendingArrival, late: Bool, dueNow: Bool = false) {
        var a = arrival
        configure(t, for: a.request)
        if config.trace { attachTraceParent(t, a.request) }
        t.reset()
        t.sentMono = fl_monotonic_ns()
        t.sent = t.sentMono &- startMono
        if dueNow { a.intended = t.sent }
        t.seq = a.seq
        t.intended = a.intended
        t.late = late
        let rc = curl_multi_add_handle(multi, t.easy)
        if rc != CURLM_OK {
            t.prepared = nil
            hot.pointee.free.append(Unmanaged.passUnretained(t))
            let message = "curl_multi_add_handle failed: " + String(cString: curl_multi_strerror(rc))
            emit(unsent(a, late: late, error: message))
            return
        }
        t.active = true
        hot.pointee.inFlight += 1
        hot.pointee.sent += 1
    }

    /// Gives `t` its own header list: the prepared lines and a `traceparent` of a new trace.
    /// The previous list is freed here, once libcurl is done with it (the transfer is free).
    func attachTraceParent(_ t: Transfer, _ p: PreparedRequest) {
        var rng = SystemRandomNumberGenerator()
        let id = Self.hex(rng.next() as UInt64) + Self.hex((rng.next() as UInt64) | 1)
        let span = Self.hex((rng.next() as UInt64) | 1)
        var list: UnsafeMutablePointer<curl_slist>?
        for line in p.lines where !line.lowercased().hasPrefix("traceparent:") { list = curl_slist_append(list, line) }
        list = curl_slist_append(list, "traceparent: 00-\(id)-\(span)-01")
        _ = fl_curl_setopt_pointer(t.easy, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list))
        curl_slist_free_all(t.traceList)
        t.traceList = list
        t.traceID = id
    }

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    func prepared(for spec: RequestSpec) -> PreparedRequest {
        if let p = replayCache[spec] { return p }
        if replayCache.count > 256 { replayCache.removeAll() }
        let p = PreparedRequest(spec)
        replayCache[spec] = p
        return p
    }

    func pickRequest() -> PreparedRequest {
        mixPrepared[picker.pick(using: &pickRNG)]
    }

    /// Pulls the next scheduled arrival from the feed (open loop and replay).
    func pull() -> PendingArrival? {
        switch feed {
        case .closed:
            return nil
        case var .pacer(p):
            guard !mixPrepared.isEmpty, let offset = p.next() else { feed = .pacer(p); return nil }
            feed = .pacer(p)
            return PendingArrival(seq: 0, intended: warp.runTime(offset), request: pickRequest(), scheduled: offset)
        case let .replay(r):
            guard let item = r.next() else { return nil }
            return PendingArrival(seq: 0, intended: warp.runTime(item.offset), request: prepared(for: item.request), scheduled: item.offset)
        }
    }

    /// An open-ended plan at rate 0 (a dashboard turned it down) waits for a new rate or a stop.
    var idleWhenEmpty: Bool {
        if case let .pacer(p) = feed { return p.isOpenEnded }
        return false
    }

    var limitReached: Bool {
        if let limit = config.requestLimit, nextSeq >= limit { return true }
        return false
    }

    /// Takes an arrival that is due: sends it if a slot is free, else queues it as late.
    func admit(_ arrival: PendingArrival) {
        var a = arrival
        a.seq = config.shard?.seq(nextSeq) ?? nextSeq
        nextSeq += 1
        hot.pointee.scheduled += 1
        if backlogHead == backlog.count, let t = takeFree() {
            launch(t, a, late: false)
        } else {
            stats.late += 1
            backlog.append(a)
        }
    }

    func unsent(_ a: PendingArrival, late: Bool, error: String) -> RequestRecord {
        RequestRecord(seq: a.seq, runStartWall: startWall, intended: a.intended, sent: nil, late: late,
                      method: a.request.spec.method, url: a.request.spec.url, model: a.request.spec.model,
                      error: error)
    }

    func emit(_ record: RequestRecord) {
        hot.pointee.completed += 1
        if record.error != nil { hot.pointee.errors += 1 }
        hot.pointee.statusTally.add(record.status ?? 0)
        sink.record(record)
        hot.pointee.recordsSinceFlush += 1
    }

    func applyControl() {
        let c = driver.takeControl()
        let t = now()
        if c.paused != paused {
            paused = c.paused
            if paused {
                pausedAt = t
            } else {
                let gap = t &- pausedAt
                warp.paused(for: gap)
                if var a = nextArrival { a.intended &+= gap; nextArrival = a }
            }
            stats.paused = paused
        }
        if let rate = c.newRate, case var .pacer(p) = feed, !scheduleDone {
            // Schedule time stands still while paused: the new rate starts where it stopped.
            p.retarget(.constant(rate: rate), at: warp.scheduleTime(paused ? pausedAt : t))
            feed = .pacer(p)
            nextArrival = pull()
            stats.rate = rate
        }
        if let scale = c.newScale, !scheduleDone {
            switch feed {
            case .closed:
                let wanted = (Double(baseSlots) * max(0, min(scale, 1000))).rounded()
                slots = max(1, min(Units.maxConcurrency, Int(wanted)))  // checked: clamped to 0...1000 times a bounded count
                _ = fl_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, max(slots, baseSlots))
            case .pacer, .replay:
                warp.setScale(scale, at: paused ? pausedAt : t)
                if var a = nextArrival, a.intended > (paused ? pausedAt : t) {
                    a.intended = warp.runTime(a.scheduled)
                    nextArrival = a
                }
            }
            stats.scale = scale
        }
        for _ in 0..<c.sendNow where !mixPrepared.isEmpty {
            admit(PendingArrival(seq: 0, intended: now(), request: pickRequest()))
        }
        if c.stop { endSchedule(cut: true) }
        if c.abort {
            for tr in all where tr.active {
                curl_multi_remove_handle(multi, tr.easy)
                emit(record(for: tr, result: CURLE_OK, aborted: true))
                tr.active = false
                hot.pointee.free.append(Unmanaged.passUnretained(tr))
            }
            inFlight = 0
        }
    }

    /// Starts what is due; returns whether anything was handed to libcurl.
    func startDue() -> Bool {
        let before = hot.pointee.sent
        // Late arrivals first, in order, as slots allow.
        while backlogHead < backlog.count, let t = takeFree() {
            let a = backlog[backlogHead]
            backlogHead += 1
            launch(t, a, late: true)
        }
        if backlogHead > 1024, backlogHead * 2 > backlog.count {
            backlog.removeFirst(backlogHead)
            backlogHead = 0
        }
        if !scheduleDone && !paused {
            let t = now()
            switch feed {
            case .closed:
                if let d = config.duration, t >= d { endSchedule(cut: true); break }
                let open = Self.openSlots(at: t, of: slots, rampUp: config.rampUp)
                while !limitReached, hot.pointee.inFlight < open, let tr = takeFree() {
                    let a = PendingArrival(seq: config.shard?.seq(nextSeq) ?? nextSeq, intended: 0, request: pickRequest())
                    hot.pointee.nextSeq += 1
                    hot.pointee.scheduled += 1
                    launch(tr, a, late: false, dueNow: true)
                }
                if limitReached { endSchedule(cut: true) }
            case .pacer, .replay:
                while let a = nextArrival, a.intended <= t {
                    if limitReached { endSchedule(cut: true); break }
                    if let d = config.duration, a.intended >= d { endSchedule(cut: true); break }
                    admit(a)
                    nextArrival = pull()
                }
                if limitReached { endSchedule(cut: true) }
                if let d = config.duration, now() >= d { endSchedule(cut: true) }
                if let d = config.duration, let a = nextArrival, a.intended >= d { endSchedule(cut: true) }
                // The feed ran out: what is still waiting for a slot goes out late, not dropped.
                if nextArrival == nil && !idleWhenEmpty { endSchedule(cut: false) }
            }
        }
        // Draining the backlog after the feed ran out: --duration still ends the run.
        if scheduleDone, !cutShort, backlogHead < backlog.count, let d = config.duration, now() >= d {
            cutShort = true
        }
        if cutShort, backlogHead < backlog.count {
            let message = "not sent: all \(slots) slots (--max-in-flight) stayed busy until the run ended"
            for a in backlog[backlogHead...] { emit(unsent(a, late: true, error: message)) }
            backlog.removeAll()
            backlogHead = 0
        }
        return hot.pointee.sent != before
    }

    func record(for t: Transfer, result: CURLcode, aborted: Bool = false) -> RequestRecord {
        let e = t.easy
        var code = 0
        _ = fl_curl_getinfo_long(e, CURLINFO_RESPONSE_CODE, &code)
        var total: curl_off_t = 0
        _ = fl_curl_getinfo_off_t(e, CURLINFO_TOTAL_TIME_T, &total)
        var start: curl_off_t = 0
        _ = fl_curl_getinfo_off_t(e, CURLINFO_STARTTRANSFER_TIME_T, &start)
        var requestSize = 0
        _ = fl_curl_getinfo_long(e, CURLINFO_REQUEST_SIZE, &requestSize)
        var error: String?
        var latency = Nanos(max(0, total)) * 1000
        if aborted {
            error = "aborted: the run was stopped"
            latency = now() &- t.sent
        } else if result != CURLE_OK {
            let detail = String(cString: t.errorBuffer)
            error = "curl error \(result.rawValue): " + (detail.isEmpty ? String(cString: curl_easy_strerror(result)) : detail)
        }
        let prepared = t.prepared!
        let response = t.response
        var provider: String?, attempts: [Attempt]?, tokens: TokenUsage?
        if response.pointee.attemptsHeader != nil || !response.pointee.body.isEmpty {
            (provider, attempts, tokens) = ResponseFacts.extract(
                attemptsHeader: response.pointee.attemptsHeader.map { Substring($0) }, body: response.pointee.body,
                isEventStream: response.pointee.eventStream)
        }
        let stream = response.pointee.stream
        return RequestRecord(
            seq: t.seq, runStartWall: startWall, intended: t.intended, sent: t.sent, late: t.late,
            method: prepared.spec.method, url: prepared.spec.url, model: prepared.spec.model,
            status: code > 0 ? code : nil,
            latency: latency, correctedLatency: (t.sent &- t.intended) &+ latency,
            ttfb: start > 0 ? Nanos(start) * 1000 : nil,
            ttft: stream.ttft(since: t.sentMono), interToken: stream.interToken,
            bytesIn: response.pointee.bytesIn, bytesOut: requestSize, error: error,
            provider: provider, attempts: attempts, tokens: tokens, traceID: config.trace ? t.traceID : nil)
    }

    @discardableResult
    func readCompletions() -> Int {
        var finished = 0
        var left: Int32 = 0
        while let msg = curl_multi_info_read(multi, &left) {
            guard msg.pointee.msg == CURLMSG_DONE, let easy = msg.pointee.easy_handle else { continue }
            let result = msg.pointee.data.result
            var raw: UnsafeMutableRawPointer?
            _ = fl_curl_getinfo_pointer(easy, CURLINFO_PRIVATE, &raw)
            guard let raw else { continue }
            let t = Unmanaged<Transfer>.fromOpaque(raw).takeUnretainedValue()
            let rec = record(for: t, result: result)
            curl_multi_remove_handle(multi, easy)
            t.active = false
            hot.pointee.inFlight -= 1
            hot.pointee.free.append(Unmanaged.passUnretained(t))
            emit(rec)
            finished += 1
        }
        return finished
    }

    /// How many of a closed loop's `slots` are open at run time `t` under `--ramp-up`: slot
    /// k (from 0) opens at k·rampUp/slots, so the first opens at once and the last one
    /// ramp-step before the ramp ends. All of them without a ramp, or once it is over.
    static func openSlots(at t: Nanos, of slots: Int, rampUp: Nanos?) -> Int {
        guard let ramp = rampUp, ramp > 0, t < ramp, slots > 1 else { return slots }
        // t < ramp <= 1 h and slots <= Units.maxConcurrency: t·slots < 3.6e17, no overflow.
        let opened = t.multipliedReportingOverflow(by: UInt64(slots))
        guard !opened.overflow else { return slots }
        return min(slots, Int(opened.partialValue / ramp) + 1)
    }

    /// The run time at which the next slot opens after `t`, while the ramp lasts.
    static func nextOpening(after t: Nanos, of slots: Int, rampUp: Nanos?) -> Nanos? {
        guard let ramp = rampUp, ramp > 0, t < ramp, slots > 1 else { return nil }
        let k = openSlots(at: t, of: slots, rampUp: rampUp)
        guard k < slots else { return nil }
        // ceil(k·ramp/slots): the first time at which slot k is open.
        let product = UInt64(k).multipliedReportingOverflow(by: ramp)
        guard !product.overflow else { return nil }
        let n = UInt64(slots)
        return (product.partialValue + n - 1) / n
    }

    /// Stops admitting arrivals; `cut` when a limit or a stop ended the run (see `cutShort`).
    func endSchedule(cut: Bool) {
        scheduleDone = true
        if cut { cutShort = true }
    }

    /// When the loop must wake by itself next (absolute monotonic), if at all.
    func deadline() -> Nanos? {
        if scheduleDone {
            // Still sending the late ones after the feed ran out: --duration may end that.
            guard !cutShort, backlogHead < backlog.count, let d = config.duration else { return nil }
            return startMono &+ d
        }
        guard !paused else { return nil }
        switch feed {
        case .closed:
            let end = config.duration.map { startMono &+ $0 }
            guard let opens = Self.nextOpening(after: now(), of: slots, rampUp: config.rampUp) else { return end }
            return min(startMono &+ opens, end ?? (startMono &+ opens))
        case .pacer, .replay:
            let end = config.duration.map { startMono &+ $0 }
            guard let next = nextArrival.map({ startMono &+ $0.intended }) else { return end }
            return min(next, end ?? next)
        }
    }

    /// Lets libcurl do what is due: with epoll, its expired timers (new transfers among them);
    /// else a look at every transfer (`curl_multi_perform`).
    @inline(__always) func perform(_ running: inout Int32) {
        if epollFD >= 0 {
            hot.pointee.curlTimer = 0
            curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running)
        } else {
            curl_multi_perform(multi, &running)
        }
    }

    /// Events of one epoll wait.
    var readyFDs = [Int32](repeating: 0, count: 4096)
    var readyWhat = [Int32](repeating: 0, count: 4096)

    /// With epoll: waits up to `timeoutMs` (shortened to libcurl's timer) and hands each ready
    /// socket to libcurl; a due libcurl timer runs after. Returns whether the precise timer fired.
    func waitEpoll(timeoutMs: Int32, running: inout Int32) -> Bool {
        var timeout = timeoutMs
        let curlDue = hot.pointee.curlTimer
        if curlDue != 0 {
            let nowAbs = fl_monotonic_ns()
            let ms = curlDue <= nowAbs ? 0 : Int32(min(Nanos(Int32.max), (curlDue - nowAbs + 999_999) / 1_000_000))
            timeout = min(timeout, ms)
        }
        var timerFired = false
        let n = readyFDs.withUnsafeMutableBufferPointer { fds in
            readyWhat.withUnsafeMutableBufferPointer { what in
                fl_epoll_wait(epollFD, fds.baseAddress, what.baseAddress, Int32(fds.count), timeout)
            }
        }
        if n > 0 {
            for i in 0..<Int(n) {
                let fd = readyFDs[i]
                if fd == wakeFD {
                    fl_wake_drain(wakeFD)
                } else if fd == timerFD {
                    fl_timer_drain(timerFD)
                    timerFired = true
                } else {
                    curl_multi_socket_action(multi, fd, readyWhat[i], &running)
                }
            }
        }
        let due = hot.pointee.curlTimer
        if due != 0 && due <= fl_monotonic_ns() { perform(&running) }
        return timerFired
    }

    func run() {
        driver.attach(multi, wakeFD: wakeFD)
        // A replay starts with its reader ahead, not parsing its first lines on the clock.
        if case let .replay(r) = feed { r.prime() }
        startMono = fl_monotonic_ns()
        startWall = fl_wall_ns() / 1000 * 1000 // whole microseconds, as records print it
        paused = config.startPaused
        pausedAt = 0
        stats.paused = paused
        nextArrival = pull()
        var waitFD = curl_waitfd(fd: timerFD, events: Int16(POLLIN), revents: 0)
        var armed: Nanos = 0
        var running: Int32 = 0
        while true {
            applyControl()
            var quick = 0
            if startDue() {
                perform(&running)
                quick = readCompletions()
            }
            if scheduleDone && inFlight == 0 && backlogHead == backlog.count { break }
            if recordsSinceFlush > 0 {
                sink.flush()
                recordsSinceFlush = 0
            }
            publishIfDue()
            // Fast answers may already have freed slots: start again before waiting.
            if quick > 0 { continue }

            var timeoutMs: Int32 = 1000
            if let due = deadline() {
                let nowAbs = fl_monotonic_ns()
                if due <= nowAbs {
                    timeoutMs = 0
                } else {
                    let remaining = due - nowAbs
                    if timerFD >= 0 && remaining < 5_000_000 {
                        if armed != due {
                            _ = fl_timer_arm_at(timerFD, due)
                            armed = due
                        }
                        timeoutMs = Int32(min(1000, remaining / 1_000_000 + 1))
                    } else if timerFD >= 0 {
                        // Far enough for millisecond sleeps; the timer takes over for the last few.
                        timeoutMs = Int32(min(1000, remaining / 1_000_000 - 4))
                    } else {
                        // No precise timer: sleep in whole milliseconds, then spin the last one.
                        timeoutMs = Int32(min(1000, remaining / 1_000_000))
                    }
                }
            }
            if epollFD >= 0 {
                // The precise timer is always in the epoll set; it only fires when armed.
                if waitEpoll(timeoutMs: timeoutMs, running: &running) { armed = 0 }
                readCompletions()
                continue
            }
            // The timer only matters when the next deadline is near (an open-loop arrival);
            // polling it otherwise costs every wait a descriptor for nothing.
            if timerFD >= 0 && armed != 0 && armed <= fl_monotonic_ns() &+ 5_000_000 {
                _ = curl_multi_poll(multi, &waitFD, 1, timeoutMs, nil)
                if waitFD.revents != 0 {
                    fl_timer_drain(timerFD)
                    waitFD.revents = 0
                    armed = 0
                }
            } else {
                _ = curl_multi_poll(multi, nil, 0, timeoutMs, nil)
            }
            curl_multi_perform(multi, &running)
            readCompletions()
        }
        if recordsSinceFlush > 0 { sink.flush() }
        if case let .replay(r) = feed { r.cancel() }
        stats.inFlight = 0
        stats.elapsed = now()
        syncStats()
        stats.finished = true
        // Free handles before telling anyone the run is over.
        for t in all { t.prepared = nil }
        driver.finish(stats)
    }

    func publishIfDue() {
        let t = now()
        guard t &- lastPublish >= 20_000_000 else { return }
        lastPublish = t
        stats.elapsed = t
        stats.inFlight = inFlight
        syncStats()
        driver.publish(stats)
    }

    /// Copies the counters kept in `hot` into `stats`.
    func syncStats() {
        let h = hot.pointee
        stats.scheduled = h.scheduled
        stats.sent = h.sent
        stats.completed = h.completed
        stats.errors = h.errors
        stats.statusCounts = h.statusTally.counts
        stats.connectionsOpened = counter.opened
    }
}

/// A mutex with a condition variable on CLOCK_MONOTONIC (no Foundation on the engine's path).
final class Condition: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        #if os(Linux)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    func wait() { pthread_cond_wait(cond, mutex) }
    func broadcast() { pthread_cond_broadcast(cond) }

    /// Waits until signalled or the monotonic deadline; false when the deadline passed.
    func wait(untilMonotonic deadline: Nanos) -> Bool {
        #if os(Linux)
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(cond, mutex, &ts) != ETIMEDOUT
        #else
        let now = fl_monotonic_ns()
        let left = deadline > now ? deadline - now : 0
        var ts = timespec(tv_sec: Int(left / 1_000_000_000), tv_nsec: Int(left % 1_000_000_000))
        return pthread_cond_timedwait_relative_np(cond, mutex, &ts) != ETIMEDOUT
        #endif
    }
}

/// Starts a detached thread running `body`.
func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
    let arg = Unmanaged.passRetained(Box(body)).toOpaque()
    #if os(Linux)
    var thread = pthread_t()
    #else
    var thread: pthread_t?
    #endif
    let rc = pthread_create(&thread, nil, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, arg)
    precondition(rc == 0, "cannot start the driver thread: error \(rc)")
    pthread_detach(thread)
}
