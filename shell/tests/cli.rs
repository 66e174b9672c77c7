//! The shell run non-interactively (`-c`, `-f`, a script on stdin) against real 3-node
//! clusters: every output mode, the dot commands, errors and exit status, and a leader
//! that changes or dies between two statements of a script.

mod support;

use std::fs;

use dqlite_tests::harness;
use support::{cluster, run, servers, shell, sql_ok, Piped};

const SETUP: &str = "CREATE TABLE t (i INTEGER, s TEXT, b BLOB, f REAL); \
                     INSERT INTO t VALUES (1, NULL, x'0a0b', 1.5), (2, '', x'00', -20.0), (3, 'a,\"b\"', NULL, 0.25)";
const QUERY: &str = "SELECT i, s, b, f FROM t ORDER BY i";

#[test]
fn every_mode_and_every_kind_of_input() {
    let (cluster, _) = cluster();
    let s = servers(&cluster);
    sql_ok(&s, &[], SETUP);

    let table = "\
+---+-------+---------+-------+
| i | s     | b       | f     |
+---+-------+---------+-------+
| 1 | NULL  | x'0a0b' |   1.5 |
| 2 |       | x'00'   | -20.0 |
| 3 | a,\"b\" | NULL    |  0.25 |
+---+-------+---------+-------+
";
    assert_eq!(sql_ok(&s, &["--mode", "table"], QUERY), table);
    let csv = "i,s,b,f\n1,,x'0a0b',1.5\n2,\"\",x'00',-20.0\n3,\"a,\"\"b\"\"\",,0.25\n";
    assert_eq!(sql_ok(&s, &["--mode", "csv"], QUERY), csv);
    let csv_bare = csv.split_once('\n').unwrap().1;
    assert_eq!(
        sql_ok(&s, &["--mode", "csv", "--headers", "off"], QUERY),
        csv_bare
    );
    let json = "[\n{\"i\":1,\"s\":null,\"b\":\"x'0a0b'\",\"f\":1.5},\n\
                {\"i\":2,\"s\":\"\",\"b\":\"x'00'\",\"f\":-20.0},\n\
                {\"i\":3,\"s\":\"a,\\\"b\\\"\",\"b\":null,\"f\":0.25}\n]\n";
    assert_eq!(sql_ok(&s, &["--mode", "json"], QUERY), json);
    let line = "i = 1\ns = NULL\nb = x'0a0b'\nf = 1.5\n\n\
                i = 2\ns = \nb = x'00'\nf = -20.0\n\n\
                i = 3\ns = a,\"b\"\nb = NULL\nf = 0.25\n";
    assert_eq!(sql_ok(&s, &["--mode", "line"], QUERY), line);
    // Not a terminal: go-dqlite's tab-separated form, without headers unless asked.
    let tabs = "1\tNULL\tx'0a0b'\t1.5\n2\t\tx'00'\t-20.0\n3\ta,\"b\"\tNULL\t0.25\n";
    assert_eq!(sql_ok(&s, &[], QUERY), tabs);
    assert_eq!(
        sql_ok(&s, &["--headers"], QUERY),
        format!("i\ts\tb\tf\n{tabs}")
    );
    assert_eq!(
        sql_ok(&s, &["--mode", "json"], "SELECT * FROM t WHERE 0"),
        "[]\n"
    );

    // A script: dot commands between statements, a statement over several lines, `;` in
    // strings and comments, several statements on a line, a last statement without `;`.
    let script = "\
.mode csv
-- a comment; not a statement
SELECT 'x;y' AS a,
       /* ; */ 2 AS b;
.headers off
VALUES (1); VALUES (2)
;
.mode json
SELECT count(*) AS n FROM t
";
    let want = "a,b\nx;y,2\n1\n2\n[\n{\"n\":3}\n]\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("script.sql");
    fs::write(&file, script).unwrap();
    let out = run(shell(&s).arg("-f").arg(&file), "");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), want, "-f");
    let out = run(&mut shell(&s), script);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), want, "stdin");
    assert_eq!(sql_ok(&s, &[], script), want, "-c");

    // Writes through execute, reads through queries, in one -c.
    let out = sql_ok(&s, &[], "INSERT INTO t (i) VALUES (4); UPDATE t SET s = 'four' WHERE i = 4; SELECT s FROM t WHERE i = 4");
    assert_eq!(out, "four\n");

    // Statements that start like queries but return no rows.
    let out = sql_ok(
        &s,
        &[],
        "WITH n(v) AS (VALUES (5)) INSERT INTO t (i) SELECT v FROM n; \
         PRAGMA user_version = 3; PRAGMA user_version; SELECT count(*) FROM t",
    );
    assert_eq!(out, "3\n5\n");

    // The positional argument names the database.
    sql_ok(&s, &["other"], "CREATE TABLE elsewhere (x)");
    assert_eq!(sql_ok(&s, &["other"], ".tables"), "elsewhere\n");
    assert_eq!(sql_ok(&s, &[], ".tables"), "t\n");
}

