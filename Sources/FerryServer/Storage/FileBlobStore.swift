#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CFerrySystem
import CoreFoundation
import Crypto
import Foundation
import FerryCore
import NIOCore
import NIOPosix
import Synchronization

/// Blobs as files under `blobs/ab/<sha256>` (256 directories, made once), staged in `tmp/`;
/// blobs of at most `InlineBlobs.limit` bytes as rows of `blobs.sqlite` instead. All file
/// and database I/O runs on a dedicated thread pool, never on an event loop.
public final class FileBlobStore: BlobStore {
    public let blobsDirectory: String
    public let stagingDirectory: String
    let inline: InlineBlobs
    let direct: DirectWriter
    let pool: NIOThreadPool
    let maxBlobSize: Int64

    /// Creates `blobs/` and `tmp/` under `dataDirectory` if needed.
    public init(dataDirectory: String, threadPool: NIOThreadPool, maxBlobSize: Int64 = Int64(FerryProtocol.maxChunkSize)) throws {
        self.blobsDirectory = dataDirectory + "/blobs"
        self.stagingDirectory = dataDirectory + "/tmp"
        self.pool = threadPool
        self.direct = DirectWriter(keep: 8)
        self.maxBlobSize = maxBlobSize
        try Posix.makeDirectory(blobsDirectory, durable: true)
        try Posix.makeDirectory(stagingDirectory, durable: true)
        try Self.settleLayout(blobsDirectory)
        let blobs = blobsDirectory
        self.inline = try InlineBlobs(path: dataDirectory + "/blobs.sqlite") { Self.holdsAnyBlob(blobs) }
    }

    /// Whether any shard of `blobs` holds a blob file; stops at the first shard that does.
    /// A missing shard holds none; one that cannot be read counts as holding some.
    static func holdsAnyBlob(_ blobs: String) -> Bool {
        for shard in shards(of: blobs) {
            guard let names = try? Posix.listDirectory(shard) else { return true }
            if names.contains(where: { $0.utf8.count == 64 }) { return true }
        }
        return false
    }

    /// The shard directories of `blobs` that exist (one removed by hand is made again by
    /// the next blob placed in it).
    static func shards(of blobs: String) -> [String] {
        (0..<256).map { blobs + "/" + String(format: "%02x", $0) }.filter { access($0, F_OK) == 0 || errno != ENOENT }
    }

    /// Whether a blob is stored as a file (blocking).
    func isFile(_ hash: ContentHash) -> Bool { access(path(of: hash), F_OK) == 0 }

    /// Where a blob lives: one level of 256 directories. (Two levels, 65,536 leaves, made
    /// nearly every new small chunk create a directory: ext4's inode allocation for mkdir was
    /// a fifth of the server's time in an initial sync of 20,000 small files.)
    public func path(of hash: ContentHash) -> String {
        let hex = hash.hex
        return "\(blobsDirectory)/\(hex.prefix(2))/\(hex)"
    }

    /// Marks a blob directory in the one-level layout, written once it is complete.
    static let layoutMarker = ".layout-1"

    /// Makes the 256 shard directories and moves blobs of the earlier two-level layout
    /// (`ab/cd/<sha256>`) up one level, once: each move is an atomic rename, and the marker
    /// is written (durably) only after every shard is done, so a crash midway resumes.
    static func settleLayout(_ blobs: String) throws {
        if access(blobs + "/" + layoutMarker, F_OK) == 0 { return }
        for n in 0..<256 {
            let shard = blobs + "/" + String(format: "%02x", n)
            try Posix.makeDirectory(shard, durable: false)  // all 256 made durable by one fsync below
            var moved = false
            for name in try Posix.listDirectory(shard) where name.utf8.count == 2 {
                // Two-character names in a shard are the old layout's leaf directories.
                let leaf = shard + "/" + name
                guard let old = try? Posix.listDirectory(leaf) else { continue }
                for blob in old where blob.utf8.count == 64 {
                    guard rename(leaf + "/" + blob, shard + "/" + blob) == 0 else { throw Posix.blobError("move blob \(blob) to the one-level layout", errno) }
                    moved = true
                }
                rmdir(leaf)
            }
            if moved { try Posix.syncDirectory(shard) }
        }
        try Posix.syncDirectory(blobs)
        let fd = open(blobs + "/" + layoutMarker, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Posix.blobError("write the layout marker", errno) }
        let synced = fsync(fd) == 0 ? 0 : errno
        close(fd)
        guard synced == 0 else { throw Posix.blobError("sync the layout marker", synced) }
        try Posix.syncDirectory(blobs)
    }

