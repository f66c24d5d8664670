#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
import Foundation

/// Reads the bulk answers a client receives (commit answers, the change feed, chunk-batch
/// answers, missing-chunk answers) without Foundation's decoder, which took about a tenth of
/// the client's time in an initial sync of 20,000 small files.
///
/// It reads only the plain shape `JSONWriter` and `JSONCoding.encoder` produce. Anything
/// else (a duplicate key, a number with a fraction or an exponent, an escape it does not
/// know, bytes that are not UTF-8, a missing member) makes it give up, and
/// `JSONCoding.decode` then hands the same bytes to Foundation's decoder, whose answer
/// (a value or its error) is final. So it can only ever be faster, never more lenient; a
/// property test holds the two equal on valid and on mangled input.
public struct JSONReader {
    struct GiveUp: Error {}

    private let bytes: UnsafeRawBufferPointer
    private var at = 0
    /// Consecutive versions share their commit time: parsed once.
    private var lastDate: (String, Date)?

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    private mutating func skipSpace() {
        while at < bytes.count {
            switch bytes[at] {
            case 0x20, 0x09, 0x0A, 0x0D: at += 1
            default: return
            }
        }
    }

    private mutating func peek() throws -> UInt8 {
        skipSpace()
        guard at < bytes.count else { throw GiveUp() }
        return bytes[at]
    }

    private mutating func expect(_ byte: UInt8) throws {
        guard try peek() == byte else { throw GiveUp() }
        at += 1
    }

    private mutating func literal(_ word: StaticString) throws {
        skipSpace()
        let n = word.utf8CodeUnitCount
        guard at + n <= bytes.count else { throw GiveUp() }
        for i in 0..<n where bytes[at + i] != word.utf8Start[i] { throw GiveUp() }
        at += n
    }

    /// Whether the next value is `null` (consumed if so).
    mutating func isNull() throws -> Bool {
        guard try peek() == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    mutating func bool() throws -> Bool {
        if try peek() == UInt8(ascii: "t") {
            try literal("true")
            return true
        }
        try literal("false")
        return false
    }

    mutating func int64() throws -> Int64 {
        skipSpace()
        var negative = false
        if at < bytes.count, bytes[at] == UInt8(ascii: "-") {
            negative = true
            at += 1
        }
        let start = at
        var value: Int64 = 0
        while at < bytes.count, case let d = bytes[at], d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") {
            let digit = Int64(d - UInt8(ascii: "0"))
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = negative ? times.subtractingReportingOverflow(digit) : times.addingReportingOverflow(digit)
            guard !o1, !o2 else { throw GiveUp() }
            value = next
            at += 1
        }
        // JSON allows no leading zeros ("012" is not a number).
        guard at > start, at == start + 1 || bytes[start] != UInt8(ascii: "0") else { throw GiveUp() }
        if at < bytes.count, bytes[at] == UInt8(ascii: ".") || bytes[at] | 0x20 == UInt8(ascii: "e") { throw GiveUp() }
        return value
    }

