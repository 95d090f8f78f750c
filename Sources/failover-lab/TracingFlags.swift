import ArgumentParser
import Foundation
import Gateway
import Lab

/// Where the gateway's traces go (`gateway`, `run`): `--otlp-endpoint`, else the
/// OpenTelemetry environment variables (OTEL_EXPORTER_OTLP_ENDPOINT, ..._TRACES_ENDPOINT,
/// ..._HEADERS, ..._PROTOCOL, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER/_ARG).
struct TracingFlags: ParsableArguments {
    @Option(name: .customLong("otlp-endpoint"), help: ArgumentHelp("Send traces over OTLP/HTTP to this collector (base URL, /v1/traces is added), e.g. http://127.0.0.1:4318. Also OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the whole URL).", valueName: "url"))
    var otlpEndpoint: String?

    /// The settings from the flag and the environment; nil when no endpoint is set.
    func tracing(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> TracingOptions? {
        do {
            return try TracingOptions.fromEnvironment(environment, flagEndpoint: otlpEndpoint)
        } catch let error as TracingConfigError {
            throw ValidationError(error.description)
        }
    }

    func validate() throws {
        _ = try tracing()
    }

    /// `dashboard`: spans are recorded for its waterfall even with no collector.
    func apply(to options: inout LabOptions, dashboard: Bool = false) throws {
        options.gateway.tracing = try tracing() ?? (dashboard ? TracingOptions() : nil)
    }
}
