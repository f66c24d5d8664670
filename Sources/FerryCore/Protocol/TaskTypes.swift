#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
import Foundation

// Wire types for projects, tasks and attachments (SPEC §3, §5).

public struct ProjectInfo: Codable, Sendable, Hashable {
    public var id: String
    public var name: String
    public var owner: String
    public var members: [String]
    public var createdAt: Date

    public init(id: String, name: String, owner: String, members: [String], createdAt: Date) {
        self.id = id
        self.name = name
        self.owner = owner
        self.members = members
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, name, owner, members
        case createdAt = "created_at"
    }
}

public struct CreateProjectRequest: Codable, Sendable {
    public var name: String
    public init(name: String) { self.name = name }
}

public struct AddMemberRequest: Codable, Sendable {
    public var username: String
    public init(username: String) { self.username = username }
}

public struct ProjectListResponse: Codable, Sendable {
    public var projects: [ProjectInfo]
    public init(projects: [ProjectInfo]) { self.projects = projects }
}

/// The task workflow: forward one step at a time, back to any earlier step.
public enum TaskStatus: String, Codable, Sendable, CaseIterable, Comparable {
    case todo
    case inProgress = "in_progress"
    case review
    case done

    var rank: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (a: TaskStatus, b: TaskStatus) -> Bool { a.rank < b.rank }

    /// Whether a task may move from `self` to `next`.
    public func canMove(to next: TaskStatus) -> Bool { next == self || next < self || next.rank == rank + 1 }
}

public struct TaskInfo: Codable, Sendable, Hashable {
    public var id: String
    public var project: String
    public var title: String
    public var description: String
    public var status: TaskStatus
    /// User names.
    public var assignees: [String]
    /// `YYYY-MM-DD`.
    public var dueDate: String?
    public var createdBy: String
    public var createdAt: Date
    public var updatedAt: Date
    /// Filled in when one task is shown (`GET /tasks/{id}`).
    public var attachments: [AttachmentInfo]?

    public init(id: String, project: String, title: String, description: String, status: TaskStatus, assignees: [String], dueDate: String?,
                createdBy: String, createdAt: Date, updatedAt: Date, attachments: [AttachmentInfo]? = nil) {
        self.id = id
        self.project = project
        self.title = title
        self.description = description
        self.status = status
        self.assignees = assignees
        self.dueDate = dueDate
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.attachments = attachments
    }

    enum CodingKeys: String, CodingKey {
        case id, project, title, description, status, assignees, attachments
        case dueDate = "due_date", createdBy = "created_by", createdAt = "created_at", updatedAt = "updated_at"
    }
}

public struct CreateTaskRequest: Codable, Sendable {
    /// Omit for the caller's own "Inbox" project (created on first use).
    public var project: String?
    public var title: String
    public var description: String?
    public var status: TaskStatus?
    public var assignees: [String]?
    public var dueDate: String?

    public init(project: String? = nil, title: String, description: String? = nil, status: TaskStatus? = nil, assignees: [String]? = nil, dueDate: String? = nil) {
        self.project = project
        self.title = title
        self.description = description
        self.status = status
        self.assignees = assignees
        self.dueDate = dueDate
    }

    enum CodingKeys: String, CodingKey {
        case project, title, description, status, assignees
        case dueDate = "due_date"
    }
}

/// Only the fields given change; `due_date: ""` clears the due date.
public struct UpdateTaskRequest: Codable, Sendable {
    public var title: String?
    public var description: String?
    public var status: TaskStatus?
    public var assignees: [String]?
    public var dueDate: String?

    public init(title: String? = nil, description: String? = nil, status: TaskStatus? = nil, assignees: [String]? = nil, dueDate: String? = nil) {
        self.title = title
        self.description = description
        self.status = status
        self.assignees = assignees
        self.dueDate = dueDate
    }

    enum CodingKeys: String, CodingKey {
        case title, description, status, assignees
        case dueDate = "due_date"
    }
}

public struct TaskListResponse: Codable, Sendable {
    public var tasks: [TaskInfo]
    /// Pass as `after` for the next page; nil when there is none.
    public var nextAfter: Int64?
    public init(tasks: [TaskInfo], nextAfter: Int64?) {
        self.tasks = tasks
        self.nextAfter = nextAfter
    }

    enum CodingKeys: String, CodingKey {
        case tasks
        case nextAfter = "next_after"
    }
}

/// A synced file attached to a task: `version` is pinned (its content stays downloadable);
/// with `follow` it moves to each new version of the file.
public struct AttachmentInfo: Codable, Sendable, Hashable {
    public var id: String
    public var task: String
    public var library: String
    public var path: FerryPath
    public var version: Int64
    public var size: Int64
    public var sha256: ContentHash?
    public var follow: Bool
    public var addedBy: String
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, task: String, library: String, path: FerryPath, version: Int64, size: Int64, sha256: ContentHash?, follow: Bool,
                addedBy: String, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.task = task
        self.library = library
        self.path = path
        self.version = version
        self.size = size
        self.sha256 = sha256
        self.follow = follow
        self.addedBy = addedBy
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, task, library, path, version, size, sha256, follow
        case addedBy = "added_by", createdAt = "created_at", updatedAt = "updated_at"
    }
}

public struct AttachRequest: Codable, Sendable {
    public var library: String
    public var path: FerryPath
    /// Omit for the current version.
    public var version: Int64?
    public var follow: Bool?

    public init(library: String, path: FerryPath, version: Int64? = nil, follow: Bool? = nil) {
        self.library = library
        self.path = path
        self.version = version
        self.follow = follow
    }
}

public struct AttachmentListResponse: Codable, Sendable {
    public var attachments: [AttachmentInfo]
    public init(attachments: [AttachmentInfo]) { self.attachments = attachments }
}
