import FerryCore
import Foundation

/// Restores and conflict resolutions: ordinary commit operations chosen by a rule, decided
/// here once for every backend.
extension CommitEngine {
    /// Makes version `request.version` of `request.path` current again as a new version; a
    /// directory comes back with what was removed with it (`CommitLedger.removedWith`), each
    /// entry from its last version, in this transaction: all of it or nothing.
    mutating func restore(_ request: RestoreRequest) throws -> RestoreOutcome {
        guard let source = try ledger.version(request.path, seq: request.version) else {
            throw MetadataError.notFound("version \(request.version) of '\(request.path)'")
        }
        guard !source.deleted else { throw MetadataError.invalid("version \(request.version) of '\(request.path)' is a deletion; restore an earlier version") }
        restoringFrom = request.version
        let current = try ledger.current(request.path)
        let result = try apply(Self.put(source, base: request.base ?? current?.version))
        switch result.status {
        case .ok: break
        case .conflict: throw MetadataError.conflict(current: result.current)
        case .missingChunks: throw MetadataError.invalid("the content of version \(request.version) is no longer stored")
        case .rejected: throw MetadataError.invalid(result.error?.message ?? "restore refused")
        }
        var restored = 0
        if source.kind == .directory {
            for (entry, tombstone) in try ledger.removedWith(source) {
                restoringFrom = entry.version
                let put = try apply(Self.put(entry, base: tombstone))
                guard put.status == .ok else {
                    let why = put.error?.message ?? (put.status == .missingChunks ? "its content is no longer stored" : "it changed meanwhile")
                    throw MetadataError.stateConflict("'\(entry.path)' cannot be restored with '\(source.path)': \(why); nothing was restored")
                }
                restored += 1
            }
        }
        try finish()
        return RestoreOutcome(version: result.version!, restoredEntries: restored, head: head)
    }

    /// A put that makes `source`'s content current again.
    static func put(_ source: FileVersion, base: Int64?) -> CommitOperation {
        CommitOperation(op: .put, path: source.path, base: base, kind: source.kind, size: source.size, sha256: source.sha256,
                        mtimeNs: source.mtimeNs, mode: source.mode, chunks: source.chunks, target: source.target)
    }

    /// Settles a conflict on `path` whose copy is `copyPath` (uploaded at `mineSeq`): `mine`
    /// puts the copy's content (as it is now, or as uploaded if it is gone) at `path`; `mine`
    /// and `theirs` then delete the copy; `both` keeps both files. The side given up stays in history.
    mutating func resolve(path: FerryPath, copyPath: FerryPath, mineSeq: Int64, keep: ConflictKeep) throws {
        let copy = try ledger.current(copyPath).flatMap { $0.deleted ? nil : $0 }
        if keep == .mine {
            guard let source = try copy ?? ledger.version(copyPath, seq: mineSeq) else {
                throw MetadataError.notFound("the conflict copy's version")
            }
            var put = Self.put(source, base: try ledger.current(path)?.version)
            put.path = path
            try Self.require(apply(put), doing: "keep the copy's content at '\(path)'")
        }
        if keep != .both, let copy {
            try Self.require(apply(.delete(copyPath, base: copy.version)), doing: "delete the conflict copy '\(copyPath)'")
        }
        try finish()
    }

    private static func require(_ result: CommitResult, doing what: String) throws {
        switch result.status {
        case .ok: return
        case .conflict: throw MetadataError.stateConflict("could not \(what): it changed meanwhile; try again")
        case .missingChunks: throw MetadataError.invalid("could not \(what): its content is no longer stored")
        case .rejected: throw MetadataError.invalid("could not \(what): \(result.error?.message ?? "refused")")
        }
    }
}
