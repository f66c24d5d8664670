import FerryCore
import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import FerryTestSupport
import Testing

@testable import FerryServer

/// The web dashboard's server side (SPEC §7): sessions and their cookie, CSRF and origin
/// checks, the security headers, what each page shows and does, and bad forms. The browser
/// flows themselves are tested in Chromium (`Tests/browser`). One test at a time: each
/// opens a server (a synchronous database open and migration), and seventeen at once
/// starved the other suites' tasks for seconds on two cores.
@Suite("Dashboard", .serialized, .eachBackend)
struct DashboardTests {
    static func make(_ configure: @escaping (inout ServerConfiguration) -> Void = { _ in }) async throws -> TestServer {
        try await TestServer.make { configuration in
            configuration.webhooks.allowPrivateTargets = true
            configure(&configuration)
        }
    }

    /// A fresh server with the user alice, and a browser signed in to the dashboard as her.
    static func withSignedIn(_ body: @Sendable (TestServer, API, DashboardBrowser, _ password: String) async throws -> Void) async throws {
        let server = try await make()
        defer { server.removeData() }
        let (_, password) = try await server.addUser("alice")
        try await server.run { api in try await body(server, api, try await DashboardBrowser.signIn(api, "alice", password), password) }
    }

    /// The same, where alice also has the library "docs" and an API token.
    static func withAlice(_ body: @Sendable (TestServer, API, _ token: String, _ library: String, DashboardBrowser) async throws -> Void) async throws {
        try await withSignedIn { server, api, browser, password in
            let token = try await api.login("alice", password).accessToken
            try await body(server, api, token, try await api.createLibrary("docs", token: token).id, browser)
        }
    }

    // MARK: sessions, cookies, headers

