import Foundation
import NIOCore
import Testing
@testable import Gateway

@Suite("Model override in the request bytes")
struct BodyEditTests {
    func splice(_ json: String, model: String = "gpt-4o-mini") throws -> [String: Any] {
        let hasModel = ((try JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any])?["model"] != nil
        let out = try #require(Exchange.splice(model: model, into: ByteBuffer(string: json), hasModel: hasModel, allocator: ByteBufferAllocator()))
        return try #require((try JSONSerialization.jsonObject(with: Data(out.readableBytesView))) as? [String: Any], "\(String(buffer: out))")
    }

    @Test("replaces the top-level model wherever it is, and nothing nested", arguments: [
        #"{"model": "", "messages": [{"role": "user", "content": "What is 2+2?"}]}"#,
        #"{"messages":[{"role":"user","content":"{\"model\": \"x\"}","model":"nested"}],"model":null}"#,
        #"{ "stream" : false , "model" : "client-model" }"#,
        #"{"metadata":{"model":"keep"},"model":123,"n":1}"#,
        #"{"messages":[],"temperature":0.5,"model":"a\"b\\c"}"#,
    ])
    func replaces(json: String) throws {
        let object = try splice(json)
        #expect(object["model"] as? String == "gpt-4o-mini")
        let original = try #require((try JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any])
        #expect(Set(object.keys) == Set(original.keys))
        if let metadata = object["metadata"] as? [String: Any] { #expect(metadata["model"] as? String == "keep") }
        if let messages = object["messages"] as? [[String: Any]], let first = messages.first {
            #expect(first["model"] as? String == (original["messages"] as? [[String: Any]])?.first?["model"] as? String)
            #expect(first["content"] as? String == (original["messages"] as? [[String: Any]])?.first?["content"] as? String)
        }
    }

    @Test("adds the model when the request has none")
    func adds() throws {
        #expect(try splice(#"{"messages":[]}"#)["model"] as? String == "gpt-4o-mini")
        #expect(try splice(#"{ }"#)["model"] as? String == "gpt-4o-mini")
        #expect(try splice(#"{"messages":[]}"#, model: "we\"ird\n")["model"] as? String == "we\"ird\n")
    }

    @Test("an escaped model key is found (keys compared unescaped) and its value replaced; two model keys are not spliced")
    func escapedKey() throws {
        let json = #"{"\u006dodel":"x","messages":[]}"#
        let out = try #require(Exchange.splice(model: "m", into: ByteBuffer(string: json), hasModel: true, allocator: ByteBufferAllocator()))
        #expect(String(buffer: out) == #"{"\u006dodel":"m","messages":[]}"#)
        #expect(Exchange.splice(model: "m", into: ByteBuffer(string: #"{"\u006dodel":"x","model":"y"}"#), hasModel: true, allocator: ByteBufferAllocator()) == nil)
    }

    @Test("usage and model are read from a completion without decoding it all")
    func usage() {
        let body = #"{"id":"c","choices":[{"message":{"content":"{\"usage\":1}"}}],"model":"gpt-4o-mini","usage":{"prompt_tokens":14,"completion_tokens":8,"total_tokens":22}}"#
        let u = UsageReader.read(Array(body.utf8))
        #expect(u.model == "gpt-4o-mini")
        #expect(u.inputTokens == 14)
        #expect(u.outputTokens == 8)
        let escaped = UsageReader.read(Array(#"{"model":"gpt\u002d4o","usage":{"prompt_tokens":1,"completion_tokens":2}}"#.utf8))
        #expect(escaped.model == "gpt-4o")
        #expect(escaped.outputTokens == 2)
    }

    @Test("JSON lines escape what RFC 8259 requires and keep UTF-8")
    func jsonLine() throws {
        var line = JSONLine()
        line.add("a", "quote\" back\\ nl\n tab\t bell\u{7} é 日本")
        line.add("n", 3)
        let text = line.finish()
        #expect(text == #"{"a":"quote\" back\\ nl\n tab\t bell\u0007 é 日本","n":3}"#)
        let object = try #require((try JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any])
        #expect(object["a"] as? String == "quote\" back\\ nl\n tab\t bell\u{7} é 日本")
        #expect(RequestLog.timestamp(Date(timeIntervalSince1970: 1_800_000_000.042)) == "2027-01-15T08:00:00.042Z")
    }
}