    mutating func string() throws -> String {
        try expect(UInt8(ascii: "\""))
        let start = at
        // The common case: no escapes, so the bytes are the string.
        while at < bytes.count {
            let b = bytes[at]
            if b == UInt8(ascii: "\"") {
                defer { at += 1 }
                guard let s = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self) else { throw GiveUp() }
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            guard b >= 0x20 else { throw GiveUp() }
            at += 1
        }
        var out = Array(bytes[start..<at])
        while at < bytes.count {
            let b = bytes[at]
            at += 1
            switch b {
            case UInt8(ascii: "\""):
                guard let s = String(validating: out, as: UTF8.self) else { throw GiveUp() }
                return s
            case UInt8(ascii: "\\"):
                guard at < bytes.count else { throw GiveUp() }
                let e = bytes[at]
                at += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    // A code point, or a high surrogate followed by its low one (how encoders
                    // that write ASCII only, such as Python's, spell emoji); a lone half gives up.
                    var unit = try hex4()
                    if (0xD800...0xDBFF).contains(unit) {
                        guard at + 2 <= bytes.count, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else { throw GiveUp() }
                        at += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw GiveUp() }
                        unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(unit) else { throw GiveUp() }
                    out.append(contentsOf: String(Character(scalar)).utf8)
                default: throw GiveUp()
                }
            default:
                guard b >= 0x20 else { throw GiveUp() }
                out.append(b)
            }
        }
        throw GiveUp()
    }

    private mutating func hex4() throws -> UInt32 {
        guard at + 4 <= bytes.count else { throw GiveUp() }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[at]
            at += 1
            let n: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): n = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): n = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): n = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw GiveUp()
            }
            v = v << 4 | n
        }
        return v
    }

    mutating func hash() throws -> ContentHash {
        skipSpace()
        // The common case: 64 plain hex characters between quotes, parsed in place.
        if at + 66 <= bytes.count, bytes[at] == UInt8(ascii: "\""), bytes[at + 65] == UInt8(ascii: "\""),
           let h = ContentHash.parse(hex: UnsafeRawBufferPointer(rebasing: bytes[(at + 1)..<(at + 65)])) {
            at += 66
            return h
        }
        guard let h = ContentHash(hex: try string()) else { throw GiveUp() }
        return h
    }

    mutating func path() throws -> FerryPath {
        do { return try FerryPath(try string()) } catch { throw GiveUp() }
    }

    mutating func date() throws -> Date {
        let text = try string()
        if let (last, date) = lastDate, last == text { return date }
        guard let date = try? Date.ISO8601FormatStyle().parse(text) else { throw GiveUp() }
        lastDate = (text, date)
        return date
    }

    mutating func array<T>(_ element: (inout JSONReader) throws -> T) throws -> [T] {
        try expect(UInt8(ascii: "["))
        var out: [T] = []
        if try peek() == UInt8(ascii: "]") {
            at += 1
            return out
        }
        while true {
            out.append(try element(&self))
            if try peek() == UInt8(ascii: ",") {
                at += 1
                continue
            }
            try expect(UInt8(ascii: "]"))
            return out
        }
    }

    /// Calls `member` with each key; it must read the value or return false to give up.
    /// A key seen twice gives up (which one Foundation keeps is its business).
    mutating func object(_ member: (inout JSONReader, String) throws -> Bool) throws {
        try expect(UInt8(ascii: "{"))
        if try peek() == UInt8(ascii: "}") {
            at += 1
            return
        }
        var seen = Set<String>()
        while true {
            let key = try string()
            guard seen.insert(key).inserted else { throw GiveUp() }
            try expect(UInt8(ascii: ":"))
            guard try member(&self, key) else { throw GiveUp() }
            if try peek() == UInt8(ascii: ",") {
                at += 1
                continue
            }
            try expect(UInt8(ascii: "}"))
            return
        }
    }

    /// The whole input must be one value.
    mutating func end() throws {
        skipSpace()
        guard at == bytes.count else { throw GiveUp() }
    }
}

/// A type `JSONReader` can read. Unknown keys give up (so Foundation decides).
public protocol JSONReadable {
    static func read(from json: inout JSONReader) throws -> Self
}

extension JSONCoding {
    /// Decodes with `JSONReader` when `T` supports it and the bytes have the plain shape,
    /// and with Foundation's decoder otherwise; the result is the same either way.
    ///
    /// `foundationLimit` bounds what may go to Foundation: its decoder builds a tree of the
    /// whole document first, about 28 bytes of memory per byte of JSON (a 32 MiB commit grew
    /// the server by 900 MB), so a larger body of a `JSONReadable` type that the reader gives
    /// up on is refused with `NotPlainJSON` instead.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer, foundationLimit: Int = .max) throws -> T {
        if let readable = type as? any JSONReadable.Type {
            var reader = JSONReader(bytes)
            if let value = try? readable.read(from: &reader) as? T, (try? reader.end()) != nil { return value }
            guard bytes.count <= foundationLimit else { throw NotPlainJSON(limit: foundationLimit) }
        }
        return try decoder.decode(type, from: Data(bytes))
    }

    /// A large body that is not in the plain shape the fast reader takes.
    public struct NotPlainJSON: Error, Sendable, CustomStringConvertible {
        public let limit: Int
        public var description: String {
            "a body larger than \(limit) bytes must be plain JSON of the documented shape (no unknown or repeated members, "
                + "integers without fractions or exponents, valid UTF-8); send it like that or in smaller requests"
        }
    }
}

