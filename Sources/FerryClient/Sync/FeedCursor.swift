import FerryCore
import Foundation

/// The one owner of a folder's place in its library's change feed (the cursor stored in
/// the index). It moves in two ways, both here: a read of the feed stores each page's
/// versions with that page's cursor (`pull`), and a run of commits whose answers handed
/// over every version from the cursor to the server's head moves it past them
/// (`record(_:head:in:)`). Each move tells `scopes` what arrived, so the next scoped pass
/// looks at it.
struct FeedCursor: Sendable {
    let folder: FolderConfig
    let index: LocalIndex
    let api: ServerAPI
    let scopes: ScopeTracker

    var root: String { folder.path }

    /// Reads the change feed from the stored cursor to the head into the index's mirror.
    /// Returns whether anything new arrived.
    @discardableResult
    func pull(wait: Int = 0) async throws -> Bool {
        var any = false
        do {
            try await read(since: try index.cursor(folder: root), wait: wait, storingCursor: true) { any = any || !$0.changes.isEmpty }
            return any
        } catch let refusal as APIFailure where refusal.code == "cursor_expired" {
            // Retention removed deletions this device has not seen: compare the whole listing.
            // What it lacks is gone from the server (`LocalIndex.dropMissingRemote`); the
            // cursor moves only then, to the head the last page was read at.
            var listed = Set<String>()
            let last = try await read(since: 0, storingCursor: false) { listed.formUnion($0.changes.lazy.map(\.path.string)) }
            try index.dropMissingRemote(folder: root, listed: listed, cursor: max(last.cursor, last.head))
            scopes.requireFull()
            return true
        } catch let refusal as APIFailure where refusal.code == "cursor_ahead" {
            // The server forgot changes this device saw. Guessing which side is right
            // could overwrite or delete; stop and say how to compare by content instead.
            throw ClientError.folderUnavailable(
                "the server's copy of library '\(folder.libraryName)' is older than this folder's record of it (it was probably "
                    + "restored from a backup); nothing was changed here. To sync again, run 'ferry folder remove \(root)' and "
                    + "'ferry folder add \(root) --library \(folder.libraryName)': files are then compared by content, and any that differ "
                    + "are kept as conflict copies")
        }
    }

    /// Reads the feed's pages from `since` to the head into the mirror, each seen by `page`
    /// once stored; only the first waits up to `wait` seconds for a change. With
    /// `storingCursor`, each page's cursor is stored with its changes. Returns the last page.
    @discardableResult
    func read(since start: Int64, wait: Int = 0, storingCursor: Bool, _ page: (ChangesResponse) -> Void) async throws -> ChangesResponse {
        var since = start
        var wait = wait
        while true {
            let read = try await api.changes(library: folder.libraryId, since: since, limit: 1000, wait: wait)
            wait = 0
            var update = IndexUpdate()
            update.remote = read.changes
            if storingCursor { update.cursor = read.cursor }
            try index.apply(folder: root, update)
            if storingCursor { scopes.pulled(read.changes.lazy.map(\.path.string), since: since, cursor: read.cursor) }
            page(read)
            since = read.cursor
            if !read.hasMore { return read }
        }
    }

    /// The feed from the stored cursor to the head, read and not stored (a dry run).
    func unread() async throws -> [FileVersion] {
        var newer: [FileVersion] = []
        var since = try index.cursor(folder: root)
        while true {
            let page = try await api.changes(library: folder.libraryId, since: since, limit: 1000)
            newer += page.changes
            since = page.cursor
            if !page.hasMore { return newer }
        }
    }

    /// A run of commits, from the cursor stored when it began: the sequence numbers above
    /// the cursor whose versions the answers handed over, and the highest head they named.
    struct CommitRun: Equatable {
        private(set) var cursor: Int64
        private(set) var handed = Set<Int64>()
        private(set) var head: Int64

        init(cursor: Int64) {
            self.cursor = cursor
            self.head = cursor
        }

        /// Takes one answer: the versions it handed over and the head it named. When every
        /// sequence number from the cursor to the head is a version these answers handed
        /// over, nobody else committed in between: the change feed would only repeat them,
        /// so the cursor moves past them, and the new cursor is returned. (Each handed
        /// version is above the cursor and at most its answer's head, so counting them is
        /// enough.)
        mutating func answered(versions: some Sequence<Int64>, head answered: Int64) -> Int64? {
            handed.formUnion(versions.lazy.filter { [cursor] in $0 > cursor })
            head = max(head, answered)
            guard head > cursor, Int64(handed.count) == head - cursor else { return nil }
            cursor = head
            handed.removeAll()
            return cursor
        }
    }

    func beginCommits() throws -> CommitRun { CommitRun(cursor: try index.cursor(folder: root)) }

    /// Stores one commit answer's `update`, with the cursor moved past it when the run's
    /// answers now cover everything up to the head (`CommitRun.answered`): in the same
    /// transaction that records the last of them.
    func record(_ update: IndexUpdate, head: Int64, in run: inout CommitRun) throws {
        var update = update
        let movedFrom = run.cursor
        update.cursor = run.answered(versions: update.remote.lazy.map(\.version), head: head)
        try index.apply(folder: root, update)
        // This process stored that cursor, past versions it recorded itself.
        if let moved = update.cursor { scopes.pulled([], since: movedFrom, cursor: moved) }
    }
}
