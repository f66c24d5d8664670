@testable import FerryClient
import AsyncHTTPClient
import FerryCore
import FerryServer
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// Projects, tasks and attachments end to end (issue 4 §1–2), with the events they emit.
@Suite("tasks and attachments")
struct TaskTests {
    static func status(of call: () async throws -> some Any) async -> Int? {
        do { _ = try await call(); return nil } catch let e as APIFailure { return e.status } catch { return -1 }
    }

    @Test func ownersAndMembersHaveTheirRights() async throws {
        try await Cloud.with { cloud in
            let owner = try await Device.make(cloud, user: try await cloud.user("olga"), name: "o")
            let member = try await Device.make(cloud, user: try await cloud.user("mika"), name: "m")
            let stranger = try await Device.make(cloud, user: try await cloud.user("sven"), name: "s")
            defer { Task { await owner.close(); await member.close(); await stranger.close() } }
            let project = try await owner.api.createProject(name: "Launch")
            #expect(await Self.status { try await owner.api.createProject(name: "Launch") } == 409)
            #expect(await Self.status { try await member.api.addProjectMember(project: project.id, username: "sven") } == 404)
            #expect(try await owner.api.addProjectMember(project: project.id, username: "mika").members == ["mika"])
            #expect(await Self.status { try await owner.api.addProjectMember(project: project.id, username: "nobody") } == 400)

            let mine = try await owner.api.createTask(CreateTaskRequest(project: project.id, title: "Write copy", assignees: ["mika"], dueDate: "2026-12-24"))
            let theirs = try await owner.api.createTask(CreateTaskRequest(project: project.id, title: "Book venue", assignees: ["olga"]))
            #expect(mine.status == .todo && mine.assignees == ["mika"] && mine.dueDate == "2026-12-24" && mine.createdBy == "olga")
            #expect(await Self.status { try await owner.api.createTask(CreateTaskRequest(project: project.id, title: "x", assignees: ["sven"])) } == 400)
            #expect(await Self.status { try await owner.api.createTask(CreateTaskRequest(project: project.id, title: "x", dueDate: "2026-02-30")) } == 400)
            #expect(await Self.status { try await owner.api.createTask(CreateTaskRequest(project: project.id, title: "  ")) } == 400)

            // The member sees the project's tasks and moves their own one step at a time.
            #expect(try await member.api.tasks(project: project.id).tasks.map(\.id) == [mine.id, theirs.id])
            #expect(try await member.api.tasks(assignee: "mika").tasks.map(\.id) == [mine.id])
            #expect(await Self.status { try await member.api.updateTask(id: mine.id, UpdateTaskRequest(status: .done)) } == 409)
            let moved = try await member.api.updateTask(id: mine.id, UpdateTaskRequest(status: .inProgress))
            #expect(moved.status == .inProgress && moved.updatedAt >= mine.updatedAt)
            #expect(try await member.api.tasks(status: .inProgress).tasks.map(\.id) == [mine.id])
            // …but not someone else's, and does not reassign.
            #expect(await Self.status { try await member.api.updateTask(id: theirs.id, UpdateTaskRequest(status: .inProgress)) } == 403)
            #expect(await Self.status { try await member.api.updateTask(id: mine.id, UpdateTaskRequest(assignees: ["olga"])) } == 403)
            #expect(try await owner.api.task(id: theirs.id).status == .todo)
            // The owner may do anything, including moving back.
            #expect(try await owner.api.updateTask(id: mine.id, UpdateTaskRequest(status: .todo, assignees: ["mika", "olga"])).assignees == ["mika", "olga"])

            // A stranger sees nothing.
            #expect(try await stranger.api.tasks().tasks.isEmpty)
            #expect(await Self.status { try await stranger.api.task(id: mine.id) } == 404)
            #expect(await Self.status { try await stranger.api.updateTask(id: mine.id, UpdateTaskRequest(title: "mine now")) } == 404)
            #expect(await Self.status { try await stranger.api.createTask(CreateTaskRequest(project: project.id, title: "sneak")) } == 404)

            // Without a project a task lands in the caller's Inbox; pages follow `next_after`.
            let inboxed = try await stranger.api.createTask(CreateTaskRequest(title: "Own errand"))
            let strangersProjects = try await stranger.api.projects()
            #expect(strangersProjects.map(\.name) == ["Inbox"] && inboxed.project == strangersProjects[0].id)
            let first = try await owner.api.tasks(limit: 1)
            let second = try await owner.api.tasks(after: first.nextAfter, limit: 1)
            #expect(first.tasks.map(\.id) == [mine.id] && second.tasks.map(\.id) == [theirs.id] && second.nextAfter == nil)
        }
    }

    @Test func anAttachmentKeepsItsVersionThroughEditsDeletionAndGC() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("ana")
            let a = try await Device.make(cloud, user: user, name: "a")
            defer { Task { await a.close() } }
            try a.write("brief.txt", "the first brief")
            try await a.sync()
            let task = try await a.api.createTask(CreateTaskRequest(title: "Review the brief"))
            let pinned = try await a.api.attach(task: task.id, AttachRequest(library: a.sync.folder.libraryId, path: try FerryPath("brief.txt")))
            let followed = try await a.api.attach(task: task.id, AttachRequest(library: a.sync.folder.libraryId, path: try FerryPath("brief.txt"), follow: true))
            #expect(pinned.size == 15 && pinned.sha256 == ContentHash.of(Data("the first brief".utf8)))

