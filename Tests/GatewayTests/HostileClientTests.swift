import Foundation
import NIOCore
import Testing
@testable import Gateway

/// The gateway's reading of a client's bytes, without sockets: each hostile head is
/// refused with its status, at every place a read may cut it.
@Suite("Hostile heads (parser and head checks)")
struct HostileHeadTests {
    static let body = #"{"model":"","messages":[]}"#

    static func request(_ head: String, body: String = body) -> [UInt8] {
        Array((head + "Content-Length: \(body.utf8.count)\r\n\r\n" + body).utf8)
    }

    /// The refusal of `bytes`, the same whole and cut into reads of every size up to 40.
    static func refusal(_ bytes: [UInt8]) -> WireFuzzEntry.Refused? {
        var first: WireFuzzEntry.Refused?
        for size in [Int.max] + Array(1...40) {
            do {
                _ = try WireFuzzEntry.parseRequests(bytes, readSize: size)
                if size == Int.max { return nil }
                Issue.record("accepted when read \(size) bytes at a time")
                return nil
            } catch {
                if let first { #expect(error.status == first.status, "read \(size) at a time: \(error)") } else { first = error }
            }
        }
        return first
    }

    @Test("whitespace before a header's colon: 400 (http-parser alone takes it as the length)")
    func spaceBeforeColon() throws {
        let refused = try #require(Self.refusal(Array("POST /lab HTTP/1.1\r\nHost: gw\r\nContent-Length : 26\r\n\r\n\(Self.body)".utf8)))
        #expect(refused.status == 400)
        #expect(refused.description.contains("whitespace before the colon"))
        #expect(Self.refusal(Array("POST /lab HTTP/1.1\r\nHost: gw\r\nX-Tab\t: 1\r\nContent-Length: 26\r\n\r\n\(Self.body)".utf8)) != nil)
        #expect(Self.refusal(Array("POST /lab HTTP/1.1\r\nHost: gw\r\nX(y): 1\r\nContent-Length: 26\r\n\r\n\(Self.body)".utf8)) != nil)
    }

    @Test("Host: none or two in HTTP/1.1 is 400; HTTP/1.0 may leave it out")
    func hosts() throws {
        #expect(Self.refusal(Self.request("POST /lab HTTP/1.1\r\n"))?.description.contains("without a Host") == true)
        #expect(Self.refusal(Self.request("POST /lab HTTP/1.1\r\nHost: a\r\nhost: b\r\n"))?.description.contains("2 Host headers") == true)
        #expect(Self.refusal(Self.request("POST /lab HTTP/1.0\r\n")) == nil)
        #expect(Self.refusal(Self.request("POST /lab HTTP/1.0\r\nHost: a\r\nHost: a\r\n")) != nil)
    }

    @Test("framing faults: two lengths, length with chunked, chunked in HTTP/1.0, a coding other than chunked")
    func framing() throws {
        #expect(Self.refusal(Self.request("POST /lab HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"))?.status == 400)
        #expect(Self.refusal(Self.request("POST /lab HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\n"))?.status == 400)  // even equal ones
        #expect(Self.refusal(Array("POST /lab HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".utf8)) != nil)
        #expect(Self.refusal(Array("POST /lab HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n".utf8)) != nil)
        #expect(Self.refusal(Array("POST /lab HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".utf8)) != nil)
        #expect(Self.refusal(Array("POST /lab HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".utf8)) != nil)
        #expect(Self.refusal(Array("POST /lab HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".utf8)) != nil)
        // The well-formed forms still pass.
        #expect(Self.refusal(Array("POST /lab HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\n\(Self.body)\r\n0\r\n\r\n".utf8)) == nil)
    }

    @Test("control bytes in a value and folded lines are 400, wherever a read cuts them")
    func valuesAndFolds() throws {
        #expect(Self.refusal(Self.request("POST /lab HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n"))?.description.contains("obs-fold") == true)
        #expect(Self.refusal(Self.request("POST /lab HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n")) != nil)
        #expect(Self.refusal(Self.request("POST /lab HTTP/1.1\r\nHost: a\r\nX-A: b\u{01}c\r\n")) != nil)
        #expect(Self.refusal(Self.request("POST /lab HTTP/1.1\r\nHost: a\r\nX-A: b\u{7F}\r\n")) != nil)
        // Values with inner spaces and tabs, cut anywhere, are not folds.
        #expect(Self.refusal(Self.request("POST /lab HTTP/1.1\r\nHost: a\r\nX-A: b  c \t d\r\nX-B: \r\n")) == nil)
    }

    @Test("trailers after a chunked request body are 400 (a bare CR in the chunk framing would otherwise turn the next bytes into trailer lines); a response's are dropped")
    func trailers() throws {
        let chunked = "POST /lab HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
        #expect(Self.refusal(Array((chunked + "X-T: 1\r\n\r\n").utf8))?.description.contains("trailer") == true)
        // Found by the fuzzer: "0\r" and no LF; accepted whole, refused when cut into 7-byte reads.
        let bareCR = "POST /http-429 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\rkeep-alivep://x/a/../http-429?q=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        #expect(Self.refusal(Array(bareCR.utf8)) != nil)
        #expect(try WireFuzzEntry.parseRequests(Array((chunked + "\r\n").utf8)).count == 1, "no trailers: accepted")
        let response = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\ndata\r\n0\r\nx-t: 1\r\n\r\n"
        for size in [Int.max, 1, 5] {
            #expect(try WireFuzzEntry.parseResponses(Array(response.utf8), readSize: size) == [200])
        }
    }

    @Test("a target over 8 KiB is 414; header lines over 64 KiB are 431")
    func sizes() throws {
        let long = String(repeating: "a", count: 8 * 1024)
        #expect(try WireFuzzEntry.parseRequests(Self.request("POST /\(long.dropFirst(1)) HTTP/1.1\r\nHost: a\r\n")).count == 1)
        #expect(Self.refusal(Self.request("POST /\(long) HTTP/1.1\r\nHost: a\r\n"))?.status == 414)
        let big = String(repeating: "b", count: 33 * 1024)
        #expect(Self.refusal(Self.request("POST /lab HTTP/1.1\r\nHost: a\r\nX-1: \(big)\r\nX-2: \(big)\r\n"))?.status == 431)
        // Many small fields count their framing too.
        let many = (0..<10000).map { "x\($0 % 10): v\r\n" }.joined()
        #expect(Self.refusal(Self.request("POST /lab HTTP/1.1\r\nHost: a\r\n" + many))?.status == 431)
    }

    @Test("absolute-form becomes origin-form; dot segments, percent-encoded ones too, are resolved before routing")
    func targets() throws {
        func target(_ t: String) throws -> String? {
            try WireFuzzEntry.parseRequests(Self.request("POST \(t) HTTP/1.1\r\nHost: a\r\n")).first?.target
        }
        #expect(try target("http://x/http-429") == "/http-429")
        #expect(try target("HTTPS://x:443/a/b?q=1") == "/a/b?q=1")
        #expect(try target("http://x?q") == "/?q")
        #expect(try target("/a/../http-429") == "/http-429")
        #expect(try target("/a/%2e%2E/http-429") == "/http-429")
        #expect(try target("/lab/./v1/.%2E/v1/chat/completions") == "/lab/v1/chat/completions")
        #expect(try target("/../../etc") == "/etc")
        #expect(try target("/a/b/..") == "/a/")
        #expect(try target("/a/..b/c?x=/../y") == "/a/..b/c?x=/../y")
        #expect(try target("/lab/v1/chat/completions") == "/lab/v1/chat/completions")
        #expect(Self.refusal(Self.request("POST x/lab HTTP/1.1\r\nHost: a\r\n")) != nil)
        #expect(Self.refusal(Self.request("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n")) != nil)
    }

    @Test("forwarded headers: never framing, hop-by-hop or what Connection names; others as sent")
    func forwarding() throws {
        let bytes = Self.request("POST /lab HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: 5\r\nTE: trailers\r\nTrailer: x\r\nUpgrade: h2c\r\nHTTP2-Settings: AAA\r\nProxy-Connection: x\r\nProxy-Authorization: Basic x\r\nExpect: 100-continue\r\nX-Custom: kept\r\nOpenAI-Organization: org\r\n")
        let request = try #require(try WireFuzzEntry.parseRequests(bytes).first)
        let names = request.forwardedHeaders.map { $0.name.lowercased() }
        #expect(names == ["x-custom", "openai-organization"])
    }

    @Test("upstream heads: status outside 100-599, bad names, two lengths are broken")
    func responses() throws {
        #expect(try WireFuzzEntry.parseResponses(Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8)) == [200])
        #expect(throws: WireFuzzEntry.Refused.self) { try WireFuzzEntry.parseResponses(Array("HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n".utf8)) }
        #expect(throws: WireFuzzEntry.Refused.self) { try WireFuzzEntry.parseResponses(Array("HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n".utf8)) }
        #expect(throws: WireFuzzEntry.Refused.self) { try WireFuzzEntry.parseResponses(Array("HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n".utf8)) }
        #expect(throws: WireFuzzEntry.Refused.self) { try WireFuzzEntry.parseResponses(Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n".utf8)) }
    }

    @Test("random bytes and mutated requests never trap, and refusals carry 400, 414 or 431")
    func noTrap() {
        var rng = SeededGenerator(seed: 10)
        let seeds = [Self.request("POST /lab HTTP/1.1\r\nHost: a\r\nX-A: b\r\n"),
                     Array("POST /lab HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\n\(Self.body)\r\n0\r\n\r\n".utf8)]
        let noise = Array(" \t\r\n:/%.?#\\\"\u{00}\u{7F}".utf8) + [0xFF, 0x80]
        for _ in 0..<3000 {
            var bytes = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes.remove(at: at)
                case 1: bytes.insert(noise[Int.random(in: 0..<noise.count, using: &rng)], at: at)
                default: bytes[at] = noise[Int.random(in: 0..<noise.count, using: &rng)]
                }
            }
            do {
                for request in try WireFuzzEntry.parseRequests(bytes, readSize: Int.random(in: 1...64, using: &rng)) {
                    #expect(request.target.hasPrefix("/") || request.target == "*")
                    for (name, value) in request.forwardedHeaders {
                        #expect(!name.isEmpty && name.utf8.allSatisfy(HeadCheck.isTokenByte))
                        #expect(!value.utf8.contains { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F })
                        #expect(!["content-length", "transfer-encoding", "host", "connection"].contains(name.lowercased()))
                    }
                }
            } catch {
                #expect([400, 414, 431].contains(error.status))
            }
        }
    }
}

