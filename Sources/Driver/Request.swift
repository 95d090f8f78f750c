/// The HTTP request a driver sends, before libcurl sees it.
public struct RequestSpec: Sendable, Hashable {
    public var method: String
    public var url: String
    /// Header lines, `Name: value`.
    public var headers: [String]
    public var body: [UInt8]?
    /// The model the body asks for, kept for records and replay.
    public var model: String?

    public init(method: String = "POST", url: String, headers: [String] = [], body: [UInt8]? = nil, model: String? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.model = model
    }

    /// The lab's default request body, as its curl sends it.
    public static func chatBody(model: String, message: String, stream: Bool) -> [UInt8] {
        var s = "{\"model\": "
        JSONValue.writeString(model, into: &s)
        s += ", \"messages\": [{\"role\": \"user\", \"content\": "
        JSONValue.writeString(message, into: &s)
        s += "}]"
        if stream { s += ", \"stream\": true" }
        s += "}"
        return Array(s.utf8)
    }

    /// A chat-completion request like the lab's curl: POST, JSON body, Content-Type application/json.
    public static func chat(url: String, model: String = "", message: String = "What is 2+2?", stream: Bool = false,
                            headers: [String] = []) -> RequestSpec {
        var all = headers
        if !all.contains(where: { $0.lowercased().hasPrefix("content-type:") }) {
            all.insert("Content-Type: application/json", at: 0)
        }
        return RequestSpec(method: "POST", url: url, headers: all,
                           body: chatBody(model: model, message: message, stream: stream), model: model)
    }

    /// The model named by a JSON body, if any.
    public static func model(inBody body: [UInt8]) -> String? {
        (try? JSONValue.parse(bytes: body))?["model"]?.string
    }
}

/// The requests of a run and how often each is picked (targets can be weighted).
public struct RequestMix: Sendable {
    public var requests: [RequestSpec]
    public var weights: [Double]

    public init(_ requests: [RequestSpec], weights: [Double]? = nil) {
        self.requests = requests
        self.weights = weights ?? Array(repeating: 1, count: requests.count)
    }
}

/// A stream of timed requests, such as a replay file: offsets from the run's start, in order.
public protocol ArrivalFeed {
    mutating func next() -> (offset: Nanos, request: RequestSpec)?
}

/// What drives the requests of a run.
public enum Workload: Sendable {
    /// N requests always in flight; each finished request starts the next.
    case closedLoop(concurrency: Int)
    /// Requests at scheduled times, whatever the responses do.
    case openLoop([Phase])
    /// Requests at the times a feed gives (built on the engine's thread).
    case replay(@Sendable () -> any ArrivalFeed)
}

/// Everything a driver needs to run.
public struct DriverConfiguration: Sendable {
    public var workload: Workload
    public var mix: RequestMix
    /// Stop starting requests after this long (open loop: no intended start at or after it).
    public var duration: Nanos?
    /// Stop after this many requests.
    public var requestLimit: UInt64?
    /// Closed loop: its slots open evenly over this long (slot k of N at k·rampUp/N), not all at once.
    public var rampUp: Nanos?
    /// Open loop: most requests in flight at once; an arrival finding all busy is late.
    public var maxInFlight: Int = 256
    public var timeout: Nanos = 30_000_000_000
    public var connectTimeout: Nanos = 10_000_000_000
    public var http2 = false
    public var seed: UInt64 = 1
    public var startPaused = false
    /// Most response-body bytes kept for provider and token extraction.
    public var bodyCaptureLimit = 1 << 20
    /// With `drive --shard K/N`: request i is numbered `seq` K + N·i (the workload, limit
    /// and seed are already this shard's share).
    public var shard: Shard?
    /// Send a `traceparent` with a new trace id per request, and record the id.
    public var trace = false

    public init(workload: Workload, mix: RequestMix, duration: Nanos? = nil, requestLimit: UInt64? = nil) {
        self.workload = workload
        self.mix = mix
        self.duration = duration
        self.requestLimit = requestLimit
    }
}

/// Live counters of a running driver, for a progress line or a dashboard.
public struct DriverStats: Sendable, Equatable {
    public var elapsed: Nanos = 0
    /// Requests taken from the schedule (sent, waiting for a slot, or left unsent).
    public var scheduled: UInt64 = 0
    public var sent: UInt64 = 0
    public var completed: UInt64 = 0
    public var inFlight = 0
    public var late: UInt64 = 0
    public var errors: UInt64 = 0
    /// Responses by status; transport errors count under 0.
    public var statusCounts: [Int: UInt64] = [:]
    public var connectionsOpened: UInt64 = 0
    public var paused = false
    /// The constant rate set by `setRate`, if any.
    public var rate: Double?
    /// The factor set by `setScale` (1: the plan as written).
    public var scale: Double = 1
    public var finished = false
    public init() {}
}

/// Where finished requests go: `record` for each, `flush` once per engine loop turn that had any.
public struct RecordSink: Sendable {
    public var record: @Sendable (RequestRecord) -> Void
    public var flush: @Sendable () -> Void
    public init(record: @escaping @Sendable (RequestRecord) -> Void, flush: @escaping @Sendable () -> Void = {}) {
        self.record = record
        self.flush = flush
    }
}
