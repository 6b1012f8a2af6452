import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;
import java.util.UUID;

/**
 * pgJDBC through pgsplit. Each check prints one line, "PASS name" or "FAIL name: why"; the pytest
 * wrapper (test_jdbc.py) turns each line into a test. Where a statement ran is read from the backend
 * (inet_server_port(), pg_is_in_recovery()) and from a direct connection to the primary.
 *
 * usage: java CompatJdbc HOST PROXY_PORT PRIMARY_PORT REPLICA_PORT USER PASSWORD
 */
public class CompatJdbc {
    static String host;
    static int proxyPort, primaryPort, replicaPort;
    static String user, password;

    interface Check { void run() throws Exception; }

    static int failures = 0;

    static void check(String name, Check body) {
        try {
            body.run();
            System.out.println("PASS " + name);
        } catch (Throwable t) {
            failures++;
            String why = String.valueOf(t).replace('\n', ' ');
            if (t instanceof SQLException) why += " [SQLState " + ((SQLException) t).getSQLState() + "]";
            System.out.println("FAIL " + name + ": " + why);
        }
        System.out.flush();
    }

    static void expect(boolean cond, String what) {
        if (!cond) throw new AssertionError(what);
    }

    static Connection proxy(String extra) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", user);
        p.setProperty("password", password);
        p.setProperty("sslmode", "disable");
        p.setProperty("connectTimeout", "10");
        p.setProperty("ApplicationName", "compat-jdbc");
        String url = "jdbc:postgresql://" + host + ":" + proxyPort + "/app" + (extra.isEmpty() ? "" : "?" + extra);
        return DriverManager.getConnection(url, p);
    }

    static Connection primary() throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", "app_rw");
        p.setProperty("password", "app_rw");
        p.setProperty("sslmode", "disable");
        return DriverManager.getConnection("jdbc:postgresql://" + host + ":" + primaryPort + "/app", p);
    }

    static long primaryLong(String sql) throws SQLException {
        try (Connection c = primary(); Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    static void waitReplay() throws Exception {
        String lsn;
        try (Connection c = primary(); Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT pg_current_wal_insert_lsn()::text")) {
            rs.next();
            lsn = rs.getString(1);
        }
        Properties p = new Properties();
        p.setProperty("user", "app_ro");
        p.setProperty("password", "app_ro");
        p.setProperty("sslmode", "disable");
        try (Connection r = DriverManager.getConnection("jdbc:postgresql://" + host + ":" + replicaPort + "/app", p);
             PreparedStatement ps = r.prepareStatement("SELECT pg_last_wal_replay_lsn() >= ?::pg_lsn")) {
            ps.setString(1, lsn);
            for (int i = 0; i < 3000; i++) {
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    if (rs.getBoolean(1)) return;
                }
                Thread.sleep(20);
            }
        }
        throw new AssertionError("replica never replayed " + lsn);
    }

    static String newTable(String prefix) throws SQLException {
        String t = prefix + "_" + UUID.randomUUID().toString().replace("-", "").substring(0, 10);
        try (Connection c = primary(); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE " + t + " (id int primary key, v text)");
        }
        return t;
    }

    static void dropTable(String t) {
        try (Connection c = primary(); Statement s = c.createStatement()) {
            s.execute("DROP TABLE IF EXISTS " + t);
        } catch (SQLException e) {
            System.out.println("# cannot drop " + t + ": " + e);
        }
    }

    public static void main(String[] args) throws Exception {
        host = args[0];
        proxyPort = Integer.parseInt(args[1]);
        primaryPort = Integer.parseInt(args[2]);
        replicaPort = Integer.parseInt(args[3]);
        user = args[4];
        password = args[5];

        check("connect_and_read_on_replica", () -> {
            try (Connection c = proxy(""); Statement s = c.createStatement();
                 ResultSet rs = s.executeQuery("SELECT inet_server_port(), pg_is_in_recovery()")) {
                rs.next();
                expect(rs.getInt(1) == replicaPort, "port " + rs.getInt(1));
                expect(rs.getBoolean(2), "not in recovery");
            }
        });

        // pgJDBC asks `show transaction_read_only` for targetServerType=primary: a pgsplit session can
        // write, so it must pass, and reads must still go to the replica.
        check("target_server_type_primary_connects", () -> {
            try (Connection c = proxy("targetServerType=primary"); Statement s = c.createStatement()) {
                try (ResultSet rs = s.executeQuery("SHOW transaction_read_only")) {
                    rs.next();
                    expect(rs.getString(1).equals("off"), "transaction_read_only " + rs.getString(1));
                }
                c.setAutoCommit(false);
                c.setReadOnly(true);
                try (ResultSet rs = s.executeQuery("SELECT inet_server_port(), current_setting('transaction_read_only')")) {
                    rs.next();
                    expect(rs.getInt(1) == replicaPort, "read-only transaction port " + rs.getInt(1));
                    expect(rs.getString(2).equals("on"), "read-only transaction_read_only " + rs.getString(2));
                }
                c.commit();
            }
        });

        check("autocommit_off_transaction_on_primary", () -> {
            String t = newTable("compat_jdbc_tx");
            try (Connection c = proxy("")) {
                c.setAutoCommit(false);
                try (Statement s = c.createStatement()) {
                    s.executeUpdate("INSERT INTO " + t + " VALUES (1, 'a')");
                    try (ResultSet rs = s.executeQuery("SELECT inet_server_port(), count(*) FROM " + t)) {
                        rs.next();
                        expect(rs.getInt(1) == primaryPort, "in-transaction port " + rs.getInt(1));
                        expect(rs.getLong(2) == 1, "own insert not visible");
                    }
                    expect(primaryLong("SELECT count(*) FROM " + t) == 0, "visible before commit");
                    c.commit();
                    expect(primaryLong("SELECT count(*) FROM " + t) == 1, "not committed on the primary");
                    s.executeUpdate("INSERT INTO " + t + " VALUES (2, 'b')");
                    c.rollback();
                    expect(primaryLong("SELECT count(*) FROM " + t) == 1, "rollback did not roll back");
                }
            } finally {
                dropTable(t);
            }
        });

        check("readonly_autocommit_off_reads_on_replica", () -> {
            try (Connection c = proxy("")) {
                c.setAutoCommit(false);
                c.setReadOnly(true);
                for (int i = 0; i < 3; i++) {
                    try (Statement s = c.createStatement();
                         ResultSet rs = s.executeQuery("SELECT inet_server_port(), pg_is_in_recovery(),"
                                                       + " current_setting('transaction_read_only')")) {
                        rs.next();
                        expect(rs.getInt(1) == replicaPort, "port " + rs.getInt(1));
                        expect(rs.getBoolean(2), "not in recovery");
                        expect(rs.getString(3).equals("on"), "transaction_read_only " + rs.getString(3));
                    }
                    c.commit();
                }
                c.setReadOnly(false);
                try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT inet_server_port()")) {
                    rs.next();
                    expect(rs.getInt(1) == primaryPort, "read-write transaction port " + rs.getInt(1));
                }
                c.commit();
            }
        });

        check("server_prepared_statement_past_threshold", () -> {
            String t = newTable("compat_jdbc_ps");
            try (Connection c = proxy("prepareThreshold=5")) {
                try (PreparedStatement ps = c.prepareStatement("SELECT ?::int + 1, inet_server_port()")) {
                    for (int i = 0; i < 10; i++) {
                        ps.setInt(1, i);
                        try (ResultSet rs = ps.executeQuery()) {
                            rs.next();
                            expect(rs.getInt(1) == i + 1, "result " + rs.getInt(1) + " at " + i);
                            expect(rs.getInt(2) == replicaPort, "read port " + rs.getInt(2) + " at " + i);
                        }
                    }
                    expect(ps.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare(),
                           "driver did not switch to a server-prepared statement");
                }
                try (PreparedStatement ps = c.prepareStatement(
                        "INSERT INTO " + t + " VALUES (?, ?) RETURNING inet_server_port()")) {
                    for (int i = 0; i < 10; i++) {
                        ps.setInt(1, i);
                        ps.setString(2, "v" + i);
                        try (ResultSet rs = ps.executeQuery()) {
                            rs.next();
                            expect(rs.getInt(1) == primaryPort, "write port " + rs.getInt(1) + " at " + i);
                        }
                    }
                }
                // The driver's named statements (S_n) exist on the server that ran the read.
                try (Statement s = c.createStatement();
                     ResultSet rs = s.executeQuery("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'S\\_%'")) {
                    rs.next();
                    expect(rs.getLong(1) >= 1, "no S_n statement prepared on main");
                }
                expect(primaryLong("SELECT count(*) FROM " + t) == 10, "rows on primary");
            } finally {
                dropTable(t);
            }
        });

        check("batch_execute", () -> {
            String t = newTable("compat_jdbc_batch");
            try (Connection c = proxy("")) {
                try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + t + " VALUES (?, ?)")) {
                    for (int i = 1; i <= 100; i++) {
                        ps.setInt(1, i);
                        ps.setString(2, "b" + i);
                        ps.addBatch();
                    }
                    int[] counts = ps.executeBatch();
                    expect(counts.length == 100, "batch answered " + counts.length + " counts");
                    for (int n : counts) expect(n == 1 || n == Statement.SUCCESS_NO_INFO, "count " + n);
                }
                expect(primaryLong("SELECT count(*) FROM " + t) == 100, "autocommit batch rows on primary");
                c.setAutoCommit(false);
                try (Statement s = c.createStatement()) {
                    for (int i = 101; i <= 150; i++) s.addBatch("INSERT INTO " + t + " VALUES (" + i + ", 's')");
                    s.addBatch("UPDATE " + t + " SET v = 'u' WHERE id <= 10");
                    int[] counts = s.executeBatch();
                    expect(counts.length == 51 && counts[50] == 10, "statement batch counts");
                }
                c.commit();
                expect(primaryLong("SELECT count(*) FROM " + t) == 150, "transaction batch rows on primary");
                expect(primaryLong("SELECT count(*) FROM " + t + " WHERE v = 'u'") == 10, "update in batch");
            } finally {
                dropTable(t);
            }
        });

        check("query_timeout_cancels_and_connection_works", () -> {
            try (Connection c = proxy("")) {
                try (Statement s = c.createStatement()) {
                    s.setQueryTimeout(1);
                    try {
                        s.executeQuery("SELECT pg_sleep(5)");
                        throw new AssertionError("pg_sleep(5) was not cancelled");
                    } catch (SQLException e) {
                        expect("57014".equals(e.getSQLState()), "SQLState " + e.getSQLState() + ": " + e.getMessage());
                    }
                }
                try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 41 + 1")) {
                    rs.next();
                    expect(rs.getInt(1) == 42, "after cancel");
                }
                c.setAutoCommit(false);
                try (Statement s = c.createStatement()) {
                    s.setQueryTimeout(1);
                    try {
                        s.executeQuery("SELECT pg_sleep(5)");
                        throw new AssertionError("pg_sleep(5) in a transaction was not cancelled");
                    } catch (SQLException e) {
                        expect("57014".equals(e.getSQLState()), "in transaction: SQLState " + e.getSQLState());
                    }
                }
                c.rollback();
                try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 7")) {
                    rs.next();
                    expect(rs.getInt(1) == 7, "after cancel in a transaction");
                }
                c.commit();
            }
        });

        check("fetch_size_cursor_autocommit_off", () -> {
            String t = newTable("compat_jdbc_fetch");
            try {
                try (Connection c = primary(); Statement s = c.createStatement()) {
                    s.executeUpdate("INSERT INTO " + t + " SELECT g, 'f' || g FROM generate_series(1, 1000) g");
                }
                waitReplay();
                try (Connection c = proxy("")) {
                    c.setAutoCommit(false);
                    try (Statement s = c.createStatement()) {
                        s.setFetchSize(10);
                        int n = 0;
                        try (ResultSet rs = s.executeQuery("SELECT id, inet_server_port() FROM " + t + " ORDER BY id")) {
                            while (rs.next()) {
                                n++;
                                expect(rs.getInt(1) == n, "row " + n + " has id " + rs.getInt(1));
                                expect(rs.getInt(2) == primaryPort, "read-write transaction port " + rs.getInt(2));
                            }
                        }
                        expect(n == 1000, "rows " + n);
                    }
                    c.commit();
                    c.setReadOnly(true);
                    try (Statement s = c.createStatement()) {
                        s.setFetchSize(10);
                        int n = 0;
                        try (ResultSet rs = s.executeQuery("SELECT id, inet_server_port() FROM " + t + " ORDER BY id")) {
                            while (rs.next()) {
                                n++;
                                expect(rs.getInt(2) == replicaPort, "read-only transaction port " + rs.getInt(2));
                            }
                        }
                        expect(n == 1000, "read-only rows " + n);
                    }
                    c.commit();
                }
            } finally {
                dropTable(t);
            }
        });

        // A server-prepared read, described on the replica, then run in a transaction (on the primary)
        // after its table changed: PostgreSQL answers 0A000 there, and pgJDBC prepares it again.
        // pgsplit prepares a fresh copy on the primary, which must not be used: pgJDBC cached an int4
        // and would decode the new int8 as one.
        check("cached_statement_after_alter_table", () -> {
            String t = newTable("compat_jdbc_alter");
            try {
                try (Connection c = primary(); Statement s = c.createStatement()) {
                    s.executeUpdate("INSERT INTO " + t + " VALUES (5, 'x')");
                    s.execute("GRANT SELECT ON " + t + " TO app_ro");
                }
                waitReplay();
                try (Connection c = proxy("prepareThreshold=1");
                     PreparedStatement r = c.prepareStatement("SELECT id FROM " + t)) {
                    for (int i = 0; i < 3; i++) {
                        try (ResultSet rs = r.executeQuery()) {
                            rs.next();
                            expect(rs.getLong(1) == 5, "value " + rs.getLong(1));
                        }
                    }
                    try (Connection p = primary(); Statement s = p.createStatement()) {
                        s.execute("ALTER TABLE " + t + " ALTER COLUMN id TYPE bigint USING 12345678912");
                    }
                    c.setAutoCommit(false);
                    try (ResultSet rs = r.executeQuery()) {
                        rs.next();
                        throw new AssertionError("ran with the cached columns: value " + rs.getLong(1));
                    } catch (SQLException e) {
                        expect("0A000".equals(e.getSQLState()), "error " + e + " [" + e.getSQLState() + "]");
                    }
                    c.rollback();
                    try (ResultSet rs = r.executeQuery()) {
                        rs.next();
                        expect(rs.getLong(1) == 12345678912L, "value after preparing again " + rs.getLong(1));
                        expect(rs.getMetaData().getColumnTypeName(1).equals("int8"),
                               "type " + rs.getMetaData().getColumnTypeName(1));
                    }
                    c.commit();
                }
            } finally {
                dropTable(t);
            }
        });

        System.out.println("DONE " + failures + " failed");
    }
}
