import FerryCore
import Foundation
import Logging
import PostgresNIO

/// Projects, tasks and attachments on PostgreSQL; the permission rules are `TaskRules`.
extension PostgresMetadataStore {
    public func createProject(userId: Int64, name: String) async throws -> ProjectInfo {
        do {
            return try await write { try await Self.insertProject($0, ownerId: userId, name: name, logger: logger) }
        } catch where PostgresDatabase.sqlState(error) == "23505" {
            throw TaskRules.duplicateProject(name)
        }
    }

    public func projects(userId: Int64) async throws -> [ProjectInfo] {
        try await read { connection in
            var out: [ProjectInfo] = []
            for row in try await PostgresDatabase.rows(connection, """
                SELECT * FROM project WHERE owner_id = \(userId) OR id IN (SELECT project_id FROM project_member WHERE user_id = \(userId))
                ORDER BY created_at, id
                """, logger: logger) {
                out.append(try await Self.projectInfo(connection, row, logger: logger))
            }
            return out
        }
    }

    public func addProjectMember(userId: Int64, projectId: String, username: String) async throws -> ProjectInfo {
        try await write { connection in
            try TaskRules.checkAddMember(role: try await Self.role(connection, userId: userId, projectId: projectId, logger: logger), projectId: projectId)
            guard let member = try await PostgresDatabase.scalar(connection, "SELECT id FROM ferry_user WHERE username = \(username)",
                                                                 as: Int64.self, logger: logger) else { throw TaskRules.noSuchUser(username) }
            if member != userId {
                try await connection.query("INSERT INTO project_member (project_id, user_id) VALUES (\(projectId), \(member)) ON CONFLICT DO NOTHING",
                                           logger: logger)
            }
            return try await Self.projectInfo(connection, id: projectId, logger: logger)
        }
    }

    public func createTask(userId: Int64, _ request: CreateTaskRequest) async throws -> TaskInfo {
        try await writeAndSignal { connection in
            let projectId: String
            if let given = request.project {
                guard try await Self.role(connection, userId: userId, projectId: given, logger: logger) != nil else { throw TaskRules.projectNotFound(given) }
                projectId = given
            } else {
                projectId = try await Self.inbox(connection, userId: userId, logger: logger)
            }
            let role = try await Self.role(connection, userId: userId, projectId: projectId, logger: logger)
            let assignees = try await Self.participantIds(connection, projectId: projectId, usernames: request.assignees ?? [], logger: logger)
            try TaskRules.checkAssignment(role: role, assignees: assignees, userId: userId)
            let id = SQLiteMetadataStore.newId("tsk")
            let now = Date()
            try await connection.query("""
                INSERT INTO task (id, project_id, title, description, status, due_date, created_by, created_at, updated_at)
                VALUES (\(id), \(projectId), \(request.title), \(request.description ?? ""), \((request.status ?? .todo).rawValue), \(request.dueDate),
                        \(userId), \(now), \(now))
                """, logger: logger)
            for assignee in assignees {
                try await connection.query("INSERT INTO task_assignee (task_id, user_id) VALUES (\(id), \(assignee))", logger: logger)
            }
            let task = try await Self.taskInfo(connection, id: id, logger: logger)
            try await Self.emitToProject(connection, projectId: projectId, type: .taskCreated, data: TaskEventData(task: task, changed: nil), logger: logger)
            return task
        }
    }

    public func tasks(userId: Int64, project: String?, status: TaskStatus?, assignee: String?, after: Int64?, limit: Int) async throws -> TaskListResponse {
        try await read { connection in
            let rows = try await PostgresDatabase.rows(connection, """
                SELECT t.position, t.id FROM task t JOIN project p ON p.id = t.project_id
                WHERE (p.owner_id = \(userId) OR p.id IN (SELECT project_id FROM project_member WHERE user_id = \(userId))) AND t.position > \(after ?? 0)
                AND (\(project)::text IS NULL OR t.project_id = \(project)) AND (\(status?.rawValue)::text IS NULL OR t.status = \(status?.rawValue))
                AND (\(assignee)::text IS NULL OR t.id IN (
                    SELECT a.task_id FROM task_assignee a JOIN ferry_user u ON u.id = a.user_id WHERE u.username = \(assignee)))
                ORDER BY t.position LIMIT \(Int64(limit) + 1)
                """, logger: logger)
            var tasks: [TaskInfo] = []
            for row in rows.prefix(limit) { tasks.append(try await Self.taskInfo(connection, id: try row.get("id"), logger: logger)) }
            return TaskListResponse(tasks: tasks, nextAfter: rows.count > limit ? try rows[limit - 1].get("position", as: Int64.self) : nil)
        }
    }

