import FerryCore
import Foundation
import GRDB
import NIOCore
import HTTPTypes
import HummingbirdTesting
import FerryTestSupport
import Testing

@testable import FerryServer

@Suite("Auth")
struct AuthTests {
    @Test(.eachBackend) func loginAndMe() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let (user, password) = try await server.addUser("alice", admin: true)
        try await server.run { api in
            let tokens = try await api.login("alice", password)
            #expect(tokens.expiresIn == 3600)
            #expect(tokens.tokenType == "Bearer")
            #expect(tokens.refreshToken.hasPrefix("frt_"))
            let me = try api.decode(MeResponse.self, try await api.call(.get, "/auth/me", token: tokens.accessToken))
            #expect(me == MeResponse(id: user.id, username: "alice", isAdmin: true, deviceId: nil))
        }
        let events = try await server.services.store.securityEvents(userId: user.id, limit: 10)
        #expect(events.map(\.kind) == [.loginSucceeded])
    }

    @Test(.eachBackend) func wrongPasswordAndUnknownUserAreTheSame401() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.addUser("alice")
        try await server.run { api in
            let wrong = try await api.call(.post, "/auth/login", json: LoginRequest(username: "alice", password: "nope"))
            let unknown = try await api.call(.post, "/auth/login", json: LoginRequest(username: "mallory", password: "nope"))
            #expect(wrong.status == .unauthorized)
            #expect(unknown.status == .unauthorized)
            #expect(String(buffer: wrong.body) == String(buffer: unknown.body))
        }
    }

    @Test func badRequestsAndMissingTokens() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in
            let notJSON = try await api.call(.post, "/auth/login", body: ByteBuffer(string: "{not json"))
            #expect(notJSON.status == .badRequest)
            #expect(api.errorCode(notJSON) == "invalid_json")
            let missingField = try await api.call(.post, "/auth/login", body: ByteBuffer(string: #"{"username":"a"}"#))
            #expect(missingField.status == .badRequest)
            let empty = try await api.call(.post, "/auth/login", json: LoginRequest(username: "", password: ""))
            #expect(empty.status == .badRequest)
            let noToken = try await api.call(.get, "/auth/me")
            #expect(noToken.status == .unauthorized)
            #expect(noToken.headers[.wwwAuthenticate] == "Bearer")
            let garbage = try await api.call(.get, "/auth/me", token: "eyJ.garbage.token")
            #expect(garbage.status == .unauthorized)
            let unknownDevice = try await api.call(.get, "/auth/me", token: "fdt_doesnotexist")
            #expect(unknownDevice.status == .unauthorized)
        }
    }

    @Test(.eachBackend) func rateLimitPerUserAnswers429WithRetryAfter() async throws {
        let server = try await TestServer.make { $0.auth.loginDelaySeconds = 60 }
        defer { server.removeData() }
        let (user, password) = try await server.addUser("alice")
        try await server.run { api in
            for _ in 0..<5 {
                let r = try await api.call(.post, "/auth/login", json: LoginRequest(username: "alice", password: "wrong"))
                #expect(r.status == .unauthorized)
            }
            // Even the right password is refused while the limit holds.
            let limited = try await api.call(.post, "/auth/login", json: LoginRequest(username: "alice", password: password))
            #expect(limited.status == .tooManyRequests)
            #expect(api.errorCode(limited) == "rate_limited")
            let retry = try #require(limited.headers[.retryAfter].flatMap(Int.init))
            #expect(retry > 0 && retry <= 300)
        }
        let kinds = try await server.services.store.securityEvents(userId: nil, limit: 20).map(\.kind)
        #expect(kinds.filter { $0 == .loginFailed }.count == 5)
        #expect(kinds.contains(.rateLimited))
        _ = user
    }

    @Test(.eachBackend) func refreshRotatesAndReuseRevokesTheSession() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let (user, password) = try await server.addUser("alice")
        try await server.run { api in
            let first = try await api.login("alice", password)
            let rotated = try await api.call(.post, "/auth/refresh", json: RefreshRequest(refreshToken: first.refreshToken))
            #expect(rotated.status == .ok)
            let second = try api.decode(TokenResponse.self, rotated)
            #expect(second.refreshToken != first.refreshToken)
            #expect(try await api.call(.get, "/auth/me", token: second.accessToken).status == .ok)

            // Presenting the used token again: a stolen copy. The whole session ends.
            let reuse = try await api.call(.post, "/auth/refresh", json: RefreshRequest(refreshToken: first.refreshToken))
            #expect(reuse.status == .unauthorized)
            #expect(try await api.call(.get, "/auth/me", token: second.accessToken).status == .unauthorized)
            let afterReuse = try await api.call(.post, "/auth/refresh", json: RefreshRequest(refreshToken: second.refreshToken))
            #expect(afterReuse.status == .unauthorized)
            let bogus = try await api.call(.post, "/auth/refresh", json: RefreshRequest(refreshToken: "frt_nothing"))
            #expect(bogus.status == .unauthorized)
        }
        let kinds = try await server.services.store.securityEvents(userId: user.id, limit: 10).map(\.kind)
        #expect(kinds.contains(.refreshTokenReused))
    }

    @Test(.eachBackend) func logoutEndsTheAccessTokenAtOnce() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let (_, password) = try await server.addUser("alice")
        try await server.run { api in
            let tokens = try await api.login("alice", password)
            let other = try await api.login("alice", password)
            #expect(try await api.call(.post, "/auth/logout", token: tokens.accessToken).status == .noContent)
            #expect(try await api.call(.get, "/auth/me", token: tokens.accessToken).status == .unauthorized)
            #expect(try await api.call(.post, "/auth/refresh", json: RefreshRequest(refreshToken: tokens.refreshToken)).status == .unauthorized)
            // Other sessions are untouched.
            #expect(try await api.call(.get, "/auth/me", token: other.accessToken).status == .ok)
        }
    }

    @Test(.eachBackend) func deviceTokensRegisterListAndRevoke() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        try await server.run { api in
            let token = try await api.newUser("alice")
            let device = try await api.registerDevice("laptop", token: token)
            #expect(device.token.hasPrefix("fdt_"))
            let me = try api.decode(MeResponse.self, try await api.call(.get, "/auth/me", token: device.token))
            #expect(me.deviceId == device.device.id)

            // A device cannot mint more devices.
            let nested = try await api.call(.post, "/devices", token: device.token, json: RegisterDeviceRequest(name: "x"))
            #expect(nested.status == .forbidden)
            let blank = try await api.call(.post, "/devices", token: token, json: RegisterDeviceRequest(name: "   "))
            #expect(blank.status == .badRequest)

            let list = try api.decode(DeviceListResponse.self, try await api.call(.get, "/devices", token: token))
            #expect(list.devices.map(\.name) == ["laptop"])

            #expect(try await api.call(.delete, "/devices/\(device.device.id)", token: token).status == .noContent)
            // Revocation takes effect on the very next request.
            #expect(try await api.call(.get, "/auth/me", token: device.token).status == .unauthorized)
            #expect(try await api.call(.delete, "/devices/\(device.device.id)", token: token).status == .notFound)
            let after = try api.decode(DeviceListResponse.self, try await api.call(.get, "/devices", token: token))
            #expect(after.devices.first?.revokedAt != nil)
        }
        // The token itself is never stored, only its hash.
        let stored = try await server.fetchBytes("SELECT token_hash FROM device")
        #expect(!stored.isEmpty && stored.allSatisfy { $0.count == 32 })
    }

    @Test(.eachBackend) func passwordChangeEndsSessions() async throws {
        let server = try await TestServer.make()
        defer { server.removeData() }
        let (user, password) = try await server.addUser("alice")
        try await server.run { api in
            let tokens = try await api.login("alice", password)
            try await server.services.store.setPassword(userId: user.id, passwordHash: try server.services.passwords.hash("new password"), revokeDevices: false)
            #expect(try await api.call(.get, "/auth/me", token: tokens.accessToken).status == .unauthorized)
            #expect(try await api.call(.post, "/auth/login", json: LoginRequest(username: "alice", password: password)).status == .unauthorized)
            _ = try await api.login("alice", "new password")
        }
    }

    @Test func passwordHashesAreSaltedAndSelfDescribing() throws {
        let hasher = PasswordHasher(iterations: 1000)
        let a = try hasher.hash("secret"), b = try hasher.hash("secret")
        #expect(a != b)
        #expect(a.hasPrefix("pbkdf2-sha256$1000$"))
        #expect(hasher.verify("secret", against: a))
        #expect(!hasher.verify("Secret", against: a))
        #expect(!hasher.verify("secret", against: "garbage"))
        // The cost is read from the stored hash, so raising it later keeps old hashes valid.
        #expect(PasswordHasher(iterations: 2000).verify("secret", against: a))
        #expect(PasswordHasher().iterations >= 600_000)
    }
}