/// The body splice: exactly one `model`, the pinned one, whatever the client's spelling.
@Suite("Model splice")
struct ModelSpliceTests {
    /// The decoded top-level keys of a JSON object, in order (a test-side reading: each
    /// key's bytes are decoded by Foundation as a JSON string).
    static func keys(_ bytes: [UInt8]) -> [String]? {
        bytes.withUnsafeBufferPointer { b -> [String]? in
            var keys: [String] = []
            var i = TopLevelJSON.skipSpace(b, 0)
            guard i < b.count, b[i] == UInt8(ascii: "{") else { return nil }
            i += 1
            while true {
                i = TopLevelJSON.skipSpace(b, i)
                guard i < b.count else { return nil }
                if b[i] == UInt8(ascii: "}") { return keys }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                guard let end = TopLevelJSON.stringEnd(b, i) else { return nil }
                guard let key = try? JSONSerialization.jsonObject(with: Data(b[i..<end]), options: .fragmentsAllowed) as? String else { return nil }
                keys.append(key)
                i = TopLevelJSON.skipSpace(b, end)
                guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
                guard let valueEnd = TopLevelJSON.valueEnd(b, TopLevelJSON.skipSpace(b, i + 1)) else { return nil }
                i = valueEnd
            }
        }
    }

    /// `model` as a reader that keeps the last key sees it.
    static func lastModel(_ bytes: [UInt8]) -> Any? {
        guard let keys = keys(bytes), let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return nil }
        return keys.contains("model") ? object["model"] : nil
    }

    /// `model` as Foundation's decoder reads it.
    static func foundationModel(_ bytes: [UInt8]) -> String? {
        struct Peek: Decodable { var model: String? }
        return (try? JSONDecoder().decode(Peek.self, from: Data(bytes)))?.model
    }

    @Test("the issue's body: an escaped second model key is refused, not left for a last-key parser")
    func escapedDuplicate() {
        let body = Array(#"{"model":"","mod\u0065l":"client-chosen","messages":[]}"#.utf8)
        guard case .rejected(let why) = ModelSplice.apply(body, model: "pinned") else {
            Issue.record("accepted")
            return
        }
        #expect(why.contains("2 times"))
        #expect(ModelSplice.apply(Array(#"{"model":"a","model":"b"}"#.utf8), model: "p") != .spliced([]))
        if case .spliced = ModelSplice.apply(Array(#"{"model":"a","model":"b"}"#.utf8), model: "p") { Issue.record("plain duplicate accepted") }
    }

    @Test("one model, however spelled, or none: after the splice every reading gives the pinned model, once")
    func property() throws {
        let bodies = [
            #"{"model":"client","messages":[]}"#,
            #"{"mod\u0065l":"client","messages":[]}"#,
            #"{"\u006d\u006F\u0064\u0065\u006c" : 7 , "x":{"model":"nested"}}"#,
            #"{"messages":[{"model":"in array"}]}"#,
            #"{}"#,
            " {\n} ",
            #"{"model":{"a":[1,2,{"b":"}"}]},"stream":true}"#,
            #"{"model\u0000":"not model","modelx":"no","model":"yes"}"#,
            #"{"m\"odel":"no","model":null}"#,
        ]
        for text in bodies {
            let body = Array(text.utf8)
            guard case .spliced(let out) = ModelSplice.apply(body, model: "pin\"ned é") else {
                Issue.record("refused \(text)")
                continue
            }
            #expect(Self.keys(out)?.filter { $0 == "model" }.count == 1, "\(String(decoding: out, as: UTF8.self))")
            #expect(Self.foundationModel(out) == "pin\"ned é", "\(String(decoding: out, as: UTF8.self))")
            #expect(Self.lastModel(out) as? String == "pin\"ned é")
        }
    }

    @Test("any bytes: refused or spliced, never a trap; spliced valid JSON reads the pinned model both ways")
    func fuzz() {
        var rng = SeededGenerator(seed: 11)
        let pieces = ["{", "}", "[", "]", ",", ":", "\"model\"", "\"mod\\u0065l\"", "\"x\"", "\"\\\"\"", "1", "1e999999", "\"v\"", " ", "\\", "\"", "null", "\u{FF}"]
        for _ in 0..<5000 {
            let text = (0..<Int.random(in: 1...14, using: &rng)).map { _ in pieces[Int.random(in: 0..<pieces.count, using: &rng)] }.joined()
            let body = Array(text.utf8)
            guard case .spliced(let out) = ModelSplice.apply(body, model: "pinned") else { continue }
            // The gateway forwards only bodies Foundation took; for those the property holds.
            guard (try? JSONSerialization.jsonObject(with: Data(body))) is [String: Any] else { continue }
            #expect(Self.foundationModel(out) == "pinned", "\(text)")
            #expect(Self.lastModel(out) as? String == "pinned", "\(text)")
        }
    }

    @Test("the strict reading after Foundation: invalid UTF-8, lone surrogates, 1e999999 fail; pairs and small exponents pass")
    func strict() {
        func failure(_ bytes: [UInt8]) -> Int? { bytes.withUnsafeBufferPointer { RequestScan.strictFailure($0) } }
        #expect(failure(Array(#"{"a":"\ud83d\ude00","b":1e307,"c":-2.5E-300,"d":[{"e":null}],"f":123.5e-2}"#.utf8)) == nil)
        #expect(failure(Array(#"{"a":1e999999}"#.utf8)) != nil)
        #expect(failure(Array(#"{"a":1e309}"#.utf8)) != nil)
        #expect(failure(Array(#"{"a":"\ud83d"}"#.utf8)) != nil)
        #expect(failure(Array(#"{"a":"\ude00x"}"#.utf8)) != nil)
        #expect(failure(Array(#"{"a":""#.utf8) + [0xFF, 0xFE] + Array(#""}"#.utf8)) != nil)
        #expect(failure(Array(#"{"a":""#.utf8) + [0xED, 0xA0, 0x80] + Array(#""}"#.utf8)) != nil)
        #expect(failure(Array(String(repeating: "[", count: 600).utf8) + Array(String(repeating: "]", count: 600).utf8)) != nil)
        // The fast scan leaves huge numbers to this reading rather than passing them.
        #expect(Array(#"{"model":"","t":1e999999}"#.utf8).withUnsafeBufferPointer { RequestScan.peek($0) } == nil)
    }
}

/// A client socket held open across requests: send, read an answer, see the close.
final class HeldSocket: @unchecked Sendable {
    let fd: Int32
    private var pending: [UInt8] = []

    init(port: Int) throws {
        guard let fd = connectLoopback(port: port) else { throw RawClient.Failure(description: "connect to \(port) failed") }
        self.fd = fd
    }

    deinit { close(fd) }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = Glibc.send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL))
    }

    /// Reads until `done` says the text is whole, the peer closes, or `timeout` passes.
    /// Returns the text and whether the peer closed.
    func read(timeout: Duration = .seconds(5), until done: (String) -> Bool = { _ in false }) -> (text: String, closed: Bool) {
        var tv = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            // A close with unread input arrives as a reset: closed all the same.
            if n == 0 || (n < 0 && errno == ECONNRESET) { return (String(decoding: received, as: UTF8.self), true) }
            if n < 0 { return (String(decoding: received, as: UTF8.self), false) }
            received += chunk[0..<n]
            if done(String(decoding: received, as: UTF8.self)) { return (String(decoding: received, as: UTF8.self), false) }
        }
    }

    /// One request and its whole sized answer.
    func exchange(_ request: String) -> String {
        send(request)
        return read { text in
            guard let split = text.range(of: "\r\n\r\n") else { return false }
            let head = text[..<split.lowerBound].lowercased()
            guard let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                  let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) else { return false }
            return text[split.upperBound...].utf8.count >= length
        }.text
    }
}