    public func makeWriter() async throws -> any BlobWriter {
        let name = "\(stagingDirectory)/upload-\(Posix.randomToken())"
        let fd = try await pool.runIfActive {
            let fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw Posix.blobError("open staging file", errno) }
            return fd
        }
        return FileBlobWriter(fd: fd, path: name, pool: pool, limit: maxBlobSize, direct: direct)
    }

    public func publish(_ staged: StagedBlob) throws -> Bool {
        if let bytes = staged.bytes { return try inline.insert([(staged.hash, bytes)], isFile: isFile)[0] }
        let final = path(of: staged.hash)
        if access(final, F_OK) == 0 {
            // Same name, same content: the blob is already durable; keep the old file.
            unlink(staged.stagingPath)
            return false
        }
        try Self.place(staged.stagingPath, at: final, durable: true)
        return true
    }

    /// Renames a file into its shard. The shards exist from `settleLayout`; one removed by
    /// hand is made again. `durable`: the shard is synced, so the rename survives a power
    /// cut once this returns; otherwise that is left to the caller's file-system sync.
    static func place(_ source: String, at final: String, durable: Bool) throws {
        let shard = String(final[..<final.lastIndex(of: "/")!])
        if rename(source, final) != 0 {
            guard errno == ENOENT, access(source, F_OK) == 0 else { throw Posix.blobError("rename blob into place", errno) }
            try Posix.makeDirectory(shard, durable: durable)
            guard rename(source, final) == 0 else { throw Posix.blobError("rename blob into place", errno) }
        }
        if durable { try Posix.syncDirectory(shard) }
    }

    public func stageBatch(_ items: [(hash: ContentHash, bytes: ByteBuffer)]) async throws -> (staged: [StagedBlob], mismatched: [ContentHash]) {
        let staging = stagingDirectory, direct = direct
        return try await pool.runIfActive {
            var staged: [StagedBlob] = []
            var mismatched: [ContentHash] = []
            do {
                for (hash, bytes) in items {
                    guard ContentHash.of(bytes.readableBytesView) == hash else {
                        mismatched.append(hash)
                        continue
                    }
                    if bytes.readableBytes <= InlineBlobs.limit {
                        staged.append(StagedBlob(hash: hash, bytes: bytes))
                        continue
                    }
                    let name = "\(staging)/upload-\(Posix.randomToken())"
                    let fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                    guard fd >= 0 else { throw Posix.blobError("open staging file", errno) }
                    staged.append(StagedBlob(hash: hash, size: Int64(bytes.readableBytes), stagingPath: name))
                    defer { close(fd) }
                    try bytes.withUnsafeReadableBytes { try direct.write(fd, $0) }
                }
                if staged.contains(where: { $0.bytes == nil }) { try Posix.syncFileSystem(staging) }
            } catch {
                for blob in staged where blob.bytes == nil { unlink(blob.stagingPath) }
                throw error
            }
            return (staged, mismatched)
        }
    }

    public func publishBatch(_ staged: [StagedBlob]) throws -> [Bool] {
        var isNew: [Bool] = []
        var small: [(hash: ContentHash, bytes: ByteBuffer)] = []
        for blob in staged {
            if let bytes = blob.bytes {
                small.append((blob.hash, bytes))
                isNew.append(false)  // filled in below
                continue
            }
            let final = path(of: blob.hash)
            if access(final, F_OK) == 0 {
                unlink(blob.stagingPath)
                isNew.append(false)
                continue
            }
            try Self.place(blob.stagingPath, at: final, durable: false)  // made durable by the syncfs below
            isNew.append(true)
        }
        // The renames, all durable before any row references them.
        if small.count < staged.count { try Posix.syncFileSystem(blobsDirectory) }
        if !small.isEmpty {
            var written = try inline.insert(small, isFile: isFile).makeIterator()
            for (i, blob) in staged.enumerated() where blob.bytes != nil { isNew[i] = written.next()! }
        }
        return isNew
    }

    public func discard(_ staged: StagedBlob) {
        if staged.bytes == nil { unlink(staged.stagingPath) }
    }

    public func readTogether(_ spans: [BlobSpan]) async throws -> ByteBuffer {
        let total = spans.reduce(0) { $0 + Int($1.length) }
        return try await pool.runIfActive { [self] in
            var buffer = ByteBufferAllocator().buffer(capacity: total)
            for span in spans { try read(span, into: &buffer) }
            return buffer
        }
    }

    /// Appends one span's bytes to `buffer`, from the blob's file or its row. Blocking.
    func read(_ span: BlobSpan, into buffer: inout ByteBuffer) throws {
        let want = Int(span.length)
        let fd = open(path(of: span.hash), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            guard errno == ENOENT else { throw Posix.blobError("open blob", errno) }
            guard let bytes = try inline.bytes(span.hash) else { throw BlobError.notFound(span.hash) }
            guard span.offset + span.length <= Int64(bytes.count) else {
                throw BlobError.io("blob \(span.hash.hex) is shorter than its recorded size")
            }
            let start = bytes.startIndex + Int(span.offset)
            buffer.writeBytes(bytes[start..<start + want])
            return
        }
        defer { close(fd) }
        let n = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want) { ptr in
            try Posix.blob { try FileIO.readFully(fd, at: span.offset, into: UnsafeMutableRawBufferPointer(rebasing: ptr[..<want]), call: "read blob") }
        }
        guard n == want else { throw BlobError.io("blob \(span.hash.hex) is shorter than its recorded size") }
    }

    public func exists(_ hash: ContentHash) throws -> Bool {
        try isFile(hash) || inline.contains(hash)
    }

    /// A blob's size from its file's metadata or its inline row, without reading a file's
    /// bytes (what `migrate` needs before it copies one). Throws `BlobError.notFound`.
    func size(of hash: ContentHash) async throws -> Int64 {
        let path = path(of: hash)
        let inline = inline
        return try await pool.runIfActive {
            var info = stat()
            if stat(path, &info) == 0 { return Int64(info.st_size) }
            guard errno == ENOENT else { throw Posix.blobError("stat blob", errno) }
            guard let bytes = try inline.bytes(hash) else { throw BlobError.notFound(hash) }
            return Int64(bytes.count)
        }
    }

    public func verify(_ hash: ContentHash) async throws -> (size: Int64, intact: Bool) {
        let path = path(of: hash)
        let inline = inline
        return try await pool.runIfActive {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                guard errno == ENOENT else { throw Posix.blobError("open blob", errno) }
                guard let bytes = try inline.bytes(hash) else { throw BlobError.notFound(hash) }
                return (Int64(bytes.count), ContentHash.of(bytes) == hash)
            }
            defer { close(fd) }
            var hasher = StreamingHasher()
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
            defer { buffer.deallocate() }
            while true {
                let n = try Posix.blob { try FileIO.readSome(fd, into: buffer, call: "read blob") }
                if n == 0 { break }
                hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            }
            return (hasher.count, hasher.finalize() == hash)
        }
    }

    /// Trash lives in the staging directory as `gc-<sha256>`.
    func trashPath(_ hash: ContentHash) -> String { "\(stagingDirectory)/gc-\(hash.hex)" }

    public func moveToTrash(_ hashes: [ContentHash]) throws {
        var rows: [ContentHash] = []
        for hash in hashes where rename(path(of: hash), trashPath(hash)) != 0 {
            guard errno == ENOENT else { throw Posix.blobError("move blob to trash", errno) }
            rows.append(hash)
        }
        try inline.trash(rows)
    }

    public func trashContents() throws -> [ContentHash] {
        try trashedFiles() + inline.trashed()
    }

    public func storedHashes() async throws -> [ContentHash] {
        let inline = self.inline, blobsDirectory = self.blobsDirectory
        return try await pool.runIfActive {
            var hashes = try inline.hashes()
            for shard in Self.shards(of: blobsDirectory) {
                hashes += try Posix.listDirectory(shard).compactMap { $0.utf8.count == 64 ? ContentHash(hex: $0) : nil }
            }
            return hashes
        }
    }

    func trashedFiles() throws -> [ContentHash] {
        try Posix.listDirectory(stagingDirectory).compactMap { name in
            name.hasPrefix("gc-") ? ContentHash(hex: name.dropFirst(3)) : nil
        }
    }

    public func emptyTrash(isKnown: (ContentHash) throws -> Bool) throws -> Int {
        var deleted = try inline.settleTrash(isKnown: isKnown)
        for hash in try trashedFiles() {
            if try isKnown(hash) {
                let final = path(of: hash)
                try Self.place(trashPath(hash), at: final, durable: true)
            } else if unlink(trashPath(hash)) == 0 {
                deleted += 1
            }
        }
        return deleted
    }

    public func sweepStaging(olderThan age: Int64) throws -> Int {
        var removed = 0
        let cutoff = Int64(time(nil)) - age
        for name in try Posix.listDirectory(stagingDirectory) where name.hasPrefix("upload-") {
            let full = "\(stagingDirectory)/\(name)"
            let modified = (try? FileManager.default.attributesOfItem(atPath: full)[.modificationDate] as? Date) ?? nil
            if let modified, Int64(modified.timeIntervalSince1970) <= cutoff, unlink(full) == 0 {
                removed += 1
            }
        }
        return removed
    }

    public func freeBytes() throws -> Int64 {
        try Posix.freeBytes(at: blobsDirectory)
    }
}

