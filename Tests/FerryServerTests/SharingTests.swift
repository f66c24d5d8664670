import FerryCore
import FerryTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import FerryServer

/// Libraries shared with other users (SPEC §10): roles, what each may do, chunk presence
/// staying per user, the owner's webhooks hearing members' changes, and unsharing.
@Suite("Library sharing", .eachBackend)
struct SharingTests {
    @Test func readAndWriteMembersGetExactlyTheirRole() async throws {
        try await Self.withAliceAndBob { api, alice, bob in
            _ = try await api.newUser("carol")
            let lib = try await api.createLibrary("team", token: alice).id
            let aliceHook = try await Self.webhook(api, token: alice)
            let bobHook = try await Self.webhook(api, token: bob)
            let content = Array("the plan".utf8)
            try await api.putFile(lib, "a.txt", content, base: nil, token: alice)
            let hash = ContentHash.of(content)
            let bobDevice = try await api.registerDevice("bob-laptop", token: bob)
            #expect(try await Self.libraries(api, bob).isEmpty)

            // Shared to read: listed with role and owner; every read works, every write is 403.
            let shared = try await api.call(.put, "/libraries/\(lib)/members/bob", token: alice, json: ShareLibraryRequest(role: "read"))
            #expect(shared.status == .ok, "\(String(buffer: shared.body))")
            #expect(try api.decode(LibraryMember.self, shared).role == .read)
            let listed = try #require(try await Self.libraries(api, bob).first)
            #expect(listed.id == lib && listed.role == .read && listed.owner == "alice" && listed.displayName == "alice/team")
            #expect(try await Self.libraries(api, alice).map(\.role) == [.owner])
            for uri in ["/files?path=a.txt", "/changes?since=0", "/history?path=a.txt", "/list", "/trash", "/members",
                        "/chunks/\(hash.hex)?path=a.txt&version=1"] {
                let r = try await api.call(.get, "/libraries/\(lib)\(uri)", token: bobDevice.token)
                #expect(r.status == .ok, "\(uri) answered \(r.status): \(String(buffer: r.body))")
            }
            #expect(String(buffer: try await api.call(.get, "/libraries/\(lib)/files?path=a.txt", token: bob).body) == "the plan")
            let members = try api.decode(LibraryMembersResponse.self, try await api.call(.get, "/libraries/\(lib)/members", token: bob))
            #expect(members.owner == "alice" && members.members.map(\.username) == ["bob"])
            let lookup = try await api.call(.post, "/libraries/\(lib)/confirmed-deletes/lookup", token: bob, json: ConfirmedDeletions(versions: [1]))
            #expect(lookup.status == .ok)
            let writes: [(HTTPRequest.Method, String, String)] = [
                (.post, "/commit", #"{"operations":[{"op":"delete","path":"a.txt","base":1}]}"#),
                (.put, "/files?path=b.txt", "x"),
                (.post, "/restore", #"{"path":"a.txt","version":1}"#),
                (.post, "/confirmed-deletes", #"{"versions":[1]}"#),
                (.put, "/members/carol", #"{"role":"read"}"#),
                (.delete, "/members/bob", ""),
            ]
            for (method, uri, body) in writes {
                let r = try await api.call(method, "/libraries/\(lib)\(uri)", token: bobDevice.token, body: ByteBuffer(string: body),
                                           headers: [.contentType: "application/json"])
                #expect(r.status == .forbidden && api.errorCode(r) == "forbidden", "\(method) \(uri) answered \(r.status)")
            }
            #expect(try await api.changes(lib, token: alice).head == 1)

            // Made a write member: bob commits as himself, but must prove he holds each chunk.
            let upgraded = try await api.call(.put, "/libraries/\(lib)/members/bob", token: alice, json: ShareLibraryRequest(role: "write"))
            #expect(try api.decode(LibraryMember.self, upgraded).role == .write)
            let copy = CommitOperation.putFile(try FerryPath("copy.txt"), base: nil, manifest: ContentManifest(size: Int64(content.count), sha256: hash,
                                               chunks: [ChunkRef(sha256: hash, size: Int64(content.count))]), mtimeNs: 0, mode: 0o644)
            #expect(try await api.commit(lib, [copy], token: bobDevice.token).results[0].status == .missingChunks)
            let missing = try await api.call(.post, "/chunks/missing", token: bob, json: MissingChunksRequest(chunks: [hash]))
            #expect(try api.decode(MissingChunksResponse.self, missing).missing == [hash])
            #expect(try await api.call(.get, "/chunks/\(hash.hex)", token: bob).status == .notFound)
            let put = try await api.putFile(lib, "b.txt", Array("bob's part".utf8), base: nil, token: bobDevice.token)
            #expect(put.status == .ok && put.version?.deviceId == bobDevice.device.id)
            #expect(String(buffer: try await api.call(.get, "/libraries/\(lib)/files?path=b.txt", token: alice).body) == "bob's part")
            #expect(try await api.history(lib, "b.txt", token: alice).versions.first?.deviceId == bobDevice.device.id)

            // The owner's webhooks hear of bob's change, with bob's device; bob's own do not.
            let bodies = try await api.server.fetchBytes("SELECT body FROM event WHERE type = 'file.created'").map { String(decoding: $0, as: UTF8.self) }
            #expect(bodies.count == 2)
            #expect(bodies.contains { $0.contains(bobDevice.device.id) && $0.contains("b.txt") })
            #expect(try await Self.deliveries(api, aliceHook, alice).count == 2)
            #expect(try await Self.deliveries(api, bobHook, bob).isEmpty)

            // Unsharing cuts bob off at once: the library is gone from his list and every route.
            #expect(try await api.call(.delete, "/libraries/\(lib)/members/bob", token: alice).status == .noContent)
            #expect(try await Self.libraries(api, bob).isEmpty)
            for uri in ["/changes?since=0", "/files?path=a.txt", "/members", "/chunks/\(hash.hex)?path=a.txt&version=1"] {
                #expect(try await api.call(.get, "/libraries/\(lib)\(uri)", token: bobDevice.token).status == .notFound, "\(uri)")
            }
            let late = try await api.call(.post, "/libraries/\(lib)/commit", token: bobDevice.token,
                                          json: CommitRequest(operations: [.delete(try FerryPath("b.txt"), base: put.version?.version)]))
            #expect(late.status == .notFound)
            #expect(try await api.changes(lib, token: alice).head == 2)
        }
    }

    @Test func sharingRefusesBadRequests() async throws {
        try await Self.withAliceAndBob { api, alice, _ in
            let lib = try await api.createLibrary("team", token: alice).id
            let cases: [(String, String, HTTPResponse.Status, String)] = [
                ("bob", #"{"role":"admin"}"#, .badRequest, "role must be 'read' or 'write'"),
                ("bob", #"{"role":"owner"}"#, .badRequest, "role must be 'read' or 'write'"),
                ("bob", #"{"rol":"read"}"#, .badRequest, "role"),
                ("bob", "not json", .badRequest, "not valid JSON"),
                ("nobody", #"{"role":"read"}"#, .badRequest, "no user named 'nobody'"),
                ("alice", #"{"role":"write"}"#, .badRequest, "you own this library"),
            ]
            for (user, body, status, message) in cases {
                let r = try await api.call(.put, "/libraries/\(lib)/members/\(user)", token: alice, body: ByteBuffer(string: body),
                                           headers: [.contentType: "application/json"])
                #expect(r.status == status && String(buffer: r.body).contains(message), "\(user) \(body) answered \(r.status): \(String(buffer: r.body))")
            }
            let notMember = try await api.call(.delete, "/libraries/\(lib)/members/bob", token: alice)
            #expect(notMember.status == .notFound && String(buffer: notMember.body).contains("not a member"))
            #expect(try await api.call(.put, "/libraries/nope/members/bob", token: alice, json: ShareLibraryRequest(role: "read")).status == .notFound)
            #expect(try await api.call(.get, "/libraries/\(lib)/members").status == .unauthorized)
            let noVersion = try await api.call(.get, "/libraries/\(lib)/chunks/\(ContentHash.empty.hex)?path=a.txt", token: alice)
            #expect(noVersion.status == .badRequest && String(buffer: noVersion.body).contains("'version' is required"))
            let badHash = try await api.call(.get, "/libraries/\(lib)/chunks/xyz?path=a.txt&version=1", token: alice)
            #expect(badHash.status == .badRequest)
            #expect(try api.decode(LibraryMembersResponse.self, try await api.call(.get, "/libraries/\(lib)/members", token: alice))
                    == LibraryMembersResponse(owner: "alice", members: []))
        }
    }

    /// The library chunk route serves every chunk of the version named, and only at that
    /// version's own path: a member downloads a large file chunk by chunk through it.
    @Test func theLibraryChunkRouteServesEachChunkOfTheVersionNamed() async throws {
        try await Self.withAliceAndBob { api, alice, bob in
            let lib = try await api.createLibrary("team", token: alice).id
            let content = randomBytes(3 << 20, seed: 24)
            let manifest = try await api.uploadContent(content, token: alice)
            #expect(manifest.chunks.count > 1)
            let op = CommitOperation.putFile(try FerryPath("big.bin"), base: nil, manifest: manifest, mtimeNs: 0, mode: 0o644)
            #expect(try await api.commit(lib, [op], token: alice).results[0].status == .ok)
            _ = try await api.putFile(lib, "other.txt", Array("other".utf8), base: nil, token: alice)
            #expect(try await api.call(.put, "/libraries/\(lib)/members/bob", token: alice, json: ShareLibraryRequest(role: "read")).status == .ok)

            var offset = 0
            for ref in manifest.chunks {
                let r = try await api.call(.get, "/libraries/\(lib)/chunks/\(ref.sha256.hex)?path=big.bin&version=1", token: bob)
                #expect(r.status == .ok && Array(buffer: r.body) == Array(content[offset..<(offset + Int(ref.size))]))
                offset += Int(ref.size)
            }
            let last = try #require(manifest.chunks.last).sha256.hex
            for query in ["path=other.txt&version=1", "path=big.bin&version=2", "path=big.bin&version=3"] {
                let r = try await api.call(.get, "/libraries/\(lib)/chunks/\(last)?\(query)", token: bob)
                #expect(r.status == .notFound, "\(query) answered \(r.status)")
            }
        }
    }

    /// A member reaches the shared library and nothing else of the owner's: not her other
    /// libraries, not their chunks (by any route), not her conflicts.
    @Test func aMemberReachesNothingOutsideTheSharedLibrary() async throws {
        try await Self.withAliceAndBob { api, alice, bob in
            let shared = try await api.createLibrary("shared", token: alice).id
            let secret = try await api.createLibrary("private", token: alice).id
            try await api.putFile(shared, "a.txt", Array("open".utf8), base: nil, token: alice)
            let hidden = Array("alice's secret".utf8)
            let file = try await api.putFile(secret, "s.txt", hidden, base: nil, token: alice)
            #expect(try await api.commit(secret, [try Self.emptyConflictCopy(of: "s.txt", file)], token: alice).results[0].status == .ok)
            let hash = ContentHash.of(hidden).hex
            #expect(try await api.call(.put, "/libraries/\(shared)/members/bob", token: alice, json: ShareLibraryRequest(role: "write")).status == .ok)

            let probes = [
                "/libraries/\(secret)/files?path=s.txt", "/libraries/\(secret)/changes?since=0", "/libraries/\(secret)/list",
                "/libraries/\(secret)/members", "/libraries/\(secret)/chunks/\(hash)?path=s.txt&version=1",
                // The shared library's chunk route serves only chunks its own versions list.
                "/libraries/\(shared)/chunks/\(hash)?path=s.txt&version=1", "/libraries/\(shared)/chunks/\(hash)?path=a.txt&version=1",
                "/chunks/\(hash)", "/conflicts?library=\(secret)",
            ]
            for uri in probes {
                let r = try await api.call(.get, uri, token: bob)
                #expect(r.status == .notFound, "\(uri) answered \(r.status)")
                #expect(!String(buffer: r.body).contains("secret"))
            }
            #expect(try await api.call(.put, "/libraries/\(secret)/files?path=x", token: bob, body: ByteBuffer(string: "x")).status == .notFound)
            #expect(try await Self.libraries(api, bob).map(\.id) == [shared])
            let conflicts = try api.decode(ConflictListResponse.self, try await api.call(.get, "/conflicts?state=all", token: bob))
            #expect(conflicts.conflicts.isEmpty)
            let probe = try await api.call(.post, "/chunks/missing", token: bob, json: MissingChunksRequest(chunks: [ContentHash(hex: hash)!]))
            #expect(try api.decode(MissingChunksResponse.self, probe).missing.map(\.hex) == [hash])
            // Committing the secret's chunk into the shared library needs its bytes first.
            let steal = CommitOperation(op: .put, path: try FerryPath("stolen"), base: nil, kind: .file, size: Int64(hidden.count),
                                        sha256: ContentHash(hex: hash)!, mtimeNs: 0, mode: 0o644,
                                        chunks: [ChunkRef(sha256: ContentHash(hex: hash)!, size: Int64(hidden.count))])
            #expect(try await api.commit(shared, [steal], token: bob).results[0].status == .missingChunks)
        }
    }

    /// A write member's conflict copies are his to see and settle, as the owner's are.
    @Test func writeMembersSeeAndSettleTheLibrarysConflicts() async throws {
        try await Self.withAliceAndBob { api, alice, bob in
            let lib = try await api.createLibrary("team", token: alice).id
            let file = try await api.putFile(lib, "a.txt", [1], base: nil, token: alice)
            #expect(try await api.commit(lib, [try Self.emptyConflictCopy(of: "a.txt", file)], token: alice).results[0].status == .ok)
            #expect(try await api.call(.put, "/libraries/\(lib)/members/bob", token: alice, json: ShareLibraryRequest(role: "read")).status == .ok)
            let seen = try api.decode(ConflictListResponse.self, try await api.call(.get, "/conflicts?library=\(lib)", token: bob)).conflicts
            let conflict = try #require(seen.first)
            // A reader sees it but cannot settle it.
            let refused = try await api.call(.post, "/conflicts/\(conflict.id)/resolve", token: bob, json: ResolveConflictRequest(keep: .theirs))
            #expect(refused.status == .notFound)
            #expect(try await api.call(.put, "/libraries/\(lib)/members/bob", token: alice, json: ShareLibraryRequest(role: "write")).status == .ok)
            let settled = try await api.call(.post, "/conflicts/\(conflict.id)/resolve", token: bob, json: ResolveConflictRequest(keep: .theirs))
            #expect(settled.status == .ok, "\(String(buffer: settled.body))")
            #expect(try api.decode(ConflictInfo.self, settled).resolution == "theirs")
        }
    }

    /// Project members read attachments of tasks they see, though the library is not shared with them.
    @Test func projectMembersReadAttachmentsOfLibrariesNotSharedWithThem() async throws {
        try await Self.withAliceAndBob { api, alice, bob in
            let lib = try await api.createLibrary("private", token: alice).id
            try await api.putFile(lib, "brief.txt", Array("the brief".utf8), base: nil, token: alice)
            let project = try api.decode(ProjectInfo.self, try await api.call(.post, "/projects", token: alice, json: CreateProjectRequest(name: "launch")))
            #expect(try await api.call(.post, "/projects/\(project.id)/members", token: alice, json: AddMemberRequest(username: "bob")).status == .ok)
            let task = try api.decode(TaskInfo.self, try await api.call(.post, "/tasks", token: alice, json: CreateTaskRequest(project: project.id, title: "read it")))
            let attachment = try api.decode(AttachmentInfo.self, try await api.call(
                .post, "/tasks/\(task.id)/attachments", token: alice, json: AttachRequest(library: lib, path: try FerryPath("brief.txt"))))
            let content = try await api.call(.get, "/attachments/\(attachment.id)/content", token: bob)
            #expect(content.status == .ok && String(buffer: content.body) == "the brief")
            #expect(try await api.call(.get, "/libraries/\(lib)/files?path=brief.txt", token: bob).status == .notFound)
            #expect(try await Self.libraries(api, bob).isEmpty)
        }
    }

    /// The dashboard: the owner shares and unshares with CSRF-checked forms; the member
    /// sees the library marked as shared, its members, and no upload form when reading only.
    @Test func theDashboardSharesAndShowsSharedLibraries() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in
            let (_, alicePassword) = try await server.addUser("alice")
            let (_, bobPassword) = try await server.addUser("bob")
            let aliceToken = try await api.login("alice", alicePassword).accessToken
            let lib = try await api.createLibrary("team", token: aliceToken).id
            let alice = try await DashboardBrowser.signIn(api, "alice", alicePassword)
            let bob = try await DashboardBrowser.signIn(api, "bob", bobPassword)

            #expect(try await alice.post("/libraries/\(lib)/members", [("username", "bob"), ("role", "read")], csrf: "").status == .forbidden)
            #expect(try await alice.post("/libraries/\(lib)/members", [("username", "bob"), ("role", "owner")]).status == .badRequest)
            #expect(try await alice.post("/libraries/\(lib)/members", [("username", "nobody"), ("role", "read")]).status == .badRequest)
            #expect(try await alice.post("/libraries/\(lib)/members", [("username", "bob"), ("role", "read")]).status == .seeOther)
            let page = String(buffer: try await alice.get("/libraries/\(lib)/members").body)
            #expect(page.contains("<td>bob</td><td>read</td>") && page.contains(">Share</button>") && page.contains(">Unshare</button>"))

            let list = String(buffer: try await bob.get("/libraries").body)
            #expect(list.contains(">alice/team</a>") && list.contains("shared with you by alice (read)"))
            let folder = String(buffer: try await bob.get("/libraries/\(lib)").body)
            #expect(folder.contains("read only") && !folder.contains("Upload files"))
            let members = String(buffer: try await bob.get("/libraries/\(lib)/members").body)
            #expect(members.contains("<td>alice</td><td>owner</td>") && !members.contains(">Share</button>"))
            #expect(try await bob.post("/libraries/\(lib)/members", [("username", "bob"), ("role", "write")]).status == .forbidden)
            #expect(try await bob.send(.put, "/libraries/\(lib)/upload?path=x.txt", body: ByteBuffer(string: "x")).status == .forbidden)
            // The library's conflicts are listed for the member under the name he knows it by.
            let file = try await api.putFile(lib, "a.txt", [1], base: nil, token: aliceToken)
            #expect(try await api.commit(lib, [try Self.emptyConflictCopy(of: "a.txt", file)], token: aliceToken).results[0].status == .ok)
            #expect(String(buffer: try await bob.get("/conflicts").body).contains("in alice/team</span>"))

            #expect(try await alice.post("/libraries/\(lib)/members/remove", [("username", "bob")]).status == .seeOther)
            #expect(try await bob.get("/libraries/\(lib)").status == .notFound)
            #expect(!String(buffer: try await bob.get("/libraries").body).contains("alice/team"))
            #expect(try await alice.post("/libraries/\(lib)/members/remove", [("username", "bob")]).status == .notFound)
        }
    }

    /// A server with the users alice and bob, signed in (their access tokens).
    static func withAliceAndBob(_ body: @Sendable (API, _ alice: String, _ bob: String) async throws -> Void) async throws {
        let server = try await TestServer.make { $0.webhooks.allowPrivateTargets = true }
        defer { server.removeData() }
        try await server.run { api in
            try await body(api, try await api.newUser("alice"), try await api.newUser("bob"))
        }
    }

    /// An empty conflict copy of `path` (named `…conflict-x…`) whose other side is `file`'s version.
    static func emptyConflictCopy(of path: String, _ file: CommitResult) throws -> CommitOperation {
        let copy = path.replacingOccurrences(of: ".txt", with: ".conflict-x.txt")
        return CommitOperation(op: .put, path: try FerryPath(copy), base: nil, kind: .file, size: 0, sha256: .empty, mtimeNs: 0, mode: 0o644,
                               chunks: [], conflictOf: ConflictOrigin(path: try FerryPath(path), theirs: try #require(file.version).version))
    }

    static func libraries(_ api: API, _ token: String) async throws -> [LibraryInfo] {
        try api.decode(LibraryListResponse.self, try await api.call(.get, "/libraries", token: token)).libraries
    }

    static func webhook(_ api: API, token: String) async throws -> String {
        let r = try await api.call(.post, "/webhooks", token: token, json: CreateWebhookRequest(
            url: "http://127.0.0.1:9/hook", events: try EventFilter(["file.created", "file.updated", "file.deleted"])))
        #expect(r.status == .created, "\(String(buffer: r.body))")
        return try api.decode(CreatedWebhookResponse.self, r).webhook.id
    }

    static func deliveries(_ api: API, _ hook: String, _ token: String) async throws -> [DeliveryInfo] {
        try api.decode(DeliveryListResponse.self, try await api.call(.get, "/webhooks/\(hook)/deliveries", token: token)).deliveries
    }
}