    public func task(userId: Int64, id: String) async throws -> TaskInfo {
        try await read { connection in
            _ = try await Self.visibleTask(connection, userId: userId, id: id, logger: logger)
            var task = try await Self.taskInfo(connection, id: id, logger: logger)
            var attachments: [AttachmentInfo] = []
            for row in try await PostgresDatabase.rows(connection, "SELECT * FROM attachment WHERE task_id = \(id) ORDER BY created_at, id", logger: logger) {
                attachments.append(try await Self.attachmentInfo(connection, row, logger: logger))
            }
            task.attachments = attachments
            return task
        }
    }

    public func updateTask(userId: Int64, id: String, _ update: UpdateTaskRequest) async throws -> TaskInfo {
        try await writeAndSignal { connection in
            let (role, projectId) = try await Self.visibleTask(connection, userId: userId, id: id, lock: true, logger: logger)
            let before = try await Self.taskInfo(connection, id: id, logger: logger)
            let assigned = try await PostgresDatabase.row(connection, "SELECT 1 AS one FROM task_assignee WHERE task_id = \(id) AND user_id = \(userId)",
                                                          logger: logger) != nil
            try TaskRules.checkUpdate(role: role, assigned: assigned, update)
            let change = try TaskRules.change(from: before, update)
            guard !change.changed.isEmpty else { return before }
            if let title = change.title { try await connection.query("UPDATE task SET title = \(title) WHERE id = \(id)", logger: logger) }
            if let description = change.description {
                try await connection.query("UPDATE task SET description = \(description) WHERE id = \(id)", logger: logger)
            }
            if let status = change.status { try await connection.query("UPDATE task SET status = \(status.rawValue) WHERE id = \(id)", logger: logger) }
            if let due = change.dueDate { try await connection.query("UPDATE task SET due_date = \(due) WHERE id = \(id)", logger: logger) }
            if let names = change.assignees {
                let ids = try await Self.participantIds(connection, projectId: projectId, usernames: names, logger: logger)
                try await connection.query("DELETE FROM task_assignee WHERE task_id = \(id)", logger: logger)
                for assignee in ids { try await connection.query("INSERT INTO task_assignee (task_id, user_id) VALUES (\(id), \(assignee))", logger: logger) }
            }
            try await connection.query("UPDATE task SET updated_at = \(Date()) WHERE id = \(id)", logger: logger)
            let task = try await Self.taskInfo(connection, id: id, logger: logger)
            try await Self.emitToProject(connection, projectId: projectId, type: .taskUpdated, data: TaskEventData(task: task, changed: change.changed),
                                         logger: logger)
            return task
        }
    }

    public func attach(userId: Int64, taskId: String, _ request: AttachRequest) async throws -> AttachmentInfo {
        try await writeAndSignal { connection in
            let (_, projectId) = try await Self.visibleTask(connection, userId: userId, id: taskId, logger: logger)
            guard try await PostgresDatabase.row(connection, "SELECT 1 AS one FROM library WHERE id = \(request.library) AND user_id = \(userId)",
                                                 logger: logger) != nil
            else { throw MetadataError.notFound("library '\(request.library)'") }
            let found: FileVersion? = if let seq = request.version {
                try await PostgresRows.version(connection, libraryId: request.library, path: request.path, seq: seq, logger: logger)
            } else {
                try await PostgresRows.current(connection, libraryId: request.library, path: request.path, logger: logger)
            }
            let version = try TaskRules.attachable(found, request)
            let id = SQLiteMetadataStore.newId("att")
            let now = Date()
            try await connection.query("""
                INSERT INTO attachment (id, task_id, library_id, path, seq, follow, added_by, created_at, updated_at)
                VALUES (\(id), \(taskId), \(request.library), \(request.path.string), \(version.version), \(request.follow ?? false), \(userId), \(now), \(now))
                """, logger: logger)
            let attachment = try await Self.attachmentInfo(connection, id: id, logger: logger)
            try await Self.emitToProject(connection, projectId: projectId, type: .taskAttachmentAdded,
                                         data: AttachmentEventData(task: try await Self.taskInfo(connection, id: taskId, logger: logger), attachment: attachment),
                                         logger: logger)
            return attachment
        }
    }

    public func removeAttachment(userId: Int64, taskId: String, attachmentId: String) async throws {
        try await writeAndSignal { connection in
            let (role, projectId) = try await Self.visibleTask(connection, userId: userId, id: taskId, logger: logger)
            guard let row = try await PostgresDatabase.row(connection, "SELECT * FROM attachment WHERE id = \(attachmentId) AND task_id = \(taskId) FOR UPDATE",
                                                           logger: logger) else { throw TaskRules.attachmentNotFound(attachmentId) }
            try TaskRules.checkRemoveAttachment(role: role, addedBy: try row.get("added_by"), userId: userId)
            let attachment = try await Self.attachmentInfo(connection, row, logger: logger)
            try await connection.query("DELETE FROM attachment WHERE id = \(attachmentId)", logger: logger)
            try await Self.emitToProject(connection, projectId: projectId, type: .taskAttachmentRemoved,
                                         data: AttachmentEventData(task: try await Self.taskInfo(connection, id: taskId, logger: logger), attachment: attachment),
                                         logger: logger)
        }
    }

