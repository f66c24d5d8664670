import FerryCore

/// What the client accepts from a server before acting on it. The server checks what it is
/// sent, but a compromised one, or a bug, may send anything: a version that breaks the
/// protocol's rules becomes a problem of its path (reported, retried next pass), never a
/// crash or a write, and Ferry's own names are never taken from it at all.
enum RemoteCheck {
    /// Ferry's own: the marker `.ferry` at the folder's root and anything in it, and
    /// unfinished downloads (`.ferry-partial-*`) at any depth, whatever their kind.
    static func isFerrysOwn(_ path: String) -> Bool {
        let components = path.split(separator: "/")
        if components.first == Substring(LocalScanner.markerName) { return true }
        return components.contains { $0.hasPrefix(LocalScanner.partialPrefix) }
    }

    /// Why `v` cannot be applied, or nil when it keeps the protocol's rules: sizes not
    /// negative; for a file a SHA-256 and chunks of 1 byte to the protocol's largest that add
    /// up to its size; for a link a target of 1 to 4096 bytes without NUL.
    static func problem(with v: FileVersion) -> String? {
        guard !v.deleted else { return nil }
        let reason: String?
        switch v.kind {
        case .file:
            reason = fileProblem(v)
        case .symlink:
            if let target = v.target, !target.isEmpty, target.utf8.count <= FerryPath.maxPathBytes, !target.utf8.contains(0) {
                reason = nil
            } else {
                reason = "a link needs a target of 1 to \(FerryPath.maxPathBytes) bytes without NUL"
            }
        case .directory:
            reason = v.size < 0 ? "its size is negative" : nil
        }
        return reason.map { "the server sent an invalid version \(v.version) of this path (\($0)); it is not applied here" }
    }

    private static func fileProblem(_ v: FileVersion) -> String? {
        guard v.size >= 0 else { return "its size is negative" }
        guard v.sha256 != nil else { return "a file needs a SHA-256" }
        var total: Int64 = 0
        for chunk in v.chunks {
            guard chunk.size > 0, chunk.size <= Int64(FerryProtocol.maxChunkSize) else {
                return "chunk sizes must be between 1 and \(FerryProtocol.maxChunkSize) bytes"
            }
            total += chunk.size
        }
        guard total == v.size else { return "its chunks add up to \(total) bytes, not its size of \(v.size)" }
        return nil
    }
}
