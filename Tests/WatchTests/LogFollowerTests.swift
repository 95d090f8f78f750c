import Foundation
import Testing
import Watch

/// `tail -F` semantics on a real file: waits for it, follows appends, survives rotation and truncation.
@Suite struct LogFollowerTests {
    final class Collected: @unchecked Sendable {
        let lock = NSLock()
        var lines: [String] = []
        var notices: [String] = []
        func add(_ l: String) { lock.lock(); lines.append(l); lock.unlock() }
        func note(_ n: String) { lock.lock(); notices.append(n); lock.unlock() }
        var snapshot: ([String], [String]) { lock.lock(); defer { lock.unlock() }; return (lines, notices) }
    }

    func waitFor(_ c: Collected, lines n: Int, seconds: Double = 5) -> [String] {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if c.snapshot.0.count >= n { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return c.snapshot.0
    }

    func append(_ path: String, _ text: String) throws {
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        let h = try #require(FileHandle(forWritingAtPath: path))
        h.seekToEndOfFile()
        h.write(Data(text.utf8))
        try h.close()
    }

    @Test func waitsFollowsRotationAndTruncation() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("follow-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/access.log"
        let follower = LogFollower(path: path, poll: 0.02)
        let c = Collected()
        let done = DispatchSemaphore(value: 0)
        Thread {
            follower.run(maxLine: 1024, line: { c.add(String(decoding: $0, as: UTF8.self)) }, notice: { c.note("\($0)") })
            done.signal()
        }.start()
        defer { follower.stop(); _ = done.wait(timeout: .now() + 2) }
        Thread.sleep(forTimeInterval: 0.1)
        #expect(c.snapshot.1.first?.hasPrefix("waiting") == true)
        try append(path, "one\ntwo\nthr")
        #expect(waitFor(c, lines: 2) == ["one", "two"])
        try append(path, "ee\n")
        #expect(waitFor(c, lines: 3) == ["one", "two", "three"])
        // Rotation: the file is moved away and a new one takes its name.
        try append(path, "last of old\n")
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        try append(path, "first of new\n")
        #expect(waitFor(c, lines: 5).suffix(2) == ["last of old", "first of new"])
        // Truncation: read again from the start.
        try FileHandle(forWritingAtPath: path)!.truncate(atOffset: 0)
        Thread.sleep(forTimeInterval: 0.1)
        try append(path, "after truncate\n")
        #expect(waitFor(c, lines: 6).last == "after truncate")
        let notices = c.snapshot.1
        #expect(notices.contains { $0.hasPrefix("rotated") }, "\(notices)")
        #expect(notices.contains { $0.hasPrefix("truncated") }, "\(notices)")
    }
}
