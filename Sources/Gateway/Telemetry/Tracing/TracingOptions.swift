import Foundation
import Wire

/// Tracing settings of a gateway. Tracing is on when the gateway is given these (an export
/// endpoint, or the dashboard asking for waterfalls); off, the data path pays one nil check.
public struct TracingOptions: Sendable {
    /// Where spans are sent; nil: recorded for the dashboard only.
    public var endpoint: OTLPEndpoint?
    public var encoding = OTLPEncoding.protobuf
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`), e.g. an API key for a hosted backend.
    public var headers: [(String, String)] = []
    public var serviceName = "failover-lab"
    public var sampler = TraceSampler.parentBased(root: .alwaysOn)
    /// Spans held for export at most; past it new ones are dropped (and counted).
    public var maxQueue = 8192
    /// Spans per export request at most.
    public var maxBatch = 512
    /// How long spans wait for a batch to fill before they are sent anyway.
    public var scheduleDelay: Duration = .seconds(1)
    /// Connect, send and read timeout of one export request.
    public var exportTimeout: Duration = .seconds(5)

    public init(endpoint: OTLPEndpoint? = nil) {
        self.endpoint = endpoint
    }

    /// The settings from the OpenTelemetry environment variables, with `flagEndpoint`
    /// (`--otlp-endpoint`, a base URL) over `OTEL_EXPORTER_OTLP_ENDPOINT`. nil when no
    /// endpoint is set anywhere. Values are outside input: a bad one is an error naming it.
    public static func fromEnvironment(_ env: [String: String], flagEndpoint: String?) throws -> TracingOptions? {
        func value(_ name: String) -> String? {
            guard let v = env[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        let endpoint: OTLPEndpoint
        if let flag = flagEndpoint {
            endpoint = try OTLPEndpoint(base: flag, source: "--otlp-endpoint")
        } else if let traces = value("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            endpoint = try OTLPEndpoint(exact: traces, source: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        } else if let base = value("OTEL_EXPORTER_OTLP_ENDPOINT") {
            endpoint = try OTLPEndpoint(base: base, source: "OTEL_EXPORTER_OTLP_ENDPOINT")
        } else {
            return nil
        }
        var options = TracingOptions(endpoint: endpoint)
        if let p = value("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? value("OTEL_EXPORTER_OTLP_PROTOCOL") {
            guard let e = OTLPEncoding(rawValue: p) else {
                throw TracingConfigError("OTEL_EXPORTER_OTLP_PROTOCOL=\(p) is not supported: use http/protobuf (the default) or http/json (grpc is not)")
            }
            options.encoding = e
        }
        if let h = value("OTEL_EXPORTER_OTLP_TRACES_HEADERS") ?? value("OTEL_EXPORTER_OTLP_HEADERS") {
            options.headers = try parseHeaders(h)
        }
        if let name = value("OTEL_SERVICE_NAME") {
            guard name.utf8.count <= 256 else { throw TracingConfigError("OTEL_SERVICE_NAME is longer than 256 bytes") }
            options.serviceName = name
        }
        options.sampler = try sampler(name: value("OTEL_TRACES_SAMPLER"), argument: value("OTEL_TRACES_SAMPLER_ARG"))
        if let t = value("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") ?? value("OTEL_EXPORTER_OTLP_TIMEOUT") {
            // Milliseconds, as the spec says.
            guard let ms = Int(t), ms > 0, ms <= 600_000 else {
                throw TracingConfigError("OTEL_EXPORTER_OTLP_TIMEOUT=\(t) must be whole milliseconds from 1 to 600000")
            }
            options.exportTimeout = .milliseconds(ms)
        }
        return options
    }

    /// `OTEL_TRACES_SAMPLER` and its argument (a ratio from 0 to 1 for the ratio samplers).
    static func sampler(name: String?, argument: String?) throws -> TraceSampler {
        func ratio() throws -> Double {
            guard let argument else { return 1 }
            guard let r = Double(argument), r.isFinite, r >= 0, r <= 1 else {
                throw TracingConfigError("OTEL_TRACES_SAMPLER_ARG=\(argument) must be a number from 0 to 1")
            }
            return r
        }
        switch name ?? "parentbased_always_on" {
        case "always_on": return .alwaysOn
        case "always_off": return .alwaysOff
        case "traceidratio": return .ratio(try ratio())
        case "parentbased_always_on": return .parentBased(root: .alwaysOn)
        case "parentbased_always_off": return .parentBased(root: .alwaysOff)
        case "parentbased_traceidratio": return .parentBased(root: .ratio(try ratio()))
        case let other:
            throw TracingConfigError("OTEL_TRACES_SAMPLER=\(other) is not supported: use always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio")
        }
    }

    /// `key1=value1,key2=value2`, values percent-decoded (W3C baggage style, as the spec says).
    static func parseHeaders(_ text: String) throws -> [(String, String)] {
        var out: [(String, String)] = []
        for (i, item) in text.split(separator: ",", omittingEmptySubsequences: true).enumerated() {
            guard let eq = item.firstIndex(of: "=") else {
                throw TracingConfigError("OTEL_EXPORTER_OTLP_HEADERS: entry \(i + 1) has no '=' (expected key=value,key=value)")
            }
            let key = item[..<eq].trimmingCharacters(in: .whitespaces)
            let raw = item[item.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard let value = raw.removingPercentEncoding else {
                throw TracingConfigError("OTEL_EXPORTER_OTLP_HEADERS: the value of '\(key)' has a bad percent escape")
            }
            // A header name is a token; a value has no control bytes (they would split the request).
            let tokenBytes = Set("!#$%&'*+-.^_`|~".utf8)
            guard !key.isEmpty, key.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || tokenBytes.contains($0) }) else {
                throw TracingConfigError("OTEL_EXPORTER_OTLP_HEADERS: '\(key)' is not a valid header name (entry \(i + 1))")
            }
            guard value.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) else {
                throw TracingConfigError("OTEL_EXPORTER_OTLP_HEADERS: the value of '\(key)' has control characters")
            }
            out.append((key, value))
        }
        return out
    }
}

