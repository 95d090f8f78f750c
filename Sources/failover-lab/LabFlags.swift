import ArgumentParser
import Lab

/// The flags of the lab a command starts, the same for `run`, `gateway` and `test` (stand-ins,
/// balancer, limits, traces): each
/// command reads these into `LabSettings` and starts the lab with `LabBuilder`.
struct LabFlags: ParsableArguments {
    @Option(name: .customLong("stand-in"), help: ArgumentHelp("Start a stand-in with another behaviour, e.g. http-429=healthy, openai='slow 200ms' or openai='ttft 300ms tokens 200 rate 50/s jitter 10%' (repeatable).", valueName: "name=behavior"))
    var standInBehaviors: [String] = []

    @Flag(name: .customLong("real-upstreams"), help: "Send the OpenAI provider to the real api.openai.com over TLS (needs OPENAI_API_KEY) instead of the mock stand-in.")
    var realUpstreams = false

    @OptionGroup var balancer: BalancerFlags

    @OptionGroup(title: "Limits and timeouts") var limits: LimitFlags

    @OptionGroup(title: "Traces") var tracing: TracingFlags

    /// `dashboard`: the gateway records spans for the waterfall even without a collector.
    func apply(to settings: inout LabSettings, dashboard: Bool = false) throws {
        settings.options.realUpstreams = realUpstreams
        settings.standInSettings = standInBehaviors
        // The balancer switches and --no-retry-hint.
        balancer.apply(to: &settings.options.gateway)
        limits.apply(to: &settings.options.gateway)
        try tracing.apply(to: &settings.options, dashboard: dashboard)
    }
}

extension LabStartError {
    /// Says it on stderr and ends the command with its exit status.
    func exit() -> ExitCode {
        Console.error(description)
        return ExitCode(exitCode)
    }
}
