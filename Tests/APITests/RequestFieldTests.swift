import APICommon
import Foundation
import Hummingbird
import KilnProtos
import ProfileModel
import Query
import SwiftProtobuf
import TestSupport
import Testing

@testable import QueryAPI

/// No request is answered as if part of it had not been asked: fields Kiln does not honour and fields its
/// message types do not define are refused with Connect `unimplemented` (HTTP 400) naming them, and
/// methods it does not serve with `unimplemented` (HTTP 501).
@Suite struct RequestFieldTests {
    typealias Q = QueryAPITests

    static func postProto(_ url: String, _ method: String, _ body: [UInt8]) async throws -> HTTPResult {
        try await post(
            url + "/querier.v1.QuerierService/" + method, body: body,
            headers: [("Content-Type", "application/proto"), ("Connect-Protocol-Version", "1"), ("X-Scope-OrgID", "t1")])
    }

    static func postJSON(_ url: String, _ path: String, _ json: String) async throws -> HTTPResult {
        try await post(url + path, body: Array(json.utf8), headers: [("Content-Type", "application/json"), ("X-Scope-OrgID", "t1")])
    }

    static func connectError(_ result: HTTPResult) -> (code: String, message: String)? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(result.body)) as? [String: Any],
            let code = object["code"] as? String, let message = object["message"] as? String
        else { return nil }
        return (code, message)
    }

    @Test("trace_id_selector is refused, in binary and JSON, never ignored")
    func selectorsNotYetHonouredAreRefused() async throws {
        try await Q().withQueryServer { _, url in
            var traces = Q.stacksRequest()
            traces.traceIDSelector = ["4bf92f3577b34da6a3ce929d0e0e4736"]
            let binary = try await Self.postProto(url, "SelectMergeStacktraces", try traces.serializedBytes())
            #expect(binary.status == 400)
            #expect(Self.connectError(binary)?.code == "unimplemented")
            #expect(Self.connectError(binary)?.message.contains("trace_id_selector") == true, "\(binary.text)")
            let json = try await Self.postJSON(url, "/querier.v1.QuerierService/SelectMergeStacktraces", try traces.jsonString())
            #expect(json.status == 400)
            #expect(Self.connectError(json)?.message.contains("trace_id_selector") == true, "\(json.text)")

            var merge = Querier_V1_SelectMergeProfileRequest()
            merge.profileTypeID = Q.cpu
            merge.traceIDSelector = ["4bf92f3577b34da6a3ce929d0e0e4736"]
            let traced = try await Self.postProto(url, "SelectMergeProfile", try merge.serializedBytes())
            #expect(Self.connectError(traced)?.message.contains("trace_id_selector") == true, "\(traced.text)")

            // The same request without the selector is answered.
            let plain = try await Self.postProto(
                url, "SelectMergeStacktraces", try Q.stacksRequest(#"{service_name="api"}"#).serializedBytes())
            #expect(plain.status == 200)
        }
    }

    @Test("a field nested in a request (a diff side's stack_trace_selector) is refused too")
    func nestedFieldsAreChecked() async throws {
        try await Q().withQueryServer { _, url in
            var diff = Querier_V1_DiffRequest()
            diff.left = Q.stacksRequest()
            diff.right = Q.stacksRequest()
            var location = Types_V1_Location()
            location.name = "main"
            diff.right.stackTraceSelector.callSite = [location]
            let result = try await Self.postProto(url, "Diff", try diff.serializedBytes())
            #expect(result.status == 400)
            #expect(Self.connectError(result)?.message.contains("right.stack_trace_selector") == true, "\(result.text)")
        }
    }

    @Test("fields the message types do not define are refused: binary by field number, JSON by name, nested too")
    func unknownFieldsAreRefused() async throws {
        try await Q().withQueryServer { _, url in
            // Field 42 (varint 1) appended to a valid request.
            let withUnknown = try Q.stacksRequest().serializedBytes() + [0xD0, 0x02, 0x01]
            let binary = try await Self.postProto(url, "SelectMergeStacktraces", withUnknown)
            #expect(binary.status == 400)
            #expect(Self.connectError(binary)?.message.contains("fields 42") == true, "\(binary.text)")

            // stack_trace_selector (7) holding an unknown field 3 (frame_filter in newer Pyroscope).
            var nested: [UInt8] = try Q.stacksRequest().serializedBytes()
            nested += [0x3A, 0x03, 0x1A, 0x01, 0x78]
            let inner = try await Self.postProto(url, "SelectMergeStacktraces", nested)
            #expect(inner.status == 400, "\(inner.text)")
            #expect(Self.connectError(inner)?.message.contains("nested message") == true, "\(inner.text)")

            let json = try await Self.postJSON(url, "/querier.v1.QuerierService/LabelNames", #"{"matchers":["{}"],"frameFilter":{}}"#)
            #expect(json.status == 400)
            #expect(Self.connectError(json)?.message.contains("frameFilter") == true, "\(json.text)")
        }
    }

    @Test("methods Kiln does not serve answer Connect unimplemented, not a bare 404")
    func unknownMethods() async throws {
        try await Q().withQueryServer { _, url in
            for path in ["/vcs.v1.VCSService/GetFile", "/querier.v1.QuerierService/NoSuchMethod"] {
                let result = try await Self.postJSON(url, path, "{}")
                #expect(result.status == 501, "\(path)")
                #expect(Self.connectError(result)?.code == "unimplemented", "\(path): \(result.text)")
            }
            // Served methods still answer.
            #expect(try await Self.postJSON(url, "/querier.v1.QuerierService/ProfileTypes", "{}").status == 200)
        }
    }

    @Test("span exemplars and unknown formats are refused; SelectSeries with and without individual exemplars answers")
    func unservedValues() async throws {
        try await Q().withQueryServer { _, url in
            var series = Querier_V1_SelectSeriesRequest()
            series.profileTypeID = Q.cpu
            series.labelSelector = "{}"
            series.start = Q.startMillis
            series.end = Q.endMillis
            series.step = 15
            series.exemplarType = .none
            #expect(try await Self.postProto(url, "SelectSeries", try series.serializedBytes()).status == 200)
            series.exemplarType = .individual
            #expect(try await Self.postProto(url, "SelectSeries", try series.serializedBytes()).status == 200)
            series.exemplarType = .span
            let refused = try await Self.postProto(url, "SelectSeries", try series.serializedBytes())
            #expect(Self.connectError(refused)?.code == "unimplemented", "\(refused.text)")
            var unknownFormat = Q.stacksRequest()
            unknownFormat.format = .UNRECOGNIZED(99)
            let refusedFormat = try await Self.postProto(url, "SelectMergeStacktraces", try unknownFormat.serializedBytes())
            #expect(Self.connectError(refusedFormat)?.code == "unimplemented", "\(refusedFormat.text)")
        }
    }

    @Test("JSON names become proto names in messages")
    func protoNames() {
        #expect(RequestFields.protoName("spanSelector") == "span_selector")
        #expect(RequestFields.protoName("right.stackTraceSelector.callSite") == "right.stack_trace_selector.call_site")
        #expect(RequestFields.protoName("profileIdSelector") == "profile_id_selector")
    }
}

@Suite struct PprofExportTests {
    @Test("max_nodes keeps the largest stacks and sums the rest into one 'other' sample with the same total")
    func maxStacks() throws {
        var frames = FrameTable()
        func frame(_ name: String, line: Int64) -> Int32 {
            frames.intern(StackFrame(function: .init(name: name, systemName: name, filename: "src/\(name).go", startLine: 1), line: line))
        }
        var tree = StackTree()
        // f0 … f19, each called from two lines of main (so two locations of main, one function).
        for i in 0..<20 { tree.add(rootFirst: [frame("main", line: Int64(10 + i % 2)), frame("f\(i)", line: 3)], value: Int64(i + 1)) }
        let type = try #require(ProfileTypeID(parsing: QueryAPITests.cpu))
        let full = PprofExport.profile(tree, frames: frames, profileType: type, start: 0, end: 1000)
        let cut = PprofExport.profile(tree, frames: frames, profileType: type, start: 0, end: 1000, maxStacks: 5)
        func total(_ p: Google_V1_Profile) -> Int64 { p.sample.reduce(0) { $0 + $1.value[0] } }
        #expect(full.sample.count == 20)
        #expect(full.function.count == 21 && full.location.count == 22, "main is one function at two lines")
        func leaf(_ p: Google_V1_Profile, _ s: Google_V1_Sample) -> (name: String, file: String, line: Int64) {
            let location = p.location.first { $0.id == s.locationID[0] }!
            let function = p.function.first { $0.id == location.line[0].functionID }!
            return (p.stringTable[Int(function.name)], p.stringTable[Int(function.filename)], location.line[0].line)
        }
        #expect(
            full.sample.allSatisfy { s in
                let l = leaf(full, s)
                return l.file == "src/\(l.name).go" && l.line == 3
            })
        #expect(cut.sample.count == 5)
        #expect(total(cut) == total(full))
        #expect(Set(cut.sample.map { leaf(cut, $0).name }) == ["f19", "f18", "f17", "f16", "other"])
        #expect(cut.sample.first { leaf(cut, $0).name == "other" }?.value == [(1...16).reduce(0, +)])
    }
}
