import Dispatch
import Driver
import Foundation
import Gateway
import NIOConcurrencyHelpers
import Upstreams

/// What `failover-lab test` found for one lab.
public struct LabTestResult: Sendable {
    /// The Scenario's name (the file's name without one).
    public var lab: String
    public var file: String
    /// Every step's verdict, in step order.
    public var steps: [StepVerdict]
    /// Where each step was written, in step order.
    public var stepLocations: [SourceLocation]
    public var stepCount: Int
    /// Wall time of the lab's run, start to stop, in seconds.
    public var seconds: Double
    /// Why the lab could not run, when it could not.
    public var error: String?

    public var passed: Bool { error == nil && steps.count == stepCount && steps.allSatisfy(\.passed) }
    public var failures: Int { steps.filter { !$0.passed }.count + (error == nil ? 0 : 1) }
}

/// Runs a lab headless, step by step: the real gateway and stand-ins on loopback, the
/// driver's engine sending the Scenario's `traffic` and each step's `send`, and the step
/// engine on the monotonic clock deciding each step from the requests that finished in it.
public enum LabTestRunner {
    /// Runs `script` against a lab started from `config` with `settings` (its port is
    /// always a free one, and no admin port). `progress` hears every action as the engine
    /// decides it (the command prints step verdicts from it).
    /// `sink` hears every finished request of the lab (`test --record`).
    public static func run(config: LabConfig, script: LabScript, file: String, settings: LabSettings = LabSettings(),
                           sink: RecordSink? = nil,
                           progress: @escaping @Sendable (StepAction) -> Void = { _ in }) async -> LabTestResult {
        let began = DispatchTime.now().uptimeNanoseconds
        var result = await runSteps(config: config, script: script, file: file, settings: settings, sink: sink, progress: progress)
        result.seconds = Double(DispatchTime.now().uptimeNanoseconds &- began) / 1e9
        return result
    }

    private static func runSteps(config: LabConfig, script: LabScript, file: String, settings: LabSettings, sink: RecordSink?,
                                 progress: @escaping @Sendable (StepAction) -> Void) async -> LabTestResult {
        let name = config.scenario?.name ?? URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        var result = LabTestResult(lab: name, file: file, steps: [], stepLocations: script.steps.map(\.location),
                                   stepCount: script.steps.count, seconds: 0, error: nil)
        var settings = settings
        settings.ports = [0]
        settings.options.adminPort = nil
        let lab: RunningLab
        do {
            lab = try await LabBuilder.start(config: config, settings: settings)
        } catch {
            result.error = "cannot start the lab: \(error)"
            return result
        }
        let traffic: Driver?
        let sender: Driver
        let steps: StepRunner
        // A `set` that could not be applied fails the lab.
        let failures = NIOLockedValueBox<String?>(nil)
        do {
            (traffic, sender, steps) = try drivers(for: script, lab: lab, stepByKey: false, sink: sink,
                                                   errors: { message in failures.withLockedValue { $0 = $0 ?? message } })
        } catch {
            await lab.stop()
            result.error = "\(error)"
            return result
        }
        func report(_ actions: [StepAction]) -> Bool {
            var done = false
            for action in actions {
                progress(action)
                if case .finished = action { done = true }
            }
            return done
        }
        sender.start()
        var done = report(steps.start())
        await steps.settled()
        // After the first step began and set its behaviours: none of the traffic's requests can finish before it.
        traffic?.start()
        while !done {
            done = report(steps.poll())
            await steps.settled()
            if done { break }
            // Sleep until the step's deadline, but look at finished requests every few ms.
            let now = steps.now()
            let wait = min(steps.deadline.map { $0 > now ? $0 - now : 0 } ?? 5_000_000, 5_000_000)
            if wait > 0 { try? await Task.sleep(nanoseconds: wait) }
        }
        result.error = failures.withLockedValue { $0 }
        result.steps = steps.verdicts.compactMap { $0 }
        traffic?.stop(abortInFlight: true)
        sender.stop(abortInFlight: true)
        traffic?.wait()
        sender.wait()
        await lab.stop()
        return result
    }

    /// The drivers and the step runner of a lab's script: the Scenario's `traffic` (nil
    /// without one) and the steps' sender (see `LabDrivers.make`).
    static func drivers(for script: LabScript, lab: RunningLab, stepByKey: Bool, sink: RecordSink?,
                        errors: @escaping @Sendable (String) -> Void = { _ in })
        throws -> (traffic: Driver?, sender: Driver, steps: StepRunner) {
        guard let routeURL = lab.firstRouteURL else { throw LabTestError(description: "the lab has no HTTPRoute to send requests to") }
        var config: DriverConfiguration?
        if let plan = script.traffic {
            var traffic = try labTraffic(plan, lab: lab, routeURL: routeURL)
            traffic.timeout = plan.timeout ?? 130_000_000_000
            config = traffic
        }
        let made = LabDrivers.make(steps: script.steps, traffic: config, sendSpec: config?.mix.requests.first ?? RequestSpec.chat(url: routeURL),
                                   lab: lab, stepByKey: stepByKey, sink: sink, errors: errors)
        return (made.traffic, made.sender, made.steps!)
    }

    /// The driver configuration of a lab's `traffic:`, read as `drive --plan` reads a plan
    /// given no flags; targets that are paths go to the lab's gateway, and a plan without
    /// targets sends to the lab's first route.
    static func labTraffic(_ plan: PlanFile, lab: RunningLab, routeURL: String) throws -> DriverConfiguration {
        var settings = TrafficSettings()
        settings.plan = plan
        do {
            return try settings.configuration(defaultTarget: routeURL, base: lab.gatewayURL, defaultDuration: nil)
        } catch {
            throw LabTestError(description: "spec.traffic: \(error)")
        }
    }
}

public struct LabTestError: Error, CustomStringConvertible {
    public var description: String
}
