import FuzzTargets

// Built two ways. `scripts/fuzz` builds with `-DFUZZING` and libFuzzer's sanitizers: then
// libFuzzer owns `main` and calls the hooks below, the target chosen by `--target=NAME`
// (libFuzzer ignores arguments that start with `--`). A plain build gives a corpus runner:
// `failover-fuzz TARGET FILE|DIR...` feeds each file to the target once.

#if FUZZING
nonisolated(unsafe) private var selected: FuzzTarget?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>) -> CInt {
    var name: String?
    for i in 0..<Int(argc.pointee) {
        guard let arg = argv.pointee[i] else { continue }
        let text = String(cString: arg)
        if text.hasPrefix("--target=") { name = String(text.dropFirst("--target=".count)) }
    }
    guard let name, let target = FuzzTargets.named(name) else {
        let names = FuzzTargets.all.map(\.name).joined(separator: ", ")
        fatalError("failover-fuzz: give --target=NAME, one of: \(names)")
    }
    selected = target
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let failure = selected?.run(bytes) {
        fatalError("property failed: \(failure)")
    }
    return 0
}
#else
import Foundation

@main
struct CorpusRunner {
    static func main() {
        let args = Array(CommandLine.arguments.dropFirst())
        guard let name = args.first, let target = FuzzTargets.named(name) else {
            print("usage: failover-fuzz TARGET FILE|DIR...\ntargets:")
            for t in FuzzTargets.all { print("  \(t.name.padding(toLength: 18, withPad: " ", startingAt: 0)) \(t.summary)") }
            exit(2)
        }
        var failed = 0
        var ran = 0
        for path in args.dropFirst() {
            for file in files(at: path) {
                guard let data = FileManager.default.contents(atPath: file) else {
                    print("\(file): cannot read"); failed += 1; continue
                }
                ran += 1
                if let failure = target.run(Array(data)) { print("\(file): \(failure)"); failed += 1 }
            }
        }
        print("\(name): \(ran) inputs, \(failed) failed")
        exit(failed == 0 ? 0 : 1)
    }

    static func files(at path: String) -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return [] }
        guard isDir.boolValue else { return [path] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.sorted().map { path + "/" + $0 }
    }
}
#endif