    public func attachmentVersion(userId: Int64, id: String) async throws -> FileVersion {
        try await read { connection in
            guard let row = try await PostgresDatabase.row(connection, "SELECT task_id, library_id, path, seq FROM attachment WHERE id = \(id)", logger: logger)
            else { throw TaskRules.attachmentNotFound(id) }
            do { _ = try await Self.visibleTask(connection, userId: userId, id: try row.get("task_id"), logger: logger) } catch MetadataError.notFound {
                throw TaskRules.attachmentNotFound(id)
            }
            guard let version = try await PostgresRows.version(connection, libraryId: try row.get("library_id"), path: try FerryPath(try row.get("path")),
                                                               seq: try row.get("seq"), logger: logger)
            else { throw MetadataError.invalid("attachment '\(id)' names a version that does not exist") }
            return version
        }
    }

    // MARK: helpers

    static func insertProject(_ connection: PostgresConnection, ownerId: Int64, name: String, logger: Logger) async throws -> ProjectInfo {
        let id = SQLiteMetadataStore.newId("prj")
        try await connection.query("INSERT INTO project (id, owner_id, name, created_at) VALUES (\(id), \(ownerId), \(name), \(Date()))", logger: logger)
        return try await projectInfo(connection, id: id, logger: logger)
    }

    /// The user's own "Inbox" project, created on first use.
    static func inbox(_ connection: PostgresConnection, userId: Int64, logger: Logger) async throws -> String {
        if let id = try await PostgresDatabase.scalar(connection, "SELECT id FROM project WHERE owner_id = \(userId) AND name = 'Inbox'",
                                                      as: String.self, logger: logger) { return id }
        return try await insertProject(connection, ownerId: userId, name: "Inbox", logger: logger).id
    }

    static func role(_ connection: PostgresConnection, userId: Int64, projectId: String, logger: Logger) async throws -> ProjectRole? {
        guard let owner = try await PostgresDatabase.scalar(connection, "SELECT owner_id FROM project WHERE id = \(projectId)", as: Int64.self, logger: logger)
        else { return nil }
        if owner == userId { return .owner }
        let member = try await PostgresDatabase.row(connection, "SELECT 1 AS one FROM project_member WHERE project_id = \(projectId) AND user_id = \(userId)",
                                                    logger: logger) != nil
        return member ? .member : nil
    }

    /// The caller's role in the task's project, or 404 when the task is not theirs to see;
    /// `lock` takes the task's row for the transaction (an update).
    static func visibleTask(_ connection: PostgresConnection, userId: Int64, id: String, lock: Bool = false, logger: Logger) async throws -> (ProjectRole, String) {
        let query: PostgresQuery = lock ? "SELECT project_id FROM task WHERE id = \(id) FOR UPDATE" : "SELECT project_id FROM task WHERE id = \(id)"
        guard let projectId = try await PostgresDatabase.scalar(connection, query, as: String.self, logger: logger),
              let role = try await role(connection, userId: userId, projectId: projectId, logger: logger)
        else { throw TaskRules.taskNotFound(id) }
        return (role, projectId)
    }

    static func participants(_ connection: PostgresConnection, projectId: String, logger: Logger) async throws -> [Int64] {
        try await PostgresDatabase.column(connection, """
            SELECT owner_id FROM project WHERE id = \(projectId) UNION SELECT user_id FROM project_member WHERE project_id = \(projectId)
            """, as: Int64.self, logger: logger)
    }

    /// User ids for names that are the project's owner or members; anyone else is refused.
    static func participantIds(_ connection: PostgresConnection, projectId: String, usernames: [String], logger: Logger) async throws -> [Int64] {
        let participants = try await participants(connection, projectId: projectId, logger: logger)
        var ids: [Int64] = []
        for name in Set(usernames).sorted() {
            guard let id = try await PostgresDatabase.scalar(connection, "SELECT id FROM ferry_user WHERE username = \(name)", as: Int64.self, logger: logger),
                  participants.contains(id) else { throw TaskRules.notParticipant(name) }
            ids.append(id)
        }
        return ids
    }

