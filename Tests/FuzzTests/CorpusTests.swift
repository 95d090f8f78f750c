import Foundation
import FuzzTargets
import Testing

/// The committed fuzz corpus, run through every target in each test run: the seeds and
/// every crash input found since (a regression test each). A trap here fails the run.
@Suite struct CorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz/corpus")

    static func inputs(_ target: String) -> [URL] {
        let dir = corpus.appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.sorted().map { dir.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func corpusHolds(_ name: String) throws {
        let target = try #require(FuzzTargets.named(name))
        let files = Self.inputs(name)
        #expect(!files.isEmpty, "fuzz/corpus/\(name)/ has no seed inputs")
        for file in files {
            let bytes = try [UInt8](Data(contentsOf: file))
            let failure = target.run(bytes)
            #expect(failure == nil, "\(file.lastPathComponent): \(failure ?? "")")
        }
    }

    @Test func everyCorpusFolderHasATarget() throws {
        let folders = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path)
        let names = Set(FuzzTargets.all.map(\.name))
        for folder in folders {
            #expect(names.contains(folder), "fuzz/corpus/\(folder) belongs to no fuzz target")
        }
    }
}
