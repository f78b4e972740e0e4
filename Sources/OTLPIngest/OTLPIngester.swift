import APICommon
import Foundation
import IngestAPI
import KilnFoundation
import Metrics
import SwiftProtobuf

/// OTLP profile export requests, whatever carried them (HTTP or gRPC): decoded and mapped off the
/// cooperative pool, then admitted and published by the same `PushIngester` as pushes, so an answer of
/// success means Kafka holds every accepted profile.
public final class OTLPIngester: Sendable {
    public let ingester: PushIngester
    public let limits: OTLPLimits

    public init(ingester: PushIngester, limits: OTLPLimits = OTLPLimits()) {
        self.ingester = ingester
        self.limits = limits
    }

    /// The endpoint's profile counters at zero, once its transport is served.
    static func zeroCounters(endpoint: String) {
        for label in ["kiln_otlp_profiles_accepted_total", "kiln_otlp_profiles_rejected_total"] {
            EventCounters.zero(label, key: endpoint, [[("endpoint", endpoint)]])
        }
    }

    /// The largest request body either transport takes, compressed or not.
    public var maxRequestBytes: Int { min(limits.maxRequestBytes, ingester.options.maxBodyBytes) }

    public enum Encoding: Sendable {
        case protobuf
        case json
    }

    /// Decodes, maps and stores one request; the answer names the profiles it rejected.
    public func export(_ body: [UInt8], encoding: Encoding, tenant: String, endpoint: String) async throws(APIError) -> OTLPExportResponse {
        let options = ingester.options.forTenant(tenant)
        let limits = self.limits
        let conversion = try await BlockingWork.shared.run(bytes: body.count) { () throws(APIError) -> OTLPConversion in
            let bytes = try Self.protobufBytes(body, encoding: encoding)
            return try OTLPProfilesDecoder.convert(bytes, tenant: tenant, now: Date(), options: options, limits: limits)
        }
        if conversion.rejectedProfiles > 0 {
            Counter(label: "kiln_otlp_profiles_rejected_total", dimensions: [("endpoint", endpoint)]).increment(
                by: conversion.rejectedProfiles)
        }
        if conversion.acceptedProfiles == 0, let problem = conversion.firstProblem {
            throw APIError(.invalidArgument, "every profile was rejected; the first: \(problem)")
        }
        if !conversion.envelopes.isEmpty {
            try await ingester.submit(conversion.envelopes, tenant: tenant, endpoint: endpoint)
        }
        Counter(label: "kiln_otlp_profiles_accepted_total", dimensions: [("endpoint", endpoint)]).increment(by: conversion.acceptedProfiles)
        var response = OTLPExportResponse()
        if conversion.rejectedProfiles > 0 {
            response.partialSuccess.rejectedProfiles = Int64(conversion.rejectedProfiles)
            response.partialSuccess.errorMessage = conversion.firstProblem ?? ""
        }
        return response
    }

    /// A request body as protobuf bytes: as it is, or read from OTLP/JSON (hex IDs) and written as protobuf.
    public static func protobufBytes(_ body: [UInt8], encoding: Encoding) throws(APIError) -> [UInt8] {
        guard encoding == .json else { return body }
        let request: OTLPExportRequest
        do {
            request = try OTLPExportRequest(jsonUTF8Bytes: try OTLPJSON.hexIDsAsBase64(body))
        } catch let error as APIError {
            throw error
        } catch JSONDecodingError.unknownField(let name) {
            throw APIError(
                .unsupportedField,
                "ExportProfilesServiceRequest field \"\(name)\" is not known to Kiln (OTLP profiles 1.10), so it cannot be honoured")
        } catch {
            throw APIError(.invalidArgument, "cannot decode ExportProfilesServiceRequest (JSON): \(error)")
        }
        do {
            return try request.serializedBytes()
        } catch {
            throw APIError(.invalidArgument, "cannot re-encode the JSON request: \(error)")
        }
    }
}

/// OTLP/JSON writes trace, span and profile IDs as hexadecimal where protobuf's JSON mapping has base64;
/// this rewrites them so the generated JSON decoder reads them. An ID that is not hex of its length is left
/// as it is (a base64 one then decodes as usual).
enum OTLPJSON {
    static func hexIDsAsBase64(_ body: [UInt8]) throws(APIError) -> [UInt8] {
        guard !body.isEmpty else { return Array("{}".utf8) }
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: Data(body))
        } catch {
            throw APIError(.invalidArgument, "the request body is not JSON: \(error.localizedDescription)")
        }
        guard var request = root as? [String: Any] else { throw APIError(.invalidArgument, "the request body is not a JSON object") }
        var changed = false
        func rewrite(_ object: inout [String: Any], _ keys: [String], bytes: Int) {
            for key in keys {
                if let text = object[key] as? String, text.utf8.count == bytes * 2, let decoded = Hex.bytes(text) {
                    object[key] = Data(decoded).base64EncodedString()
                    changed = true
                }
            }
        }
        if var dictionary = request["dictionary"] as? [String: Any] {
            for tableKey in ["linkTable", "link_table"] {
                guard let table = dictionary[tableKey] as? [Any] else { continue }
                dictionary[tableKey] = table.map { entry -> Any in
                    guard var link = entry as? [String: Any] else { return entry }
                    rewrite(&link, ["traceId", "trace_id"], bytes: 16)
                    rewrite(&link, ["spanId", "span_id"], bytes: 8)
                    return link
                }
            }
            request["dictionary"] = dictionary
        }
        for resourceKey in ["resourceProfiles", "resource_profiles"] {
            guard let resources = request[resourceKey] as? [Any] else { continue }
            request[resourceKey] = resources.map { resource -> Any in
                guard var resource = resource as? [String: Any] else { return resource }
                for scopeKey in ["scopeProfiles", "scope_profiles"] {
                    guard let scopes = resource[scopeKey] as? [Any] else { continue }
                    resource[scopeKey] = scopes.map { scope -> Any in
                        guard var scope = scope as? [String: Any], let profiles = scope["profiles"] as? [Any] else { return scope }
                        scope["profiles"] = profiles.map { profile -> Any in
                            guard var profile = profile as? [String: Any] else { return profile }
                            rewrite(&profile, ["profileId", "profile_id"], bytes: 16)
                            return profile
                        }
                        return scope
                    }
                }
                return resource
            }
        }
        guard changed else { return body }
        do {
            return Array(try JSONSerialization.data(withJSONObject: request))
        } catch {
            throw APIError(.invalidArgument, "re-encoding the JSON request failed: \(error.localizedDescription)")
        }
    }
}
