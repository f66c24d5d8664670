import FerryCore
import Foundation
import GRDB

extension LocalIndex {
    /// The mirror's number for a path the server no longer has at all: retention removed its
    /// deletion. Below every real version, so the next real one replaces it.
    public static let removedByServer: Int64 = 0

    /// Ends a full re-read of the feed (after the server answered `cursor_expired`): every
    /// mirrored path missing from `listed` (the whole listing just read) is gone from the
    /// server. One this device synced is mirrored as a deletion numbered
    /// `removedByServer`, so the planner removes an unchanged local copy and uploads an
    /// edited one as a new file (modify beats delete); the others are forgotten. Then the
    /// cursor moves to `cursor`, in the same transaction.
    public func dropMissingRemote(folder: String, listed: Set<String>, cursor: Int64) throws {
        try pool.write { db in
            let mirrored = try String.fetchAll(db, sql: "SELECT path FROM remote WHERE folder = ?", arguments: [folder])
            let synced = Set(try String.fetchAll(db, sql: "SELECT path FROM entry WHERE folder = ?", arguments: [folder]))
            let removed = try db.cachedStatement(sql: """
                UPDATE remote SET version = ?, deleted = 1, size = 0, sha256 = NULL, chunks = x'', target = NULL WHERE folder = ? AND path = ?
                """)
            let forget = try db.cachedStatement(sql: "DELETE FROM remote WHERE folder = ? AND path = ?")
            for path in mirrored where !listed.contains(path) {
                if synced.contains(path) {
                    try removed.execute(arguments: [Self.removedByServer, folder, path])
                } else {
                    try forget.execute(arguments: [folder, path])
                }
            }
            try db.execute(sql: "UPDATE folder_state SET cursor = MAX(cursor, ?) WHERE folder = ?", arguments: [cursor, folder])
        }
    }
}