/// One staged write. Calls are sequential (the caller awaits each), the lock only makes
/// that provable to the compiler.
final class FileBlobWriter: BlobWriter {
    private struct State {
        var fd: Int32
        var hasher = StreamingHasher()
        var size: Int64 = 0
        var pending: ByteBuffer?
        var finished = false
    }

    private let state: Mutex<State>
    let path: String
    let pool: NIOThreadPool
    let limit: Int64
    let direct: DirectWriter
    /// Writes go to disk in pieces of at least this size: fewer thread hops. Each piece is a
    /// multiple of `DirectWriter.alignment`; the rest waits for the next piece.
    static let coalesce = 512 * 1024

    init(fd: Int32, path: String, pool: NIOThreadPool, limit: Int64, direct: DirectWriter) {
        self.state = Mutex(State(fd: fd))
        self.path = path
        self.pool = pool
        self.limit = limit
        self.direct = direct
    }

    deinit {
        state.withLock { s in
            if !s.finished {
                close(s.fd)
                unlink(path)
            }
        }
    }

    func write(_ buffer: ByteBuffer) async throws {
        let toFlush: ByteBuffer? = try state.withLock { s in
            s.size += Int64(buffer.readableBytes)
            if s.size > limit { throw BlobError.tooLarge(limit: limit) }
            buffer.withUnsafeReadableBytes { s.hasher.update($0) }
            if s.pending == nil {
                s.pending = buffer
            } else {
                var pending = s.pending!
                s.pending = nil
                pending.writeImmutableBuffer(buffer)
                s.pending = pending
            }
            guard s.pending!.readableBytes >= Self.coalesce else { return nil }
            return s.pending!.readSlice(length: DirectWriter.alignedPrefix(s.pending!.readableBytes))
        }
        if let toFlush { try await flush(toFlush) }
    }

