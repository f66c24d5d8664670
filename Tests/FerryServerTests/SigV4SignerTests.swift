import Foundation
import Testing

@testable import FerryServer

/// The signer against AWS's own published vectors: the Signature Version 4 test suite
/// (service "service", 2015-08-30T12:36:00Z) and the worked examples of the S3 API reference
/// ("Signature Calculations for the Authorization Header", 2013-05-24), which sign a range,
/// a key with `$` in it, a `Date` header and queries with and without values.
@Suite("SigV4 signer")
struct SigV4SignerTests {
    struct Vector: Sendable, CustomStringConvertible {
        let name: String
        let suite: Bool
        let method: String
        let path: String
        let query: [(String, String)]
        let headers: [(String, String)]
        let payload: String
        let authorization: String
        var description: String { name }
    }

    static let empty = SigV4Signer.emptyPayloadHash
    static let suiteSigner = SigV4Signer(credentials: .init(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                                         region: "us-east-1", service: "service")
    static let s3Signer = SigV4Signer(credentials: .init(accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                                      region: "us-east-1")
    static let suiteDate = Date(timeIntervalSince1970: 1_440_938_160)  // 2015-08-30T12:36:00Z
    static let s3Date = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z

    static let vectors: [Vector] = [
        Vector(name: "get-vanilla", suite: true, method: "GET", path: "/", query: [], headers: [("Host", "example.amazonaws.com")], payload: empty,
               authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        Vector(name: "get-vanilla-query-order-key-case", suite: true, method: "GET", path: "/", query: [("Param2", "value2"), ("Param1", "value1")],
               headers: [("Host", "example.amazonaws.com")], payload: empty,
               authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        Vector(name: "post-vanilla", suite: true, method: "POST", path: "/", query: [], headers: [("Host", "example.amazonaws.com")], payload: empty,
               authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        Vector(name: "S3 GET object, first ten bytes", suite: false, method: "GET", path: "/test.txt", query: [],
               headers: [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"), ("x-amz-content-sha256", empty)], payload: empty,
               authorization: "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
        Vector(name: "S3 PUT object", suite: false, method: "PUT", path: "/" + SigV4Signer.uriEncode("test$file.text", keepSlash: true), query: [],
               headers: [("Host", "examplebucket.s3.amazonaws.com"), ("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                         ("x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")],
               payload: "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
               authorization: "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"),
        Vector(name: "S3 GET bucket lifecycle", suite: false, method: "GET", path: "/", query: [("lifecycle", "")],
               headers: [("Host", "examplebucket.s3.amazonaws.com"), ("x-amz-content-sha256", empty)], payload: empty,
               authorization: "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
        Vector(name: "S3 list objects", suite: false, method: "GET", path: "/", query: [("max-keys", "2"), ("prefix", "J")],
               headers: [("Host", "examplebucket.s3.amazonaws.com"), ("x-amz-content-sha256", empty)], payload: empty,
               authorization: "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    ]

    @Test(arguments: vectors) func signsAsAWSPublished(_ vector: Vector) {
        let signer = vector.suite ? Self.suiteSigner : Self.s3Signer
        let added = signer.sign(method: vector.method, path: vector.path, query: vector.query, headers: vector.headers, payloadHash: vector.payload,
                                date: vector.suite ? Self.suiteDate : Self.s3Date)
        #expect(added.first { $0.0 == "authorization" }?.1 == vector.authorization)
        #expect(added.first { $0.0 == "x-amz-date" }?.1 == (vector.suite ? "20150830T123600Z" : "20130524T000000Z"))
    }

    /// Any change to what is signed changes the signature: a wrong secret, another payload,
    /// another range, another day.
    @Test func anyChangeToWhatIsSignedChangesTheSignature() throws {
        let vector = Self.vectors[3]
        func authorization(_ signer: SigV4Signer, headers: [(String, String)] = vector.headers, payload: String = vector.payload, date: Date = Self.s3Date) -> String? {
            signer.sign(method: vector.method, path: vector.path, query: [], headers: headers, payloadHash: payload, date: date).first { $0.0 == "authorization" }?.1
        }
        let other = SigV4Signer(credentials: .init(accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ"), region: "us-east-1")
        #expect(authorization(Self.s3Signer) == vector.authorization)
        #expect(authorization(other) != vector.authorization)
        #expect(authorization(Self.s3Signer, payload: String(repeating: "0", count: 64)) != vector.authorization)
        #expect(authorization(Self.s3Signer, headers: [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-10"), ("x-amz-content-sha256", Self.empty)])
                != vector.authorization)
        #expect(authorization(Self.s3Signer, date: Self.s3Date.addingTimeInterval(86400)) != vector.authorization)
    }

    @Test func encodesAsAWSDoes() {
        #expect(SigV4Signer.uriEncode("a b/c~d+e$é", keepSlash: true) == "a%20b/c~d%2Be%24%C3%A9")
        #expect(SigV4Signer.uriEncode("a/b", keepSlash: false) == "a%2Fb")
        #expect(SigV4Signer.trim("  a   b  ") == "a b")
        #expect(SigV4Signer.canonicalQuery([("b", "2"), ("a", "x y"), ("a", "1")]) == "a=1&a=x%20y&b=2")
    }

    @Test func credentialsNeverShowTheSecret() {
        let credentials = SigV4Signer.Credentials(accessKeyId: "AKID", secretAccessKey: "very-secret")
        #expect(!"\(credentials)".contains("very-secret"))
        #expect(!String(reflecting: credentials).contains("very-secret"))
    }
}
