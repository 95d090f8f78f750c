import ArgumentParser
import Gateway

/// The `failover-lab` command: a lab for LLM-gateway failover in one terminal.
@main
struct FailoverLab: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover-lab",
        abstract: "Run agentgateway failover labs offline: gateway, stand-ins, load driver, dashboard.",
        discussion: """
        The bundled seed lab (scenarios/http-429-lab.yaml) puts an http-429 stand-in in \
        priority group 1 and a mock OpenAI in group 2. The first request gets the 429, \
        the provider is evicted for its retry-after, and the next requests fail over.
        """,
        subcommands: [
            RunCommand.self,
            GatewayCommand.self,
            CheckCommand.self,
            WatchCommand.self,
            StandInsCommand.self,
            DriveCommand.self,
            ReplayCommand.self,
            ReportCommand.self,
            TestCommand.self,
        ],
        defaultSubcommand: RunCommand.self
    )

    /// Every command starts with the soft limit of open files raised to the hard limit
    /// (`GatewayOptions.raiseFileLimit`): thousands of streams need thousands of descriptors.
    static func main() async {
        GatewayOptions.raiseFileLimit()
        await main(nil)
    }
}
