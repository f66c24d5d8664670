import FerryCore
import Foundation
import Hummingbird

/// `/devices` and `/libraries`.
struct DeviceAndLibraryRoutes {
    let services: ServerServices

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.post("devices", use: registerDevice)
        group.get("devices", use: listDevices)
        group.delete("devices/{id}", use: revokeDevice)
        group.post("libraries", use: createLibrary)
        group.get("libraries", use: listLibraries)
    }

    @Sendable func registerDevice(_ request: Request, context: FerryRequestContext) async throws -> EditedResponse<RegisterDeviceResponse> {
        let user = try context.user()
        guard user.sessionId != nil else { throw APIError.forbidden("a device cannot register devices; log in as the user") }
        let body = try await request.decodeJSON(RegisterDeviceRequest.self, limit: 16 * 1024)
        let name = body.name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...100).contains(name.count), !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw APIError.badRequest("device name must be 1 to 100 characters without control characters")
        }
        let token = TokenService.randomToken(prefix: TokenService.devicePrefix)
        let device = try await services.store.createDevice(userId: user.userId, name: name, tokenHash: TokenService.storedHash(token))
        try await services.store.recordSecurityEvent(.init(kind: .deviceRegistered, userId: user.userId, username: user.username, deviceId: device.id, address: context.remoteAddress))
        return EditedResponse(status: .created, headers: [.cacheControl: "no-store"], response: RegisterDeviceResponse(device: device, token: token))
    }

    @Sendable func listDevices(_ request: Request, context: FerryRequestContext) async throws -> DeviceListResponse {
        DeviceListResponse(devices: try await services.store.devices(userId: try context.user().userId))
    }

    @Sendable func revokeDevice(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try context.user()
        let id = try context.parameters.require("id")
        try await services.revokeDevice(id, by: user, address: context.remoteAddress)
        return Response(status: .noContent)
    }

    @Sendable func createLibrary(_ request: Request, context: FerryRequestContext) async throws -> EditedResponse<LibraryInfo> {
        let user = try context.user()
        let body = try await request.decodeJSON(CreateLibraryRequest.self, limit: 16 * 1024)
        return EditedResponse(status: .created, response: try await services.createLibrary(named: body.name, for: user))
    }

    @Sendable func listLibraries(_ request: Request, context: FerryRequestContext) async throws -> LibraryListResponse {
        LibraryListResponse(libraries: try await services.visibleLibraries(for: try context.user()))
    }
}
