import Foundation
import Testing
@testable import Driver

/// The HTML report as a browser shows it: headless Chromium (Debian's `chromium`, which
/// scripts/test installs) renders the page of a small failover run to a PNG.
@Suite struct HTMLReportChromiumTests {
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Runs a program with a time limit; returns its exit status (nil when it had to be killed).
    static func run(_ path: String, _ args: [String], seconds: Double) throws -> (Int32?, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = err
        try p.run()
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        if p.isRunning {
            p.terminate()
            p.waitUntilExit()
            return (nil, "")
        }
        let out = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (p.terminationStatus, out)
    }

    @Test func chromiumRendersTheReportOfAFailoverRun() throws {
        guard let chromium = Self.chromium else {
            print("SKIPPED chromiumRendersTheReportOfAFailoverRun: chromium is not installed (apt-get install chromium; scripts/test installs it)")
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fl-html-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (report, builder, series) = try reportParts(failoverRunRecords())
        let page = HTMLReport(files: ["run.jsonl"], report: report, series: series, builder: builder).html
        let htmlPath = dir.appendingPathComponent("run.html").path
        try page.write(toFile: htmlPath, atomically: true, encoding: .utf8)

        // The file's own elements: one series per provider, the band where the records put it,
        // nothing that would make the browser fetch.
        #expect(attributeValues(page, element: "<g class=\"series\" data-provider", "data-provider") == ["http-429-provider", "openai-provider"])
        #expect(attributeValues(page, element: "<rect class=\"eviction\"", "data-provider") == ["http-429-provider"])
        #expect(attributeValues(page, element: "<rect class=\"eviction\"", "data-start-s") == ["0.020"])
        #expect(attributeValues(page, element: "<rect class=\"eviction\"", "data-end-s") == ["1.500"])
        #expect(externalReferences(page).isEmpty)

        let png = dir.appendingPathComponent("run.png").path
        let (status, output) = try Self.run(chromium, [
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            "--user-data-dir=" + dir.appendingPathComponent("profile").path,
            "--screenshot=" + png, "--window-size=1200,1600", "file://" + htmlPath,
        ], seconds: 90)
        #expect(status == 0, "chromium: \(output.suffix(2000))")
        let data = try Data(contentsOf: URL(fileURLWithPath: png))
        #expect(data.starts(with: [0x89, 0x50, 0x4E, 0x47]))
        // Not blank: a one-colour 1200x1600 page compresses to a few KB and its scanlines are all alike.
        #expect(data.count > 20_000, "\(data.count) bytes")
        let (pyStatus, distinct) = try Self.run("/usr/bin/python3", ["-c", Self.distinctRows, png], seconds: 30)
        #expect(pyStatus == 0, "\(distinct)")
        let rows = Int(distinct.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(rows > 100, "only \(rows) distinct scanlines: the screenshot looks blank")
    }

    /// Counts the distinct (filtered) scanlines of a PNG: 1-2 for a blank page, hundreds for charts.
    static let distinctRows = """
    import sys, zlib, struct
    d = open(sys.argv[1], 'rb').read()
    pos, idat, w, h, bpp = 8, b'', 0, 0, 4
    while pos < len(d):
        n, t = struct.unpack('>I4s', d[pos:pos+8])
        body = d[pos+8:pos+8+n]
        if t == b'IHDR':
            w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
            bpp = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype, 4) * max(1, depth // 8)
        elif t == b'IDAT':
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = 1 + w * bpp
    print(len({raw[i*stride:(i+1)*stride] for i in range(h)}))
    """
}