    private func flush(_ buffer: ByteBuffer) async throws {
        let fd = state.withLock { $0.fd }
        try await pool.runIfActive { [direct] in
            try buffer.withUnsafeReadableBytes { try direct.write(fd, $0) }
        }
    }

    func finish(expected: ContentHash?) async throws -> StagedBlob {
        let (pending, hasher, size, fd) = state.withLock { s in
            defer { s.pending = nil }
            return (s.pending, s.hasher, s.size, s.fd)
        }
        let actual = hasher.finalize()
        if let expected, expected != actual {
            await abort()
            throw BlobError.hashMismatch(expected: expected, actual: actual)
        }
        // Nothing is flushed before `coalesce` bytes, which is above the row limit, so a
        // blob small enough to be a row is still all in `pending`.
        if size <= InlineBlobs.limit {
            // Small enough to be a row: the bytes are all still in memory, so the staging
            // file is not needed.
            await abort()
            return StagedBlob(hash: actual, bytes: pending ?? ByteBuffer())
        }
        do {
            try await pool.runIfActive { [direct] in
                if let pending { try pending.withUnsafeReadableBytes { try direct.write(fd, $0) } }
                try Posix.blob { try FileIO.sync(fd, call: "sync staged blob") }
                close(fd)
            }
        } catch {
            await abort()
            throw error
        }
        state.withLock { $0.finished = true }
        return StagedBlob(hash: actual, size: size, stagingPath: path)
    }