#[test]
fn the_first_error_stops_a_script_with_a_message_and_a_failure_status() {
    let (cluster, _) = cluster();
    let s = servers(&cluster);
    for (how, out) in [
        (
            "-c",
            run(
                shell(&s).args(["-c", "SELECT 1; SELECT * FROM nope; SELECT 2"]),
                "",
            ),
        ),
        (
            "stdin",
            run(
                &mut shell(&s),
                "SELECT 1;\nSELECT * FROM nope;\nSELECT 2;\n",
            ),
        ),
    ] {
        assert!(!out.status.success(), "{how}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n", "{how}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("no such table: nope"), "{how}: {stderr}");
    }
    // .timer on: the elapsed time after each statement.
    let out = sql_ok(&s, &[], ".timer on\nSELECT 1;\n.timer off\nSELECT 2;");
    assert!(
        out.starts_with("1\nRun time: ") && out.ends_with(" s\n2\n"),
        "{out}"
    );
    let out = run(shell(&s).args(["-c", ".frobnicate"]), "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown command .frobnicate"));
    let out = run(
        shell(&s).args([
            "-c",
            "CREATE TABLE u (x); INSERT INTO u VALUES (1) RETURNING x",
        ]),
        "",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("RETURNING"),
        "{out:?}"
    );
    // Bad arguments and unreadable files.
    let out = run(shell(&s).args(["-f", "/nonexistent/script.sql"]), "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/script.sql"));
    let out = run(
        shell(&s).args([
            "--cert",
            "/nonexistent/c.pem",
            "--key",
            "/nonexistent/k.pem",
            "-c",
            "SELECT 1",
        ]),
        "",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/c.pem"));
    // Leadership moves while a transaction is open: the statement is not sent again on
    // the new leader, and the message says the transaction is gone.
    let mut sh = Piped::start(&mut shell(&s));
    sh.send("CREATE TABLE tx (x); BEGIN; INSERT INTO tx VALUES (1);");
    sh.send("SELECT count(*) FROM tx;");
    assert_eq!(sh.stdout_line(), "1");
    let leader = cluster.leader().expect("a leader");
    let new_leader = cluster
        .transfer_leadership(leader)
        .expect("transfer leadership");
    sh.send("INSERT INTO tx VALUES (2);");
    let message = sh.stderr_line();
    assert!(
        message.contains("the open transaction is lost"),
        "{message}"
    );
    assert!(
        message.contains(&format!("the leader is at {new_leader}")),
        "{message}"
    );
    assert!(!sh.finish().success());
    assert_eq!(sql_ok(&s, &[], "SELECT count(*) FROM tx"), "0\n");

    // No node answers: a bounded failure that says so.
    let dead = harness::reserve_loopback_addr().to_string();
    let out = run(shell(&dead).args(["--timeout", "3", "-c", "SELECT 1"]), "");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no leader found"),
        "{out:?}"
    );
}

