import FerryCore
import FerryTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import FerryServer

/// `blobs.url` and the S3 credentials: every bad value is refused with one sentence naming
/// the key, and the secret is never shown.
@Suite("S3 configuration")
struct S3ConfigurationTests {
    @Test func aGoodURLParsesInBothAddressingStyles() throws {
        let path = try S3Location("s3://ferry-blobs/cluster/one?endpoint=http://127.0.0.1:8333&region=eu-west-1&pathStyle=true")
        #expect(path.bucket == "ferry-blobs" && path.prefix == "cluster/one/" && path.endpoint == "http://127.0.0.1:8333" && path.region == "eu-west-1")
        #expect(path.target(key: "blobs/ab/x y") == ("http://127.0.0.1:8333/ferry-blobs/blobs/ab/x%20y", "127.0.0.1:8333", "/ferry-blobs/blobs/ab/x%20y"))
        let hosted = try S3Location("s3://ferry-blobs?pathStyle=false")
        #expect(hosted.endpoint == "https://s3.us-east-1.amazonaws.com" && hosted.prefix == "")
        #expect(hosted.target(key: "k") == ("https://ferry-blobs.s3.us-east-1.amazonaws.com/k", "ferry-blobs.s3.us-east-1.amazonaws.com", "/k"))
    }

    @Test(arguments: [
        ("http://bucket", "must be s3://"),
        ("s3://B?endpoint=http://127.0.0.1:1", "no valid bucket"),
        ("s3://bucket?endpoint=ftp://127.0.0.1:1", "endpoint must be http"),
        ("s3://bucket?endpoint=http://127.0.0.1:1/path", "endpoint must be http"),
        ("s3://bucket?region=", "region is empty"),
        ("s3://bucket?pathStyle=yes", "pathStyle must be true or false"),
        ("s3://bucket?secret=x", "unknown parameter 'secret'"),
    ])
    func badURLsAreRefusedNamingTheKey(_ text: String, _ mentions: String) {
        do {
            _ = try S3Location(text)
            Issue.record("'\(text)' was accepted")
        } catch {
            let message = "\(error)"
            #expect(message.contains(mentions) && message.contains("blobs.url"), "\(message)")
        }
    }

    /// A listing's dates, with and without fractions as stores write them; anything else is no date.
    @Test func listingDatesAreReadWithOrWithoutFractions() {
        #expect(S3XML.date("2013-05-24T00:00:00.000Z") == Date(timeIntervalSince1970: 1_369_353_600))
        #expect(S3XML.date("2013-05-24T00:00:01.250Z") == Date(timeIntervalSince1970: 1_369_353_601.25))
        #expect(S3XML.date("2013-05-24T00:00:00Z") == Date(timeIntervalSince1970: 1_369_353_600))
        #expect(S3XML.date("yesterday") == nil && S3XML.date("") == nil)
    }

    @Test func credentialsComeFromTheConfigurationOrTheEnvironmentAndAreNeverShown() throws {
        var blobs = ServerConfiguration.Blobs()
        blobs.url = "s3://bucket?endpoint=http://127.0.0.1:1"
        #expect(throws: ConfigurationError.self) { try blobs.credentials(environment: [:]) }
        #expect(try blobs.credentials(environment: ["AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "env-secret"]).secretAccessKey == "env-secret")
        blobs.accessKeyId = "AKID2"
        blobs.secretAccessKey = "config-secret"
        #expect(try blobs.credentials(environment: ["AWS_SECRET_ACCESS_KEY": "env-secret"]).secretAccessKey == "config-secret")
        var configuration = ServerConfiguration()
        configuration.blobs = blobs
        for shown in ["\(configuration)", String(reflecting: configuration), "\(blobs)", "\(try blobs.credentials())"] {
            #expect(!shown.contains("config-secret"), "\(shown)")
        }
    }

