import FerryCore
import Foundation
import GRDB

/// Projects, tasks and attachments (SPEC §3, §5). A project's owner may do everything; its
/// members see its tasks, change the tasks assigned to them and add attachments. Anyone
/// else is told the project or task does not exist.
public protocol TaskStore: Sendable {
    func createProject(userId: Int64, name: String) async throws -> ProjectInfo
    /// Projects the user owns or is a member of.
    func projects(userId: Int64) async throws -> [ProjectInfo]
    func addProjectMember(userId: Int64, projectId: String, username: String) async throws -> ProjectInfo
    func createTask(userId: Int64, _ request: CreateTaskRequest) async throws -> TaskInfo
    func tasks(userId: Int64, project: String?, status: TaskStatus?, assignee: String?, after: Int64?, limit: Int) async throws -> TaskListResponse
    /// One task with its attachments.
    func task(userId: Int64, id: String) async throws -> TaskInfo
    func updateTask(userId: Int64, id: String, _ update: UpdateTaskRequest) async throws -> TaskInfo
    /// Attaches a version of a file in one of the caller's libraries.
    func attach(userId: Int64, taskId: String, _ request: AttachRequest) async throws -> AttachmentInfo
    func removeAttachment(userId: Int64, taskId: String, attachmentId: String) async throws
    /// The pinned version of an attachment the caller may see.
    func attachmentVersion(userId: Int64, id: String) async throws -> FileVersion
}

enum ProjectRole { case owner, member }

extension SQLiteMetadataStore {
    public func createProject(userId: Int64, name: String) async throws -> ProjectInfo {
        do {
            return try await pool.write { db in try Self.insertProject(db, ownerId: userId, name: name) }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw TaskRules.duplicateProject(name)
        }
    }