#[test]
fn cluster_commands() {
    let (cluster, leader) = cluster();
    let s = servers(&cluster);
    let address = |i: usize| cluster.db_address(i).to_string();

    // .leader and .cluster, in tabs and json modes.
    let out = sql_ok(&s, &[], ".leader");
    assert!(out.ends_with(&format!("\t{}\n", address(leader))), "{out}");
    let out = sql_ok(&s, &[], ".cluster");
    let mut members: Vec<(String, String)> = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "{l}");
            assert!(f[0].parse::<u64>().is_ok(), "{l}");
            (f[1].to_owned(), f[2].to_owned())
        })
        .collect();
    members.sort();
    let mut want: Vec<(String, String)> = (0..3).map(|i| (address(i), "voter".into())).collect();
    want.sort();
    assert_eq!(members, want);
    let out = sql_ok(&s, &["--mode", "json"], ".cluster");
    assert_eq!(out.matches("\"role\":\"voter\"").count(), 3, "{out}");
    let id_of = |i: usize| -> String {
        let out = sql_ok(&s, &[], ".cluster");
        out.lines()
            .find(|l| l.contains(&format!("\t{}\t", address(i))))
            .and_then(|l| l.split('\t').next())
            .unwrap_or_else(|| panic!("node {i} not in {out}"))
            .to_owned()
    };

    // The addresses from dqlite-demo's node store file; mixed with addresses, refused.
    let first = address(0);
    let store = cluster.data_dir(0).join(&first).join("cluster.yaml");
    let store = format!("file://{}", store.display());
    assert_eq!(
        sql_ok(&store, &[], "SELECT 'via the store'"),
        "via the store\n"
    );
    let out = run(
        shell(&format!("{store},{first}")).args(["-c", "SELECT 1"]),
        "",
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be mixed"),
        "{out:?}"
    );
    let out = run(
        shell("file:///nonexistent/cluster.yaml").args(["-c", "SELECT 1"]),
        "",
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no nodes in the node store"),
        "{out:?}"
    );

    // .describe and .weight on a follower.
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let out = sql_ok(&s, &[], &format!(".describe {}", address(follower)));
    assert_eq!(out, format!("{}\t0\t0\n", address(follower)));
    sql_ok(&s, &[], &format!(".weight {} 7", address(follower)));
    let out = sql_ok(
        &s,
        &["--mode", "line"],
        &format!(".describe {}", address(follower)),
    );
    assert!(out.contains("weight = 7"), "{out}");

    // .tables and .schema.
    sql_ok(
        &s,
        &[],
        "CREATE TABLE b (x); CREATE TABLE a (y TEXT); CREATE INDEX a_y ON a (y)",
    );
    assert_eq!(sql_ok(&s, &[], ".tables"), "a\nb\n");
    assert_eq!(
        sql_ok(&s, &[], ".schema a"),
        "CREATE TABLE a (y TEXT);\nCREATE INDEX a_y ON a (y);\n"
    );
    assert_eq!(sql_ok(&s, &[], ".schema").lines().count(), 3);

    // .dump writes the database files.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("dump");
    let out = sql_ok(&s, &[], &format!(".dump {}", target.display()));
    assert!(
        out.starts_with(&format!("wrote {}/default (", target.display())),
        "{out}"
    );
    let main = fs::read(target.join("default")).unwrap();
    assert!(
        main.starts_with(b"SQLite format 3\0"),
        "not a database file"
    );

    // .add, .remove (by id and by address), .assign.
    let spare1 = harness::reserve_loopback_addr().to_string();
    let spare2 = harness::reserve_loopback_addr().to_string();
    sql_ok(&s, &[], &format!(".add 901 {spare1}\n.add 902 {spare2}"));
    let out = sql_ok(&s, &[], ".cluster");
    assert!(out.contains(&format!("901\t{spare1}\tspare")), "{out}");
    assert!(out.contains(&format!("902\t{spare2}\tspare")), "{out}");
    sql_ok(&s, &[], &format!(".remove 901\n.remove {spare2}"));
    let out = sql_ok(&s, &[], ".cluster");
    assert_eq!(out.lines().count(), 3, "{out}");
    let other_id = id_of(other);
    sql_ok(&s, &[], &format!(".assign {other_id} spare"));
    let out = sql_ok(&s, &[], ".cluster");
    assert!(
        out.contains(&format!("{other_id}\t{}\tspare", address(other))),
        "{out}"
    );

    // .transfer: the next statement finds the new leader and says so.
    let follower_id = id_of(follower);
    let out = run(
        shell(&s).args(["-c", &format!(".transfer {follower_id}\nSELECT 5;")]),
        "",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5\n");
    assert!(
        stderr.contains(&format!(
            "reconnected to the leader at {}",
            address(follower)
        )),
        "{stderr}"
    );
    assert_eq!(cluster.leader(), Some(follower));

    // Usage errors.
    let out = run(shell(&s).args(["-c", ".weight nowhere"]), "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: .weight ADDR N"));
    let out = run(shell(&s).args(["-c", ".remove 127.0.0.1:1"]), "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no node has the address 127.0.0.1:1"));
}

#[test]
fn a_script_goes_on_after_the_leader_changes_or_dies_between_statements() {
    let (mut cluster, leader) = cluster();
    let s = servers(&cluster);
    let mut sh = Piped::start(&mut shell(&s));
    sh.send("CREATE TABLE k (x); INSERT INTO k VALUES (1);");
    sh.send("SELECT count(*) FROM k;");
    assert_eq!(sh.stdout_line(), "1");

    // Another client moves the leadership: the shell's node answers "not leader".
    let new_leader = cluster
        .transfer_leadership(leader)
        .expect("transfer leadership");
    sh.send("INSERT INTO k VALUES (2);");
    sh.send("SELECT count(*) FROM k;");
    assert_eq!(sh.stdout_line(), "2");
    assert_eq!(
        sh.stderr_line(),
        format!("reconnected to the leader at {new_leader}")
    );

    // The leader dies between two statements.
    let index = cluster
        .index_of(&new_leader)
        .expect("a node of the cluster");
    cluster.kill(index);
    sh.send("SELECT count(*) FROM k;");
    assert_eq!(sh.stdout_line(), "2");
    let notice = sh.stderr_line();
    assert!(
        notice.starts_with("reconnected to the leader at "),
        "{notice}"
    );
    assert!(!notice.ends_with(&new_leader), "{notice}");
    sh.send("INSERT INTO k VALUES (3); SELECT count(*) FROM k;");
    assert_eq!(sh.stdout_line(), "3");
    assert!(sh.finish().success());
}
