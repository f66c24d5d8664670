import FerryCore
import Foundation
import GRDB
import GRDBSQLite

/// A statement GRDB prepared (and caches), bound and stepped through SQLite's C API: for
/// the statements run once per chunk or per commit operation. GRDB's own path turns each
/// argument into a `DatabaseValue`, gathers them in arrays and checks them against the
/// statement on every run; for an initial sync of 20,000 small files that work around
/// SQLite was about a quarter of the server's CPU (docs/benchmarks.md, ninth round).
///
/// Each run takes all of the statement's values, in order (`try insert.run(id, name)`), so
/// none can be left over from the run before; the statement is reset after it, so it holds
/// no read cursor open between runs. Only for plain statements (no `BEGIN`, `COMMIT` or
/// schema changes) inside a database access GRDB opened. GRDB's transaction observers do
/// not see them; neither side registers any.
public struct DirectStatement {
    public let statement: Statement
    private var bound: Int32 = 0
    /// The first binding SQLite refused (too big, out of memory): reported by the run.
    private var bindFailure: Int32 = SQLITE_OK

    public init(_ statement: Statement) { self.statement = statement }

    /// Runs the statement to its end with `values`.
    public mutating func run<each V: DirectBindable>(_ values: repeat each V) throws {
        repeat (each values).bind(to: &self)
        try step { handle, row in
            guard row else { return }  // stepping again after the end would run it again
            while true {
                let code = sqlite3_step(handle)
                if code == SQLITE_DONE { return }
                if code != SQLITE_ROW { throw Self.failure(code, handle) }
            }
        }
    }

    /// With `values`, the first row's first column as an integer (a NULL reads as 0), or
    /// nil without a row.
    public mutating func int64<each V: DirectBindable>(_ values: repeat each V) throws -> Int64? {
        repeat (each values).bind(to: &self)
        return try step { handle, row in row ? sqlite3_column_int64(handle, 0) : nil }
    }

    /// With `values`, the first row's first column as text, or nil without a row (or for a NULL).
    public mutating func text<each V: DirectBindable>(_ values: repeat each V) throws -> String? {
        repeat (each values).bind(to: &self)
        return try step { handle, row in row ? sqlite3_column_text(handle, 0).map { String(cString: $0) } : nil }
    }

    // MARK: binding, one value after the other

    /// SQLite copies the bytes before the call returns.
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    fileprivate mutating func next(_ bind: (SQLiteStatement, Int32) -> Int32) {
        bound += 1
        let code = bind(statement.sqliteStatement, bound)
        if code != SQLITE_OK, bindFailure == SQLITE_OK { bindFailure = code }
    }

    fileprivate mutating func bind(_ text: String) {
        var text = text
        next { statement, index in
            text.withUTF8 { utf8 in
                // A null pointer would bind NULL, not the empty string.
                guard let base = utf8.baseAddress, !utf8.isEmpty else { return sqlite3_bind_text(statement, index, "", 0, Self.transient) }
                return sqlite3_bind_text64(statement, index, base, sqlite3_uint64(utf8.count), Self.transient, UInt8(SQLITE_UTF8))
            }
        }
    }

    fileprivate mutating func bind(bytes: UnsafeRawBufferPointer) {
        next { statement, index in
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return sqlite3_bind_zeroblob(statement, index, 0) }
            // The 64-bit call: a value past SQLite's limit is its SQLITE_TOOBIG, not a trap here.
            return sqlite3_bind_blob64(statement, index, base, sqlite3_uint64(bytes.count), Self.transient)
        }
    }

    /// Checks the bindings, steps once (`body` gets whether a row came) and resets.
    private mutating func step<T>(_ body: (SQLiteStatement, Bool) throws -> T) throws -> T {
        let handle = statement.sqliteStatement
        defer {
            sqlite3_reset(handle)
            bound = 0
            bindFailure = SQLITE_OK
        }
        precondition(bound == sqlite3_bind_parameter_count(handle), "\(statement.sql) takes \(sqlite3_bind_parameter_count(handle)) values, \(bound) bound")
        if bindFailure != SQLITE_OK { throw Self.failure(bindFailure, handle) }
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW: return try body(handle, true)
        case SQLITE_DONE: return try body(handle, false)
        default: throw Self.failure(code, handle)
        }
    }

    private static func failure(_ code: Int32, _ handle: SQLiteStatement) -> DatabaseError {
        let sql = sqlite3_sql(handle).map { String(cString: $0) }
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(sqlite3_db_handle(handle))), sql: sql)
    }
}

/// A value `DirectStatement` binds as it is, stored as GRDB stores the same type.
public protocol DirectBindable {
    func bind(to statement: inout DirectStatement)
}

extension Int64: DirectBindable {
    public func bind(to statement: inout DirectStatement) { statement.next { sqlite3_bind_int64($0, $1, self) } }
}

extension Int32: DirectBindable {
    public func bind(to statement: inout DirectStatement) { Int64(self).bind(to: &statement) }
}

extension Bool: DirectBindable {
    public func bind(to statement: inout DirectStatement) { Int64(self ? 1 : 0).bind(to: &statement) }
}

extension Double: DirectBindable {
    public func bind(to statement: inout DirectStatement) { statement.next { sqlite3_bind_double($0, $1, self) } }
}

extension String: DirectBindable {
    public func bind(to statement: inout DirectStatement) { statement.bind(self) }
}

extension UnsafeRawBufferPointer: DirectBindable {
    public func bind(to statement: inout DirectStatement) { statement.bind(bytes: self) }
}

extension Data: DirectBindable {
    public func bind(to statement: inout DirectStatement) { withUnsafeBytes { statement.bind(bytes: $0) } }
}

extension ContentHash: DirectBindable {
    public func bind(to statement: inout DirectStatement) { withUnsafeBytes { statement.bind(bytes: $0) } }
}

extension Optional: DirectBindable where Wrapped: DirectBindable {
    public func bind(to statement: inout DirectStatement) {
        if let self { self.bind(to: &statement) } else { statement.next { sqlite3_bind_null($0, $1) } }
    }
}