    /// Task events go to every participant's endpoints.
    static func emitToProject(_ connection: PostgresConnection, projectId: String, type: EventType, data: some Encodable, logger: Logger) async throws {
        for user in try await participants(connection, projectId: projectId, logger: logger) {
            try await PostgresOutbox.emit(connection, userId: user, type: type, data: data, logger: logger)
        }
    }

    static func projectInfo(_ connection: PostgresConnection, id: String, logger: Logger) async throws -> ProjectInfo {
        guard let row = try await PostgresDatabase.row(connection, "SELECT * FROM project WHERE id = \(id)", logger: logger) else {
            throw TaskRules.projectNotFound(id)
        }
        return try await projectInfo(connection, row, logger: logger)
    }

    static func projectInfo(_ connection: PostgresConnection, _ row: PostgresRandomAccessRow, logger: Logger) async throws -> ProjectInfo {
        let id: String = try row.get("id")
        let owner = try await PostgresDatabase.scalar(connection, "SELECT username FROM ferry_user WHERE id = \(try row.get("owner_id", as: Int64.self))",
                                                      as: String.self, logger: logger) ?? "?"
        let members = try await PostgresDatabase.column(connection, """
            SELECT u.username FROM project_member m JOIN ferry_user u ON u.id = m.user_id WHERE m.project_id = \(id) ORDER BY u.username
            """, as: String.self, logger: logger)
        return ProjectInfo(id: id, name: try row.get("name"), owner: owner, members: members, createdAt: try row.get("created_at"))
    }

    static func taskInfo(_ connection: PostgresConnection, id: String, logger: Logger) async throws -> TaskInfo {
        guard let row = try await PostgresDatabase.row(connection, """
            SELECT t.*, u.username AS creator FROM task t JOIN ferry_user u ON u.id = t.created_by WHERE t.id = \(id)
            """, logger: logger) else { throw TaskRules.taskNotFound(id) }
        let assignees = try await PostgresDatabase.column(connection, """
            SELECT u.username FROM task_assignee a JOIN ferry_user u ON u.id = a.user_id WHERE a.task_id = \(id) ORDER BY u.username
            """, as: String.self, logger: logger)
        return TaskInfo(id: id, project: try row.get("project_id"), title: try row.get("title"), description: try row.get("description"),
                        status: TaskStatus(rawValue: try row.get("status")) ?? .todo, assignees: assignees, dueDate: try row.get("due_date"),
                        createdBy: try row.get("creator"), createdAt: try row.get("created_at"), updatedAt: try row.get("updated_at"))
    }

    static func attachmentInfo(_ connection: PostgresConnection, id: String, logger: Logger) async throws -> AttachmentInfo {
        guard let row = try await PostgresDatabase.row(connection, "SELECT * FROM attachment WHERE id = \(id)", logger: logger) else {
            throw TaskRules.attachmentNotFound(id)
        }
        return try await attachmentInfo(connection, row, logger: logger)
    }

    static func attachmentInfo(_ connection: PostgresConnection, _ row: PostgresRandomAccessRow, logger: Logger) async throws -> AttachmentInfo {
        let path = try FerryPath(try row.get("path", as: String.self))
        let libraryId: String = try row.get("library_id")
        let seq: Int64 = try row.get("seq")
        let version = try await PostgresRows.version(connection, libraryId: libraryId, path: path, seq: seq, logger: logger)
        let addedBy = try await PostgresDatabase.scalar(connection, "SELECT username FROM ferry_user WHERE id = \(try row.get("added_by", as: Int64.self))",
                                                        as: String.self, logger: logger) ?? "?"
        return AttachmentInfo(id: try row.get("id"), task: try row.get("task_id"), library: libraryId, path: path, version: seq,
                              size: version?.size ?? 0, sha256: version?.sha256, follow: try row.get("follow"), addedBy: addedBy,
                              createdAt: try row.get("created_at"), updatedAt: try row.get("updated_at"))
    }

    /// Moves following attachments of `version.path` to `version` and reports it; run by the
    /// commit that wrote the version, in its transaction.
    static func followAttachments(_ connection: PostgresConnection, libraryId: String, version: FileVersion, logger: Logger) async throws {
        let ids = try await PostgresDatabase.column(connection, """
            UPDATE attachment SET seq = \(version.version), updated_at = \(Date())
            WHERE library_id = \(libraryId) AND path = \(version.path.string) AND follow RETURNING id
            """, as: String.self, logger: logger)
        for id in ids.sorted() {
            let attachment = try await attachmentInfo(connection, id: id, logger: logger)
            let task = try await taskInfo(connection, id: attachment.task, logger: logger)
            try await emitToProject(connection, projectId: task.project, type: .taskAttachmentUpdated, data: AttachmentEventData(task: task, attachment: attachment),
                                    logger: logger)
        }
    }
}
