import AsyncHTTPClient
import Crypto
import FerryCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The few S3 calls the blob store makes, signed with SigV4 and sent with async-http-client:
/// PUT with the payload's SHA-256 declared (the store refuses bytes that do not match it),
/// ranged GET, HEAD, ListObjectsV2, DeleteObjects and multipart uploads. Nothing here blocks
/// a thread; every call is one request (or one per part).
public final class S3Client: Sendable {
    public let location: S3Location
    let signer: SigV4Signer
    let http: HTTPClient
    /// Longest a single request may take, body included.
    let timeout: TimeAmount

    /// One connection pool for every bucket of the process, like `HTTPClient.shared` but
    /// with no redirects followed (a signed request is for one host) and bounded waits. It
    /// lives as long as the process.
    public static let sharedHTTP: HTTPClient = {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10), read: .seconds(60)))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 32)
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }()

    public init(location: S3Location, credentials: SigV4Signer.Credentials, http: HTTPClient, timeout: TimeAmount = .seconds(120)) {
        self.location = location
        self.signer = SigV4Signer(credentials: credentials, region: location.region)
        self.http = http
        self.timeout = timeout
    }

    /// One object of a listing.
    public struct Object: Sendable, Equatable {
        public let key: String
        public let size: Int64
        public let lastModified: Date?
    }

    /// A refusal or failure of the store, with S3's error code when it sent one.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let status: Int
        public let code: String?
        public let message: String
        public var description: String { "S3 answered \(status)\(code.map { " \($0)" } ?? ""): \(message)" }
    }

    // MARK: Objects

    /// Stores `body` under `key`, declaring its SHA-256 (signed, as `x-amz-content-sha256`)
    /// and its MD5 (`Content-MD5`): a store recomputes them and refuses a mismatch, so bytes
    /// damaged in transit never land. AWS checks both; SeaweedFS checks the MD5 only.
    public func put(key: String, body: ByteBuffer, sha256: ContentHash) async throws {
        try await put(key: key, body: body, sha256: sha256, md5: Self.md5(body))
    }

    /// `put` with the MD5 given: taken with the SHA-256 by the blob store (`S3BlobStore.place`),
    /// or, in tests, one that no longer matches the bytes, as when they change on the way.
    func put(key: String, body: ByteBuffer, sha256: ContentHash, md5: String) async throws {
        _ = try await send("PUT", key: key, headers: [("content-md5", md5)], body: body, payloadHash: sha256.hex, expect: [200])
    }

    /// The base64 MD5 of `body`, as `Content-MD5` carries it.
    static func md5(_ body: ByteBuffer) -> String {
        body.withUnsafeReadableBytes { Data(Insecure.MD5.hash(data: $0)).base64EncodedString() }
    }

    /// The bytes of `key` in `range` (all of it, at most `upTo` bytes, when nil); nil when
    /// there is no such object.
    public func get(key: String, range: Range<Int64>? = nil, upTo: Int = 2 * FerryProtocol.maxChunkSize) async throws -> ByteBuffer? {
        var headers: [(String, String)] = []
        if let range { headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")) }
        let limit = range.map { Int($0.count) } ?? upTo
        let response = try await send("GET", key: key, headers: headers, expect: [200, 206, 404], collect: limit)
        guard response.status != 404 else { return nil }
        if let range, response.body.readableBytes != range.count {
            throw Failure(status: response.status, code: nil, message: "asked for \(range.count) bytes of \(key), got \(response.body.readableBytes)")
        }
        return response.body
    }

    /// The size of `key`, or nil when there is no such object.
    public func head(key: String) async throws -> Int64? {
        let response = try await send("HEAD", key: key, expect: [200, 404])
        guard response.status != 404 else { return nil }
        return response.headers.first(name: "content-length").flatMap(Int64.init)
    }

    /// One page of the keys under `prefix`, after `continuation`; the next token when more follow.
    public func list(prefix: String, continuation: String?, maxKeys: Int = 1000) async throws -> (objects: [Object], next: String?) {
        var query = [("list-type", "2"), ("prefix", prefix), ("max-keys", String(maxKeys))]
        if let continuation { query.append(("continuation-token", continuation)) }
        let response = try await send("GET", key: "", query: query, expect: [200], collect: 16 << 20)
        let xml = String(buffer: response.body)
        let objects = try S3XML.elements("Contents", in: xml).map { entry in
            guard let key = S3XML.value("Key", in: entry), let size = S3XML.value("Size", in: entry).flatMap(Int64.init) else {
                throw Failure(status: 200, code: nil, message: "a listing entry without Key or Size")
            }
            return Object(key: key, size: size, lastModified: S3XML.value("LastModified", in: entry).flatMap(S3XML.date))
        }
        let truncated = S3XML.value("IsTruncated", in: xml) == "true"
        let next = S3XML.value("NextContinuationToken", in: xml)
        if truncated && next == nil { throw Failure(status: 200, code: nil, message: "a truncated listing without a continuation token") }
        return (objects, truncated ? next : nil)
    }

    /// Deletes up to 1,000 keys in one request; a key that is already gone is no error.
    /// Throws when the store reports any key it could not delete.
    public func delete(keys: [String]) async throws {
        precondition(keys.count <= 1000, "DeleteObjects takes at most 1,000 keys")
        guard !keys.isEmpty else { return }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>true</Quiet>"
        for key in keys { xml += "<Object><Key>\(S3XML.escape(key))</Key></Object>" }
        xml += "</Delete>"
        let body = ByteBuffer(string: xml)
        let response = try await send("POST", key: "", query: [("delete", "")], headers: [("content-md5", Self.md5(body)), ("content-type", "application/xml")],
                                      body: body, payloadHash: ContentHash.of(body.readableBytesView).hex, expect: [200], collect: 1 << 20)
        let failed = S3XML.elements("Error", in: String(buffer: response.body))
        if let first = failed.first {
            throw Failure(status: 200, code: S3XML.value("Code", in: first),
                          message: "\(failed.count) of \(keys.count) keys were not deleted, first \(S3XML.value("Key", in: first) ?? "?"): \(S3XML.value("Message", in: first) ?? "")")
        }
    }

    // MARK: Multipart

    /// Stores `body` under `key` in parts of `partSize` bytes (the last may be shorter), each
    /// part's SHA-256 declared and checked; aborted on any failure so no parts linger.
    public func putMultipart(key: String, body: ByteBuffer, partSize: Int) async throws {
        precondition(partSize > 0)
        let created = try await send("POST", key: key, query: [("uploads", "")], expect: [200], collect: 1 << 16)
        guard let uploadId = S3XML.value("UploadId", in: String(buffer: created.body)) else {
            throw Failure(status: created.status, code: nil, message: "CreateMultipartUpload answered no UploadId")
        }
        do {
            var parts: [(number: Int, etag: String)] = []
            var rest = body
            while rest.readableBytes > 0 || parts.isEmpty {
                let part = rest.readSlice(length: min(partSize, rest.readableBytes))!
                let number = parts.count + 1
                let hash = part.withUnsafeReadableBytes { ContentHash.of($0) }
                let answer = try await send("PUT", key: key, query: [("partNumber", String(number)), ("uploadId", uploadId)], body: part,
                                            payloadHash: hash.hex, expect: [200])
                guard let etag = answer.headers.first(name: "etag") else { throw Failure(status: answer.status, code: nil, message: "UploadPart answered no ETag") }
                parts.append((number, etag))
            }
            var xml = "<CompleteMultipartUpload>"
            for part in parts { xml += "<Part><PartNumber>\(part.number)</PartNumber><ETag>\(S3XML.escape(part.etag))</ETag></Part>" }
            xml += "</CompleteMultipartUpload>"
            let done = try await send("POST", key: key, query: [("uploadId", uploadId)], headers: [("content-type", "application/xml")],
                                      body: ByteBuffer(string: xml), payloadHash: ContentHash.of(xml.utf8).hex, expect: [200], collect: 1 << 16)
            // S3 may answer 200 and put the error in the body.
            let answer = String(buffer: done.body)
            if answer.contains("<Error>") {
                throw Failure(status: 200, code: S3XML.value("Code", in: answer), message: S3XML.value("Message", in: answer) ?? "CompleteMultipartUpload failed")
            }
        } catch {
            _ = try? await send("DELETE", key: key, query: [("uploadId", uploadId)], expect: [204, 200, 404])
            throw error
        }
    }

    // MARK: Buckets

    /// Creates the bucket; one that exists and is ours already is fine.
    public func createBucket() async throws {
        let response = try await send("PUT", key: "", expect: [200, 409], collect: 1 << 16)
        if response.status == 409 {
            let code = S3XML.value("Code", in: String(buffer: response.body))
            guard code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" else {
                throw Failure(status: 409, code: code, message: "could not create bucket \(location.bucket)")
            }
        }
    }

    /// Deletes every object under the location's prefix, then the bucket itself; a bucket
    /// that is gone already is fine. For benchmarks and tests that made their own bucket.
    public func deleteBucket() async throws {
        do {
            while true {
                let (objects, _) = try await list(prefix: location.prefix, continuation: nil)
                guard !objects.isEmpty else { break }
                try await delete(keys: objects.map(\.key))
            }
        } catch let failure as Failure where failure.status == 404 {
            return
        }
        _ = try await send("DELETE", key: "", expect: [200, 204, 404])
    }

    // MARK: Requests

    struct Answer {
        let status: Int
        let headers: HTTPHeaders
        let body: ByteBuffer
    }

    /// Signs and sends one request; a status outside `expect` throws with S3's error code.
    /// `collect` bounds the body read back (0: none is read).
    func send(_ method: String, key: String, query: [(String, String)] = [], headers extra: [(String, String)] = [], body: ByteBuffer? = nil,
              payloadHash: String = SigV4Signer.emptyPayloadHash, expect: Set<Int>, collect: Int = 0) async throws -> Answer {
        let (url, host, path) = location.target(key: key)
        var headers = extra + [("host", host), ("x-amz-content-sha256", payloadHash)]
        headers += signer.sign(method: method, path: path, query: query, headers: headers, payloadHash: payloadHash, date: Date())
        let queryString = query.map { "\(SigV4Signer.uriEncode($0.0, keepSlash: false))=\(SigV4Signer.uriEncode($0.1, keepSlash: false))" }
            .joined(separator: "&")
        var request = HTTPClientRequest(url: queryString.isEmpty ? url : url + "?" + queryString)
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in headers where name != "host" { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "content-length", value: String(body.readableBytes))
            request.body = .bytes(body)
        } else if method == "PUT" || method == "POST" {
            request.headers.add(name: "content-length", value: "0")
        }
        let response = try await http.execute(request, timeout: timeout)
        let status = Int(response.status.code)
        guard expect.contains(status) else {
            let text = String(buffer: (try? await response.body.collect(upTo: 1 << 16)) ?? ByteBuffer())
            throw Failure(status: status, code: S3XML.value("Code", in: text),
                          message: S3XML.value("Message", in: text) ?? "\(method) \(key.isEmpty ? location.bucket : key) failed")
        }
        let bytes: ByteBuffer
        if status == 404 {
            // An expected "no such key": its XML is not the body asked for.
            for try await _ in response.body {}
            bytes = ByteBuffer()
        } else if collect > 0 && method != "HEAD" {
            bytes = try await response.body.collect(upTo: collect)
        } else {
            for try await _ in response.body {}
            bytes = ByteBuffer()
        }
        return Answer(status: status, headers: response.headers, body: bytes)
    }
}

