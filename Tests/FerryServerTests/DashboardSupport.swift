import FerryCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import FerryServer

/// A browser's part in the dashboard's tests: it keeps the session cookie and the page's
/// CSRF token, and sends forms the way a browser does (same origin, url-encoded).
struct DashboardBrowser: Sendable {
    let client: any TestClientProtocol
    /// `ferry_session=…`, once signed in.
    var cookie: String?
    /// The token of the page last read.
    var csrf = ""
    /// The authority the test frameworks give every request.
    static let host = "localhost"

    init(_ api: API) { client = api.client }

    /// Signs in through the sign-in form; expects success.
    static func signIn(_ api: API, _ username: String, _ password: String) async throws -> DashboardBrowser {
        var browser = DashboardBrowser(api)
        let answer = try await browser.submitSignIn(username, password)
        #expect(answer.status == .seeOther, "sign-in failed: \(String(buffer: answer.body).prefix(300))")
        browser.cookie = try #require(Self.cookie(DashboardCookie.session, in: answer)).map { "\(DashboardCookie.session)=\($0)" }
        let page = try await browser.get("/libraries")
        #expect(page.status == .ok)
        browser.csrf = try #require(Self.csrfToken(in: page))
        return browser
    }

    /// Fetches the sign-in form, then sends it with these credentials.
    func submitSignIn(_ username: String, _ password: String, next: String = "/libraries") async throws -> TestResponse {
        let form = try await client.execute(uri: "/signin", method: .get, headers: [.accept: "text/html"], body: nil)
        let nonce = try #require(Self.cookie(DashboardCookie.signIn, in: form) ?? nil)
        let token = try #require(Self.formToken(in: form))
        return try await client.execute(
            uri: "/signin", method: .post,
            headers: [.contentType: "application/x-www-form-urlencoded", .cookie: "\(DashboardCookie.signIn)=\(nonce)", .accept: "text/html",
                      .origin: "http://\(Self.host)"],
            body: ByteBuffer(string: Self.encode([("csrf", token), ("next", next), ("username", username), ("password", password)])))
    }

    func get(_ uri: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        var headers = headers
        if headers[.accept] == nil { headers[.accept] = "text/html" }
        if let cookie { headers[.cookie] = cookie }
        return try await client.execute(uri: uri, method: .get, headers: headers, body: nil)
    }

    /// Posts a form carrying the page's token (or `csrf`, or none with `csrf: ""`).
    func post(_ uri: String, _ fields: [(String, String)] = [], csrf: String? = nil, headers: HTTPFields = [:]) async throws -> TestResponse {
        var headers = headers
        headers[.contentType] = "application/x-www-form-urlencoded"
        if headers[.accept] == nil { headers[.accept] = "text/html" }
        if let cookie { headers[.cookie] = cookie }
        let token = csrf ?? self.csrf
        let all = token.isEmpty ? fields : [("csrf", token)] + fields
        return try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: Self.encode(all)))
    }

    /// A raw request with the session cookie (uploads, other methods).
    func send(_ method: HTTPRequest.Method, _ uri: String, headers: HTTPFields = [:], body: ByteBuffer? = nil) async throws -> TestResponse {
        var headers = headers
        if let cookie { headers[.cookie] = cookie }
        return try await client.execute(uri: uri, method: method, headers: headers, body: body)
    }

    static func encode(_ fields: [(String, String)]) -> String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        return fields.map { "\($0.0.addingPercentEncoding(withAllowedCharacters: allowed)!)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed)!)" }
            .joined(separator: "&")
    }

    /// The value a `Set-Cookie` gives `name` (nil: not set; "" when cleared).
    static func cookie(_ name: String, in response: TestResponse) -> String?? {
        guard let line = setCookie(name, in: response) else { return nil }
        return .some(String(line.dropFirst(name.count + 1).prefix { $0 != ";" }))
    }

    static func setCookie(_ name: String, in response: TestResponse) -> String? {
        response.headers[values: .setCookie].first { $0.hasPrefix(name + "=") }
    }

    static func csrfToken(in response: TestResponse) -> String? {
        String(buffer: response.body).firstMatch(of: /name="csrf-token" content="([^"]+)"/).map { String($0.1) }
    }

    static func formToken(in response: TestResponse) -> String? {
        String(buffer: response.body).firstMatch(of: /name="csrf" value="([^"]+)"/).map { String($0.1) }
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }
}
