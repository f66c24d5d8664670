import FerryCore
import Foundation
import Hummingbird

/// `/tasks`: tasks by status, creating and editing them, and their attachments (download,
/// attach a synced file, remove). Every rule is `TaskRoutes`' and the task store's.
struct TaskPages {
    let services: ServerServices
    /// Tasks shown per status on the overview; `?status=` pages through one status.
    static let perStatus = 50

    struct ListView {
        struct Column {
            struct Row {
                let title: String
                let href: String
                let due: String?
            }
            let key: String
            let label: String
            let tasks: [Row]
            let moreHref: String?
        }
        struct Project {
            let id: String
            let name: String
        }
        let columns: [Column]
        let projects: [Project]
        let hasProjects: Bool
    }

    struct TaskView {
        struct Attachment {
            let path: String
            let library: String
            let version: Int64
            let follow: Bool
            let size: String
            let addedBy: String
            let downloadHref: String
            let removeHref: String
        }
        struct Status {
            let value: String
            let label: String
            let selected: Bool
        }
        struct Library {
            let id: String
            let name: String
        }
        let crumbs: [Crumb]
        let title: String
        let statusLabel: String
        let project: String
        let createdBy: String
        let assignees: String?
        let due: String?
        let dueValue: String
        let description: String
        /// The description as shown (nil when empty); `description` fills the edit form.
        let about: String?
        let attachments: [Attachment]
        let statuses: [Status]
        let libraries: [Library]
        let updateHref: String
        let attachHref: String
    }

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.get("tasks", use: list)
        group.post("tasks", use: create)
        group.get("tasks/{id}", use: show)
        group.post("tasks/{id}", use: update)
        group.post("tasks/{id}/attachments", use: attach)
        group.post("tasks/{id}/attachments/{attachment}/remove", use: removeAttachment)
        group.get("attachments/{id}/download", use: download)
    }

    static func label(_ status: TaskStatus) -> String {
        switch status {
        case .todo: "To do"
        case .inProgress: "In progress"
        case .review: "Review"
        case .done: "Done"
        }
    }

    @Sendable func list(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try context.user()
        let only = try request.query("status").map(TaskRoutes.status)
        let after = try request.intQuery("after", in: 0...Int64.max)
        var columns: [ListView.Column] = []
        for status in only.map({ [$0] }) ?? TaskStatus.allCases {
            let page = try await services.store.tasks(userId: user.userId, project: nil, status: status, assignee: nil,
                                                      after: only == nil ? nil : after, limit: only == nil ? Self.perStatus : 500)
            let rows = page.tasks.map { ListView.Column.Row(title: $0.title, href: "/tasks/\(DashboardFormat.segment($0.id))", due: $0.dueDate) }
            let more = page.nextAfter.map { "/tasks?status=\(status.rawValue)&after=\($0)" }
            columns.append(.init(key: status.rawValue, label: Self.label(status), tasks: rows, moreHref: more))
        }
        let projects = try await services.store.projects(userId: user.userId).map { ListView.Project(id: $0.id, name: $0.name) }
        let view = ListView(columns: columns, projects: projects, hasProjects: !projects.isEmpty)
        return services.dashboard.page("tasks", title: "Tasks", section: .tasks, content: view, context: context)
    }

    @Sendable func create(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let form = try await DashboardForm.read(request)
        let title = try TaskRoutes.text(form.fields["title"] ?? "", field: "title", max: 500)
        let task = try await services.store.createTask(userId: try context.user().userId, CreateTaskRequest(project: form.optional("project"), title: title))
        return seeOther("/tasks/\(DashboardFormat.segment(task.id))")
    }

    @Sendable func show(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let user = try context.user()
        let task = try await services.store.task(userId: user.userId, id: try context.parameters.require("id"))
        let projectName = try await services.store.projects(userId: user.userId).first { $0.id == task.project }?.name ?? task.project
        let libraries = try await services.store.libraries(userId: user.userId)
        let names = Dictionary(libraries.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        let href = "/tasks/\(DashboardFormat.segment(task.id))"
        let attachments = (task.attachments ?? []).map { a in
            TaskView.Attachment(path: a.path.string, library: names[a.library] ?? "another user's library", version: a.version, follow: a.follow,
                                size: DashboardFormat.size(a.size), addedBy: a.addedBy, downloadHref: "/attachments/\(DashboardFormat.segment(a.id))/download",
                                removeHref: href + "/attachments/\(DashboardFormat.segment(a.id))/remove")
        }
        let statuses = TaskStatus.allCases.filter { task.status.canMove(to: $0) }.map {
            TaskView.Status(value: $0.rawValue, label: Self.label($0), selected: $0 == task.status)
        }
        let view = TaskView(
            crumbs: [Crumb(name: "Tasks", href: "/tasks"), Crumb(name: task.title, href: nil)],
            title: task.title, statusLabel: Self.label(task.status), project: projectName, createdBy: task.createdBy,
            assignees: task.assignees.isEmpty ? nil : task.assignees.joined(separator: ", "), due: task.dueDate, dueValue: task.dueDate ?? "",
            description: task.description, about: task.description.isEmpty ? nil : task.description,
            attachments: attachments, statuses: statuses, libraries: libraries.map { TaskView.Library(id: $0.id, name: $0.name) },
            updateHref: href, attachHref: href + "/attachments")
        return services.dashboard.page("task", title: task.title, section: .tasks, content: view, context: context)
    }

    @Sendable func update(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let form = try await DashboardForm.read(request)
        let id = try context.parameters.require("id")
        var update = UpdateTaskRequest()
        update.title = try TaskRoutes.text(form.fields["title"] ?? "", field: "title", max: 500)
        update.status = try form.optional("status").map(TaskRoutes.status)
        update.description = form.fields["description"].map { $0.replacingOccurrences(of: "\r\n", with: "\n") }
        update.dueDate = form.optional("due_date") ?? ""
        try TaskRoutes.check(description: update.description, dueDate: form.optional("due_date"), assignees: nil)
        _ = try await services.store.updateTask(userId: try context.user().userId, id: id, update)
        return seeOther("/tasks/\(DashboardFormat.segment(id))")
    }

    @Sendable func attach(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let form = try await DashboardForm.read(request)
        let id = try context.parameters.require("id")
        let attach = AttachRequest(library: try form.required("library", label: "the library"), path: try form.path(), follow: form.fields["follow"] == "yes")
        _ = try await services.store.attach(userId: try context.user().userId, taskId: id, attach)
        return seeOther("/tasks/\(DashboardFormat.segment(id))")
    }

    @Sendable func removeAttachment(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        try await services.store.removeAttachment(userId: try context.user().userId, taskId: id, attachmentId: try context.parameters.require("attachment"))
        return seeOther("/tasks/\(DashboardFormat.segment(id))")
    }

    /// The pinned version's bytes, as `GET /attachments/{id}/content` sends them, saved under the file's name.
    @Sendable func download(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let version = try await services.store.attachmentVersion(userId: try context.user().userId, id: try context.parameters.require("id"))
        var response = try FileRoutes(services: services).serveContent(of: version, request: request)
        response.headers[.contentDisposition] = FilePages.disposition("attachment", version.path)
        return response
    }
}