    func abort() async {
        state.withLock { s in
            guard !s.finished else { return }
            s.finished = true
            close(s.fd)
            unlink(path)
        }
    }
}

/// Writes blobs to new files around the page cache (`O_DIRECT`) where the file system allows
/// it. Every staged blob is synced before it is published, so the cache would only hold bytes
/// about to be flushed anyway, and filling it is not free: on this project's benchmark VM,
/// writing 1 GiB through the cache costs 2.2–2.5 s of kernel CPU, against 0.05 s with
/// `O_DIRECT` (dd, 8 MiB blocks). `O_DIRECT` needs aligned memory, so the bytes are copied
/// through aligned buffers kept for reuse (a fresh buffer's pages would fault in on first
/// touch, the very cost this avoids). The unaligned tail of a blob, and any file system that
/// refuses `O_DIRECT` (tmpfs), use ordinary writes.
final class DirectWriter: Sendable {
    /// File offsets, lengths and buffer addresses are multiples of this, the largest
    /// logical block size in common use.
    static let alignment = 4096
    static let bufferSize = 1 << 20

    private struct Buffer: @unchecked Sendable {  // owned by one thread between take and give back
        let memory: UnsafeMutableRawBufferPointer
    }
    private let idle = Mutex<[Buffer]>([])
    /// Buffers kept between writes: one per blob-pool thread is enough.
    let keep: Int

    init(keep: Int) { self.keep = keep }

    deinit {
        idle.withLock { for b in $0 { b.memory.deallocate() } }
    }

    /// The largest prefix of `count` bytes that `O_DIRECT` can take.
    static func alignedPrefix(_ count: Int) -> Int { count & ~(alignment - 1) }

    /// Writes `bytes` at the end of `fd`, a file opened for writing whose size so far is a
    /// multiple of `alignment`. Blocking.
    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        let aligned = Self.alignedPrefix(bytes.count)
        var done = 0
        if aligned > 0, Self.setDirect(fd, true) {
            let buffer = idle.withLock { $0.popLast() } ?? Buffer(memory: .allocate(byteCount: Self.bufferSize, alignment: Self.alignment))
            defer {
                let kept = idle.withLock { list in
                    guard list.count < keep else { return false }
                    list.append(buffer)
                    return true
                }
                if !kept { buffer.memory.deallocate() }
                _ = Self.setDirect(fd, false)
            }
            while done < aligned {
                let n = min(Self.bufferSize, aligned - done)
                buffer.memory.baseAddress!.copyMemory(from: bytes.baseAddress! + done, byteCount: n)
                // Refused (EINVAL: an alignment this file system does not take) or short:
                // the rest goes the ordinary way from where the file now ends.
                let written: Int
                do {
                    written = try FileIO.writeSome(fd, UnsafeRawBufferPointer(rebasing: buffer.memory[..<n]), call: "write")
                } catch where error.errno == EINVAL {
                    break
                } catch {
                    throw Posix.blobError(error.call, error.errno)
                }
                done += written
                if written < n { break }
            }
        }
        try Posix.writeAll(fd, UnsafeRawBufferPointer(rebasing: bytes[done...]))
    }

    /// Turns `O_DIRECT` on or off; false when the file system does not support it.
    static func setDirect(_ fd: Int32, _ on: Bool) -> Bool {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0 else { return false }
        return fcntl(fd, F_SETFL, on ? flags | ferry_o_direct() : flags & ~ferry_o_direct()) == 0
    }
}
