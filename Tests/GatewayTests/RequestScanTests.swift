import Foundation
import NIOCore
import Testing
@testable import Gateway

/// Random JSON text from a seeded generator: objects with the keys the gateway reads,
/// nested values, escapes and non-ASCII text.
private struct JSONMaker {
    var rng: SeededGenerator

    static let keys = ["model", "stream", "stream_options", "include_usage", "messages", "temperature", "x", "mod\\u0065l", "é"]
    static let strings = ["", "gpt-4o-mini", "What is 2+2?", "a\\\"b", "tab\\there", "\\u00e9t\\u00e9", "日本語", "emoji 😀", "\\/", "\\ud83d\\ude00"]

    mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &rng)] }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }

    mutating func value(depth: Int) -> String {
        let roll = Int.random(in: 0..<(depth > 3 ? 5 : 8), using: &rng)
        switch roll {
        case 0: return "\"\(pick(Self.strings))\""
        case 1: return pick(["0", "-1", "42", "3.25", "-0.5e10", "1E-3", "12345678901234567890", "6.02e+23"])
        case 2: return pick(["true", "false"])
        case 3: return "null"
        case 4: return "\"\(pick(Self.strings))\""
        case 5, 6: return object(depth: depth + 1)
        default:
            let n = Int.random(in: 0...3, using: &rng)
            return "[" + (0..<n).map { _ in value(depth: depth + 1) }.joined(separator: pick([",", ", ", " ,\n"])) + "]"
        }
    }

    mutating func object(depth: Int) -> String {
        let n = Int.random(in: 0...4, using: &rng)
        let members = (0..<n).map { _ -> String in
            let key = pick(Self.keys)
            let v: String
            switch key {
            case "stream", "include_usage": v = chance(0.7) ? pick(["true", "false"]) : value(depth: depth)
            case "stream_options": v = chance(0.7) ? "{\"include_usage\": \(pick(["true", "false", "1"]))}" : value(depth: depth)
            default: v = value(depth: depth)
            }
            return "\"\(key)\"" + pick([":", " : ", ":\n"]) + v
        }
        return "{" + pick(["", " ", "\n"]) + members.joined(separator: pick([",", ", ", ",\r\n"])) + "}"
    }

    /// Breaks the text in one to three places.
    mutating func mutate(_ bytes: [UInt8]) -> [UInt8] {
        let noise: [UInt8] = Array("{}[],:\"\\ 0123456789eE+-.tfnul".utf8) + [0x00, 0x1F, 0x7F, 0xC3, 0xA9, 0xED, 0xA0, 0x80, 0xFF, 0xF4, 0x90]
        var out = bytes
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            guard !out.isEmpty else { break }
            let at = Int.random(in: 0..<out.count, using: &rng)
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: out.remove(at: at)
            case 1: out.insert(pick(noise), at: at)
            case 2: out[at] = pick(noise)
            default: out.removeLast(Int.random(in: 1...min(3, out.count), using: &rng))
            }
        }
        return out
    }
}

@Suite("Request body scan (the fast path before Foundation)")
struct RequestScanTests {
    static func scan(_ bytes: [UInt8]) -> Exchange.RequestPeek? {
        bytes.withUnsafeBufferPointer { RequestScan.peek($0) }
    }

    static func foundation(_ bytes: [UInt8]) -> Exchange.RequestPeek? {
        try? JSONDecoder().decode(Exchange.RequestPeek.self, from: Data(bytes))
    }

    static func same(_ a: Exchange.RequestPeek, _ b: Exchange.RequestPeek) -> Bool {
        a.model == b.model && a.hasModel == b.hasModel && a.stream == b.stream && a.includeUsage == b.includeUsage && a.hasStreamOptions == b.hasStreamOptions
    }

    @Test("the lab's body: model present and empty, no stream")
    func seedBody() throws {
        let peek = try #require(Self.scan(Array(#"{"model": "", "messages": [{"role": "user", "content": "What is 2+2?"}]}"#.utf8)))
        #expect(peek.hasModel && peek.model == "")
        #expect(peek.stream == nil && peek.includeUsage == nil)
        let streamed = try #require(Self.scan(Array(#"{"stream":true,"stream_options":{"include_usage":false},"model":"m"}"#.utf8)))
        #expect(streamed.stream == true && streamed.includeUsage == false && streamed.model == "m")
    }

    @Test("not JSON, or not decided here: nil, so Foundation answers", arguments: [
        #"{"model": 01}"#, #"{"a":1,}"#, #"{"a" 1}"#, #"{"a":1} x"#, #"{"a":tru}"#, #"{"a":"\x"}"#,
        #"{"a":"\ud800"}"#, "{\"a\":\"\u{01}\"}", #"{"a":1.}"#, #"{"a":-}"#, #"{"a":1e}"#, #"[1]"#, #""model""#, "",
        #"{"mod\u0065l":"m"}"#, #"{"model":"a\"b"}"#, #"{"a":[1,]}"#, #"{"a":{"b"}}"#,
    ])
    func notDecided(_ text: String) {
        #expect(Self.scan(Array(text.utf8)) == nil)
    }

    @Test("bytes that are not UTF-8 are not decided here", arguments: [[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC0, 0x80], [0xE0, 0x80, 0x80]] as [[UInt8]])
    func badUTF8(_ sequence: [UInt8]) {
        #expect(Self.scan(Array(#"{"a":""#.utf8) + sequence + Array(#""}"#.utf8)) == nil)
        #expect(Self.scan(Array(#"{"a":"é😀"}"#.utf8)) != nil)
    }

    @Test("never answers where Foundation would not, nor differently: 40,000 generated and broken bodies")
    func agreesWithFoundation() {
        var maker = JSONMaker(rng: SeededGenerator(seed: 20261127))
        var decided = 0, validGenerated = 0, decidedValid = 0
        for n in 0..<40_000 {
            let text = Array(maker.object(depth: 0).utf8)
            let body = n % 2 == 0 ? text : maker.mutate(text)
            let ours = Self.scan(body)
            let theirs = Self.foundation(body)
            if n % 2 == 0, theirs != nil {
                validGenerated += 1
                if ours != nil { decidedValid += 1 }
            }
            guard let ours else { continue }
            decided += 1
            guard let theirs else {
                Issue.record("decided a body Foundation refuses: \(String(decoding: body, as: UTF8.self))")
                return
            }
            if !Self.same(ours, theirs) {
                Issue.record("differs from Foundation on \(String(decoding: body, as: UTF8.self)): \(ours) vs \(theirs)")
                return
            }
            // Where the scan found `model` splices the same as looking for it again.
            let quoted = Array(#""m-override""#.utf8)
            let known = Exchange.splice(quoted: quoted, into: ByteBuffer(bytes: body), hasModel: ours.hasModel, place: ours.modelPlace, allocator: ByteBufferAllocator())
            let found = Exchange.splice(quoted: quoted, into: ByteBuffer(bytes: body), hasModel: ours.hasModel, allocator: ByteBufferAllocator())
            if known != found {
                Issue.record("splice at the scanned place differs on \(String(decoding: body, as: UTF8.self))")
                return
            }
        }
        // The fast path must carry most valid bodies, or it is not a fast path.
        #expect(Double(decidedValid) > 0.6 * Double(validGenerated), "decided \(decidedValid) of \(validGenerated) valid bodies")
        #expect(decided > 10_000)
    }
}