/// Just enough XML for S3's answers: the text of named elements, with the five predefined
/// entities undone. S3's answers are flat and machine-written, and the keys Ferry stores are
/// hex, so no general parser is needed.
enum S3XML {
    /// The inner text of every `<name>…</name>`.
    static func elements(_ name: String, in xml: String) -> [String] {
        var out: [String] = []
        var rest = xml[...]
        while let open = rest.range(of: "<\(name)>") {
            guard let close = rest.range(of: "</\(name)>", range: open.upperBound..<rest.endIndex) else { break }
            out.append(String(rest[open.upperBound..<close.lowerBound]))
            rest = rest[close.upperBound...]
        }
        return out
    }

    /// The unescaped text of the first `<name>…</name>`.
    static func value(_ name: String, in xml: String) -> String? {
        elements(name, in: xml).first.map(unescape)
    }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&#34;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// S3's `2013-05-24T00:00:00.000Z` (fractions optional). Read with format styles, values
    /// made once: a listing parses one date per object, and a new `ISO8601DateFormatter` per
    /// date cost about 0.3 ms (a 1,000-key page, a third of a second of CPU).
    static func date(_ text: String) -> Date? {
        (try? withFractions.parse(text)) ?? (try? withoutFractions.parse(text))
    }

    static let withFractions = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    static let withoutFractions = Date.ISO8601FormatStyle()
}