            try a.write("brief.txt", "the second brief")
            try await a.sync()
            #expect(try await a.api.attachmentContent(id: pinned.id) == Data("the first brief".utf8))
            #expect(try await a.api.attachmentContent(id: followed.id) == Data("the second brief".utf8))
            let shown = try await a.api.task(id: task.id)
            #expect(shown.attachments?.first { $0.id == followed.id }?.version ?? 0 > pinned.version)

            try a.remove("brief.txt")
            try await a.sync()
            let gc = try await Maintenance.collectGarbage(store: cloud.services.store, blobs: cloud.services.blobs, grace: 0)
            _ = gc
            #expect(try await a.api.attachmentContent(id: pinned.id) == Data("the first brief".utf8))
            #expect(try await a.api.attachmentContent(id: followed.id) == Data("the second brief".utf8))
            #expect(try await Maintenance.check(store: cloud.services.store, blobs: cloud.services.blobs).isClean)

            // Attaching needs a live file in one of your own libraries.
            #expect(await Self.status { try await a.api.attach(task: task.id, AttachRequest(library: a.sync.folder.libraryId, path: try FerryPath("brief.txt"))) } == 404)
            try await a.api.removeAttachment(task: task.id, attachment: pinned.id)
            #expect(await Self.status { try await a.api.attachmentContent(id: pinned.id) } == 404)
        }
    }

    @Test func aDirectUploadIsStoredAsASyncedFileAndAttached() async throws {
        try await Cloud.with { cloud in
            let user = try await cloud.user("uma")
            let a = try await Device.make(cloud, user: user, name: "a")
            let b = try await Device.make(cloud, user: user, name: "b")
            defer { Task { await a.close(); await b.close() } }
            let task = try await a.api.createTask(CreateTaskRequest(title: "Scan receipts"))
            var request = a.api.request(.POST, "/tasks/\(task.id)/attachments?library=\(a.sync.folder.libraryId)&path=receipts/march.pdf")
            request.headers.add(name: "Content-Type", value: "application/pdf")
            request.body = .bytes(ByteBuffer(string: "%PDF receipts"))
            let response = try await a.api.client.execute(request, timeout: .seconds(30))
            #expect(response.status.code == 201)
            let attachment = try JSONCoding.decoder.decode(AttachmentInfo.self, from: Data(try await response.body.collect(upTo: 1 << 20).readableBytesView))
            #expect(attachment.path.string == "receipts/march.pdf" && attachment.size == 13)
            try await b.sync()
            #expect(b.read("receipts/march.pdf") == "%PDF receipts")
            #expect(try await b.api.attachmentContent(id: attachment.id) == Data("%PDF receipts".utf8))
        }
    }

    @Test func taskAndAttachmentEventsReachEveryParticipant() async throws {
        try await Cloud.with(configure: WebhookTests.fast) { cloud in
            try await withHookReceiver { ownerURL, ownerLog in
                try await withHookReceiver { memberURL, memberLog in
                    let owner = try await Device.make(cloud, user: try await cloud.user("owen"), name: "o")
                    let member = try await Device.make(cloud, user: try await cloud.user("meg"), name: "m")
                    defer { Task { await owner.close(); await member.close() } }
                    _ = try await owner.session().createWebhook(url: ownerURL, events: try EventFilter(["task.*"]))
                    _ = try await member.session().createWebhook(url: memberURL, events: try EventFilter(["task.*"]))
                    let project = try await owner.api.createProject(name: "Shared")
                    _ = try await owner.api.addProjectMember(project: project.id, username: "meg")
                    let task = try await owner.api.createTask(CreateTaskRequest(project: project.id, title: "Design", assignees: ["meg"]))
                    _ = try await member.api.updateTask(id: task.id, UpdateTaskRequest(status: .inProgress))
                    try member.write("sketch.txt", "v1")
                    try await member.sync()
                    let attachment = try await member.api.attach(task: task.id, AttachRequest(library: member.sync.folder.libraryId,
                                                                                              path: try FerryPath("sketch.txt"), follow: true))
                    try member.write("sketch.txt", "version 2")
                    try await member.sync()
                    try await owner.api.removeAttachment(task: task.id, attachment: attachment.id)

                    let expected = ["task.created", "task.updated", "task.attachment.added", "task.attachment.updated", "task.attachment.removed"]
                    for log in [ownerLog, memberLog] {
                        #expect(await eventually { await log.requests.count >= expected.count })
                        let hooks = await log.requests
                        #expect(hooks.map(\.type) == expected)
                        #expect((hooks[1].data["changed"] as? [String]) == ["status"])
                        #expect((hooks[3].data["attachment"] as? [String: Any])?["size"] as? Int == 9)
                        #expect((hooks[0].data["task"] as? [String: Any])?["title"] as? String == "Design")
                    }
                }
            }
        }
    }
}