    @Test func theBlobsSectionIsCheckedLikeEveryOther() throws {
        func load(_ json: String) throws -> ServerConfiguration {
            let configuration = try JSONDecoder().decode(ServerConfiguration.self, from: Data(json.utf8))
            try configuration.validate()
            return configuration
        }
        #expect(try load(#"{"blobs": {"url": "file://"}}"#).blobs.s3() == nil)
        let s3 = try load(#"{"blobs": {"url": "s3://b12?endpoint=http://127.0.0.1:9", "accessKeyId": "a", "secretAccessKey": "s"}}"#)
        #expect(try s3.blobs.s3()?.bucket == "b12")
        for (json, mentions) in [(#"{"blobs": {"bucket": "b"}}"#, "blobs.bucket"),
                                 (#"{"blobs": {"url": "file:///srv/blobs"}}"#, "takes no path"),
                                 (#"{"blobs": {"accessKeyId": "a", "secretAccessKey": "s"}}"#, "need blobs.url")] {
            #expect(throws: ConfigurationError.self, "\(json)") { try load(json) }
            do { _ = try load(json) } catch { #expect("\(error)".contains(mentions), "\(error)") }
        }
    }
}

/// The S3 client and blob store against a real S3 store (SeaweedFS on loopback, started by
/// `Scripts/test`); each test has a bucket of its own.
@Suite("S3 blob store", .enabled(if: BlobBackend.endpoint != nil))
struct S3BlobStoreTests {
    static func client(secret: String? = nil, accessKey: String? = nil) async throws -> S3Client {
        let url = try await BlobBackend.freshBucket()
        let credentials = BlobBackend.credentials
        return S3Client(location: try S3Location(url),
                        credentials: .init(accessKeyId: accessKey ?? credentials.accessKeyId, secretAccessKey: secret ?? credentials.secretAccessKey),
                        http: S3Client.sharedHTTP)
    }

    static func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }
    static func hash(_ buffer: ByteBuffer) -> ContentHash { buffer.withUnsafeReadableBytes { ContentHash.of($0) } }

    @Test func objectsGoInComeBackWholeAndInRangesAndAreListedAndDeletedInBatches() async throws {
        let client = try await Self.client()
        let body = Self.bytes("0123456789abcdef")
        try await client.put(key: "t/one", body: body, sha256: Self.hash(body))
        #expect(try await client.get(key: "t/one") == body)
        #expect(try await client.get(key: "t/one", range: 3..<7) == Self.bytes("3456"))
        #expect(try await client.head(key: "t/one") == 16)
        #expect(try await client.head(key: "t/none") == nil)
        #expect(try await client.get(key: "t/none") == nil)
        for n in 2...5 {
            let other = Self.bytes("object \(n)")
            try await client.put(key: "t/\(n)", body: other, sha256: Self.hash(other))
        }
        // Pages of two: every key once, in order, and the last page says no more follow.
        var keys: [String] = [], token: String?, pages = 0
        repeat {
            let page = try await client.list(prefix: "t/", continuation: token, maxKeys: 2)
            keys += page.objects.map(\.key)
            // Just written: a date read wrong (a time zone, a unit) would be far from now.
            #expect(page.objects.allSatisfy { abs($0.lastModified?.timeIntervalSinceNow ?? .infinity) < 600 })
            token = page.next
            pages += 1
        } while token != nil
        #expect(keys == ["t/2", "t/3", "t/4", "t/5", "t/one"] && pages == 3)
        try await client.delete(keys: ["t/2", "t/3", "t/none"])
        #expect(try await client.list(prefix: "t/", continuation: nil).objects.map(\.key) == ["t/4", "t/5", "t/one"])
    }

    /// Bytes changed on the way (they no longer match the digests the PUT declares) are
    /// refused by the store, so the upload fails and no row references them; a good object
    /// under the key is not replaced. (SeaweedFS 4.48 keeps the refused bytes of a key that
    /// had no object; that is why the writer hashes before it sends, and `check` re-hashes.)
    @Test func aPutWhoseBytesDoNotMatchTheirDeclaredDigestsIsRefused() async throws {
        let client = try await Self.client()
        let good = Self.bytes("the right bytes"), damaged = Self.bytes("the wrong bytes")
        await #expect(throws: S3Client.Failure.self) {
            try await client.put(key: "new", body: damaged, sha256: Self.hash(good), md5: S3Client.md5(good))
        }
        try await client.put(key: "k", body: good, sha256: Self.hash(good))
        await #expect(throws: S3Client.Failure.self) {
            try await client.put(key: "k", body: damaged, sha256: Self.hash(good), md5: S3Client.md5(good))
        }
        #expect(try await client.get(key: "k") == good)
    }

    @Test func aWrongSecretOrAnUnknownKeyIsRefused() async throws {
        for client in [try await Self.client(secret: "not-the-secret"), try await Self.client(accessKey: "unknown-key")] {
            do {
                _ = try await client.list(prefix: "", continuation: nil)
                Issue.record("a request signed with wrong credentials was answered")
            } catch let failure as S3Client.Failure {
                #expect(failure.status == 403, "\(failure)")
            }
        }
    }

    @Test func largeObjectsGoUpInPartsAndComeBackWhole() async throws {
        let client = try await Self.client()
        var body = ByteBuffer()
        body.writeBytes((0..<(11 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) })
        try await client.putMultipart(key: "big", body: body, partSize: 5 << 20)
        #expect(try await client.head(key: "big") == Int64(11 << 20))
        #expect(try await client.get(key: "big", range: Int64(5 << 20)..<Int64(5 << 20) + 1000) == body.getSlice(at: 5 << 20, length: 1000))
        await #expect(throws: (any Error).self) { _ = try await client.get(key: "big") }  // past a chunk's bound
        let whole = try #require(try await client.get(key: "big", upTo: 11 << 20))
        #expect(Self.hash(whole) == Self.hash(body))
        // A multipart upload the store refuses fails, and nothing lands.
        let refused = S3Client(location: client.location, credentials: .init(accessKeyId: BlobBackend.credentials.accessKeyId, secretAccessKey: "not-the-secret"),
                               http: S3Client.sharedHTTP)
        await #expect(throws: S3Client.Failure.self) { try await refused.putMultipart(key: "refused", body: body, partSize: 5 << 20) }
        #expect(try await client.head(key: "refused") == nil)
    }

    @Test func theStoreVerifiesBeforeItPlacesAndReadsSpansBack() async throws {
        let client = try await Self.client()
        let store = S3BlobStore(client: client, threadPool: .singleton, maxBlobSize: 1 << 20, multipartThreshold: 16 << 20)
        let content = Self.bytes(String(repeating: "ferry ", count: 1000))
        let hash = Self.hash(content)

        // A mismatch is refused before anything is sent.
        let bad = try await store.makeWriter()
        try await bad.write(Self.bytes("something else"))
        await #expect(throws: BlobError.hashMismatch(expected: hash, actual: Self.hash(Self.bytes("something else")))) {
            _ = try await bad.finish(expected: hash)
        }
        #expect(try await store.storedHashes().isEmpty)
        // Past the limit.
        let big = try await store.makeWriter()
        await #expect(throws: BlobError.tooLarge(limit: 1 << 20)) { try await big.write(ByteBuffer(repeating: 0, count: (1 << 20) + 1)) }

        let writer = try await store.makeWriter()
        try await writer.write(content)
        let staged = try await writer.finish(expected: hash)
        #expect(staged.placed && staged.size == Int64(content.readableBytes))
        // Acknowledged before it is published: publishing moves nothing.
        #expect(try await store.exists(hash))
        #expect(try store.publish(staged))
        #expect(try await store.storedHashes() == [hash])
        #expect(try await store.verify(hash) == (Int64(content.readableBytes), true))
        let spans = [BlobSpan(hash: hash, offset: 6, length: 5), BlobSpan(hash: hash, offset: 0, length: 5)]
        #expect(try await store.readTogether(spans) == Self.bytes("ferryferry"))

        let missing = ContentHash.of(Array("absent".utf8))
        #expect(try await store.exists(missing) == false)
        await #expect(throws: BlobError.notFound(missing)) { _ = try await store.verify(missing) }
        await #expect(throws: BlobError.notFound(missing)) { _ = try await store.readTogether([BlobSpan(hash: missing, offset: 0, length: 1)]) }
        await #expect(throws: BlobError.self) { _ = try await store.readTogether([BlobSpan(hash: hash, offset: 5990, length: 20)]) }

        // An object damaged in the bucket is found by `verify` (as `check` uses it).
        let damaged = Self.bytes("not what its name says")
        let victim = ContentHash.of(Array("victim".utf8))
        try await client.put(key: store.key(of: victim), body: damaged, sha256: Self.hash(damaged))
        #expect(try await store.verify(victim) == (Int64(damaged.readableBytes), false))

        // Batches: good frames placed, mismatched ones named and not placed.
        let a = Self.bytes("batch a"), b = Self.bytes("batch b")
        let (batch, mismatched) = try await store.stageBatch([(Self.hash(a), a), (Self.hash(a), b), (Self.hash(b), b)])
        #expect(batch.map(\.hash) == [Self.hash(a), Self.hash(b)] && mismatched == [Self.hash(a)])
        #expect(try store.publishBatch(batch) == [true, true])
        #expect(Set(try await store.storedHashes()) == [hash, victim, Self.hash(a), Self.hash(b)])
    }

    /// A bucket the server cannot use stops it at start-up, with a sentence naming the bucket.
    @Test func aServerWithWrongCredentialsDoesNotStart() async throws {
        do {
            _ = try await BlobBackend.$current.withValue(.s3) {
                try await TestServer.make { $0.blobs.secretAccessKey = "not-the-secret" }
            }
            Issue.record("the server started with a wrong S3 secret")
        } catch {
            #expect("\(error)".contains("cannot use the S3 bucket") && !"\(error)".contains("not-the-secret"), "\(error)")
        }
    }
}
