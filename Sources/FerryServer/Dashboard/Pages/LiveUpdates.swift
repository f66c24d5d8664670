import FerryCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /libraries/{lib}/events`: server-sent events telling an open library page that the
/// library changed, woken by the same `ChangeNotifier` as the change feed's long-polls (no
/// polling). Each stream is bounded: it ends after `lifetime` (the browser reconnects by
/// itself, resuming from `Last-Event-ID`), holds one of a limited number of slots per user,
/// and ends at once on graceful shutdown.
struct LiveUpdates {
    let services: ServerServices
    /// A comment line at least this often keeps proxies and the browser from giving up.
    static let keepAlive: Duration = .seconds(15)
    static let lifetime: Duration = .seconds(300)
    static let lastEventID = HTTPField.Name("Last-Event-ID")!

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("libraries/{lib}/events", use: events)
    }

    @Sendable func events(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try context.user()
        let library = try await services.library(context, needs: .read)
        let since = try request.headers[Self.lastEventID].flatMap { Int64($0) } ?? request.intQuery("since", in: 0...Int64.max) ?? library.head
        let streams = services.dashboard.streams
        guard streams.hasRoom(user: user.userId) else {
            throw APIError(.serviceUnavailable, "busy", "too many live pages are open; close some and reload", retryAfter: 5)
        }
        let store = services.store
        let notifier = services.notifier
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-store"]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            // Taken here, where it is surely given back: a body that is never written holds none.
            guard streams.acquire(user: user.userId) else { return try await writer.finish(nil) }
            defer { streams.release(user: user.userId) }
            let ends = ContinuousClock.now + Self.lifetime
            var seen = since
            try await writer.write(ByteBuffer(string: "retry: 1000\n\n"))
            while ContinuousClock.now < ends, !notifier.isShutDown {
                await notifier.wait(library: library.id, after: seen, timeout: Self.keepAlive)
                let head = try await store.libraryAccess(userId: user.userId, id: library.id)?.head ?? seen
                if head != seen {
                    // A head below the cursor means a restored backup: the page reloads either way.
                    seen = head
                    try await writer.write(ByteBuffer(string: "id: \(head)\nevent: change\ndata: \(head)\n\n"))
                } else {
                    try await writer.write(ByteBuffer(string: ": still here\n\n"))
                }
            }
            try await writer.finish(nil)
        })
    }
}
