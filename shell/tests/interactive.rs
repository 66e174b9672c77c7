//! The interactive shell in a pseudo-terminal (a detached tmux session) against a real
//! 3-node cluster: multi-line statements, the table, Ctrl-C at the prompt and during
//! statements (streaming rows, on the same connection afterwards; twice, closing it; one
//! keeping the server busy), a leader killed between two statements, Ctrl-D and the
//! history file.
//!
//! Needs `tmux`; when it is missing the test installs it with apt-get (which needs root)
//! or fails saying how to install it.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::{cluster, servers, BIN};

/// The longest wait for the screen to show something.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(90);

/// The longest wait for the server to finish an interrupted query (a few million rows).
const FINISH_TIMEOUT: Duration = Duration::from_secs(240);

/// The shell's `--timeout`: long enough for the server to finish an interrupted query.
const REQUEST_TIMEOUT: &str = "180";

/// A detached tmux session on its own server socket, killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &[&str]) -> Tmux {
        ensure_tmux();
        // One tmux server per session: the tests of this file run in parallel.
        static SESSIONS: AtomicUsize = AtomicUsize::new(0);
        let n = SESSIONS.fetch_add(1, Ordering::Relaxed);
        let socket = format!("dqlite-shell-test-{}-{n}", std::process::id());
        let tmux = Tmux { socket };
        let mut args = vec![
            "new-session",
            "-d",
            "-s",
            "shell",
            "-x",
            "160",
            "-y",
            "50",
            "--",
        ];
        args.extend_from_slice(command);
        let out = tmux.command(&args);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        tmux
    }

    fn command(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// Types `text` literally (no key names), without Enter.
    fn type_text(&self, text: &str) {
        // tmux reads an argument ending in `;` as a command separator: never end with one.
        let arg = if text.ends_with(';') {
            format!("{text} ")
        } else {
            text.to_owned()
        };
        let out = self.command(&["send-keys", "-t", "shell", "-l", &arg]);
        assert!(out.status.success(), "tmux send-keys: {out:?}");
    }

    /// Presses a key (`Enter`, `C-c`, `C-d`).
    fn key(&self, key: &str) {
        let out = self.command(&["send-keys", "-t", "shell", key]);
        assert!(out.status.success(), "tmux send-keys {key}: {out:?}");
    }

    /// Types a line and presses Enter.
    fn line(&self, text: &str) {
        self.type_text(text);
        self.key("Enter");
    }

    /// The visible screen.
    fn screen(&self) -> String {
        let out = self.command(&["capture-pane", "-p", "-t", "shell"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen satisfies `ok`; returns it.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_for_within(SCREEN_TIMEOUT, what, ok)
    }

    /// Waits up to `limit` until the screen satisfies `ok`; returns it.
    fn wait_for_within(&self, limit: Duration, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("the screen did not show {what} within {limit:?}:\n{screen}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the screen holds `text`.
    fn wait_text(&self, text: &str) -> String {
        self.wait_for(&format!("{text:?}"), |s| s.contains(text))
    }

    /// Clears the screen (Ctrl-L at the prompt), so that later waits see only new output.
    fn clear(&self) {
        self.key("C-l");
        self.wait_for("a cleared screen", |s| s.trim() == "dqlite>");
    }

    /// Waits until the last non-empty line of the screen is the bare prompt.
    fn wait_prompt(&self) -> String {
        self.wait_for("the prompt", at_prompt)
    }

    fn is_running(&self) -> bool {
        self.command(&["has-session", "-t", "shell"])
            .status
            .success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command(&["kill-server"]);
    }
}

/// Whether the last non-empty line of the screen is the bare prompt.
fn at_prompt(screen: &str) -> bool {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::trim_end)
        == Some("dqlite>")
}

/// Whether a query's rows are on the screen (a line that is a number above 1000).
fn streaming(screen: &str) -> bool {
    screen
        .lines()
        .any(|l| l.trim().parse::<u64>().is_ok_and(|n| n > 1000))
}

/// Makes sure `tmux` runs: installs it with apt-get if it is missing and we are root.
fn ensure_tmux() {
    let works = || {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works() {
        return;
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    // Without package lists (a fresh machine), fetch them and try again.
    let installed = apt(&["install", "-y", "-qq", "tmux"])
        || (apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "tmux"]));
    assert!(
        installed && works(),
        "this test drives the shell in tmux, which is missing and could not be installed: \
         run `apt-get install -y tmux`"
    );
}

#[test]
fn interactive_session_in_a_terminal() {
    let (mut cluster, _) = cluster();
    let s = servers(&cluster);
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join("state");
    let home_env = format!("HOME={}", home.path().display());
    let state_env = format!("XDG_STATE_HOME={}", state.display());
    let tmux = Tmux::start(&[
        "env",
        &home_env,
        &state_env,
        "TERM=xterm",
        BIN,
        "-s",
        &s,
        "--timeout",
        REQUEST_TIMEOUT,
    ]);
    tmux.wait_prompt();

    // Writes report what they changed; a statement may span lines, `;` in a string does
    // not end it; the result is a table.
    tmux.line("CREATE TABLE t (x INTEGER, s TEXT);");
    tmux.wait_prompt();
    tmux.line("INSERT INTO t VALUES (1, NULL), (2, 'a;b');");
    tmux.wait_text("2 rows affected, last insert id 2");
    tmux.wait_prompt();
    tmux.line("SELECT x AS first_col,");
    tmux.wait_text("   ...>");
    tmux.line("s AS second_col FROM t ORDER BY x;");
    let screen = tmux.wait_text("|         2 | a;b        |");
    assert!(screen.contains("| first_col | second_col |"), "{screen}");
    assert!(screen.contains("|         1 | NULL       |"), "{screen}");
    tmux.wait_prompt();

    // Ctrl-C at the prompt clears the line (an open string literal with it).
    tmux.type_text("SELECT 'never");
    tmux.key("C-c");
    tmux.line("SELECT 101 AS cleared;");
    tmux.wait_text("|     101 |");
    tmux.wait_prompt();

    // Ctrl-C during a long query stops it and keeps the connection. The server cannot
    // stop a query part-way: it runs it to its end while the connection reads and drops
    // the rest of the rows (at the prompt meanwhile), and the next statement runs once it
    // is done. Proof that it runs on the same connection: a TEMP table (which only that
    // connection sees) is still there, the transaction open before the Ctrl-C commits,
    // and the shell never says it connected again. The query streams rows (csv mode
    // writes them as they come).
    tmux.line("CREATE TEMP TABLE kept (x INTEGER);");
    tmux.wait_prompt();
    tmux.line("INSERT INTO kept VALUES (4141);");
    tmux.wait_text("1 row affected");
    tmux.wait_prompt();
    tmux.line("BEGIN;");
    tmux.wait_prompt();
    tmux.line("INSERT INTO t VALUES (3, 'in the transaction');");
    tmux.wait_prompt();
    tmux.line(".mode csv");
    tmux.wait_prompt();
    tmux.clear();
    tmux.line(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3000000) \
         SELECT x FROM c;",
    );
    tmux.wait_for("rows streaming", streaming);
    tmux.key("C-c");
    let screen = tmux.wait_text("interrupted; the transaction stays open");
    assert!(
        !screen.lines().any(|l| l.trim() == "3000000"),
        "the statement ran to its end:\n{screen}"
    );
    tmux.wait_prompt();
    tmux.line(".mode table");
    tmux.wait_prompt();
    // COMMIT waits until the server has finished the query.
    tmux.line("COMMIT;");
    tmux.wait_for_within(FINISH_TIMEOUT, "the prompt after COMMIT", |s| {
        s.contains("dqlite> COMMIT;") && at_prompt(s)
    });
    tmux.clear();
    tmux.line("SELECT x AS kept_value FROM kept;");
    let screen = tmux.wait_text("|       4141 |");
    assert!(screen.contains("| kept_value |"), "{screen}");
    tmux.wait_prompt();
    tmux.line("SELECT s AS committed FROM t WHERE x = 3;");
    tmux.wait_text("| in the transaction |");
    let screen = tmux.wait_prompt();
    assert!(!screen.contains("reconnected"), "{screen}");
    assert!(!screen.contains("Error"), "{screen}");

    // A query too long to wait for: after Ctrl-C the next statement waits for the server
    // to finish it and says so; Ctrl-C again closes the connection (the server stops the
    // query at its next batch), and the next statement connects again, without the TEMP
    // table of the old connection.
    tmux.line(".mode csv");
    tmux.wait_prompt();
    tmux.clear();
    tmux.line(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100000000) \
         SELECT x FROM c;",
    );
    tmux.wait_for("rows streaming", streaming);
    tmux.key("C-c");
    tmux.wait_text("interrupted");
    tmux.wait_prompt();
    tmux.line(".mode table");
    tmux.wait_prompt();
    tmux.clear();
    tmux.line("SELECT 4242 AS after_interrupt;");
    tmux.wait_text("waiting for the server to finish the interrupted statement");
    tmux.key("C-c");
    tmux.wait_text("the connection is closed");
    tmux.wait_prompt();
    tmux.line("SELECT 4242 AS after_interrupt;");
    let screen = tmux.wait_text("|            4242 |");
    assert!(
        screen.contains("reconnected to the leader at 127.0.0.1:"),
        "{screen}"
    );
    tmux.wait_prompt();
    tmux.line("SELECT x FROM kept;");
    tmux.wait_text("no such table: kept");
    tmux.wait_prompt();

    // Ctrl-C during a statement that keeps the server busy without sending anything (the
    // count takes the node seconds, in one step): the prompt comes back at once, and the
    // next statement is answered once the node is done (then on another node if leadership
    // moved meanwhile: the busy node sends no heartbeats).
    tmux.clear();
    tmux.line(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 20000000) \
         SELECT count(*) AS n FROM c;",
    );
    thread::sleep(Duration::from_millis(300));
    tmux.key("C-c");
    tmux.wait_text("interrupted");
    tmux.wait_prompt();
    tmux.line("SELECT 4343 AS after_count;");
    let screen = tmux.wait_for_within(FINISH_TIMEOUT, "the answer after the count", |s| {
        s.contains("|        4343 |")
    });
    assert!(
        !screen.contains("| 20000000 |"),
        "the count ran to its end:\n{screen}"
    );
    tmux.wait_prompt();

    // Ctrl-L clears the screen.
    tmux.key("C-l");
    tmux.wait_for("a cleared screen", |s| s.trim() == "dqlite>");

    // The leader dies between two statements: the next one finds the new leader.
    let leader = cluster.leader().expect("a leader");
    cluster.kill(leader);
    tmux.line("SELECT 777 AS after_kill;");
    let screen = tmux.wait_text("|        777 |");
    assert!(
        screen.contains("reconnected to the leader at 127.0.0.1:"),
        "{screen}"
    );
    assert!(!screen.contains("Error"), "{screen}");
    tmux.wait_prompt();

    // Errors are reported and the session goes on.
    tmux.line("SELECT * FROM missing_table;");
    tmux.wait_text("no such table: missing_table");
    tmux.wait_prompt();

    // Ctrl-D ends the session and the history is saved.
    tmux.key("C-d");
    let deadline = Instant::now() + SCREEN_TIMEOUT;
    while tmux.is_running() {
        assert!(
            Instant::now() < deadline,
            "the shell did not exit on Ctrl-D"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let history =
        std::fs::read_to_string(state.join("dqlite-shell").join("history")).expect("history file");
    for entry in [
        "SELECT 777 AS after_kill;",
        ".mode csv",
        "SELECT 101 AS cleared;",
    ] {
        assert!(
            history.contains(entry),
            "{entry} not in the history:\n{history}"
        );
    }
    assert!(!Path::new(&home.path().join(".dqlite_shell_history")).exists());
}

/// The wait for an interrupted statement is bounded by `--timeout`: past it, the shell
/// closes that connection, says so, and runs the next statement on a new one.
#[test]
fn the_wait_for_an_interrupted_statement_ends_at_the_timeout() {
    let (cluster, _) = cluster();
    let s = servers(&cluster);
    let home = tempfile::tempdir().unwrap();
    let home_env = format!("HOME={}", home.path().display());
    let tmux = Tmux::start(&[
        "env",
        &home_env,
        "XDG_STATE_HOME=",
        "TERM=xterm",
        BIN,
        "-s",
        &s,
        "--timeout",
        "3",
    ]);
    tmux.wait_prompt();
    tmux.line(".mode csv");
    tmux.wait_prompt();
    // Far more rows than the server sends in 3 s.
    tmux.line(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100000000) \
         SELECT x FROM c;",
    );
    tmux.wait_for("rows streaming", streaming);
    tmux.key("C-c");
    tmux.wait_text("interrupted");
    tmux.wait_prompt();
    tmux.clear();
    tmux.line("SELECT 'on a new connection';");
    let screen = tmux.wait_text("on a new connection\n");
    assert!(
        screen.contains(
            "the connection was lost while the server finished the interrupted statement"
        ),
        "{screen}"
    );
    assert!(
        screen.contains("reconnected to the leader at 127.0.0.1:"),
        "{screen}"
    );
    tmux.wait_prompt();
}
