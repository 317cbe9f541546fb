import Foundation
import SandboxVCR
import Testing

@testable import SandboxVCRServer

/// FastAPI's and pydantic's validation, reproduced without a server.
@Suite("Request validation like FastAPI and pydantic")
struct RequestValidationTests {
    /// Python's `json.loads` messages and positions (checked against CPython 3.11).
    @Test(
        arguments: [(String, String, Int)]([
            (#"{"a":1,}"#, "Expecting property name enclosed in double quotes", 7),
            ("[1,]", "Expecting value", 3),
            (#"{"a" 1}"#, "Expecting ':' delimiter", 5),
            (#""abc"#, "Unterminated string starting at", 0),
            (#"{"a":1} x"#, "Extra data", 8),
            ("   ", "Expecting value", 3),
            ("{", "Expecting property name enclosed in double quotes", 1),
            ("[", "Expecting value", 1),
            (#"{"a":tru}"#, "Expecting value", 5),
            ("\"a\u{01}\"", "Invalid control character at", 2),
            (#""\q""#, #"Invalid \escape"#, 1),
            (#""\u12""#, #"Invalid \uXXXX escape"#, 2),
            (#"{"é": 1 2}"#, "Expecting ',' delimiter", 8),
            ("1.", "Extra data", 1),
            ("-", "Expecting value", 0),
        ]))
    func jsonErrorsLikePython(text: String, message: String, position: Int) {
        #expect(throws: PythonJSONParser.DecodeError(message: message, position: position)) {
            try PythonJSONParser.parse(Array(text.utf8))
        }
    }

    /// Base64 file contents lose the characters `base64.b64decode` skips (line breaks, spaces), wherever they are.
    @Test func lenientBase64Files() {
        let long = String(repeating: "QUJD", count: 1000)
        for (content, expected) in [
            ("aGVs\nbG8=", "aGVsbG8="), (long, long), (long + "\n", long), ("\r\n" + long, long),
            (String(long.prefix(13)) + " " + long.dropFirst(13), long), ("", ""),
        ] {
            let body = SandboxFusionWire.RunCodeBody(
                code: "print(1)", language: "python", files: ["a": content, "b": nil, "c": "QUJD"])
            let lenient = SandboxFusionResponder.withLenientBase64Files(body)
            #expect(lenient.files?["a"] == .some(expected))
            #expect(lenient.files?["b"] == .some(nil))
            #expect(lenient.files?["c"] == .some("QUJD"))
        }
    }

    @Test func pythonOnlyLiteralsAndKeyOrder() throws {
        let value = try #require(
            try PythonJSONParser.parse(Array(#"{"b": NaN, "a": [Infinity, -Infinity, -0, 1e2], "b": 2}"#.utf8)))
        #expect(value.pythonJSONText == #"{"b":2,"a":[Infinity,-Infinity,0,100.0]}"#)
    }

    @Test func surrogatePairsAndEscapes() throws {
        let value = try #require(try PythonJSONParser.parse(Array(#""\ud83d\ude00\n\u00e9\/""#.utf8)))
        #expect(value == .string("😀\né/"))
        #expect(value.pythonJSONText == "\"😀\\né/\"")
        #expect(JSONValue.string("\u{1b}[0m\u{7f}").pythonJSONText == "\"\\u001b[0m\u{7f}\"")
    }

    @Test func invalidUTF8IsABadRequest() {
        #expect(throws: SandboxFusionRequestValidator.Rejection.self) {
            try SandboxFusionRequestValidator.runCodeBody([0x7B, 0xFF, 0x7D], contentType: "application/json")
        }
        do {
            _ = try SandboxFusionRequestValidator.runCodeBody([0x7B, 0xFF, 0x7D], contentType: "application/json")
        } catch {
            #expect(error.status == 400)
        }
    }

    private func issues(_ body: String, contentType: String? = "application/json") -> JSONValue? {
        do {
            _ = try SandboxFusionRequestValidator.runCodeBody(Array(body.utf8), contentType: contentType)
            return nil
        } catch {
            return error.body["detail"]
        }
    }

    @Test func everyFieldTypeIsCheckedInDeclarationOrder() throws {
        let detail = try #require(
            issues(
                #"{"language": 3, "code": 5, "stdin": 1, "memory_limit_MB": 1.5, "run_timeout": null, "#
                    + #""compile_timeout": [], "files": {"a": 1, "b": null}, "fetch_files": ["x", 2]}"#))
        guard case .array(let items) = detail else { Issue.record("no detail list"); return }
        let summary = items.map { item in
            "\(item["type"]?.stringValue ?? "") \(item["loc"]?.pythonJSONText ?? "")"
        }
        #expect(
            summary == [
                #"float_type ["body","compile_timeout"]"#, #"float_type ["body","run_timeout"]"#,
                #"int_from_float ["body","memory_limit_MB"]"#, #"string_type ["body","code"]"#,
                #"string_type ["body","stdin"]"#, #"literal_error ["body","language"]"#,
                #"string_type ["body","files","a"]"#, #"string_type ["body","fetch_files",1]"#,
            ])
        #expect(items[3]["msg"] == "Input should be a valid string")
        #expect(items[2]["msg"] == "Input should be a valid integer, got a number with a fractional part")
        #expect(items[2]["input"] == .float(1.5))
    }

    @Test func laxConversionsAreAccepted() throws {
        let body = try SandboxFusionRequestValidator.runCodeBody(
            Array(
                #"{"code": "x", "language": "python", "run_timeout": "2.5", "compile_timeout": true, "#
                    .utf8) + Array(#""memory_limit_MB": "128", "stdin": null, "files": {"a": null}}"#.utf8),
            contentType: nil)
        #expect(body.run_timeout == 2.5)
        #expect(body.compile_timeout == 1)
        #expect(body.memory_limit_MB == 128)
        #expect(body.stdin == nil)
        #expect(body.files?["a"] == .some(nil))
    }

    @Test func missingFieldsEchoTheWholeBody() throws {
        let detail = try #require(issues("{}"))
        #expect(
            detail.pythonJSONText
                == #"[{"type":"missing","loc":["body","code"],"msg":"Field required","input":{},"#
                + #""url":"https://errors.pydantic.dev/2.6/v/missing"},{"type":"missing","loc":["body","language"],"#
                + #""msg":"Field required","input":{},"url":"https://errors.pydantic.dev/2.6/v/missing"}]"#)
    }

    @Test func nonObjectBodiesAndContentTypes() throws {
        #expect(issues("[1]")?.pythonJSONText.contains("model_attributes_type") == true)
        #expect(issues("null")?.pythonJSONText.contains(#""loc":["body"],"msg":"Field required""#) == true)
        #expect(issues(#"{"code":"x","language":"python"}"#, contentType: "application/vnd.api+json") == nil)
        #expect(issues(#"{"code":"x","language":"python"}"#, contentType: "Application/JSON; charset=utf-8") == nil)
        #expect(
            issues(#"{"code":"x","language":"python"}"#, contentType: "text/json")?.pythonJSONText
                .contains("model_attributes_type") == true)
    }

    @Test func jupyterValidation() throws {
        #expect(throws: SandboxFusionRequestValidator.Rejection.self) {
            try SandboxFusionRequestValidator.runJupyterBody(Array(#"{"kernel": "python2"}"#.utf8), contentType: nil)
        }
        let object = try SandboxFusionRequestValidator.runJupyterBody(
            Array(#"{"cells": ["1"]}"#.utf8), contentType: nil)
        #expect(object["cells"] == ["1"])
    }
}
