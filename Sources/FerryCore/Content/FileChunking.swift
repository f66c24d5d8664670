import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension ContentChunker {
    /// Chunks and hashes a whole file in one sequential read with bounded memory (three
    /// buffers of `bufferSize`). Every byte needs two SHA-256 passes (its chunk's and the
    /// whole file's), so the whole-file hash runs on a second core while this one chunks,
    /// and the next block is read meanwhile. Blocking: call it from a thread pool, never an
    /// event loop.
    ///
    /// `onChunk` is called with each chunk and its offset as soon as it is cut, so a caller
    /// can start uploading a large file before it is fully hashed. `content` is given the
    /// bytes of a file smaller than `bufferSize`, which is read in one piece, so a caller can
    /// send them without reading the file again.
    public static func manifest(
        ofFileAt path: String,
        parameters: ChunkerParameters = .v1,
        bufferSize: Int = 1 << 20,
        onChunk: ((ChunkRef, Int64) -> Void)? = nil,
        content: ((ArraySlice<UInt8>) -> Void)? = nil
    ) throws -> ContentManifest {
        let fd = try FileIO.open(path, O_RDONLY, call: "open")
        defer { close(fd) }
        return try manifest(ofFileDescriptor: fd, parameters: parameters, bufferSize: bufferSize, onChunk: onChunk, content: content)
    }

    /// `manifest(ofFileAt:)` of a file just opened (read from its start), so the caller
    /// chooses how it is opened and can check the same file before and after. The caller
    /// keeps and closes `fd`.
    public static func manifest(
        ofFileDescriptor fd: Int32,
        parameters: ChunkerParameters = .v1,
        bufferSize: Int = 1 << 20,
        onChunk: ((ChunkRef, Int64) -> Void)? = nil,
        content: ((ArraySlice<UInt8>) -> Void)? = nil
    ) throws -> ContentManifest {
        if let (small, bytes) = try smallFileManifest(fd: fd, parameters: parameters, bufferSize: bufferSize) {
            if let chunk = small.chunks.first { onChunk?(chunk, 0) }
            content?(bytes)
            return small
        }
        // Each task owns one of these for the length of a block; the locks are never contended.
        let fileHasher = Mutex(StreamingHasher())
        let chunker = Mutex(ContentChunker(parameters: parameters, hashesWholeContent: false))
        let reader = Mutex(ReadAhead(buffer: [UInt8](repeating: 0, count: bufferSize)))

        var block = [UInt8](repeating: 0, count: bufferSize)
        var filled = try block.withUnsafeMutableBytes { try FileIO.readFully(fd, into: $0, call: "read") }
        var reported = 0
        var offset: Int64 = 0
        func report(_ chunks: ArraySlice<ChunkRef>) {
            for c in chunks {
                onChunk?(c, offset)
                offset += c.size
            }
            reported += chunks.count
        }
        while filled > 0 {
            process(block, count: filled, fd: fd, fileHasher: fileHasher, chunker: chunker, reader: reader)
            if onChunk != nil { report(chunker.withLock { $0.chunks[reported...] }) }
            filled = try reader.withLock { next in
                if let error = next.error { throw error }
                swap(&next.buffer, &block)
                return next.filled
            }
        }
        let chunks = chunker.withLock { $0.finish() }
        if onChunk != nil { report(chunks.chunks[reported...]) }
        return ContentManifest(size: chunks.size, sha256: fileHasher.withLock { $0.finalize() }, chunks: chunks.chunks)
    }

    /// A file smaller than one block is read in one call into a buffer of its size and
    /// hashed on this thread: for the thousands of small files of a source tree, two 1 MiB
    /// zeroed buffers and a three-way fork per file cost more than the hashing. Below the
    /// chunker's minimum the file is one chunk, whose hash is the file's, so it is hashed
    /// once. Nil when the file is large, or grew while it was read (the caller's streaming
    /// path reads it again from the start).
    private static func smallFileManifest(fd: Int32, parameters: ChunkerParameters, bufferSize: Int) throws -> (ContentManifest, ArraySlice<UInt8>)? {
        var info = Glibc.stat()
        guard fstat(fd, &info) == 0, info.st_size < bufferSize else { return nil }
        let expected = Int(info.st_size)
        var bytes = [UInt8](repeating: 0, count: expected + 1)
        let n = try bytes.withUnsafeMutableBytes { try FileIO.readFully(fd, into: $0, call: "read") }
        guard n <= expected else {
            guard lseek(fd, 0, SEEK_SET) == 0 else { throw SystemCallError("lseek", errno: errno) }
            return nil
        }
        if n < parameters.minSize {
            let hash = ContentHash.of(bytes[..<n])
            return (ContentManifest(size: Int64(n), sha256: hash, chunks: n == 0 ? [] : [ChunkRef(sha256: hash, size: Int64(n))]), bytes[..<n])
        }
        var chunker = ContentChunker(parameters: parameters)
        bytes.withUnsafeBytes { chunker.update(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
        return (chunker.finish(), bytes[..<n])
    }

    /// The next block, read while the current one is hashed.
    private struct ReadAhead {
        var buffer: [UInt8]
        var filled = 0
        var error: (any Error)?
    }

    /// Hashes the whole-file SHA-256 of `block`, chunks it, and reads the next block, as
    /// three concurrent tasks. `block` shares storage with the caller's array and is
    /// released before the caller reuses that array.
    private static func process(
        _ block: [UInt8], count: Int, fd: Int32,
        fileHasher: borrowing Mutex<StreamingHasher>, chunker: borrowing Mutex<ContentChunker>, reader: borrowing Mutex<ReadAhead>
    ) {
        DispatchQueue.concurrentPerform(iterations: 3) { task in
            switch task {
            case 0: block.withUnsafeBytes { bytes in fileHasher.withLock { $0.update(UnsafeRawBufferPointer(rebasing: bytes[..<count])) } }
            case 1: block.withUnsafeBytes { bytes in chunker.withLock { $0.update(UnsafeRawBufferPointer(rebasing: bytes[..<count])) } }
            default:
                reader.withLock { next in
                    do { next.filled = try next.buffer.withUnsafeMutableBytes { try FileIO.readFully(fd, into: $0, call: "read") } } catch { next.error = error }
                }
            }
        }
    }
}
