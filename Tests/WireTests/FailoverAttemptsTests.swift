import Testing
import Wire

@Suite struct FailoverAttemptsContract {
    /// Every outcome kind the gateway writes goes through the writer and comes back the same.
    @Test func writerThenReaderRoundTripsEveryOutcomeKind() {
        var outcomes: [FailoverAttempts.Outcome] = FailoverAttempts.Outcome.knownWords
        outcomes += [.status(100), .status(200), .status(429), .status(503), .status(599), .status(999), .other("reset-by-peer")]
        let entries = outcomes.enumerated().map { FailoverAttempts.Entry(provider: "p\($0.offset)-provider", outcome: $0.element) }
        let text = FailoverAttempts.value(entries)
        let parsed = FailoverAttempts.parse(text)
        #expect(parsed.entries == entries)
        #expect(parsed.skipped == 0 && parsed.dropped == 0)
        // The gateway's words, as Exchange writes them (`failure:` strings), map to the known cases.
        for word in ["timeout", "connect", "broken", "error"] {
            let e = FailoverAttempts.parse("openai-provider=\(word)").entries
            #expect(e.count == 1)
            #expect(e.first?.outcome.word == word)
            #expect(e.first?.status == nil)
            if case .other = e.first?.outcome { Issue.record("\(word) read as an unknown word") }
        }
    }

    @Test func theIssueExampleKeepsTheTimedOutTry() {
        let parsed = FailoverAttempts.parse("http-429-provider=429,openai-provider=timeout")
        #expect(parsed.entries == [FailoverAttempts.Entry(provider: "http-429-provider", status: 429),
                                   FailoverAttempts.Entry(provider: "openai-provider", outcome: .timeout)])
        #expect(parsed.entries.map(\.outcome.isSuccess) == [false, false])
    }

    @Test func optionalWhitespaceAndEmptyListElementsAreAccepted() {
        let parsed = FailoverAttempts.parse(" a = 429 ,, b=200 ,")
        #expect(parsed.entries == [.init(provider: "a", status: 429), .init(provider: "b", status: 200)])
        #expect(parsed.skipped == 0)
    }

    @Test(arguments: [
        "", "=", ",,", ",", "=,=", "a=", "=200", "a=2000", "a=99999999999999999999999999", "a=20", "a=-200",
        "a=0200", "a=+200", "a\u{0}b=200", "a=20\u{7}0", "a=Timeout", "a=time out", "a\r\nx: y=200", "a==200",
        "a=\(String(repeating: "x", count: 100))", "\(String(repeating: "n", count: 300))=200", "a=1e3", "a=٢٠٠",
    ])
    func hostileValuesParseWithoutTrapAndKeepNoBadEntry(value: String) {
        let parsed = FailoverAttempts.parse(value)
        #expect(parsed.entries.isEmpty, "\(value.debugDescription) gave \(parsed.entries)")
    }

    @Test func hostileBytesParseWithoutTrap() {
        // Invalid UTF-8 and every byte value: no trap, and names never hold a control byte.
        var bytes: [UInt8] = []
        for b in 0...255 { bytes += [UInt8(b), UInt8(ascii: "="), UInt8(ascii: "2"), UInt8(ascii: "0"), UInt8(ascii: "0"), UInt8(ascii: ",")] }
        let parsed = FailoverAttempts.parse(bytes: bytes)
        for e in parsed.entries {
            #expect(e.provider.utf8.allSatisfy { $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "=") })
        }
        // One part per byte value (the `,` byte's part is `` then `=200`, the empty one not counted).
        #expect(parsed.entries.count + parsed.skipped == 256)
        #expect(parsed.entries.count == 256 - 0x21 - 1 - 1 - 1) // no control/space bytes, DEL, `,` or `=`
    }

    @Test func tenThousandEntriesAreCapped() {
        let value = (0..<10_000).map { "p\($0)=503" }.joined(separator: ",")
        let parsed = FailoverAttempts.parse(value)
        #expect(parsed.entries.count == FailoverAttempts.maxEntries)
        #expect(parsed.dropped == 10_000 - FailoverAttempts.maxEntries)
        #expect(parsed.entries.last == .init(provider: "p\(FailoverAttempts.maxEntries - 1)", status: 503))
    }

    @Test func writerNeverBreaksTheListOrTheHeader() {
        // Names are the config's, but the writer must not emit a second entry, a CR/LF or a bad number.
        let entries: [FailoverAttempts.Entry] = [
            .init(provider: "a,b=c\r\nx-evil: 1", status: 200),
            .init(provider: "", outcome: .status(1000)),
            .init(provider: "w", outcome: .other("Not A Word\r\n")),
        ]
        let text = FailoverAttempts.value(entries)
        #expect(!text.contains("\r") && !text.contains("\n"))
        let parsed = FailoverAttempts.parse(text)
        #expect(parsed.entries.count == 3)
        #expect(parsed.entries[0] == .init(provider: "a_b_c__x-evil:_1", status: 200))
        #expect(parsed.entries[1] == .init(provider: "?", outcome: .error))
        #expect(parsed.entries[2] == .init(provider: "w", outcome: .error))
    }
}

@Suite struct JSONStringContract {
    @Test func escapesWhatRFC8259Requires() {
        #expect(JSONString.quoted("plain é") == "\"plain é\"")
        #expect(JSONString.quoted("a\"b\\c\nd\re\tf\u{1}g\u{1f}") == "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001f\"")
        var bytes: [UInt8] = []
        JSONString.append("x\u{0}y", to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == "\"x\\u0000y\"")
    }

    @Test func stringAndByteWritersAgreeOnEveryByte() {
        var all = ""
        for v in 0..<0x80 { all.unicodeScalars.append(Unicode.Scalar(UInt8(v))) }
        all += "ü€😀"
        var bytes: [UInt8] = []
        JSONString.append(all, to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == JSONString.quoted(all))
    }
}

@Suite struct SSEContract {
    @Test func eventsWrittenAreReadBack() {
        let body = SSE.event(#"{"a":1}"#) + "data:{\"b\":2}\r\n\r\n" + ": comment\n" + "event: x\n" + SSE.event("") + SSE.done
        var payloads: [String] = []
        Array(body.utf8).withUnsafeBufferPointer { buf in
            SSE.forEachData(in: buf) { payloads.append(String(decoding: $0, as: UTF8.self)) }
        }
        #expect(payloads == [#"{"a":1}"#, #"{"b":2}"#, "", "[DONE]"])
    }

    @Test func cutAndHostileBodiesDoNotTrap() {
        for text in ["data", "data:", "data:   ", "\n\n\n", "data: \r", "d\u{0}ata: x", String(repeating: "data: ", count: 10_000)] {
            var count = 0
            Array(text.utf8).withUnsafeBufferPointer { SSE.forEachData(in: $0) { _ in count += 1 } }
            #expect(count <= 1 || text.hasPrefix("data: data"))
        }
    }
}
