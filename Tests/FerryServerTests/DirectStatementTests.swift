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
            for r in rows { try direct.run(r.0, r.1, r.2, r.3, r.4, r.5, r.6) }
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
            #expect(try number.int64(Int64(1)) == 1)
            #expect(sqlite3_stmt_busy(number.statement.sqliteStatement) == 0)
            #expect(try number.int64(Int64(3)) == nil)
            var text = DirectStatement(try db.cachedStatement(sql: "SELECT v FROM t WHERE k = ? ORDER BY v"))
            #expect(try text.text(Int64(1)) == "one")
            #expect(try text.text(Int64(2)) == nil)  // a NULL
            #expect(try text.text(Int64(9)) == nil)  // no row
            // A statement that answers rows is run to its end, once.
            var all = DirectStatement(try db.cachedStatement(sql: "UPDATE t SET k = k + 10 WHERE k = ? RETURNING k"))
            try all.run(Int64(1))
            #expect(try Int.fetchAll(db, sql: "SELECT k FROM t ORDER BY k") == [2, 11, 11])
        }
    }

    /// A value SQLite refuses to bind (past its length limit) fails the run with SQLite's
    /// error, nothing is written, and the statement binds afresh on the next run.
    @Test func aValueSQLiteRefusesToBindFailsTheRun() throws {
        try withDatabase("CREATE TABLE t (v BLOB)") { db in
            sqlite3_limit(db.sqliteConnection, SQLITE_LIMIT_LENGTH, 100)
            var insert = DirectStatement(try db.cachedStatement(sql: "INSERT INTO t VALUES (?)"))
            #expect {
                try insert.run(Data(count: 101))
            } throws: { error in
                (error as? DatabaseError)?.resultCode == .SQLITE_TOOBIG
            }
            #expect(throws: DatabaseError.self) { try insert.run(String(repeating: "x", count: 101)) }
            try insert.run(Data(count: 50))
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM t") == 1)
        }
    }

    /// A refused statement throws SQLite's error with its message and changes nothing; the
    /// same statement works on the next run.
    @Test func aRefusedStatementThrowsAndStaysUsable() throws {
        try withDatabase("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL CHECK (length(v) > 1))") { db in
            var insert = DirectStatement(try db.cachedStatement(sql: "INSERT INTO t VALUES (?, ?)"))
            #expect {
                try insert.run(Int64(1), "x")
            } throws: { error in
                guard let error = error as? DatabaseError else { return false }
                return error.resultCode == .SQLITE_CONSTRAINT && error.message?.contains("CHECK") == true && error.sql?.contains("INSERT INTO t") == true
            }
            #expect(throws: DatabaseError.self) { try insert.run(Int64(1), String?.none) }
            try insert.run(Int64(1), "xy")
            #expect(try String.fetchAll(db, sql: "SELECT v FROM t") == ["xy"])
        }
    }
}
