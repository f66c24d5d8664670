import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import HummingbirdTLS
import HTTPTypes
import NIOCore
import NIOSSL

/// One request a test receiver got.
struct ReceivedHook: Sendable {
    /// By lower-cased name.
    let headers: [String: String]
    let body: Data

    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body) as? [String: Any]) ?? [:] }
    var type: String { json["type"] as? String ?? "" }
    var data: [String: Any] { json["data"] as? [String: Any] ?? [:] }
}

/// What a test receiver answers and what it has seen.
actor HookLog {
    private(set) var requests: [ReceivedHook] = []
    /// Statuses for the first requests, in order; 200 afterwards.
    private var script: [Int]
    /// Requests to hold unanswered until `release()`.
    private var holdFirst: Int
    private var held: [CheckedContinuation<Void, Never>] = []
    private var released = false

    init(script: [Int], holdFirst: Int) {
        self.script = script
        self.holdFirst = holdFirst
    }

    func record(_ hook: ReceivedHook) -> (status: Int, hold: Bool) {
        requests.append(hook)
        let hold = holdFirst > 0 && !released
        if hold { holdFirst -= 1 }
        return (script.isEmpty ? 200 : script.removeFirst(), hold)
    }

    func wait() async {
        if released { return }
        await withCheckedContinuation { held.append($0) }
    }

    func release() {
        released = true
        held.forEach { $0.resume() }
        held = []
    }

    func of(type: String) -> [ReceivedHook] { requests.filter { $0.type == type } }
}

/// A real HTTP receiver on 127.0.0.1 for the duration of `body`; with `tls` (a PEM
/// certificate and key) an HTTPS one.
func withHookReceiver<T: Sendable>(
    script: [Int] = [], holdFirst: Int = 0, tls: (certificate: String, key: String)? = nil,
    _ body: @Sendable (_ url: String, _ log: HookLog) async throws -> T
) async throws -> T {
    let log = HookLog(script: script, holdFirst: holdFirst)
    let router = Router()
    router.post("hook") { request, _ -> Response in
        let bytes = try await request.body.collect(upTo: 1 << 20)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName.lowercased()] = field.value }
        let (status, hold) = await log.record(ReceivedHook(headers: headers, body: Data(bytes.readableBytesView)))
        if hold { await log.wait() }
        var fields: HTTPFields = [:]
        if status == 429 || status == 503 { fields[.retryAfter] = "0" }
        return Response(status: .init(code: status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: "answer \(status)")))
    }
    var server = HTTPServerBuilder.http1()
    if let tls {
        let configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(tls.certificate.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(tls.key.utf8), format: .pem)))
        server = try .tls(.http1(), tlsConfiguration: configuration)
    }
    let app = Application(router: router, server: server, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    return try await app.test(.live) { client in
        do {
            let result = try await body("\(tls == nil ? "http" : "https")://127.0.0.1:\(client.port!)/hook", log)
            await log.release()
            return result
        } catch {
            await log.release()
            throw error
        }
    }
}