    @Test func signInGivesAStrictHttpOnlyCookieThatIsStoredOnlyHashed() async throws {
        let server = try await Self.make()
        defer { server.removeData() }
        let (_, password) = try await server.addUser("alice")
        try await server.run { api in
            let answer = try await DashboardBrowser(api).submitSignIn("alice", password, next: "/devices")
            #expect(answer.status == .seeOther)
            #expect(answer.headers[.location] == "/devices")
            let line = try #require(DashboardBrowser.setCookie(DashboardCookie.session, in: answer))
            let attributes = Set(line.split(separator: ";").dropFirst().map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
            #expect(attributes.isSuperset(of: ["httponly", "samesite=strict", "path=/", "max-age=43200"]), "\(line)")
            #expect(!attributes.contains("secure"), "Secure over plain HTTP: \(line)")
            let token = try #require(DashboardBrowser.cookie(DashboardCookie.session, in: answer) ?? nil)
            let stored = try await server.fetchBytes("SELECT cookie_hash FROM session WHERE cookie_hash IS NOT NULL")
            #expect(stored == [Data(TokenService.storedHash(token))])
            let events = try await server.services.store.securityEvents(userId: nil, limit: 5)
            #expect(events.first?.kind == .loginSucceeded && events.first?.detail == "dashboard")
        }
    }

    @Test func everyPageSendsTheStrictPolicyAndNoInlineScript() async throws {
        try await Self.withSignedIn { _, api, browser, _ in
            let signIn = try await DashboardBrowser(api).get("/signin")
            for page in [signIn, try await browser.get("/libraries"), try await browser.get("/nowhere-\(UUID())/x")] where page.status != .notFound
                || page.headers[.contentType]?.hasPrefix("text/html") == true {
                #expect(page.headers[.contentSecurityPolicy] == DashboardMiddleware.contentSecurityPolicy)
                #expect(page.headers[.xContentTypeOptions] == "nosniff")
                #expect(page.headers[HTTPField.Name("Referrer-Policy")!] == "same-origin")
                #expect(page.headers[.cacheControl] == "no-store")
                #expect(!page.text.contains("<script>") && !page.text.contains("style=") && page.text.firstMatch(of: /\son[a-z]+=/) == nil, "inline script or style")
            }
            #expect(!DashboardMiddleware.contentSecurityPolicy.contains("unsafe"))
            let script = try await browser.get(DashboardAssets.scriptURL)
            #expect(script.headers[.contentType] == "text/javascript; charset=utf-8")
            #expect(script.headers[.cacheControl]?.contains("immutable") == true)
        }
    }

    @Test func theCookieIsSecureOnlyWhenATrustedProxySaysTLS() async throws {
        for (trusted, secure) in [(["127.0.0.1"], true), ([String](), false)] {
            let server = try await Self.make { $0.http.trustedProxies = trusted }
            defer { server.removeData() }
            let (_, password) = try await server.addUser("alice")
            try await server.run(.live) { api in
                let browser = DashboardBrowser(api)
                let form = try await browser.get("/signin", headers: [DashboardCookie.forwardedProto: "https"])
                let nonce = try #require(DashboardBrowser.cookie(DashboardCookie.signIn, in: form) ?? nil)
                #expect(DashboardBrowser.setCookie(DashboardCookie.signIn, in: form)?.contains("Secure") == secure)
                let answer = try await browser.send(.post, "/signin", headers: [
                    .contentType: "application/x-www-form-urlencoded", .cookie: "\(DashboardCookie.signIn)=\(nonce)",
                    DashboardCookie.forwardedProto: "https"],
                    body: ByteBuffer(string: DashboardBrowser.encode([("csrf", try #require(DashboardBrowser.formToken(in: form))),
                                                                       ("username", "alice"), ("password", password)])))
                #expect(answer.status == .seeOther)
                #expect(DashboardBrowser.setCookie(DashboardCookie.session, in: answer)?.contains("Secure") == secure, "trusted: \(trusted)")
            }
        }
    }

    @Test func aWrongPasswordShowsInvalidAndCountsAgainstTheSameLimit() async throws {
        // A long delay after the free attempts: the third must be refused however slow the machine.
        let server = try await Self.make {
            $0.auth.loginFailureLimit = 2
            $0.auth.loginDelaySeconds = 120
        }
        defer { server.removeData() }
        try await server.addUser("alice", password: "right-password")
        try await server.run { api in
            let browser = DashboardBrowser(api)
            let wrong = try await browser.submitSignIn("alice", "wrong")
            #expect(wrong.status == .unauthorized)
            #expect(wrong.text.contains("Invalid user name or password"))
            #expect(wrong.text.contains(#"<label for="username">Username</label>"#) && wrong.text.contains(#"value="alice""#))
            #expect(DashboardBrowser.setCookie(DashboardCookie.session, in: wrong) == nil)
            _ = try await browser.submitSignIn("alice", "wrong again")
            let limited = try await browser.submitSignIn("alice", "right-password")
            #expect(limited.status == .tooManyRequests)
            #expect(limited.headers[.retryAfter] != nil && limited.text.contains("Too many failed sign-ins"))
            let kinds = try await server.services.store.securityEvents(userId: nil, limit: 10).map(\.kind)
            #expect(kinds.filter { $0 == .loginFailed }.count == 2 && kinds.contains(.rateLimited))
        }
    }

    @Test func signedOutVisitorsAreSentToSignInAndBackOnlyToThisSite() async throws {
        let server = try await Self.make()
        defer { server.removeData() }
        let (_, password) = try await server.addUser("alice")
        try await server.run { api in
            let browser = DashboardBrowser(api)
            let page = try await browser.get("/tasks?status=todo")
            #expect(page.status == .seeOther)
            #expect(page.headers[.location] == "/signin?next=/tasks%3Fstatus%3Dtodo")
            let script = try await browser.get("/libraries", headers: [.accept: "*/*"])
            #expect(script.status == .unauthorized)
            for next in ["//evil.example/x", "https://evil.example", "/\\evil.example"] {
                #expect(try await browser.submitSignIn("alice", password, next: next).headers[.location] == "/libraries")
            }
            let forged = try await browser.send(.get, "/libraries", headers: [.cookie: "\(DashboardCookie.session)=fds_forged", .accept: "text/html"])
            #expect(forged.status == .seeOther)
        }
    }

    @Test func changesNeedTheSessionsTokenFromThisOrigin() async throws {
        try await Self.withSignedIn { server, api, browser, password in
            let create = [("name", "docs")]
            #expect(try await browser.post("/libraries", create, csrf: "").status == .forbidden)
            #expect(try await browser.post("/libraries", create, csrf: "forged-token").status == .forbidden)
            #expect(try await browser.post("/libraries", create, headers: [.origin: "https://evil.example"]).status == .forbidden)
            #expect(try await browser.post("/libraries", create, headers: [HTTPField.Name("Sec-Fetch-Site")!: "cross-site"]).status == .forbidden)
            let upload = try await browser.send(.put, "/libraries/x/upload?path=a", body: ByteBuffer(string: "x"))
            #expect(upload.status == .forbidden)
            // Another session's token is no good either.
            let (_, other) = try await server.addUser("bob")
            let bob = try await DashboardBrowser.signIn(api, "bob", other)
            #expect(try await browser.post("/libraries", create, csrf: bob.csrf).status == .forbidden)
            #expect(try await server.services.store.libraries(userId: 1).isEmpty)
            let made = try await browser.post("/libraries", create, headers: [.origin: "http://\(DashboardBrowser.host)", HTTPField.Name("Sec-Fetch-Site")!: "same-origin"])
            #expect(made.status == .seeOther)
            #expect(try await server.services.store.libraries(userId: 1).map(\.name) == ["docs"])
            // A sign-in form without its cookie is refused too (login CSRF).
            let noCookie = try await browser.send(.post, "/signin", headers: [.contentType: "application/x-www-form-urlencoded", .accept: "text/html"],
                                                  body: ByteBuffer(string: "csrf=x&username=alice&password=\(password)"))
            #expect(noCookie.status == .forbidden && noCookie.text.contains("expired"))
        }
    }

    @Test func aTokenCountsOnlyWhereItWasMadeFor() async throws {
        try await Self.withSignedIn { server, api, browser, password in
            let create = [("name", "docs")]
            // The header, when sent, is the one judged: the form's good token does not rescue a forged one.
            #expect(try await browser.post("/libraries", create, headers: [DashboardMiddleware.csrfHeader: "forged-token"]).status == .forbidden)
            let upload = try await browser.send(.put, "/libraries/x/upload?path=a", headers: [DashboardMiddleware.csrfHeader: "forged-token"],
                                                body: ByteBuffer(string: "x"))
            #expect(upload.status == .forbidden)
            // A sign-in form's token is no session token.
            let signInForm = try await DashboardBrowser(api).get("/signin")
            #expect(try await browser.post("/libraries", create, csrf: try #require(DashboardBrowser.formToken(in: signInForm))).status == .forbidden)
            #expect(try await server.services.store.libraries(userId: 1).isEmpty)

            // Sign-in: a token bound to another form's cookie, or a form posted from another site, signs nobody in.
            let other = try await DashboardBrowser(api).get("/signin")
            let nonce = try #require(DashboardBrowser.cookie(DashboardCookie.signIn, in: signInForm) ?? nil)
            func signIn(token: String, _ extra: HTTPFields = [:]) async throws -> TestResponse {
                var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded", .cookie: "\(DashboardCookie.signIn)=\(nonce)", .accept: "text/html"]
                headers.append(contentsOf: extra)
                return try await DashboardBrowser(api).send(.post, "/signin", headers: headers,
                                              body: ByteBuffer(string: DashboardBrowser.encode([("csrf", token), ("username", "alice"), ("password", password)])))
            }
            let crossed = try await signIn(token: try #require(DashboardBrowser.formToken(in: other)))
            #expect(crossed.status == .forbidden && crossed.text.contains("expired"))
            #expect(DashboardBrowser.setCookie(DashboardCookie.session, in: crossed) == nil)
            let token = try #require(DashboardBrowser.formToken(in: signInForm))
            let foreign = try await signIn(token: token, [DashboardMiddleware.secFetchSite: "cross-site"])
            #expect(foreign.status == .forbidden && DashboardBrowser.setCookie(DashboardCookie.session, in: foreign) == nil)
            // The same form, sent as itself, does sign in: the refusals above were for what they changed.
            #expect(try await signIn(token: token).status == .seeOther)
        }
    }

    @Test func signingOutEndsTheSessionOnTheServer() async throws {
        try await Self.withSignedIn { server, _, browser, _ in
            let out = try await browser.post("/signout")
            #expect(out.status == .seeOther && out.headers[.location] == "/signin")
            #expect(DashboardBrowser.setCookie(DashboardCookie.session, in: out)?.contains("Max-Age=0") == true)
            // The old cookie, replayed, signs in nobody.
            #expect(try await browser.get("/libraries").status == .seeOther)
            #expect(try await server.services.store.securityEvents(userId: nil, limit: 1).first?.kind == .logout)
        }
    }

    @Test func aPasswordChangeEndsDashboardSessionsToo() async throws {
        try await Self.withSignedIn { server, _, browser, _ in
            let user = try #require(try await server.services.store.user(named: "alice"))
            try await server.services.store.setPassword(userId: user.id, passwordHash: try server.services.passwords.hash("new-one"), revokeDevices: false)
            #expect(try await browser.get("/libraries").status == .seeOther)
        }
    }

    // MARK: files

    @Test func browseDownloadRestoreDeleteAndTheTrash() async throws {
        try await Self.withAlice { server, api, token, lib, browser in
            let dir = CommitOperation(op: .put, path: try FerryPath("notes"), base: nil, kind: .directory, size: 0, sha256: nil, mtimeNs: 0, mode: 0o755, chunks: [])
            _ = try await api.commit(lib, [dir], token: token)
            let first = randomBytes(300_000, seed: 1), second = Array("second & <b>last</b>\n".utf8)
            let v1 = try await api.putFile(lib, "notes/a b&c.txt", first, base: nil, token: token).version!.version
            let v2 = try await api.putFile(lib, "notes/a b&c.txt", second, base: v1, token: token).version!.version

            let root = try await browser.get("/libraries/\(lib)")
            #expect(root.text.contains(#"<span class="icon directory" aria-hidden="true"></span><a href="/libraries/\#(lib)?path=notes">notes</a>"#))
            let folder = try await browser.get("/libraries/\(lib)?path=notes")
            #expect(folder.text.contains(#"href="/libraries/\#(lib)/file?path=notes/a%20b%26c.txt">a b&amp;c.txt</a>"#), "\(folder.text)")
            #expect(folder.text.contains(#"<label for="upload-input">Upload files</label>"#) && folder.text.contains(">Trash</a>"))
            // Times read as UTC without the script, and carry the ISO form it rewrites them from.
            let stamp = /<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ">\d{4}-\d\d-\d\d \d\d:\d\d UTC<\/time>/
            #expect(folder.text.contains(stamp))

            let page = try await browser.get("/libraries/\(lib)/file?path=notes/a%20b%26c.txt")
            #expect(page.text.contains("<h1>a b&amp;c.txt</h1>") && page.text.contains("<caption>History</caption>"))
            #expect(page.text.contains("second &amp; &lt;b&gt;last&lt;/b&gt;"), "the text preview, escaped")
            #expect(page.text.components(separatedBy: ">Restore</button>").count == 2, "Restore on every row but the current one")
            #expect(page.text.matches(of: stamp).count == 3, "modified, and each version's time")

            let download = try await browser.get("/libraries/\(lib)/download?path=notes/a%20b%26c.txt&version=\(v1)")
            #expect(Array(download.body.readableBytesView) == first)
            #expect(download.headers[.contentDisposition] == #"attachment; filename="a b&c.txt"; filename*=UTF-8''a%20b%26c.txt"#)

            let restored = try await browser.post("/libraries/\(lib)/restore", [("path", "notes/a b&c.txt"), ("version", "\(v1)")])
            #expect(restored.status == .seeOther)
            let current = try #require(try await api.history(lib, "notes/a b&c.txt", token: token).versions.first)
            #expect(current.version > v2 && current.sha256 == ContentHash.of(first))

            let ask = try await browser.post("/libraries/\(lib)/delete", [("path", "notes/a b&c.txt")])
            #expect(ask.status == .ok && ask.text.contains(#"name="confirmed" value="yes""#), "deleting asks first")
            #expect(try await server.services.store.current(libraryId: lib, path: try FerryPath("notes/a b&c.txt"))?.deleted == false)
            #expect(try await browser.post("/libraries/\(lib)/delete", [("path", "notes/a b&c.txt"), ("confirmed", "yes")]).status == .seeOther)
            let tombstone = try #require(try await server.services.store.current(libraryId: lib, path: try FerryPath("notes/a b&c.txt")))
            #expect(tombstone.deleted)
            // Confirmed in the dashboard: the user's devices let this deletion through their mass-delete guard.
            let alice = try #require(try await server.services.store.user(named: "alice"))
            #expect(try await server.services.store.confirmedDeletions(userId: alice.id, libraryId: lib, among: [tombstone.version, v2]) == [tombstone.version])

            let trash = try await browser.get("/libraries/\(lib)/trash?path=notes")
            #expect(trash.text.contains("a b&amp;c.txt") && trash.text.contains(#"name="deleted" value="\#(tombstone.version)""#))
            let back = try await browser.post("/libraries/\(lib)/restore", [("path", "notes/a b&c.txt"), ("deleted", "\(tombstone.version)")])
            #expect(back.status == .seeOther && back.headers[.location] == "/libraries/\(lib)/trash?path=notes")
            let alive = try #require(try await server.services.store.current(libraryId: lib, path: try FerryPath("notes/a b&c.txt")))
            #expect(!alive.deleted && alive.sha256 == ContentHash.of(first))
            // The same tombstone again: the path changed since, so nothing happens.
            #expect(try await browser.post("/libraries/\(lib)/restore", [("path", "notes/a b&c.txt"), ("deleted", "\(tombstone.version)")]).status == .conflict)
        }
    }

    @Test func uploadsStreamAndPreviewsNeverServeActiveContent() async throws {
        try await Self.withAlice { server, api, token, lib, browser in
            let content = randomBytes(5_000_000, seed: 7)
            let stored = try await browser.send(.put, "/libraries/\(lib)/upload?path=big.bin&mtime_ns=1700000000000000000",
                                                headers: [HTTPField.Name(CSRFToken.header)!: browser.csrf], body: ByteBuffer(bytes: content))
            #expect(stored.status == .created, "\(stored.text)")
            let version = try #require(try await server.services.store.current(libraryId: lib, path: try FerryPath("big.bin")))
            #expect(version.sha256 == ContentHash.of(content) && version.mtimeNs == 1_700_000_000_000_000_000 && version.deviceId == nil)
            let bad = try await browser.send(.put, "/libraries/\(lib)/upload?path=../x", headers: [HTTPField.Name(CSRFToken.header)!: browser.csrf, .accept: "*/*"],
                                             body: ByteBuffer(string: "x"))
            #expect(bad.status == .badRequest && bad.headers[.contentType] == "text/plain; charset=utf-8")

            for (name, type) in [("page.html", "text/plain; charset=utf-8"), ("logo.svg", "text/plain; charset=utf-8"), ("photo.png", "image/png")] {
                try await api.putFile(lib, name, Array("<script>alert(1)</script>".utf8), base: nil, token: token)
                let preview = try await browser.get("/libraries/\(lib)/preview?path=\(name)")
                #expect(preview.headers[.contentType] == type, "\(name)")
                #expect(preview.headers[.contentSecurityPolicy] == "default-src 'none'; sandbox")
                #expect(preview.headers[.xContentTypeOptions] == "nosniff")
            }
            try await api.putFile(lib, "tool.exe", [0, 1, 2], base: nil, token: token)
            #expect(try await browser.get("/libraries/\(lib)/preview?path=tool.exe").status == .notFound)
            let image = try await browser.get("/libraries/\(lib)/file?path=photo.png")
            #expect(image.text.contains(#"<img src="/libraries/\#(lib)/preview?path=photo.png&amp;version="#))
        }
    }

    @Test func theLibraryPageIsPagedAndHistoryToo() async throws {
        try await Self.withAlice { server, api, token, lib, browser in
            let empty = ContentHash.of([UInt8]())
            let ops = (0..<(LibraryPages.pageSize + 20)).map { i in
                CommitOperation(op: .put, path: try! FerryPath(String(format: "f%04d", i)), base: nil, kind: .file, size: 0, sha256: empty, mtimeNs: 0, mode: 0o644, chunks: [])
            }
            _ = try await api.commit(lib, ops, token: token)
            var base: Int64? = nil
            for i in 0..<(FilePages.historyPageSize + 5) { base = try await api.putFile(lib, "h.txt", Array("v\(i)".utf8), base: base, token: token).version!.version }
            let first = try await browser.get("/libraries/\(lib)")
            #expect(first.text.components(separatedBy: "<tr><td>").count - 1 == LibraryPages.pageSize)
            let next = try #require(first.text.firstMatch(of: /href="([^"]+)" rel="next"/).map { String($0.1) })
            let second = try await browser.get(next.replacingOccurrences(of: "&amp;", with: "&"))
            #expect(second.text.components(separatedBy: "<tr><td>").count - 1 == 21)
            #expect(second.text.contains(">First page</a>") && !second.text.contains(#"rel="next""#))
            let history = try await browser.get("/libraries/\(lib)/file?path=h.txt")
            #expect(history.text.components(separatedBy: "<tr><td>").count - 1 == FilePages.historyPageSize)
            #expect(history.text.contains(">Older versions</a>"))
        }
    }

    // MARK: live updates

    @Test func anOpenLibraryHearsOfACommitAndTheStreamEndsOnShutdown() async throws {
        try await Self.withAlice { server, api, token, lib, browser in
            async let stream = browser.get("/libraries/\(lib)/events?since=0", headers: [.accept: "text/event-stream"])
            #expect(await eventuallyTrue { server.services.notifier.waiterCount == 1 })
            try await api.putFile(lib, "new.txt", Array("hello".utf8), base: nil, token: token)
            #expect(await eventuallyTrue { server.services.notifier.waiterCount == 1 })
            server.services.notifier.shutdown()
            let answer = try await stream
            #expect(answer.headers[.contentType] == "text/event-stream")
            #expect(answer.text.contains("id: 1\nevent: change\ndata: 1\n\n"), "\(answer.text)")
            #expect(server.services.dashboard.streams.count == 0)
        }
    }

    // MARK: devices, conflicts, tasks, webhooks, admin

    @Test func revokingADeviceAsksFirstThenItsTokenIsRefused() async throws {
        let server = try await Self.make()
        defer { server.removeData() }
        let (_, password) = try await server.addUser("alice")
        try await server.run { api in
            let token = try await api.login("alice", password).accessToken
            let device = try await api.registerDevice("old laptop", token: token)
            let browser = try await DashboardBrowser.signIn(api, "alice", password)
            let list = try await browser.get("/devices")
            #expect(list.text.contains("<td>old laptop</td><td>never</td>") && list.text.contains(">Revoke</button>") && list.text.contains("data-confirm="))
            let ask = try await browser.post("/devices/\(device.device.id)/revoke")
            #expect(ask.status == .ok && ask.text.contains("Revoke old laptop?"))
            #expect(try await api.call(.get, "/auth/me", token: device.token).status == .ok)
            #expect(try await browser.post("/devices/\(device.device.id)/revoke", [("confirmed", "yes")]).status == .seeOther)
            #expect(try await api.call(.get, "/auth/me", token: device.token).status == .unauthorized)
            #expect(try await browser.post("/devices/\(device.device.id)/revoke", [("confirmed", "yes")]).status == .notFound)
        }
    }

    @Test func conflictsAreSettledWithKeepMine() async throws {
        try await Self.withAlice { server, api, token, lib, browser in
            let theirs = try await api.putFile(lib, "plan.txt", Array("theirs".utf8), base: nil, token: token).version!
            let manifest = try await api.uploadContent(Array("mine".utf8), token: token)
            var copy = CommitOperation.putFile(try FerryPath("plan.conflict-laptop-20260101-120000.txt"), base: nil, manifest: manifest, mtimeNs: 0, mode: 0o644)
            copy.conflictOf = ConflictOrigin(path: try FerryPath("plan.txt"), theirs: theirs.version)
            _ = try await api.commit(lib, [copy], token: token)
            let page = try await browser.get("/conflicts")
            for button in ["Keep mine", "Keep theirs", "Keep both"] { #expect(page.text.contains(">\(button)</button>")) }
            let action = try #require(page.text.firstMatch(of: /action="(\/conflicts\/[^"]+\/resolve)"/).map { String($0.1) })
            #expect(try await browser.post(action, [("keep", "sideways")]).status == .badRequest)
            #expect(try await browser.post(action, [("keep", "mine")]).status == .seeOther)
            #expect(try await server.services.store.current(libraryId: lib, path: try FerryPath("plan.txt"))?.sha256 == ContentHash.of(Array("mine".utf8)))
            #expect(try await browser.get("/conflicts").text.contains("No open conflicts."))
        }
    }

    @Test func tasksAreCreatedEditedAndGetAttachments() async throws {
        try await Self.withAlice { server, api, token, lib, browser in
            try await api.putFile(lib, "report.pdf", Array("%PDF report".utf8), base: nil, token: token)
            #expect(try await browser.post("/tasks", [("title", "  ")]).text.contains("Title must be 1 to 500 characters"))
            let made = try await browser.post("/tasks", [("title", "Review the report")])
            let taskPage = try #require(made.headers[.location])
            #expect(try await browser.get("/tasks").text.contains(">Review the report</a>"))
            #expect(try await browser.post(taskPage, [("title", "Review"), ("status", "done")]).status == .conflict, "todo cannot jump to done")
            #expect(try await browser.post(taskPage, [("title", "Review"), ("status", "in_progress"), ("due_date", "2026-02-30")]).status == .badRequest)
            #expect(try await browser.post(taskPage, [("title", "Review it"), ("status", "in_progress"), ("due_date", "2026-12-31")]).status == .seeOther)
            #expect(try await browser.post(taskPage + "/attachments", [("library", lib), ("path", "missing.pdf")]).status == .notFound)
            #expect(try await browser.post(taskPage + "/attachments", [("library", lib), ("path", "report.pdf")]).status == .seeOther)
            let shown = try await browser.get(taskPage)
            #expect(shown.text.contains("<h1>Review it</h1>") && shown.text.contains("In progress") && shown.text.contains("due 2026-12-31"))
            #expect(shown.text.contains(#"<nav aria-label="Breadcrumbs" class="crumbs"><ol><li><a href="/tasks">Tasks</a></li><li><span aria-current="page">Review it</span></li></ol></nav>"#))
            let link = try #require(shown.text.firstMatch(of: /href="(\/attachments\/[^"]+\/download)">Download</).map { String($0.1) })
            let file = try await browser.get(link)
            #expect(String(buffer: file.body) == "%PDF report" && file.headers[.contentDisposition]?.hasPrefix("attachment;") == true)
        }
    }

    @Test func webhooksAreManagedWithTheirDeliveryLog() async throws {
        try await Self.withSignedIn { server, _, browser, _ in
            #expect(try await browser.post("/webhooks", [("url", "http://127.0.0.1:9/hook"), ("events", "file.*, nonsense")]).text.contains("Unknown event &#39;nonsense&#39;"))
            #expect(try await browser.post("/webhooks", [("url", "http://169.254.169.254/"), ("events", "file.*")]).status == .badRequest)
            let added = try await browser.post("/webhooks", [("url", "http://127.0.0.1:9/hook"), ("events", "file.*, task.created")])
            #expect(added.status == .created && added.text.contains("whsec_"))
            let hook = try #require(try await server.services.store.webhooks(userId: 1).first)
            #expect(hook.createdBy?.kind == .session && hook.events.patterns == ["file.*", "task.created"])
            #expect(try await browser.post("/webhooks/\(hook.id)/test").status == .seeOther)
            let page = try await browser.get("/webhooks")
            #expect(page.text.contains("<td>ping</td>") && page.text.contains(">Redeliver</button>") && page.text.contains(#"<label for="webhook-url">URL</label>"#))
            let delivery = try #require(page.text.firstMatch(of: /action="(\/deliveries\/\d+\/redeliver)"/).map { String($0.1) })
            #expect(try await browser.post(delivery).headers[.location] == "/webhooks/\(hook.id)")
            #expect(try await server.services.store.deliveries(userId: 1, webhookId: hook.id, before: nil, limit: 10).deliveries.count == 2)
            #expect(try await browser.post("/webhooks/\(hook.id)/remove").text.contains("Remove the webhook to http://127.0.0.1:9/hook?"))
            #expect(try await browser.post("/webhooks/\(hook.id)/remove", [("confirmed", "yes")]).status == .seeOther)
            #expect(try await server.services.store.webhooks(userId: 1).isEmpty)
        }
    }

    @Test func theServerPageIsForAdministratorsOnly() async throws {
        let server = try await Self.make()
        defer { server.removeData() }
        let (_, adminPassword) = try await server.addUser("root", admin: true)
        let (_, password) = try await server.addUser("alice")
        try await server.run { api in
            let token = try await api.login("alice", password).accessToken
            let lib = try await api.createLibrary("docs", token: token).id
            try await api.putFile(lib, "a.bin", randomBytes(100_000, seed: 3), base: nil, token: token)
            let alice = try await DashboardBrowser.signIn(api, "alice", password)
            #expect(try await alice.get("/admin").status == .notFound)
            #expect(!(try await alice.get("/libraries").text.contains(#"href="/admin""#)))
            let root = try await DashboardBrowser.signIn(api, "root", adminPassword)
            let page = try await root.get("/admin")
            #expect(page.status == .ok && page.text.contains("<caption>Users</caption>") && page.text.contains("Webhook dispatcher"))
            let use = try await server.services.store.storageUse()
            #expect(use.bytes == 100_000 && use.users.map(\.username) == ["alice", "root"] && use.users[0].bytes == 100_000 && use.users[1].bytes == 0)
        }
    }
}
