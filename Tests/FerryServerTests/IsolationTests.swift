import FerryCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import FerryTestSupport
import Testing

@testable import FerryServer

@Suite("Isolation between users", .eachBackend)
struct IsolationTests {
    @Test func noEndpointLetsOneUserReachAnother() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in
            let alice = try await api.newUser("alice")
            let bob = try await api.newUser("bob")
            let lib = try await api.createLibrary("private", token: alice).id
            let secret = Array("alice's secret".utf8)
            try await api.putFile(lib, "s.txt", secret, base: nil, token: alice)
            let device = try await api.registerDevice("alice-laptop", token: alice)
            let hash = ContentHash.of(secret)

            // Every library endpoint answers 404 to bob, as if the library did not exist.
            let probes: [(HTTPRequest.Method, String, ByteBuffer?)] = [
                (.get, "/libraries/\(lib)/files?path=s.txt", nil),
                (.put, "/libraries/\(lib)/files?path=t.txt", ByteBuffer(string: "x")),
                (.get, "/libraries/\(lib)/changes?since=0", nil),
                (.get, "/libraries/\(lib)/history?path=s.txt", nil),
                (.post, "/libraries/\(lib)/restore", ByteBuffer(string: #"{"path":"s.txt","version":1}"#)),
                (.get, "/libraries/\(lib)/trash", nil),
                (.post, "/libraries/\(lib)/confirmed-deletes", ByteBuffer(string: #"{"versions":[1]}"#)),
                (.post, "/libraries/\(lib)/confirmed-deletes/lookup", ByteBuffer(string: #"{"versions":[1]}"#)),
                (.post, "/libraries/\(lib)/commit", ByteBuffer(string: #"{"operations":[{"op":"delete","path":"s.txt","base":1}]}"#)),
                (.get, "/chunks/\(hash.hex)", nil),
                (.delete, "/devices/\(device.device.id)", nil),
            ]
            for (method, uri, body) in probes {
                let r = try await api.call(method, uri, token: bob, body: body)
                #expect(r.status == .notFound, "\(method) \(uri) answered \(r.status)")
                #expect(!String(buffer: r.body).contains("secret"))
            }
            #expect(try api.decode(LibraryListResponse.self, try await api.call(.get, "/libraries", token: bob)).libraries.isEmpty)
            #expect(try api.decode(DeviceListResponse.self, try await api.call(.get, "/devices", token: bob)).devices.isEmpty)

            // Hash probing reveals nothing: alice's chunk is "missing" for bob...
            let probe = try await api.call(.post, "/chunks/missing", token: bob, json: MissingChunksRequest(chunks: [hash]))
            #expect(try api.decode(MissingChunksResponse.self, probe).missing == [hash])
            // ...and bob cannot commit a reference to it without uploading it.
            let bobLib = try await api.createLibrary("private", token: bob).id
            let steal = CommitOperation(op: .put, path: try FerryPath("stolen"), base: nil, kind: .file, size: Int64(secret.count), sha256: hash,
                                        mtimeNs: 0, mode: 0o644, chunks: [ChunkRef(sha256: hash, size: Int64(secret.count))])
            #expect(try await api.commit(bobLib, [steal], token: bob).results[0].status == .missingChunks)
            // Uploading the bytes proves possession; the blob is stored once.
            #expect(try await api.call(.put, "/chunks/\(hash.hex)", token: bob, body: ByteBuffer(bytes: secret)).status == .created)
            #expect(try await server.storedBlobs().count == 1)
            #expect(try await api.commit(bobLib, [steal], token: bob).results[0].status == .ok)

            // Alice's data is untouched.
            #expect(try await api.changes(lib, token: alice).head == 1)
            #expect(try await api.call(.get, "/auth/me", token: device.token).status == .ok)
        }
    }
}

/// Every route the router serves, probed by a second user with the first user's ids. The
/// table must list every served route, so a new route cannot ship without its probe.
@Suite("Isolation: every route", .eachBackend)
struct EveryRouteIsolationTests {
    enum Expect {
        /// Answers 404, as if the resource did not exist.
        case notFound
        /// Answers 2xx with the caller's own things only: none of the other user's ids.
        case ownOnly
        /// Names no other user's resource (login, health, the caller's own creations).
        case notAboutOthers
        /// Answers 403: for administrators only.
        case forbidden
    }

    struct Probe {
        let method: HTTPRequest.Method
        let uri: String
        let json: String?
        let expect: Expect
        init(_ method: HTTPRequest.Method, _ uri: String, _ json: String? = nil, _ expect: Expect) {
            self.method = method
            self.uri = uri
            self.json = json
            self.expect = expect
        }
    }

    @Test func noRouteGivesAnotherUserAnything() async throws {
        let server = try await TestServer.make { $0.webhooks.allowPrivateTargets = true }
        defer { server.removeData() }
        try await server.run { api in
            // alice owns one of everything.
            let alice = try await api.newUser("alice")
            let lib = try await api.createLibrary("private", token: alice).id
            let secret = Array("alice's secret".utf8)
            let hook = try api.decode(CreatedWebhookResponse.self, try await api.call(
                .post, "/webhooks", token: alice, json: CreateWebhookRequest(url: "http://127.0.0.1:9/hook", events: try EventFilter(["*"]))))
            let file = try await api.putFile(lib, "s.txt", secret, base: nil, token: alice)
            let copy = CommitOperation(op: .put, path: try FerryPath("s.conflict-x.txt"), base: nil, kind: .file, size: 0,
                                       sha256: ContentHash.of([UInt8]()), mtimeNs: 0, mode: 0o644, chunks: [],
                                       conflictOf: ConflictOrigin(path: try FerryPath("s.txt"), theirs: file.version!.version))
            #expect(try await api.commit(lib, [copy], token: alice).results[0].status == .ok)
            let conflict = try #require(try api.decode(ConflictListResponse.self, try await api.call(.get, "/conflicts", token: alice)).conflicts.first)
            let device = try await api.registerDevice("alice-laptop", token: alice)
            let project = try api.decode(ProjectInfo.self, try await api.call(.post, "/projects", token: alice, json: CreateProjectRequest(name: "secret plan")))
            let task = try api.decode(TaskInfo.self, try await api.call(
                .post, "/tasks", token: alice, json: CreateTaskRequest(project: project.id, title: "alice's task")))
            let attachment = try api.decode(AttachmentInfo.self, try await api.call(
                .post, "/tasks/\(task.id)/attachments", token: alice, json: AttachRequest(library: lib, path: try FerryPath("s.txt"))))
            let deliveries = try api.decode(DeliveryListResponse.self, try await api.call(.get, "/webhooks/\(hook.webhook.id)/deliveries", token: alice))
            let delivery = try #require(deliveries.deliveries.first)
            let hash = ContentHash.of(secret).hex
            let head = try await api.changes(lib, token: alice).head
            let aliceIds = [lib, conflict.id, device.device.id, project.id, task.id, attachment.id, hook.webhook.id, "alice", "secret plan"]

            let bob = try await api.newUser("bob")
            let probes: [String: Probe] = [
                "POST /api/v1/auth/login": Probe(.post, "/auth/login", #"{"username":"bob","password":"wrong"}"#, .notAboutOthers),
                "POST /api/v1/auth/refresh": Probe(.post, "/auth/refresh", #"{"refresh_token":"frt_nothing"}"#, .notAboutOthers),
                "POST /api/v1/auth/logout": Probe(.post, "/auth/logout", nil, .notAboutOthers),
                "GET /api/v1/auth/me": Probe(.get, "/auth/me", nil, .ownOnly),
                "GET /api/v1/account/usage": Probe(.get, "/account/usage", nil, .ownOnly),
                "POST /api/v1/devices": Probe(.post, "/devices", #"{"name":"bob-phone"}"#, .ownOnly),
                "GET /api/v1/devices": Probe(.get, "/devices", nil, .ownOnly),
                "DELETE /api/v1/devices/{id}": Probe(.delete, "/devices/\(device.device.id)", nil, .notFound),
                "POST /api/v1/libraries": Probe(.post, "/libraries", #"{"name":"bobs"}"#, .ownOnly),
                "GET /api/v1/libraries": Probe(.get, "/libraries", nil, .ownOnly),
                "POST /api/v1/chunks/missing": Probe(.post, "/chunks/missing", #"{"chunks":["\#(hash)"]}"#, .ownOnly),
                "POST /api/v1/chunks/batch": Probe(.post, "/chunks/batch", nil, .notAboutOthers),
                "PUT /api/v1/chunks/{sha256}": Probe(.put, "/chunks/\(String(repeating: "0", count: 64))", nil, .notAboutOthers),
                "GET /api/v1/chunks/{sha256}": Probe(.get, "/chunks/\(hash)", nil, .notFound),
                "POST /api/v1/libraries/{lib}/commit": Probe(.post, "/libraries/\(lib)/commit", #"{"operations":[{"op":"delete","path":"s.txt","base":1}]}"#, .notFound),
                "GET /api/v1/libraries/{lib}/files": Probe(.get, "/libraries/\(lib)/files?path=s.txt", nil, .notFound),
                "PUT /api/v1/libraries/{lib}/files": Probe(.put, "/libraries/\(lib)/files?path=t.txt", nil, .notFound),
                "GET /api/v1/libraries/{lib}/changes": Probe(.get, "/libraries/\(lib)/changes?since=0", nil, .notFound),
                "GET /api/v1/libraries/{lib}/history": Probe(.get, "/libraries/\(lib)/history?path=s.txt", nil, .notFound),
                "GET /api/v1/libraries/{lib}/list": Probe(.get, "/libraries/\(lib)/list", nil, .notFound),
                "POST /api/v1/libraries/{lib}/restore": Probe(.post, "/libraries/\(lib)/restore", #"{"path":"s.txt","version":1}"#, .notFound),
                "POST /api/v1/libraries/{lib}/confirmed-deletes": Probe(.post, "/libraries/\(lib)/confirmed-deletes", #"{"versions":[1]}"#, .notFound),
                "POST /api/v1/libraries/{lib}/confirmed-deletes/lookup": Probe(.post, "/libraries/\(lib)/confirmed-deletes/lookup", #"{"versions":[1]}"#, .notFound),
                "GET /api/v1/libraries/{lib}/trash": Probe(.get, "/libraries/\(lib)/trash", nil, .notFound),
                "GET /api/v1/libraries/{lib}/retention": Probe(.get, "/libraries/\(lib)/retention", nil, .notFound),
                "PUT /api/v1/libraries/{lib}/retention": Probe(.put, "/libraries/\(lib)/retention", #"{"keep_versions":1}"#, .notFound),
                "GET /api/v1/libraries/{lib}/members": Probe(.get, "/libraries/\(lib)/members", nil, .notFound),
                "PUT /api/v1/libraries/{lib}/members/{username}": Probe(.put, "/libraries/\(lib)/members/bob", #"{"role":"write"}"#, .notFound),
                "DELETE /api/v1/libraries/{lib}/members/{username}": Probe(.delete, "/libraries/\(lib)/members/bob", nil, .notFound),
                "GET /api/v1/libraries/{lib}/chunks/{sha256}": Probe(.get, "/libraries/\(lib)/chunks/\(hash)?path=s.txt&version=1", nil, .notFound),
                "GET /api/v1/conflicts": Probe(.get, "/conflicts?state=all", nil, .ownOnly),
                "POST /api/v1/conflicts/{id}/resolve": Probe(.post, "/conflicts/\(conflict.id)/resolve", #"{"keep":"mine"}"#, .notFound),
                "POST /api/v1/projects": Probe(.post, "/projects", #"{"name":"bobs"}"#, .ownOnly),
                "GET /api/v1/projects": Probe(.get, "/projects", nil, .ownOnly),
                "POST /api/v1/projects/{id}/members": Probe(.post, "/projects/\(project.id)/members", #"{"username":"bob"}"#, .notFound),
                "POST /api/v1/tasks": Probe(.post, "/tasks", #"{"project":"\#(project.id)","title":"sneaky"}"#, .notFound),
                "GET /api/v1/tasks": Probe(.get, "/tasks?project=\(project.id)", nil, .ownOnly),
                "GET /api/v1/tasks/{id}": Probe(.get, "/tasks/\(task.id)", nil, .notFound),
                "PATCH /api/v1/tasks/{id}": Probe(.patch, "/tasks/\(task.id)", #"{"title":"defaced"}"#, .notFound),
                "POST /api/v1/tasks/{id}/attachments": Probe(.post, "/tasks/\(task.id)/attachments", #"{"library":"\#(lib)","path":"s.txt"}"#, .notFound),
                "GET /api/v1/tasks/{id}/attachments": Probe(.get, "/tasks/\(task.id)/attachments", nil, .notFound),
                "DELETE /api/v1/tasks/{id}/attachments/{attachment}": Probe(.delete, "/tasks/\(task.id)/attachments/\(attachment.id)", nil, .notFound),
                "GET /api/v1/attachments/{id}/content": Probe(.get, "/attachments/\(attachment.id)/content", nil, .notFound),
                "POST /api/v1/webhooks": Probe(.post, "/webhooks", #"{"url":"http://127.0.0.1:9/bob","events":["*"]}"#, .ownOnly),
                "GET /api/v1/webhooks": Probe(.get, "/webhooks", nil, .ownOnly),
                "PATCH /api/v1/webhooks/{id}": Probe(.patch, "/webhooks/\(hook.webhook.id)", #"{"url":"http://127.0.0.1:9/stolen"}"#, .notFound),
                "DELETE /api/v1/webhooks/{id}": Probe(.delete, "/webhooks/\(hook.webhook.id)", nil, .notFound),
                "GET /api/v1/webhooks/{id}/deliveries": Probe(.get, "/webhooks/\(hook.webhook.id)/deliveries", nil, .notFound),
                "POST /api/v1/webhooks/{id}/test": Probe(.post, "/webhooks/\(hook.webhook.id)/test", nil, .notFound),
                "POST /api/v1/deliveries/{id}/redeliver": Probe(.post, "/deliveries/\(delivery.id)/redeliver", nil, .notFound),
                "GET /api/v1/health": Probe(.get, "/health", nil, .notAboutOthers),
                "GET /api/v1/metrics": Probe(.get, "/metrics", nil, .notAboutOthers),
                "GET /api/v1/protocol": Probe(.get, "/protocol", nil, .notAboutOthers),
                "GET /api/v1/admin/security-log": Probe(.get, "/admin/security-log?user=alice", nil, .forbidden),
            ]
            // The dashboard's pages, probed by bob signed in to the dashboard.
            let form = "application/x-www-form-urlencoded"
            let pages: [String: Probe] = [
                "GET /assets/dashboard.css": Probe(.get, "/assets/dashboard.css", nil, .notAboutOthers),
                "GET /assets/dashboard.js": Probe(.get, "/assets/dashboard.js", nil, .notAboutOthers),
                "GET /signin": Probe(.get, "/signin", nil, .notAboutOthers),
                "POST /signin": Probe(.post, "/signin", "username=bob&password=wrong", .notAboutOthers),
                "GET /": Probe(.get, "/", nil, .ownOnly),
                "POST /signout": Probe(.post, "/signout", "", .notAboutOthers),
                "GET /libraries": Probe(.get, "/libraries", nil, .ownOnly),
                "POST /libraries": Probe(.post, "/libraries", "name=bobs-pages", .ownOnly),
                "GET /libraries/{lib}": Probe(.get, "/libraries/\(lib)", nil, .notFound),
                "GET /libraries/{lib}/trash": Probe(.get, "/libraries/\(lib)/trash", nil, .notFound),
                "GET /libraries/{lib}/retention": Probe(.get, "/libraries/\(lib)/retention", nil, .notFound),
                "POST /libraries/{lib}/retention": Probe(.post, "/libraries/\(lib)/retention", "keep_versions=1", .notFound),
                "GET /libraries/{lib}/members": Probe(.get, "/libraries/\(lib)/members", nil, .notFound),
                "POST /libraries/{lib}/members": Probe(.post, "/libraries/\(lib)/members", "username=bob&role=write", .notFound),
                "POST /libraries/{lib}/members/remove": Probe(.post, "/libraries/\(lib)/members/remove", "username=bob", .notFound),
                "GET /libraries/{lib}/file": Probe(.get, "/libraries/\(lib)/file?path=s.txt", nil, .notFound),
                "GET /libraries/{lib}/download": Probe(.get, "/libraries/\(lib)/download?path=s.txt", nil, .notFound),
                "GET /libraries/{lib}/preview": Probe(.get, "/libraries/\(lib)/preview?path=s.txt", nil, .notFound),
                "GET /libraries/{lib}/events": Probe(.get, "/libraries/\(lib)/events?since=0", nil, .notFound),
                "PUT /libraries/{lib}/upload": Probe(.put, "/libraries/\(lib)/upload?path=t.txt", nil, .notFound),
                "POST /libraries/{lib}/restore": Probe(.post, "/libraries/\(lib)/restore", "path=s.txt&version=1", .notFound),
                "POST /libraries/{lib}/delete": Probe(.post, "/libraries/\(lib)/delete", "path=s.txt&confirmed=yes", .notFound),
                "GET /devices": Probe(.get, "/devices", nil, .ownOnly),
                "POST /devices/{id}/revoke": Probe(.post, "/devices/\(device.device.id)/revoke", "confirmed=yes", .notFound),
                "GET /conflicts": Probe(.get, "/conflicts", nil, .ownOnly),
                "POST /conflicts/{id}/resolve": Probe(.post, "/conflicts/\(conflict.id)/resolve", "keep=mine", .notFound),
                "GET /tasks": Probe(.get, "/tasks", nil, .ownOnly),
                "POST /tasks": Probe(.post, "/tasks", "title=sneaky&project=\(project.id)", .notFound),
                "GET /tasks/{id}": Probe(.get, "/tasks/\(task.id)", nil, .notFound),
                "POST /tasks/{id}": Probe(.post, "/tasks/\(task.id)", "title=defaced", .notFound),
                "POST /tasks/{id}/attachments": Probe(.post, "/tasks/\(task.id)/attachments", "library=\(lib)&path=s.txt", .notFound),
                "POST /tasks/{id}/attachments/{attachment}/remove": Probe(.post, "/tasks/\(task.id)/attachments/\(attachment.id)/remove", "", .notFound),
                "GET /attachments/{id}/download": Probe(.get, "/attachments/\(attachment.id)/download", nil, .notFound),
                "GET /webhooks": Probe(.get, "/webhooks", nil, .ownOnly),
                "POST /webhooks": Probe(.post, "/webhooks", "url=http%3A%2F%2F127.0.0.1%3A9%2Fbob&events=*", .ownOnly),
                "GET /webhooks/{id}": Probe(.get, "/webhooks/\(hook.webhook.id)", nil, .notFound),
                "POST /webhooks/{id}/test": Probe(.post, "/webhooks/\(hook.webhook.id)/test", "", .notFound),
                "POST /webhooks/{id}/enable": Probe(.post, "/webhooks/\(hook.webhook.id)/enable", "", .notFound),
                "POST /webhooks/{id}/remove": Probe(.post, "/webhooks/\(hook.webhook.id)/remove", "confirmed=yes", .notFound),
                "POST /deliveries/{id}/redeliver": Probe(.post, "/deliveries/\(delivery.id)/redeliver", "", .notFound),
                "GET /admin": Probe(.get, "/admin", nil, .notFound),
            ]
            let served = Set(FerryServerApp.buildRouter(server.services).routes.map { "\($0.method.rawValue) \($0.path.description)" })
            let probed = Set(probes.keys).union(pages.keys)
            #expect(probed == served, "routes without an isolation probe: \(served.subtracting(probed).sorted()); probes of no route: \(probed.subtracting(served).sorted())")

            // bob's dashboard session, made directly (his password is not known here).
            let bobId = try #require(try await server.services.store.user(named: "bob")).id
            let cookie = "fds_bob-\(UUID())"
            let session = try await server.services.store.createDashboardSession(userId: bobId, cookieHash: TokenService.storedHash(cookie),
                                                                                expiresAt: Date().addingTimeInterval(3600))
            let csrf = CSRFToken.forSession(session, key: server.services.dashboard.csrfKey)
            for (route, probe) in pages.sorted(by: { ($0.key.hasSuffix("signout") ? 1 : 0, $0.key) < ($1.key.hasSuffix("signout") ? 1 : 0, $1.key) }) {
                var headers: HTTPFields = [.cookie: "\(DashboardCookie.session)=\(cookie)", .accept: "text/html", HTTPField.Name(CSRFToken.header)!: csrf]
                if probe.json != nil { headers[.contentType] = form }
                let answer = try await api.client.execute(uri: probe.uri, method: probe.method, headers: headers, body: probe.json.map { ByteBuffer(string: $0) })
                let text = String(buffer: answer.body)
                #expect(answer.status.code < 500, "\(route) answered \(answer.status)")
                switch probe.expect {
                case .notFound: #expect(answer.status == .notFound, "\(route) answered \(answer.status): \(text.prefix(200))")
                case .ownOnly: #expect((200..<400).contains(answer.status.code), "\(route) answered \(answer.status): \(text.prefix(200))")
                case .forbidden: #expect(answer.status == .forbidden, "\(route) answered \(answer.status)")
                case .notAboutOthers: break
                }
                for id in aliceIds where !probe.uri.contains(id) && probe.json?.contains(id) != true {
                    #expect(!text.contains(id), "\(route) revealed \(id): \(text.prefix(200))")
                }
            }

            // Logging out ends bob's session, so it goes last.
            for (route, probe) in probes.sorted(by: { ($0.key.hasSuffix("logout") ? 1 : 0, $0.key) < ($1.key.hasSuffix("logout") ? 1 : 0, $1.key) }) {
                let answer: TestResponse
                if let json = probe.json {
                    answer = try await api.call(probe.method, probe.uri, token: bob, body: ByteBuffer(string: json), headers: [.contentType: "application/json"])
                } else {
                    answer = try await api.call(probe.method, probe.uri, token: bob)
                }
                let text = String(buffer: answer.body)
                #expect(answer.status.code < 500, "\(route) answered \(answer.status)")
                switch probe.expect {
                case .notFound:
                    #expect(answer.status == .notFound, "\(route) answered \(answer.status): \(text.prefix(200))")
                case .ownOnly:
                    #expect((200..<300).contains(answer.status.code), "\(route) answered \(answer.status): \(text.prefix(200))")
                case .forbidden:
                    #expect(answer.status == .forbidden, "\(route) answered \(answer.status): \(text.prefix(200))")
                case .notAboutOthers:
                    break
                }
                // An error may repeat the id bob sent; nothing else of alice's may appear.
                for id in aliceIds where !probe.uri.contains(id) && probe.json?.contains(id) != true {
                    #expect(!text.contains(id), "\(route) revealed \(id): \(text.prefix(200))")
                }
            }

            // alice's things are as she left them.
            #expect(try await api.changes(lib, token: alice).head == head)
            let still = try api.decode(TaskInfo.self, try await api.call(.get, "/tasks/\(task.id)", token: alice))
            #expect(try api.decode(LibraryRetention.self, try await api.call(.get, "/libraries/\(lib)/retention", token: alice)).policy == .keepAll)
            #expect(still.title == "alice's task")
            let hooks = try api.decode(WebhookListResponse.self, try await api.call(.get, "/webhooks", token: alice)).webhooks
            #expect(hooks.map(\.url) == ["http://127.0.0.1:9/hook"])
            #expect(try await api.call(.get, "/attachments/\(attachment.id)/content", token: alice).status == .ok)
            let open = try api.decode(ConflictListResponse.self, try await api.call(.get, "/conflicts", token: alice)).conflicts
            #expect(open.map(\.id) == [conflict.id])
            let projects = try api.decode(ProjectListResponse.self, try await api.call(.get, "/projects", token: alice)).projects
            #expect(projects.first { $0.id == project.id }?.members.contains("bob") == false)
        }
    }
}