    public func projects(userId: Int64) async throws -> [ProjectInfo] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM project WHERE owner_id = ? OR id IN (SELECT project_id FROM project_member WHERE user_id = ?) ORDER BY created_at, id
                """, arguments: [userId, userId]).map { try Self.projectInfo(db, $0) }
        }
    }

    public func addProjectMember(userId: Int64, projectId: String, username: String) async throws -> ProjectInfo {
        try await pool.write { db in
            try TaskRules.checkAddMember(role: try Self.role(db, userId: userId, projectId: projectId), projectId: projectId)
            guard let member = try Int64.fetchOne(db, sql: "SELECT id FROM user WHERE username = ?", arguments: [username]) else {
                throw TaskRules.noSuchUser(username)
            }
            if member != userId {
                try db.execute(sql: "INSERT OR IGNORE INTO project_member (project_id, user_id) VALUES (?, ?)", arguments: [projectId, member])
            }
            return try Self.projectInfo(db, Row.fetchOne(db, sql: "SELECT * FROM project WHERE id = ?", arguments: [projectId])!)
        }
    }

    public func createTask(userId: Int64, _ request: CreateTaskRequest) async throws -> TaskInfo {
        try await writeAndSignal { db in
            let projectId: String
            if let given = request.project {
                guard try Self.role(db, userId: userId, projectId: given) != nil else { throw TaskRules.projectNotFound(given) }
                projectId = given
            } else {
                projectId = try Self.inbox(db, userId: userId)
            }
            let role = try Self.role(db, userId: userId, projectId: projectId)
            let assignees = try Self.participantIds(db, projectId: projectId, usernames: request.assignees ?? [])
            try TaskRules.checkAssignment(role: role, assignees: assignees, userId: userId)
            let id = Self.newId("tsk")
            let now = Date()
            try db.execute(sql: """
                INSERT INTO task (id, project_id, title, description, status, due_date, created_by, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [id, projectId, request.title, request.description ?? "", (request.status ?? .todo).rawValue,
                                 request.dueDate, userId, now, now])
            for assignee in assignees {
                try db.execute(sql: "INSERT INTO task_assignee (task_id, user_id) VALUES (?, ?)", arguments: [id, assignee])
            }
            let task = try Self.taskInfo(db, id: id)
            try Self.emitToProject(db, projectId: projectId, type: .taskCreated, data: TaskEventData(task: task, changed: nil))
            return task
        }
    }

    public func tasks(userId: Int64, project: String?, status: TaskStatus?, assignee: String?, after: Int64?, limit: Int) async throws -> TaskListResponse {
        try await pool.read { db in
            var sql = """
                SELECT t.rowid AS position, t.id FROM task t JOIN project p ON p.id = t.project_id
                WHERE (p.owner_id = ? OR p.id IN (SELECT project_id FROM project_member WHERE user_id = ?)) AND t.rowid > ?
                """
            var arguments: StatementArguments = [userId, userId, after ?? 0]
            if let project {
                sql += " AND t.project_id = ?"
                _ = arguments.append(contentsOf: [project])
            }
            if let status {
                sql += " AND t.status = ?"
                _ = arguments.append(contentsOf: [status.rawValue])
            }
            if let assignee {
                sql += " AND t.id IN (SELECT a.task_id FROM task_assignee a JOIN user u ON u.id = a.user_id WHERE u.username = ?)"
                _ = arguments.append(contentsOf: [assignee])
            }
            sql += " ORDER BY t.rowid LIMIT ?"
            _ = arguments.append(contentsOf: [limit + 1])
            let rows = try Row.fetchAll(db, sql: sql, arguments: arguments)
            let page = rows.prefix(limit)
            return TaskListResponse(tasks: try page.map { try Self.taskInfo(db, id: $0["id"]) },
                                    nextAfter: rows.count > limit ? page.last?["position"] : nil)
        }
    }

    public func task(userId: Int64, id: String) async throws -> TaskInfo {
        try await pool.read { db in
            _ = try Self.visibleTask(db, userId: userId, id: id)
            var task = try Self.taskInfo(db, id: id)
            task.attachments = try Row.fetchAll(db, sql: "SELECT * FROM attachment WHERE task_id = ? ORDER BY created_at, id", arguments: [id])
                .map { try Self.attachmentInfo(db, $0) }
            return task
        }
    }

    public func updateTask(userId: Int64, id: String, _ update: UpdateTaskRequest) async throws -> TaskInfo {
        try await writeAndSignal { db in
            let (role, projectId) = try Self.visibleTask(db, userId: userId, id: id)
            let before = try Self.taskInfo(db, id: id)
            let assigned = try Bool.fetchOne(db, sql: "SELECT 1 FROM task_assignee WHERE task_id = ? AND user_id = ?", arguments: [id, userId]) != nil
            try TaskRules.checkUpdate(role: role, assigned: assigned, update)
            let change = try TaskRules.change(from: before, update)
            let changed = change.changed
            if let title = change.title { try db.execute(sql: "UPDATE task SET title = ? WHERE id = ?", arguments: [title, id]) }
            if let description = change.description { try db.execute(sql: "UPDATE task SET description = ? WHERE id = ?", arguments: [description, id]) }
            if let status = change.status { try db.execute(sql: "UPDATE task SET status = ? WHERE id = ?", arguments: [status.rawValue, id]) }
            if let due = change.dueDate { try db.execute(sql: "UPDATE task SET due_date = ? WHERE id = ?", arguments: [due, id]) }
            if let names = change.assignees {
                let ids = try Self.participantIds(db, projectId: projectId, usernames: names)
                try db.execute(sql: "DELETE FROM task_assignee WHERE task_id = ?", arguments: [id])
                for assignee in ids { try db.execute(sql: "INSERT INTO task_assignee (task_id, user_id) VALUES (?, ?)", arguments: [id, assignee]) }
            }
            guard !changed.isEmpty else { return before }
            try db.execute(sql: "UPDATE task SET updated_at = ? WHERE id = ?", arguments: [Date(), id])
            let task = try Self.taskInfo(db, id: id)
            try Self.emitToProject(db, projectId: projectId, type: .taskUpdated, data: TaskEventData(task: task, changed: changed))
            return task
        }
    }

    public func attach(userId: Int64, taskId: String, _ request: AttachRequest) async throws -> AttachmentInfo {
        try await writeAndSignal { db in
            let (_, projectId) = try Self.visibleTask(db, userId: userId, id: taskId)
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM library WHERE id = ? AND user_id = ?", arguments: [request.library, userId]) != nil else {
                throw MetadataError.notFound("library '\(request.library)'")
            }
            let version: FileVersion?
            if let seq = request.version {
                version = try CommitBatch.version(db, libraryId: request.library, path: request.path, seq: seq)
            } else {
                version = try CommitBatch.current(db, libraryId: request.library, path: request.path)
            }
            let attached = try TaskRules.attachable(version, request)
            let id = Self.newId("att")
            let now = Date()
            try db.execute(sql: """
                INSERT INTO attachment (id, task_id, library_id, path, seq, follow, added_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [id, taskId, request.library, request.path.string, attached.version, request.follow ?? false, userId, now, now])
            let attachment = try Self.attachmentInfo(db, Row.fetchOne(db, sql: "SELECT * FROM attachment WHERE id = ?", arguments: [id])!)
            try Self.emitToProject(db, projectId: projectId, type: .taskAttachmentAdded,
                                   data: AttachmentEventData(task: try Self.taskInfo(db, id: taskId), attachment: attachment))
            return attachment
        }
    }

    public func removeAttachment(userId: Int64, taskId: String, attachmentId: String) async throws {
        try await writeAndSignal { db in
            let (role, projectId) = try Self.visibleTask(db, userId: userId, id: taskId)
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM attachment WHERE id = ? AND task_id = ?", arguments: [attachmentId, taskId]) else {
                throw TaskRules.attachmentNotFound(attachmentId)
            }
            try TaskRules.checkRemoveAttachment(role: role, addedBy: row["added_by"], userId: userId)
            let attachment = try Self.attachmentInfo(db, row)
            try db.execute(sql: "DELETE FROM attachment WHERE id = ?", arguments: [attachmentId])
            try Self.emitToProject(db, projectId: projectId, type: .taskAttachmentRemoved,
                                   data: AttachmentEventData(task: try Self.taskInfo(db, id: taskId), attachment: attachment))
        }
    }

    public func attachmentVersion(userId: Int64, id: String) async throws -> FileVersion {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT task_id, library_id, path, seq FROM attachment WHERE id = ?", arguments: [id]) else {
                throw TaskRules.attachmentNotFound(id)
            }
            do { _ = try Self.visibleTask(db, userId: userId, id: row["task_id"]) } catch MetadataError.notFound {
                throw TaskRules.attachmentNotFound(id)
            }
            guard let version = try CommitBatch.version(db, libraryId: row["library_id"], path: try FerryPath(row["path"] as String), seq: row["seq"]) else {
                throw MetadataError.invalid("attachment '\(id)' names a version that does not exist")
            }
            return version
        }
    }

    // MARK: helpers

    /// `prefix_` and 32 hex digits: the form of every id the server hands out (events, webhooks, conflicts, tasks…).
    static func newId(_ prefix: String) -> String { prefix + "_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "") }

    static func insertProject(_ db: Database, ownerId: Int64, name: String) throws -> ProjectInfo {
        let id = newId("prj")
        try db.execute(sql: "INSERT INTO project (id, owner_id, name, created_at) VALUES (?, ?, ?, ?)", arguments: [id, ownerId, name, Date()])
        return try projectInfo(db, Row.fetchOne(db, sql: "SELECT * FROM project WHERE id = ?", arguments: [id])!)
    }

    /// The user's own "Inbox" project, created on first use.
    static func inbox(_ db: Database, userId: Int64) throws -> String {
        if let id = try String.fetchOne(db, sql: "SELECT id FROM project WHERE owner_id = ? AND name = 'Inbox'", arguments: [userId]) { return id }
        return try insertProject(db, ownerId: userId, name: "Inbox").id
    }

    static func role(_ db: Database, userId: Int64, projectId: String) throws -> ProjectRole? {
        guard let owner = try Int64.fetchOne(db, sql: "SELECT owner_id FROM project WHERE id = ?", arguments: [projectId]) else { return nil }
        if owner == userId { return .owner }
        let member = try Bool.fetchOne(db, sql: "SELECT 1 FROM project_member WHERE project_id = ? AND user_id = ?", arguments: [projectId, userId]) != nil
        return member ? .member : nil
    }

    /// The caller's role in the task's project, or 404 when the task is not theirs to see.
    static func visibleTask(_ db: Database, userId: Int64, id: String) throws -> (ProjectRole, String) {
        guard let projectId = try String.fetchOne(db, sql: "SELECT project_id FROM task WHERE id = ?", arguments: [id]),
              let role = try role(db, userId: userId, projectId: projectId)
        else { throw TaskRules.taskNotFound(id) }
        return (role, projectId)
    }

    /// User ids for names that are the project's owner or members; anyone else is refused.
    static func participantIds(_ db: Database, projectId: String, usernames: [String]) throws -> [Int64] {
        let participants = try participants(db, projectId: projectId)
        return try Set(usernames).sorted().map { name in
            guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM user WHERE username = ?", arguments: [name]), participants.contains(id) else {
                throw TaskRules.notParticipant(name)
            }
            return id
        }
    }

    static func participants(_ db: Database, projectId: String) throws -> [Int64] {
        try Int64.fetchAll(db, sql: "SELECT owner_id FROM project WHERE id = ? UNION SELECT user_id FROM project_member WHERE project_id = ?",
                           arguments: [projectId, projectId])
    }

    /// Task events go to every participant's endpoints.
    static func emitToProject(_ db: Database, projectId: String, type: EventType, data: some Encodable) throws {
        for user in try participants(db, projectId: projectId) { try Outbox.emit(db, userId: user, type: type, data: data) }
    }

    static func projectInfo(_ db: Database, _ row: Row) throws -> ProjectInfo {
        let id: String = row["id"]
        let owner = try String.fetchOne(db, sql: "SELECT username FROM user WHERE id = ?", arguments: [row["owner_id"] as Int64]) ?? "?"
        let members = try String.fetchAll(db, sql: """
            SELECT u.username FROM project_member m JOIN user u ON u.id = m.user_id WHERE m.project_id = ? ORDER BY u.username
            """, arguments: [id])
        return ProjectInfo(id: id, name: row["name"], owner: owner, members: members, createdAt: row["created_at"])
    }

    static func taskInfo(_ db: Database, id: String) throws -> TaskInfo {
        guard let row = try Row.fetchOne(db, sql: """
            SELECT t.*, u.username AS creator FROM task t JOIN user u ON u.id = t.created_by WHERE t.id = ?
            """, arguments: [id])
        else { throw TaskRules.taskNotFound(id) }
        let assignees = try String.fetchAll(db, sql: """
            SELECT u.username FROM task_assignee a JOIN user u ON u.id = a.user_id WHERE a.task_id = ? ORDER BY u.username
            """, arguments: [id])
        return TaskInfo(id: id, project: row["project_id"], title: row["title"], description: row["description"],
                        status: TaskStatus(rawValue: row["status"]) ?? .todo, assignees: assignees, dueDate: row["due_date"],
                        createdBy: row["creator"], createdAt: row["created_at"], updatedAt: row["updated_at"])
    }

    static func attachmentInfo(_ db: Database, _ row: Row) throws -> AttachmentInfo {
        let path = try FerryPath(row["path"] as String)
        let version = try CommitBatch.version(db, libraryId: row["library_id"], path: path, seq: row["seq"])
        let addedBy = try String.fetchOne(db, sql: "SELECT username FROM user WHERE id = ?", arguments: [row["added_by"] as Int64]) ?? "?"
        return AttachmentInfo(id: row["id"], task: row["task_id"], library: row["library_id"], path: path, version: row["seq"],
                              size: version?.size ?? 0, sha256: version?.sha256, follow: row["follow"], addedBy: addedBy,
                              createdAt: row["created_at"], updatedAt: row["updated_at"])
    }

    /// Moves following attachments of `version.path` to `version` and reports it; called by
    /// the commit that wrote the version, in its transaction.
    static func followAttachments(_ db: Database, libraryId: String, version: FileVersion) throws {
        let rows = try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM attachment WHERE library_id = ? AND path = ? AND follow = 1"),
                                    arguments: [libraryId, version.path.string])
        for row in rows {
            let id: String = row["id"]
            try db.execute(sql: "UPDATE attachment SET seq = ?, updated_at = ? WHERE id = ?", arguments: [version.version, Date(), id])
            let attachment = try attachmentInfo(db, Row.fetchOne(db, sql: "SELECT * FROM attachment WHERE id = ?", arguments: [id])!)
            let task = try taskInfo(db, id: row["task_id"])
            try emitToProject(db, projectId: task.project, type: .taskAttachmentUpdated, data: AttachmentEventData(task: task, attachment: attachment))
        }
    }
}

/// `task.created` and `task.updated` (with the fields that changed).
struct TaskEventData: Encodable {
    let task: TaskInfo
    let changed: [String]?
}

/// `task.attachment.*`.
struct AttachmentEventData: Encodable {
    let task: TaskInfo
    let attachment: AttachmentInfo
}