extension ChunkRef: JSONReadable {
    public static func read(from json: inout JSONReader) throws -> ChunkRef {
        var sha: ContentHash?, size: Int64?
        try json.object { json, key in
            switch key {
            case "sha256": sha = try json.hash()
            case "size": size = try json.int64()
            default: return false
            }
            return true
        }
        guard let sha, let size else { throw JSONReader.GiveUp() }
        return ChunkRef(sha256: sha, size: size)
    }
}

extension ErrorBody: JSONReadable {
    public static func read(from json: inout JSONReader) throws -> ErrorBody {
        var code: String?, message: String?
        try json.object { json, key in
            switch key {
            case "code": code = try json.string()
            case "message": message = try json.string()
            default: return false
            }
            return true
        }
        guard let code, let message else { throw JSONReader.GiveUp() }
        return ErrorBody(code: code, message: message)
    }
}

extension FileVersion: JSONReadable {
    public static func read(from json: inout JSONReader) throws -> FileVersion {
        var version: Int64?, path: FerryPath?, kind: EntryKind?, deleted: Bool?, size: Int64?, sha256: ContentHash?
        var mtimeNs: Int64?, mode: Int32?, chunks: [ChunkRef]?, target: String?, deviceId: String?, committedAt: Date?
        try json.object { json, key in
            switch key {
            case "version": version = try json.int64()
            case "path": path = try json.path()
            case "kind": kind = EntryKind(rawValue: try json.string())
            case "deleted": deleted = try json.bool()
            case "size": size = try json.int64()
            case "sha256": sha256 = try json.isNull() ? nil : try json.hash()
            case "mtime_ns": mtimeNs = try json.int64()
            case "mode":
                guard let m = Int32(exactly: try json.int64()) else { return false }
                mode = m
            case "chunks": chunks = try json.array { try ChunkRef.read(from: &$0) }
            case "target": target = try json.isNull() ? nil : try json.string()
            case "device_id": deviceId = try json.isNull() ? nil : try json.string()
            case "committed_at": committedAt = try json.date()
            default: return false
            }
            return true
        }
        guard let version, let path, let kind, let deleted, let size, let mtimeNs, let mode, let chunks, let committedAt else {
            throw JSONReader.GiveUp()
        }
        return FileVersion(version: version, path: path, kind: kind, deleted: deleted, size: size, sha256: sha256, mtimeNs: mtimeNs,
                           mode: mode, chunks: chunks, target: target, deviceId: deviceId, committedAt: committedAt)
    }
}

extension CommitResult: JSONReadable {
    public static func read(from json: inout JSONReader) throws -> CommitResult {
        var status: Status?, version: FileVersion?, seq: Int64?, current: FileVersion?, missing: [ContentHash]?, error: ErrorBody?
        try json.object { json, key in
            switch key {
            case "status": status = Status(rawValue: try json.string())
            case "version": version = try json.isNull() ? nil : try FileVersion.read(from: &json)
            case "seq": seq = try json.isNull() ? nil : try json.int64()
            case "current": current = try json.isNull() ? nil : try FileVersion.read(from: &json)
            case "missing": missing = try json.isNull() ? nil : try json.array { try $0.hash() }
            case "error": error = try json.isNull() ? nil : try ErrorBody.read(from: &json)
            default: return false
            }
            return true
        }
        guard let status else { throw JSONReader.GiveUp() }
        return CommitResult(status: status, version: version, seq: seq, current: current, missing: missing, error: error)
    }
}

extension CommitResponse: JSONReadable {
    public static func read(from json: inout JSONReader) throws -> CommitResponse {
        var results: [CommitResult]?, head: Int64?, committedAt: Date?, deviceId: String?
        try json.object { json, key in
            switch key {
            case "results": results = try json.array { try CommitResult.read(from: &$0) }
            case "head": head = try json.int64()
            case "committed_at": committedAt = try json.isNull() ? nil : try json.date()
            case "device_id": deviceId = try json.isNull() ? nil : try json.string()
            default: return false
            }
            return true
        }
        guard let results, let head else { throw JSONReader.GiveUp() }
        return CommitResponse(results: results, head: head, committedAt: committedAt, deviceId: deviceId)
    }
}

extension ChangesResponse: JSONReadable {
    public static func read(from json: inout JSONReader) throws -> ChangesResponse {
        var changes: [FileVersion]?, cursor: Int64?, hasMore: Bool?, head: Int64?
        try json.object { json, key in
            switch key {
            case "changes": changes = try json.array { try FileVersion.read(from: &$0) }
            case "cursor": cursor = try json.int64()
            case "has_more": hasMore = try json.bool()
            case "head": head = try json.int64()
            default: return false
            }
            return true
        }
        guard let changes, let cursor, let hasMore, let head else { throw JSONReader.GiveUp() }
        return ChangesResponse(changes: changes, cursor: cursor, hasMore: hasMore, head: head)
    }
}

