import FerryCore
import FerrySQLite
import Foundation
import GRDB
import GRDBSQLite
import Testing

@Suite("Statements bound directly")
struct DirectStatementTests {
    /// Runs `body` in a write of a fresh in-memory database made by `schema`.
    func withDatabase(_ schema: String, _ body: (Database) throws -> Void) throws {
        try DatabaseQueue().write { db in
            try db.execute(sql: schema)
            try body(db)
        }
    }

    /// What `DirectStatement` binds is stored exactly as GRDB stores the same values: the
    /// rows written both ways compare equal, with the same storage classes.
    @Test func valuesAreStoredAsGRDBStoresThem() throws {
        try withDatabase("CREATE TABLE t (i INTEGER, b BOOLEAN, s TEXT, n TEXT, d BLOB, h BLOB, z INTEGER)") { db in
            let sql = "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)"
            var direct = DirectStatement(try db.cachedStatement(sql: sql))
            let hash = ContentHash.of(Array("x".utf8))
            let rows: [(Int64, Bool, String, String?, Data, ContentHash?, Int32)] = [
                (Int64.min, true, "", nil, Data(), hash, Int32.max),
                (42, false, "é 🌍 it's\n", "n", Data([0, 1, 2]), nil, -7),
            ]
            for r in rows {
                direct.bind(r.0)
                direct.bind(r.1)
                direct.bind(r.2)
                direct.bind(r.3)
                direct.bind(r.4)
                direct.bind(r.5)
                direct.bind(r.6)
                try direct.run()
            }
            for r in rows { try db.execute(sql: sql, arguments: [r.0, r.1, r.2, r.3, r.4, r.5?.data, r.6]) }
            let stored = try Row.fetchAll(db, sql: "SELECT *, typeof(s), typeof(n), typeof(d), typeof(h) FROM t ORDER BY rowid")
            #expect(stored.count == 4)  // each run inserted once
            #expect(stored[0] == stored[2])
            #expect(stored[1] == stored[3])
            #expect(stored[1]["s"] as String == "é 🌍 it's\n")
            #expect(stored[0]["typeof(s)"] as String == "text")
            #expect(stored[0]["typeof(d)"] as String == "blob")
            #expect(stored[0]["typeof(n)"] as String == "null")
        }
    }

    /// Reads answer the first row's first column, or nil without a row; afterwards the
    /// statement is reset (no read left open) and can be bound again.
    @Test func readsAnswerTheFirstRowAndLeaveTheStatementReset() throws {
        try withDatabase("CREATE TABLE t (k INTEGER, v TEXT); INSERT INTO t VALUES (1, 'one'), (1, 'uno'), (2, NULL)") { db in
            var number = DirectStatement(try db.cachedStatement(sql: "SELECT k FROM t WHERE k >= ? ORDER BY k"))
            number.bind(Int64(1))
            #expect(try number.int64() == 1)
            #expect(sqlite3_stmt_busy(number.statement.sqliteStatement) == 0)
            number.bind(Int64(3))
            #expect(try number.int64() == nil)
            var text = DirectStatement(try db.cachedStatement(sql: "SELECT v FROM t WHERE k = ? ORDER BY v"))
            text.bind(Int64(1))
            #expect(try text.text() == "one")
            text.bind(Int64(2))
            #expect(try text.text() == nil)  // a NULL
            text.bind(Int64(9))
            #expect(try text.text() == nil)  // no row
            // A statement that answers rows is run to its end, once.
            var all = DirectStatement(try db.cachedStatement(sql: "UPDATE t SET k = k + 10 WHERE k = ? RETURNING k"))
            all.bind(Int64(1))
            try all.run()
            #expect(try Int.fetchAll(db, sql: "SELECT k FROM t ORDER BY k") == [2, 11, 11])
        }
    }

    /// A refused statement throws SQLite's error with its message and changes nothing; the
    /// same statement works on the next run.
    @Test func aRefusedStatementThrowsAndStaysUsable() throws {
        try withDatabase("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL CHECK (length(v) > 1))") { db in
            var insert = DirectStatement(try db.cachedStatement(sql: "INSERT INTO t VALUES (?, ?)"))
            insert.bind(Int64(1))
            insert.bind("x")
            #expect {
                try insert.run()
            } throws: { error in
                guard let error = error as? DatabaseError else { return false }
                return error.resultCode == .SQLITE_CONSTRAINT && error.message?.contains("CHECK") == true && error.sql?.contains("INSERT INTO t") == true
            }
            insert.bind(Int64(1))
            insert.bindNull()
            #expect(throws: DatabaseError.self) { try insert.run() }
            insert.bind(Int64(1))
            insert.bind("xy")
            try insert.run()
            #expect(try String.fetchAll(db, sql: "SELECT v FROM t") == ["xy"])
        }
    }
}