/// Reads an access-log file's lines.
func accessLogLines(_ path: String) -> [String] {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
}

func temporaryLogPath() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("access-\(UUID().uuidString).log").path
}

extension OverSockets {
    @Suite("Hostile clients and upstreams on the wire", .serialized)
    struct HostileWireTests {
        typealias Wire = WireEndToEndTests
        static let path = "/lab/v1/chat/completions"

        struct Case: Sendable, CustomStringConvertible {
            var name: String
            var bytes: String
            var status: Int
            var says: String
            var description: String { name }
        }

        static let body = #"{"model":"","messages":[]}"#
        static let cases: [Case] = [
            Case(name: "space before the colon", bytes: "POST \(path) HTTP/1.1\r\nHost: gw\r\nContent-Length : 26\r\n\r\n\(body)", status: 400, says: "whitespace before the colon"),
            Case(name: "no Host", bytes: "POST \(path) HTTP/1.1\r\nContent-Length: 26\r\n\r\n\(body)", status: 400, says: "without a Host"),
            Case(name: "two Hosts", bytes: "POST \(path) HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 26\r\n\r\n\(body)", status: 400, says: "2 Host headers"),
            Case(name: "length and chunked", bytes: "POST \(path) HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\n\(body)\r\n0\r\n\r\n", status: 400, says: "malformed HTTP request"),
            Case(name: "two different lengths", bytes: "POST \(path) HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\nContent-Length: 3\r\n\r\n\(body)", status: 400, says: "malformed HTTP request"),
            Case(name: "folded line", bytes: "POST \(path) HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\nContent-Length: 26\r\n\r\n\(body)", status: 400, says: "obs-fold"),
            Case(name: "target over 8 KiB", bytes: "POST \(path)?\(String(repeating: "q", count: 8200)) HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\n\r\n\(body)", status: 414, says: "longer than 8192"),
            Case(name: "head over 64 KiB", bytes: "POST \(path) HTTP/1.1\r\nHost: a\r\nX-Big: \(String(repeating: "b", count: 70_000))\r\nContent-Length: 26\r\n\r\n\(body)", status: 431, says: "larger than 65536"),
            Case(name: "100-continue for a body over the limit", bytes: "POST \(path) HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 9000000\r\n\r\n", status: 413, says: "larger than 8388608"),
            Case(name: "100-continue for a path no route takes", bytes: "POST /nowhere HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 26\r\n\r\n", status: 404, says: "no route matches"),
            Case(name: "model twice, one escaped", bytes: Wire.post(#"{"model":"","mod\u0065l":"client-chosen","messages":[]}"#), status: 400, says: "names \\\"model\\\" 2 times"),
            Case(name: "number out of range", bytes: Wire.post(#"{"model":"","messages":[],"temperature":1e999999}"#), status: 400, says: "not strict JSON"),
            // \u{1} stands for a lone 0xFF byte (a Swift String cannot hold one), put in when sent.
            Case(name: "invalid UTF-8", bytes: Wire.post(#"{"model":"","messages":["\#u{1}"]}"#), status: 400, says: "not strict JSON"),
        ]

        @Test("refused with its status and closed (or answered), logged and counted; nothing upstream; the next request is served", arguments: cases)
        func refused(_ c: Case) async throws {
            let upstream = try await RawUpstream { _ in .init(bytes: Wire.sized()) }
            defer { Task { await upstream.stop() } }
            let log = temporaryLogPath()
            defer { try? FileManager.default.removeItem(atPath: log) }
            let bytes = c.bytes
            let (lab, events) = try await EndToEndTests.start(try loadLab(EndToEndTests.directLab(port: upstream.port)), accessLog: try AccessLogWriter(path: log))
            defer { Task { await lab.stop() } }
            let reply: (text: String, closed: Bool)
            if c.name == "invalid UTF-8" {
                let socket = try HeldSocket(port: lab.gateway.port)
                var raw = Array(bytes.utf8)
                raw[raw.firstIndex(of: 0x01)!] = 0xFF
                _ = raw.withUnsafeBytes { Glibc.send(socket.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                reply = socket.read { $0.contains("}}") }
            } else {
                reply = try await RawClient.exchange(port: lab.gateway.port, send: [bytes]) { $0.contains("\"}}") }
            }
            #expect(reply.text.hasPrefix("HTTP/1.1 \(c.status) "), "\(reply.text.prefix(300))")
            #expect(reply.text.contains(c.says), "\(reply.text.prefix(300))")
            #expect(!reply.text.contains("100 Continue"))
            if [400, 404, 413, 414, 431].contains(c.status) && !c.says.contains("model") && !c.says.contains("strict") {
                #expect(reply.text.lowercased().contains("connection: close"))
            }
            #expect(upstream.requests.withLockedValue { $0.isEmpty })
            #expect(events.requests.map(\.status) == [c.status])
            let lines = accessLogLines(log)
            #expect(lines.count == 1)
            #expect(lines.first?.contains("\"http.status\":\(c.status)") == true)
            let metrics = lab.gateway.runtime.metrics.render(runtime: lab.gateway.runtime)
            #expect(metrics.contains("status=\"\(c.status)\""))
            let next = try await TestClient.post(port: lab.gateway.port, path: Self.path)
            #expect(next.status == 200)
        }

        @Test("absolute-form and dot segments reach the upstream as the plain path; framing and what Connection names are the gateway's own")
        func targetsAndForwarding() async throws {
            let upstream = try await RawUpstream { _ in .init(bytes: Wire.sized()) }
            defer { Task { await upstream.stop() } }
            let (lab, events) = try await Wire.start(upstream: upstream)
            defer { Task { await lab.stop() } }
            let port = lab.gateway.port
            let plain = Wire.post()
            let variants = [
                plain,
                plain.replacingOccurrences(of: "POST /lab/", with: "POST http://evil.example/lab/"),
                plain.replacingOccurrences(of: "POST /lab/", with: "POST /x/../lab/"),
                plain.replacingOccurrences(of: "POST /lab/", with: "POST /x/%2e%2E/lab/./"),
            ]
            for request in variants {
                let reply = try await RawClient.exchange(port: port, send: [request]) { $0.contains(Wire.completion) }
                #expect(reply.text.hasPrefix("HTTP/1.1 200 OK"))
            }
            let seen = upstream.requests.withLockedValue { $0 }
            #expect(seen.count == 4)
            let lines = Set(seen.map { $0.prefix { $0 != "\r" } })
            #expect(lines.count == 1, "\(lines)")
            #expect(events.requests.allSatisfy { $0.path == "/lab/v1/chat/completions" })

            let hop = "POST /lab/v1 HTTP/1.1\r\nHost: gw\r\nConnection: X-Secret\r\nX-Secret: 1\r\nTE: trailers\r\nX-Kept: 2\r\nContent-Length: 26\r\n\r\n" + Self.body
            _ = try await RawClient.exchange(port: port, send: [hop]) { $0.contains(Wire.completion) }
            let last = try #require(upstream.requests.withLockedValue { $0.last }).lowercased()
            #expect(!last.contains("x-secret"))
            #expect(!last.contains("te: trailers"))
            #expect(last.contains("x-kept: 2"))
            #expect(last.components(separatedBy: "content-length:").count == 2)
            #expect(last.components(separatedBy: "\r\nhost:").count == 2)
        }

        @Test("one model key spelled with escapes: upstream gets one model, the pinned one, and the log names it")
        func escapedModel() async throws {
            let upstream = try await RawUpstream { _ in .init(bytes: Wire.sized()) }
            defer { Task { await upstream.stop() } }
            let (lab, events) = try await Wire.start(upstream: upstream)
            defer { Task { await lab.stop() } }
            let reply = try await RawClient.exchange(port: lab.gateway.port, send: [Wire.post(#"{"mod\u0065l":"client-chosen","messages":[]}"#)]) { $0.contains(Wire.completion) }
            #expect(reply.text.hasPrefix("HTTP/1.1 200 OK"))
            let seen = try #require(upstream.requests.withLockedValue { $0.first })
            let body = String(seen[try #require(seen.range(of: "\r\n\r\n")).upperBound...])
            #expect(ModelSpliceTests.keys(Array(body.utf8))?.filter { $0 == "model" }.count == 1)
            #expect(ModelSpliceTests.lastModel(Array(body.utf8)) as? String == "m-override")
            #expect(ModelSpliceTests.foundationModel(Array(body.utf8)) == "m-override")
            #expect(events.requests.first?.requestModel == "m-override")
        }

        @Test("upstream heads another parser could read otherwise (status 999, space before a colon): 502, broken; the next request is served", arguments: [
            "HTTP/1.1 999 Odd\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length : 2\r\n\r\n{}",
        ])
        func badUpstream(_ answer: String) async throws {
            let upstream = try await RawUpstream { n in n == 1 ? .init(bytes: answer, closeAfter: true) : .init(bytes: Wire.sized()) }
            defer { Task { await upstream.stop() } }
            let (lab, events) = try await Wire.start(upstream: upstream)
            defer { Task { await lab.stop() } }
            let r = try await TestClient.post(port: lab.gateway.port, path: Self.path)
            #expect(r.status == 502)
            #expect(r.header("x-failover-attempts") == "direct=broken")
            #expect(events.requests.first?.attempts.first?.failure == "broken")
            let next = try await TestClient.post(port: lab.gateway.port, path: Self.path)
            #expect(next.status == 200)
        }
    }
}
