import FerryCore
import Foundation
import Hummingbird

/// `/libraries`: the caller's libraries, one library's folders (paged, updating live), and
/// its trash.
struct LibraryPages {
    let services: ServerServices
    /// Entries per page: a folder of 10,000 renders as 20 pages, each well under 300 ms.
    static let pageSize = 500

    struct LibrariesView {
        struct Row {
            let name: String
            let href: String
            let created: Stamp
            /// The owner and the caller's role, for a library shared with the caller.
            let sharedBy: String?
            let role: String
        }
        let libraries: [Row]
        let hasLibraries: Bool
        /// The user's storage use and quota (`StorageAccount.summary`).
        let storage: String
    }

    struct FolderView {
        struct Row {
            let name: String
            let href: String
            let kind: String
            let size: String
            let modified: Stamp
            let target: String?
        }
        let heading: String
        let crumbs: [Crumb]
        let entries: [Row]
        let nextHref: String?
        let firstHref: String?
        let trashHref: String
        /// The library's retention page, linked from its root.
        let retentionHref: String?
        let eventsHref: String
        let uploadHref: String
        let directory: String
        let membersHref: String
        /// Shared with the caller to read only: no upload form.
        let readOnly: Bool
    }

    struct TrashView {
        struct Row {
            let name: String
            let path: String
            let version: Int64
            let isDirectory: Bool
            let browseHref: String
            let deleted: Stamp
            let device: String
        }
        let heading: String
        let crumbs: [Crumb]
        let entries: [Row]
        let nextHref: String?
        let folderHref: String
        let restoreHref: String
    }

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("libraries", use: libraries)
        group.post("libraries", use: create)
        group.get("libraries/{lib}", use: folder)
        group.get("libraries/{lib}/trash", use: trash)
    }

    @Sendable func libraries(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let userId = try context.user().userId
        // Libraries shared with the caller read OWNER/NAME, as the CLI names them.
        let rows = try await services.visibleLibraries(for: try context.user()).map { library in
            LibrariesView.Row(name: library.displayName, href: LibraryLinks(library: library.id).base,
                              created: Stamp(library.createdAt), sharedBy: library.role == .owner ? nil : library.owner,
                              role: library.role?.rawValue ?? "")
        }
        let storage = try await services.store.storageAccount(userId: userId)?.summary ?? "unknown"
        return services.dashboard.page("libraries", title: "Libraries", section: .libraries,
                                       content: LibrariesView(libraries: rows, hasLibraries: !rows.isEmpty, storage: storage), context: context)
    }

    @Sendable func create(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let form = try await DashboardForm.read(request)
        let library = try await services.createLibrary(named: try form.required("name", label: "the library's name"), for: try context.user())
        return seeOther(LibraryLinks(library: library.id).base)
    }

    @Sendable func folder(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let library = try await services.library(context, needs: .read)
        let directory = try FileRoutes.directory(request)
        if let directory, let current = try await services.store.current(libraryId: library.id, path: directory), !current.deleted, current.kind != .directory {
            return seeOther(LibraryLinks(library: library.id).file(directory))
        }
        let after = request.query("after")
        let page = try await services.store.list(libraryId: library.id, directory: directory, after: after, limit: Self.pageSize)
        let links = LibraryLinks(library: library.id)
        let rows = page.entries.map { entry in
            FolderView.Row(name: LibraryLinks.name(of: entry.path), href: entry.kind == .directory ? links.folder(entry.path) : links.file(entry.path),
                           kind: entry.kind.rawValue, size: entry.kind == .file ? DashboardFormat.size(entry.size) : "—",
                           modified: Stamp(DashboardFormat.date(nanoseconds: entry.mtimeNs)), target: entry.target)
        }
        let view = FolderView(
            heading: directory.map(LibraryLinks.name(of:)) ?? library.name,
            crumbs: Crumb.trail(library: library, path: directory) { links.folder($0) }, entries: rows,
            nextHref: page.nextAfter.map { links.folder(directory, after: $0) },
            firstHref: after == nil ? nil : links.folder(directory), trashHref: links.trash(directory),
            retentionHref: directory == nil && library.role == .owner ? links.base + "/retention" : nil, eventsHref: links.events(since: library.head),
            uploadHref: links.upload, directory: directory?.string ?? "", membersHref: links.members, readOnly: library.role == .read)
        return services.dashboard.page("folder", title: view.heading, section: .libraries, content: view, context: context)
    }

    @Sendable func trash(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try context.user()
        let library = try await services.library(context, needs: .read)
        let directory = try FileRoutes.directory(request)
        let page = try await services.store.trash(libraryId: library.id, directory: directory, after: request.query("after"), limit: Self.pageSize)
        let devices = try await services.deviceNames(userId: user.userId)
        let links = LibraryLinks(library: library.id)
        // The trash lists everything deleted at and beneath the folder, so a row names its
        // path below the folder, not only its last component.
        let rows = page.entries.map { entry in
            TrashView.Row(name: Self.relative(entry.path, to: directory), path: entry.path.string, version: entry.deletedVersion,
                          isDirectory: entry.kind == .directory, browseHref: links.trash(entry.path), deleted: Stamp(entry.deletedAt),
                          device: devices.name(entry.deletedBy))
        }
        let view = TrashView(
            heading: directory.map { "Trash of " + LibraryLinks.name(of: $0) } ?? "Trash",
            crumbs: Crumb.trail(library: library, path: directory, linkLast: true) { links.folder($0) } + [Crumb(name: "Trash", href: nil)],
            entries: rows,
            nextHref: page.nextAfter.map { links.trash(directory, after: $0) },
            folderHref: links.folder(directory), restoreHref: links.restore)
        return services.dashboard.page("trash", title: view.heading, section: .libraries, content: view, context: context)
    }

    /// `path` as seen from inside `directory` (the folder itself by its own name).
    static func relative(_ path: FerryPath, to directory: FerryPath?) -> String {
        guard let directory, path != directory else { return LibraryLinks.name(of: path) }
        return String(path.string.dropFirst(directory.string.count + 1))
    }
}

/// The names of a user's devices, for "who changed this" columns.
struct DeviceNames {
    let names: [String: String]

    /// A device's name; "web" for changes made without a device (the dashboard, scripts).
    func name(_ id: String?) -> String {
        guard let id else { return "web" }
        return names[id] ?? "a removed device"
    }
}

extension ServerServices {
    func deviceNames(userId: Int64) async throws -> DeviceNames {
        DeviceNames(names: Dictionary(try await store.devices(userId: userId).map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a }))
    }
}