extension ChunkBatchResponse: JSONReadable {
    public static func read(from json: inout JSONReader) throws -> ChunkBatchResponse {
        var stored: [ChunkRef]?, rejected: [ContentHash]?
        try json.object { json, key in
            switch key {
            case "stored": stored = try json.array { try ChunkRef.read(from: &$0) }
            case "rejected": rejected = try json.array { try $0.hash() }
            default: return false
            }
            return true
        }
        guard let stored, let rejected else { throw JSONReader.GiveUp() }
        return ChunkBatchResponse(stored: stored, rejected: rejected)
    }
}

extension MissingChunksResponse: JSONReadable {
    public static func read(from json: inout JSONReader) throws -> MissingChunksResponse {
        var missing: [ContentHash]?
        try json.object { json, key in
            guard key == "missing" else { return false }
            missing = try json.array { try $0.hash() }
            return true
        }
        guard let missing else { throw JSONReader.GiveUp() }
        return MissingChunksResponse(missing: missing)
    }
}

extension ConflictOrigin: JSONReadable {
    public static func read(from json: inout JSONReader) throws -> ConflictOrigin {
        var path: FerryPath?, theirs: Int64?
        try json.object { json, key in
            switch key {
            case "path": path = try json.path()
            case "theirs": theirs = try json.int64()
            default: return false
            }
            return true
        }
        guard let path, let theirs else { throw JSONReader.GiveUp() }
        return ConflictOrigin(path: path, theirs: theirs)
    }
}

extension CommitOperation: JSONReadable {
    public static func read(from json: inout JSONReader) throws -> CommitOperation {
        var op: Op?, path: FerryPath?, base: Int64?, kind: EntryKind?, size: Int64?, sha256: ContentHash?, mtimeNs: Int64?
        var mode: Int32?, chunks: [ChunkRef]?, target: String?, conflictOf: ConflictOrigin?
        try json.object { json, key in
            if try json.isNull() { return key != "op" && key != "path" && key != "kind" }  // null reads as absent, as decodeIfPresent does
            switch key {
            case "op":
                guard let o = Op(rawValue: try json.string()) else { return false }
                op = o
            case "path": path = try json.path()
            case "base": base = try json.int64()
            case "kind":
                guard let k = EntryKind(rawValue: try json.string()) else { return false }
                kind = k
            case "size": size = try json.int64()
            case "sha256": sha256 = try json.hash()
            case "mtime_ns": mtimeNs = try json.int64()
            case "mode":
                guard let m = Int32(exactly: try json.int64()) else { return false }
                mode = m
            case "chunks": chunks = try json.array { try ChunkRef.read(from: &$0) }
            case "target": target = try json.string()
            case "conflict_of": conflictOf = try ConflictOrigin.read(from: &json)
            default: return false
            }
            return true
        }
        guard let op, let path else { throw JSONReader.GiveUp() }
        return CommitOperation(op: op, path: path, base: base, kind: kind, size: size, sha256: sha256, mtimeNs: mtimeNs, mode: mode,
                               chunks: chunks, target: target, conflictOf: conflictOf)
    }
}

extension CommitRequest: JSONReadable {
    public static func read(from json: inout JSONReader) throws -> CommitRequest {
        var operations: [CommitOperation]?, brief: Bool?
        try json.object { json, key in
            switch key {
            case "operations": operations = try json.array { try CommitOperation.read(from: &$0) }
            case "brief": brief = try json.isNull() ? nil : try json.bool()
            default: return false
            }
            return true
        }
        guard let operations else { throw JSONReader.GiveUp() }
        return CommitRequest(operations: operations, brief: brief)
    }
}

extension MissingChunksRequest: JSONReadable {
    public static func read(from json: inout JSONReader) throws -> MissingChunksRequest {
        var chunks: [ContentHash]?
        try json.object { json, key in
            guard key == "chunks" else { return false }
            chunks = try json.array { try $0.hash() }
            return true
        }
        guard let chunks else { throw JSONReader.GiveUp() }
        return MissingChunksRequest(chunks: chunks)
    }
}
