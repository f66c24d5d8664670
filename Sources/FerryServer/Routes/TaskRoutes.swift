import FerryCore
import Foundation
import HTTPTypes
import Hummingbird

/// `/projects`, `/tasks` and `/attachments`.
struct TaskRoutes {
    let services: ServerServices

    func add(to group: RouterGroup<FerryRequestContext>) {
        group.post("projects", use: createProject)
        group.get("projects", use: listProjects)
        group.post("projects/{id}/members", use: addMember)
        group.post("tasks", use: createTask)
        group.get("tasks", use: listTasks)
        group.get("tasks/{id}", use: showTask)
        group.patch("tasks/{id}", use: updateTask)
        group.post("tasks/{id}/attachments", use: attach)
        group.get("tasks/{id}/attachments", use: listAttachments)
        group.delete("tasks/{id}/attachments/{attachment}", use: removeAttachment)
        group.get("attachments/{id}/content", use: content)
    }

    @Sendable func createProject(_ request: Request, context: FerryRequestContext) async throws -> EditedResponse<ProjectInfo> {
        let body = try await request.decodeJSON(CreateProjectRequest.self, limit: 16 * 1024)
        let name = try Self.text(body.name, field: "name", max: 200)
        return EditedResponse(status: .created, response: try await services.store.createProject(userId: try context.user().userId, name: name))
    }

    @Sendable func listProjects(_ request: Request, context: FerryRequestContext) async throws -> ProjectListResponse {
        ProjectListResponse(projects: try await services.store.projects(userId: try context.user().userId))
    }

    @Sendable func addMember(_ request: Request, context: FerryRequestContext) async throws -> ProjectInfo {
        let body = try await request.decodeJSON(AddMemberRequest.self, limit: 16 * 1024)
        return try await services.store.addProjectMember(userId: try context.user().userId, projectId: try context.parameters.require("id"), username: body.username)
    }

    @Sendable func createTask(_ request: Request, context: FerryRequestContext) async throws -> EditedResponse<TaskInfo> {
        var body = try await request.decodeJSON(CreateTaskRequest.self, limit: 256 * 1024)
        body.title = try Self.text(body.title, field: "title", max: 500)
        try Self.check(description: body.description, dueDate: body.dueDate, assignees: body.assignees)
        return EditedResponse(status: .created, response: try await services.store.createTask(userId: try context.user().userId, body))
    }

    @Sendable func listTasks(_ request: Request, context: FerryRequestContext) async throws -> TaskListResponse {
        let status = try request.query("status").map(Self.status)
        let limit = Int(try request.intQuery("limit", in: 1...500, default: 100)!)
        return try await services.store.tasks(userId: try context.user().userId, project: request.query("project"), status: status,
                                              assignee: request.query("assignee"), after: try request.intQuery("after", in: 0...Int64.max), limit: limit)
    }

    @Sendable func showTask(_ request: Request, context: FerryRequestContext) async throws -> TaskInfo {
        try await services.store.task(userId: try context.user().userId, id: try context.parameters.require("id"))
    }

    @Sendable func updateTask(_ request: Request, context: FerryRequestContext) async throws -> TaskInfo {
        var body = try await request.decodeJSON(UpdateTaskRequest.self, limit: 256 * 1024)
        if let title = body.title { body.title = try Self.text(title, field: "title", max: 500) }
        try Self.check(description: body.description, dueDate: body.dueDate.flatMap { $0.isEmpty ? nil : $0 }, assignees: body.assignees)
        return try await services.store.updateTask(userId: try context.user().userId, id: try context.parameters.require("id"), body)
    }

    /// JSON (`{library, path, version?, follow?}`) attaches a synced file; any other body is
    /// a direct upload stored at `?library=&path=` (so it syncs like any file), then attached.
    @Sendable func attach(_ request: Request, context: FerryRequestContext) async throws -> EditedResponse<AttachmentInfo> {
        let user = try context.user()
        let taskId = try context.parameters.require("id")
        let attach: AttachRequest
        if request.headers[.contentType]?.lowercased().hasPrefix("application/json") == true {
            attach = try await request.decodeJSON(AttachRequest.self, limit: 64 * 1024)
        } else {
            // Check the task first so an upload for a task the caller cannot see stores nothing.
            _ = try await services.store.task(userId: user.userId, id: taskId)
            guard let libraryId = request.query("library") else { throw APIError.badRequest("a direct upload needs the query parameter 'library'") }
            guard let library = try await services.store.library(userId: user.userId, id: libraryId) else { throw APIError.notFound("library '\(libraryId)' not found") }
            let path = try FileRoutes.path(request)
            let version = try await FileRoutes(services: services).storeUpload(request, user: user, library: library, path: path, base: nil, mtimeNs: nil, mode: nil)
            attach = AttachRequest(library: libraryId, path: path, version: version.version, follow: request.query("follow") == "true")
        }
        return EditedResponse(status: .created, response: try await services.store.attach(userId: user.userId, taskId: taskId, attach))
    }

    @Sendable func listAttachments(_ request: Request, context: FerryRequestContext) async throws -> AttachmentListResponse {
        let task = try await services.store.task(userId: try context.user().userId, id: try context.parameters.require("id"))
        return AttachmentListResponse(attachments: task.attachments ?? [])
    }

    @Sendable func removeAttachment(_ request: Request, context: FerryRequestContext) async throws -> Response {
        try await services.store.removeAttachment(userId: try context.user().userId, taskId: try context.parameters.require("id"),
                                                  attachmentId: try context.parameters.require("attachment"))
        return Response(status: .noContent)
    }

    /// The pinned version's bytes, whatever happened to the file since.
    @Sendable func content(_ request: Request, context: FerryRequestContext) async throws -> Response {
        let version = try await services.store.attachmentVersion(userId: try context.user().userId, id: try context.parameters.require("id"))
        return try FileRoutes(services: services).serveContent(of: version, request: request)
    }

    // MARK: validation

    static func text(_ raw: String, field: String, max: Int) throws -> String {
        let value = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...max).contains(value.count), !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw APIError.badRequest("\(field) must be 1 to \(max) characters without control characters")
        }
        return value
    }

    /// A task status as sent (`todo`, `in_progress`, …), or a message naming them all.
    static func status(_ raw: String) throws -> TaskStatus {
        guard let status = TaskStatus(rawValue: raw) else {
            throw APIError.badRequest("status must be one of: \(TaskStatus.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return status
    }

    static func check(description: String?, dueDate: String?, assignees: [String]?) throws {
        if let description, description.utf8.count > 64 * 1024 { throw APIError.badRequest("description must be at most 64 KiB") }
        if let dueDate, !isDate(dueDate) { throw APIError.badRequest("due_date must be a calendar date like 2026-12-31") }
        if let assignees, assignees.count > 50 { throw APIError.badRequest("a task has at most 50 assignees") }
    }

    /// A real `YYYY-MM-DD` date (so 2026-02-30 is refused).
    static func isDate(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard text.count == 10, parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]) else { return false }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard let date = calendar.date(from: DateComponents(year: y, month: m, day: d)) else { return false }
        let back = calendar.dateComponents([.year, .month, .day], from: date)
        return back.year == y && back.month == m && back.day == d
    }
}

extension ProjectInfo: ResponseEncodable {}
extension ProjectListResponse: ResponseEncodable {}
extension TaskInfo: ResponseEncodable {}
extension TaskListResponse: ResponseEncodable {}
extension AttachmentInfo: ResponseEncodable {}
extension AttachmentListResponse: ResponseEncodable {}
