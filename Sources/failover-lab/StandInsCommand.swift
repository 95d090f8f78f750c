import ArgumentParser
import Foundation
import Gateway
import Lab
import Upstreams

/// `failover-lab standins`: the lab's stand-ins alone.
struct StandInsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "standins",
        abstract: "Run only the stand-ins of a lab (the http-429 server, the mock OpenAI) and print their addresses.",
        discussion: "Point a real agentgateway, or curl, at the printed addresses. Stops on Ctrl-C.")

    @OptionGroup var lab: LabFileArguments

    @Option(help: "Address the stand-ins listen on.")
    var listen = "127.0.0.1"

    func run() async throws {
        let config = try lab.load()
        guard let scenario = config.scenario, !scenario.standIns.isEmpty else {
            Console.error("failover-lab: \(config.files.joined(separator: ", ")) has no Scenario with stand-ins")
            throw ExitCode(2)
        }
        let fleet: StandInFleet
        do {
            fleet = try await StandInFleet.start(scenario.standIns, host: listen)
        } catch let errors as ConfigErrors {
            // A bad behaviour text in the Scenario: the file's fault, with its line.
            Console.error(errors.description)
            throw ExitCode(2)
        } catch {
            Console.error("failover-lab: cannot start the stand-ins on \(listen): \(error)")
            throw ExitCode(1)
        }
        for (spec, standIn) in zip(scenario.standIns, fleet.standIns) {
            Console.out("\(spec.name)\thttp://\(standIn.address)\t\(spec.kind.rawValue)\t\(standIn.behavior)\tanswers for \(spec.answers.joined(separator: ", "))")
        }
        _ = await Signals.waitForTermination()
        await fleet.stop()
    }
}
