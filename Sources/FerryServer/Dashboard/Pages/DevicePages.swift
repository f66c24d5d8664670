import FerryCore
import Foundation
import Hummingbird

/// `/devices`: the caller's devices with when each was last seen, and revocation (asked
/// first: a dialog with JavaScript, a confirmation page without).
struct DevicePages {
    let services: ServerServices

    struct View {
        struct Row {
            let name: String
            /// Nil: never.
            let lastSeen: Stamp?
            let registered: Stamp
            let active: Bool
            let revoked: String
            let revokeHref: String
        }
        let devices: [Row]
    }

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("devices", use: list)
        group.post("devices/{id}/revoke", use: revoke)
    }

    @Sendable func list(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let rows = try await services.store.devices(userId: try context.user().userId).map { device in
            View.Row(name: device.name, lastSeen: device.lastSeenAt.map(Stamp.init), registered: Stamp(device.createdAt), active: device.revokedAt == nil,
                     revoked: device.revokedAt.map(DashboardFormat.time) ?? "", revokeHref: "/devices/\(DashboardFormat.segment(device.id))/revoke")
        }
        return services.dashboard.page("devices", title: "Devices", section: .devices, content: View(devices: rows), context: context)
    }

    @Sendable func revoke(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try context.user()
        let id = try context.parameters.require("id")
        guard try await DashboardForm.read(request).isConfirmed else {
            guard let device = try await services.store.devices(userId: user.userId).first(where: { $0.id == id && $0.revokedAt == nil }) else {
                throw APIError.notFound("device '\(id)' not found or already revoked")
            }
            let view = ConfirmView(heading: "Revoke \(device.name)?",
                                   message: "Its token stops working at once: the device stops syncing until someone signs in on it again with 'ferry login'.",
                                   action: "/devices/\(DashboardFormat.segment(id))/revoke", fields: [], button: "Revoke", cancelHref: "/devices")
            return services.dashboard.page("confirm", title: view.heading, section: .devices, content: view, context: context)
        }
        // Answers the same 404 for a device that is someone else's or already revoked.
        try await services.revokeDevice(id, by: user, address: context.remoteAddress)
        return seeOther("/devices")
    }
}
