import FerryCore
import Foundation

/// Who may do what with projects, tasks and attachments, and what an update changes:
/// decided here once, for every backend (the stores only read and write).
enum TaskRules {
    static func duplicateProject(_ name: String) -> MetadataError { .stateConflict("you already have a project named '\(name)'") }
    static func projectNotFound(_ id: String) -> MetadataError { .notFound("project '\(id)'") }
    static func taskNotFound(_ id: String) -> MetadataError { .notFound("task '\(id)'") }
    static func attachmentNotFound(_ id: String) -> MetadataError { .notFound("attachment '\(id)'") }
    static func noSuchUser(_ name: String) -> MetadataError { .invalid("there is no user named '\(name)'") }
    static func notParticipant(_ name: String) -> MetadataError {
        .invalid("'\(name)' is not a member of this project; add them with POST /projects/{id}/members first")
    }

    /// Only the owner adds members.
    static func checkAddMember(role: ProjectRole?, projectId: String) throws {
        guard let role else { throw projectNotFound(projectId) }
        guard role == .owner else { throw MetadataError.forbidden("only the project's owner adds members") }
    }

    /// A member may create a task for nobody or for themselves only.
    static func checkAssignment(role: ProjectRole?, assignees: [Int64], userId: Int64) throws {
        if role != .owner, !assignees.isEmpty, assignees != [userId] {
            throw MetadataError.forbidden("only the project's owner assigns tasks to others")
        }
    }

    /// Members change only the tasks assigned to them, and never who is assigned.
    static func checkUpdate(role: ProjectRole, assigned: Bool, _ update: UpdateTaskRequest) throws {
        guard role != .owner else { return }
        guard assigned else { throw MetadataError.forbidden("members change only the tasks assigned to them") }
        guard update.assignees == nil else { throw MetadataError.forbidden("only the project's owner changes who a task is assigned to") }
    }

    /// What an update changes: the fields to write (nil: unchanged) and their API names.
    struct Change {
        var title: String?
        var description: String?
        var status: TaskStatus?
        /// Set when the due date changes: nil inside clears it.
        var dueDate: String??
        /// The new assignees' names when they change.
        var assignees: [String]?
        var changed: [String] = []
    }

    static func change(from before: TaskInfo, _ update: UpdateTaskRequest) throws -> Change {
        var change = Change()
        if let title = update.title, title != before.title {
            change.title = title
            change.changed.append("title")
        }
        if let description = update.description, description != before.description {
            change.description = description
            change.changed.append("description")
        }
        if let status = update.status, status != before.status {
            guard before.status.canMove(to: status) else {
                throw MetadataError.stateConflict(
                    "a task moves todo → in_progress → review → done one step at a time, or back; it is \(before.status.rawValue), so it cannot become \(status.rawValue)")
            }
            change.status = status
            change.changed.append("status")
        }
        if let due = update.dueDate, due != (before.dueDate ?? "") {
            change.dueDate = .some(due.isEmpty ? nil : due)
            change.changed.append("due_date")
        }
        if let names = update.assignees, Set(names) != Set(before.assignees) {
            change.assignees = names
            change.changed.append("assignees")
        }
        return change
    }

    /// The version an attachment pins: it must exist, be live and be a file.
    static func attachable(_ version: FileVersion?, _ request: AttachRequest) throws -> FileVersion {
        guard let version, !version.deleted else { throw MetadataError.notFound("'\(request.path)'" + (request.version.map { " version \($0)" } ?? "")) }
        guard version.kind == .file else { throw MetadataError.invalid("'\(request.path)' is a \(version.kind.rawValue); only files can be attached") }
        return version
    }

    /// The owner, or whoever added it, removes an attachment.
    static func checkRemoveAttachment(role: ProjectRole, addedBy: Int64, userId: Int64) throws {
        guard role == .owner || addedBy == userId else {
            throw MetadataError.forbidden("only the project's owner or whoever added it removes an attachment")
        }
    }
}
