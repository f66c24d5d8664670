import FerryCore
import FerryTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import FerryServer

/// `/libraries/{lib}/confirmed-deletes`: deletions let through the mass-delete guard on one
/// device, asked about by the user's other devices (issue 26).
@Suite("Confirmed deletions", .eachBackend)
struct DeleteConfirmationTests {
    @Test func confirmedDeletionsAreRecordedAndAnsweredOnlyForTombstones() async throws {
        try await withDevice { api, user, device, lib in
            let live = try #require(try await api.putFile(lib, "keep.txt", [1], base: nil, token: device).version?.version)
            var tombstones: [Int64] = []
            for name in ["a.txt", "b.txt"] {
                let base = try #require(try await api.putFile(lib, name, [2], base: nil, token: device).version?.version)
                let gone = try await api.commit(lib, [.delete(try FerryPath(name), base: base)], token: device)
                tombstones.append(try #require(gone.results[0].version?.version))
            }
            let asked = ConfirmedDeletions(versions: tombstones + [live, 999_999])
            let nothingYet = try await api.call(.post, "/libraries/\(lib)/confirmed-deletes/lookup", token: device, json: asked)
            #expect(nothingYet.status == .ok)
            #expect(try api.decode(ConfirmedDeletions.self, nothingYet).versions == [])

            // A live version and one that does not exist are not deletions: skipped.
            let recorded = try await api.call(.post, "/libraries/\(lib)/confirmed-deletes", token: device, json: asked)
            #expect(recorded.status == .ok, "\(String(buffer: recorded.body))")
            #expect(try api.decode(ConfirmedDeletions.self, recorded).versions == tombstones.sorted())
            // Any of the user's credentials sees them, and recording twice changes nothing.
            let seen = try await api.call(.post, "/libraries/\(lib)/confirmed-deletes/lookup", token: user, json: asked)
            #expect(try api.decode(ConfirmedDeletions.self, seen).versions == tombstones.sorted())
            let again = try await api.call(.post, "/libraries/\(lib)/confirmed-deletes", token: device, json: ConfirmedDeletions(versions: [tombstones[0]]))
            #expect(try api.decode(ConfirmedDeletions.self, again).versions == [tombstones[0]])
            // Asked out of order and twice over, each is answered once, ascending.
            let shuffled = ConfirmedDeletions(versions: [tombstones[1], live, tombstones[0], tombstones[1]])
            let once = try await api.call(.post, "/libraries/\(lib)/confirmed-deletes/lookup", token: device, json: shuffled)
            #expect(try api.decode(ConfirmedDeletions.self, once).versions == tombstones.sorted())
        }
    }

    @Test func badRequestsAreRefused() async throws {
        try await withDevice { api, _, device, lib in
            let uri = "/libraries/\(lib)/confirmed-deletes"
            for body in [#"{"versions":[0]}"#, #"{"versions":[-3]}"#, #"{"versions":"1"}"#, "not json"] {
                let r = try await api.call(.post, uri, token: device, body: ByteBuffer(string: body), headers: [.contentType: "application/json"])
                #expect(r.status == .badRequest, "\(body) answered \(r.status)")
            }
            let tooMany = ConfirmedDeletions(versions: Array(1...Int64(ConfirmedDeletions.maxCount + 1)))
            let r = try await api.call(.post, uri + "/lookup", token: device, json: tooMany)
            #expect(r.status == .badRequest && String(buffer: r.body).contains("at most \(ConfirmedDeletions.maxCount)"), "\(r.status)")
            let huge = #"{"versions":["# + Array(repeating: "1", count: 130_000).joined(separator: ",") + "]}"
            let tooLarge = try await api.call(.post, uri, token: device, body: ByteBuffer(string: huge), headers: [.contentType: "application/json"])
            #expect(tooLarge.status == .contentTooLarge, "\(tooLarge.status)")
            #expect(try await api.call(.post, uri, json: ConfirmedDeletions(versions: [1])).status == .unauthorized)
            #expect(try await api.call(.post, "/libraries/nope/confirmed-deletes", token: device, json: ConfirmedDeletions(versions: [1])).status == .notFound)
        }
    }

    @Test func theStoreKeepsEachUsersConfirmationsToTheirLibraries() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let store = server.services.store
        let (alice, _) = try await server.addUser("alice")
        let (bob, _) = try await server.addUser("bob")
        let lib = try await store.createLibrary(userId: alice.id, name: "docs")
        await #expect(throws: MetadataError.self) {
            try await store.confirmDeletions(userId: bob.id, libraryId: lib.id, versions: [1], deviceId: nil)
        }
        await #expect(throws: MetadataError.self) {
            try await store.confirmedDeletions(userId: bob.id, libraryId: lib.id, among: [1])
        }
        #expect(try await store.confirmedDeletions(userId: alice.id, libraryId: lib.id, among: []) == [])
    }
}
