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
    /// Runs `script` against a lab started from `config` on free ports. `progress` hears
    /// every action as it is applied (the command prints step verdicts from it).
    public static func run(config: LabConfig, script: LabScript, file: String,
                           progress: @escaping @Sendable (StepAction) -> Void = { _ in }) async -> LabTestResult {
        let began = DispatchTime.now().uptimeNanoseconds
        var result = await runSteps(config: config, script: script, file: file, progress: progress)
        result.seconds = Double(DispatchTime.now().uptimeNanoseconds &- began) / 1e9
        return result
    }

    private static func runSteps(config: LabConfig, script: LabScript, file: String,
                                 progress: @escaping @Sendable (StepAction) -> Void) async -> LabTestResult {
        let name = config.scenario?.name ?? URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        var result = LabTestResult(lab: name, file: file, steps: [], stepLocations: script.steps.map(\.location),
                                   stepCount: script.steps.count, seconds: 0, error: nil)
        var options = LabOptions()
        options.port = 0
        options.adminPort = nil
        let lab: RunningLab
        do {
            lab = try await RunningLab.start(config: config, options: options)
        } catch {
            result.error = "cannot start the lab: \(error)"
            return result
        }
        guard let routeURL = lab.firstRouteURL else {
            await lab.stop()
            result.error = "the lab has no HTTPRoute to send requests to"
            return result
        }
        let inbox = StepInbox()
        let sink = RecordSink(record: { record in inbox.push(record) })
        let traffic: Driver?
        let sendSpec: RequestSpec
        do {
            let specs = try script.traffic.map { try requestSpecs($0, gatewayURL: lab.gatewayURL, routeURL: routeURL) }
            sendSpec = specs?.first?.spec ?? RequestSpec.chat(url: routeURL)
            if let plan = script.traffic, let specs {
                traffic = Driver(configuration: configuration(plan, specs: specs), sink: sink)
            } else {
                traffic = nil
            }
        } catch {
            await lab.stop()
            result.error = "\(error)"
            return result
        }
        // The steps' own requests: a paused driver that sends only when told, so it outlives
        // a traffic plan that ends early.
        var senderConfig = DriverConfiguration(workload: .openLoop([Phase(.constant(rate: 0))]), mix: RequestMix([sendSpec]))
        senderConfig.startPaused = true
        senderConfig.timeout = 130_000_000_000  // a lab route may allow 120 s
        let sender = Driver(configuration: senderConfig, sink: sink)
        sender.start()

        var engine = StepEngine(steps: script.steps)
        var verdicts: [StepVerdict?] = Array(repeating: nil, count: script.steps.count)
        func apply(_ actions: [StepAction]) async -> Bool {
            for action in actions {
                switch action {
                case .setBehavior(let standIn, let behavior):
                    do { try await lab.standIn(standIn)?.setBehavior(behavior) } catch {
                        result.error = result.error ?? "could not set stand-in \(standIn) to \(behavior): \(error)"
                    }
                case .returnProvider(let provider):
                    lab.returnProvider(named: provider)
                case .send(let n):
                    for _ in 0..<n { sender.sendOne() }
                case .end(let verdict):
                    verdicts[verdict.step] = verdict
                case .finished:
                    progress(action)
                    return true
                case .begin, .waitForNext:
                    break
                }
                progress(action)
            }
            return false
        }
        var done = await apply(engine.start(at: inbox.now()))
        // After the first step began: none of the traffic's requests can finish before it.
        traffic?.start()
        while !done {
            let (now, records) = inbox.drain()
            var actions: [StepAction] = []
            for (record, at) in records { actions += engine.finished(record, at: at) }
            actions += engine.advance(to: now)
            done = await apply(actions)
            if done { break }
            // Sleep until the step's deadline, but look at finished requests every few ms.
            let wait = min(engine.deadline.map { $0 > now ? $0 - now : 0 } ?? 5_000_000, 5_000_000)
            if wait > 0 { try? await Task.sleep(nanoseconds: wait) }
        }
        result.steps = verdicts.compactMap { $0 }
        traffic?.stop(abortInFlight: true)
        sender.stop(abortInFlight: true)
        traffic?.wait()
        sender.wait()
        await lab.stop()
        return result
    }

    /// The traffic plan's requests, one per target; a target that is a path goes to the lab's
    /// gateway, and a plan with no targets sends to the lab's first route.
    static func requestSpecs(_ plan: PlanFile, gatewayURL: String, routeURL: String) throws -> [(spec: RequestSpec, weight: Double)] {
        let targets = plan.targets.isEmpty ? [(url: routeURL, weight: 1.0)] : plan.targets.map { (url: $0.url, weight: $0.weight) }
        var body: [UInt8]?
        if let path = plan.bodyFile {
            body = try readBody(path)
        }
        return targets.map { target in
            let url = target.url.hasPrefix("/") ? gatewayURL + target.url : target.url
            let method = plan.method ?? "POST"
            var headers = plan.headers
            if let body {
                if !headers.contains(where: { $0.lowercased().hasPrefix("content-type:") }), body.first == UInt8(ascii: "{") {
                    headers.insert("Content-Type: application/json", at: 0)
                }
                return (RequestSpec(method: method, url: url, headers: headers, body: body, model: RequestSpec.model(inBody: body)), target.weight)
            }
            if method == "GET" || method == "HEAD" {
                return (RequestSpec(method: method, url: url, headers: headers), target.weight)
            }
            var spec = RequestSpec.chat(url: url, model: plan.model ?? "", message: plan.message ?? "What is 2+2?",
                                        stream: plan.stream ?? false, headers: headers)
            spec.method = method
            return (spec, target.weight)
        }
    }

    /// The largest `body-file` a lab's traffic sends: the gateway buffers 8 MiB by default.
    static let largestBody = 64 << 20

    static func readBody(_ path: String) throws -> [UInt8] {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        guard let size = (attributes?[.size] as? NSNumber)?.int64Value, attributes?[.type] as? FileAttributeType == .typeRegular else {
            throw LabTestError(description: "spec.traffic body-file \(path): not a readable regular file")
        }
        guard size <= Int64(largestBody) else { throw LabTestError(description: "spec.traffic body-file \(path): larger than \(largestBody >> 20) MiB") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LabTestError(description: "spec.traffic body-file \(path): cannot read it")
        }
        return [UInt8](data)
    }

    /// The run a traffic plan asks for, as `drive --plan` runs a plan given no flags.
    static func configuration(_ plan: PlanFile, specs: [(spec: RequestSpec, weight: Double)]) -> DriverConfiguration {
        let workload: Workload
        if let n = plan.concurrency {
            workload = .closedLoop(concurrency: n)
        } else {
            workload = .openLoop(plan.phases ?? [])
        }
        var config = DriverConfiguration(workload: workload, mix: RequestMix(specs.map(\.spec), weights: specs.map(\.weight)),
                                         duration: plan.duration, requestLimit: plan.requests)
        if let n = plan.maxInFlight { config.maxInFlight = n }
        config.timeout = plan.timeout ?? 130_000_000_000
        config.seed = plan.seed ?? 1
        return config
    }
}

public struct LabTestError: Error, CustomStringConvertible {
    public var description: String
}

/// Finished requests from the drivers' threads, each stamped with the time it arrived, and
/// the clock they share. Stamping and queuing happen under one lock, and `drain` reads the
/// clock under it too: every request stamped before the drain's time is in its batch, so the
/// engine sees inputs in time order.
final class StepInbox: Sendable {
    private let state = NIOLockedValueBox<[(RequestRecord, Nanos)]>([])
    private let origin = DispatchTime.now().uptimeNanoseconds

    func now() -> Nanos { DispatchTime.now().uptimeNanoseconds &- origin }

    func push(_ record: RequestRecord) {
        state.withLockedValue { $0.append((record, now())) }
    }

    func drain() -> (now: Nanos, records: [(RequestRecord, Nanos)]) {
        state.withLockedValue { queue in
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            return (now(), batch)
        }
    }
}