/// An OTLP/HTTP endpoint: plain http, a host, a port and the path spans are posted to.
public struct OTLPEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var path: String

    public var description: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)\(path)" }

    /// A base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`, `--otlp-endpoint`): `/v1/traces` is appended.
    public init(base: String, source: String) throws {
        try self.init(url: base, source: source, appendTracesPath: true)
    }

    /// The whole URL (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`): used as it is.
    public init(exact: String, source: String) throws {
        try self.init(url: exact, source: source, appendTracesPath: false)
    }

    private init(url text: String, source: String, appendTracesPath: Bool) throws {
        guard text.utf8.count <= 2048, text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw TracingConfigError("\(source)=\(text.prefix(80)) is not a URL (spaces, control or non-ASCII characters, or over 2048 bytes)")
        }
        guard let url = URLComponents(string: text), let scheme = url.scheme?.lowercased() else {
            throw TracingConfigError("\(source)=\(text) is not a URL; expected like http://127.0.0.1:4318")
        }
        guard scheme == "http" else {
            throw TracingConfigError("\(source)=\(text): only http:// is supported (no TLS to the collector; run one on loopback or in the cluster)")
        }
        guard let host = url.host, !host.isEmpty else {
            throw TracingConfigError("\(source)=\(text) has no host")
        }
        let port = url.port ?? 4318
        guard (1...65535).contains(port) else { throw TracingConfigError("\(source)=\(text): port must be 1 to 65535") }
        var path = url.percentEncodedPath
        if appendTracesPath {
            if path.hasSuffix("/") { path.removeLast() }
            path += "/v1/traces"
        } else if path.isEmpty {
            path = "/"
        }
        if let q = url.percentEncodedQuery { path += "?" + q }
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        self.port = port
        self.path = path
    }
}

/// A tracing setting that cannot be used, with what was wrong and where.
public struct TracingConfigError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
