import FerryCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// A file's page (history, preview), its download and preview, and what changes files:
/// upload, restore (from history or the trash) and delete.
struct FilePages {
    let services: ServerServices
    static let historyPageSize = 100

    struct FileView {
        struct Row {
            let version: Int64
            let time: Stamp
            let size: String
            let device: String
            let current: Bool
            let restorable: Bool
            let isDeletion: Bool
        }
        let name: String
        let path: String
        let crumbs: [Crumb]
        let live: Bool
        let deleted: Bool
        let isSymlink: Bool
        let target: String?
        let size: String
        let modified: Stamp
        let downloadHref: String
        let imageHref: String?
        let text: String?
        let truncated: Bool
        let versions: [Row]
        let olderHref: String?
        let restoreHref: String
        let deleteHref: String
    }

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("libraries/{lib}/file", use: file)
        group.get("libraries/{lib}/download", use: download)
        group.get("libraries/{lib}/preview", use: preview)
        group.put("libraries/{lib}/upload", use: upload)
        group.post("libraries/{lib}/restore", use: restore)
        group.post("libraries/{lib}/delete", use: delete)
    }

    @Sendable func file(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try context.user()
        let library = try await services.library(context, needs: .read)
        let path = try FileRoutes.path(request)
        let before = try request.intQuery("before", in: 1...Int64.max)
        let history = try await services.store.history(libraryId: library.id, path: path, before: before, limit: Self.historyPageSize)
        guard let current = try await services.store.current(libraryId: library.id, path: path), !history.versions.isEmpty || before != nil else {
            throw APIError.notFound("'\(path)' not found")
        }
        let links = LibraryLinks(library: library.id)
        if !current.deleted, current.kind == .directory { return seeOther(links.folder(path)) }
        let devices = try await services.deviceNames(userId: user.userId)
        let live = !current.deleted
        let preview = live && current.kind == .file ? Preview.of(path) : .downloadOnly
        var text: String?
        var truncated = false
        if preview == .text, current.size > 0 {
            let shown = min(current.size, Preview.textBytes)
            let bytes = try await services.blobs.readTogether(FileRoutes.spans(of: current, range: 0..<shown))
            text = Preview.decodeText(Array(bytes.readableBytesView))
            truncated = current.size > shown
        }
        let rows = history.versions.map { version in
            FileView.Row(version: version.version, time: Stamp(version.committedAt),
                         size: version.deleted ? "—" : DashboardFormat.size(version.size), device: devices.name(version.deviceId),
                         current: live && version.version == current.version, restorable: !version.deleted && version.version != current.version,
                         isDeletion: version.deleted)
        }
        let view = FileView(
            name: LibraryLinks.name(of: path), path: path.string,
            crumbs: Crumb.trail(library: library, path: path) { links.folder($0) }, live: live, deleted: current.deleted,
            isSymlink: current.kind == .symlink, target: current.target, size: DashboardFormat.size(current.size),
            modified: Stamp(DashboardFormat.date(nanoseconds: current.mtimeNs)),
            downloadHref: links.download(path), imageHref: preview.isImage ? links.preview(path, version: current.version) : nil,
            text: text, truncated: truncated, versions: rows,
            olderHref: history.nextBefore.map { links.file(path, before: $0) }, restoreHref: links.restore, deleteHref: links.delete)
        return services.dashboard.page("file", title: view.name, section: .libraries, content: view, context: context)
    }

    /// The current version (or `?version=`) as an attachment, byte for byte as the API sends it.
    @Sendable func download(_ request: Request, context: FerryRequestContext) async throws -> Response {
        var response = try await FileRoutes(services: services).download(request, context: context)
        response.headers[.contentDisposition] = Self.disposition("attachment", try FileRoutes.path(request))
        return response
    }

    /// An image as an image, text as `text/plain`; anything else is not previewed.
    @Sendable func preview(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let path = try FileRoutes.path(request)
        let type: String
        switch Preview.of(path) {
        case .image(let mime): type = mime
        case .text: type = "text/plain; charset=utf-8"
        case .downloadOnly: throw APIError.notFound("'\(LibraryLinks.name(of: path))' has no preview; download it instead")
        }
        var response = try await FileRoutes(services: services).download(request, context: context)
        response.headers[.contentType] = type
        response.headers[.contentDisposition] = Self.disposition("inline", path)
        response.headers[.contentSecurityPolicy] = "default-src 'none'; sandbox"
        return response
    }

    /// The body, streamed and chunked as it arrives (any size), committed at `?path=`.
    @Sendable func upload(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let library = try await services.library(context, needs: .write)
        let path = try FileRoutes.path(request)
        let mtime = try request.intQuery("mtime_ns", in: 0...Int64.max)
        let version = try await FileRoutes(services: services).storeUpload(request, user: try context.user(), library: library, path: path,
                                                                           base: nil, mtimeNs: mtime, mode: nil)
        return Response(status: .created, headers: [.contentType: "text/plain; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: "stored '\(path)' as version \(version.version)\n")))
    }

    /// From a file's history (`version`), or from the trash (`deleted`: the tombstone, whose
    /// last content comes back, provided nothing changed the path since).
    @Sendable func restore(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try context.user()
        let library = try await services.library(context, needs: .write)
        let form = try await DashboardForm.read(request)
        let path = try form.path()
        let links = LibraryLinks(library: library.id)
        if form.optional("deleted") != nil {
            let tombstone = try form.positive("deleted", label: "the deleted version")
            let before = try await services.store.history(libraryId: library.id, path: path, before: tombstone, limit: 1).versions.first
            guard let last = before, !last.deleted else { throw APIError.notFound("no earlier version of '\(path)' to restore") }
            _ = try await services.restore(RestoreRequest(path: path, version: last.version, base: tombstone), by: user, in: library)
            return seeOther(links.trash(LibraryLinks.parent(of: path)))
        }
        let version = try form.positive("version", label: "the version")
        _ = try await services.restore(RestoreRequest(path: path, version: version), by: user, in: library)
        return seeOther(links.file(path))
    }

    /// Moves a file to the trash, after a confirmation.
    @Sendable func delete(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let library = try await services.library(context, needs: .write)
        let form = try await DashboardForm.read(request)
        let path = try form.path()
        guard let current = try await services.store.current(libraryId: library.id, path: path), !current.deleted else {
            throw APIError.notFound("'\(path)' not found")
        }
        let links = LibraryLinks(library: library.id)
        guard form.isConfirmed else {
            let view = ConfirmView(heading: "Delete \(LibraryLinks.name(of: path))?",
                                   message: "It moves to the library's trash, from where it can be restored.",
                                   action: links.delete, fields: [.init(name: "path", value: path.string)], button: "Delete", cancelHref: links.file(path))
            return services.dashboard.page("confirm", title: view.heading, section: .libraries, content: view, context: context)
        }
        let result = try await services.deleteConfirmed(path, base: current.version, by: try context.user(), in: library)
        guard result.status == .ok else { throw APIError.conflict(result.error?.message ?? "'\(path)' changed meanwhile; look at it again") }
        return seeOther(links.folder(LibraryLinks.parent(of: path)))
    }

    /// `attachment; filename*=UTF-8''…` (RFC 6266), with a plain ASCII fallback.
    static func disposition(_ kind: String, _ path: FerryPath) -> String {
        let name = LibraryLinks.name(of: path)
        let ascii = String(name.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0 != "\"" && $0 != "\\" ? Character($0) : "_" })
        let encoded = name.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? ""
        return "\(kind); filename=\"\(ascii)\"; filename*=UTF-8''\(encoded)"
    }
}

/// A question before a destructive action: the page forms lead to without JavaScript (with
/// it, a dialog asks and the form is sent confirmed).
struct ConfirmView {
    struct Field {
        let name: String
        let value: String
    }
    let heading: String
    let message: String
    let action: String
    let fields: [Field]
    let button: String
    let cancelHref: String
}
