import Gateway
import Lab
import Testing
@testable import TUI
import Upstreams
import Wire

/// `f` on a lab the dashboard started: each step's behaviour, and `slow model`, a shape that
/// is undone at the next step.
@Suite(.serialized) struct FaultHooksTests {
    @Test func slowModelShapesTheStandInAndTheNextStepUndoesIt() async throws {
        guard let seed = BundledLabs.path(of: BundledLabs.seedLab) else { Issue.record("no bundled seed lab"); return }
        let config = try ManifestLoader.load(files: [seed])
        var options = LabOptions()
        options.port = 0
        let lab = try await RunningLab.start(config: config, options: options)
        defer { Task { await lab.stop() } }
        let hooks = LabHooks.forLab(lab, backend: 0)
        let openai = try #require(lab.standIn("openai"))
        #expect(hooks.faults()["openai"] == "healthy")
        #expect(openai.shape == ModelShape())

        #expect(try await hooks.setFault("openai", .slowModel) == "slow model")
        #expect(hooks.faults()["openai"] == "slow model")
        #expect(FaultStep.after(hooks.faults()["openai"]) == .down)
        #expect(openai.shape == FaultStep.slowModelShape)
        #expect(openai.behavior == .healthy)

        // Any next step undoes the shape (not `down` here: leaving it listens again on the same
        // port, which a parallel test's outgoing connection may hold for a moment).
        #expect(try await hooks.setFault("openai", .serverErrors) == "5xx")
        #expect(openai.shape == ModelShape(), "the shape before slow model is back")
        #expect(hooks.faults()["openai"] == "5xx")
        #expect(try await hooks.setFault("openai", .healthy) == "healthy")
        // A 429 with the stand-in's own retry-after.
        #expect(try await hooks.setFault("http-429", .rateLimited).hasPrefix("429"))
        await lab.stop()
    }
}
