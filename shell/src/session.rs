//! The session: the connection to the leader (made again through discovery when it is
//! lost), the output settings, and running statements and commands.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dqlite_tokio::{Config, Connection, Error, Value};

use crate::commands::{self, Command, NodeRef};
use crate::format::{render, Mode, Rendering};
use crate::input::{self, Input};

/// How long the wait for an interrupted statement's end may last before the shell says
/// that it waits.
const SETTLE_QUIETLY: Duration = Duration::from_millis(300);

/// Output settings that dot commands change.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The output mode.
    pub mode: Mode,
    /// Headers on or off; `None` follows the mode's default.
    pub headers: Option<bool>,
    /// Print each statement's elapsed time.
    pub timer: bool,
    /// Print rows affected and the last insert id after writes.
    pub report_changes: bool,
}

impl Settings {
    fn headers(&self) -> bool {
        self.headers.unwrap_or(self.mode.default_headers())
    }
}

/// What to do after an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next input.
    Continue,
    /// Leave the shell.
    Quit,
}

/// The connection and settings of one shell.
pub struct Session {
    servers: Vec<String>,
    config: Config,
    conn: Option<Connection>,
    /// Whether a connection was made before (so that the next one is a reconnection).
    connected_once: bool,
    /// A statement on `conn` was interrupted and the connection may still be reading the
    /// rest of its answer (see [`Session::interrupt`]).
    settling: bool,
    /// Said before the next input runs (what happened to the connection meanwhile).
    notice: Option<String>,
    /// The running statement is a write (the server carries it out even if interrupted).
    writing: bool,
    /// The output settings.
    pub settings: Settings,
}

impl Session {
    /// A session that connects to the leader among `servers` when first needed.
    pub fn new(servers: Vec<String>, config: Config, settings: Settings) -> Session {
        Session {
            servers,
            config,
            conn: None,
            connected_once: false,
            settling: false,
            notice: None,
            writing: false,
            settings,
        }
    }

    /// Runs one input: every statement of an SQL text in turn (stopping at the first
    /// error), or a dot command. Results go to `out`, notices to stderr.
    pub async fn run(&mut self, input: &Input, out: &mut dyn Write) -> Result<Flow, String> {
        if let Some(notice) = self.notice.take() {
            eprintln!("{notice}");
        }
        match input {
            Input::Command(line) => {
                let command = commands::parse(line)?;
                let flow = self.command(command, out).await;
                out.flush().map_err(output_error)?;
                flow
            }
            Input::Sql(text) => {
                for statement in input::statements(text) {
                    let started = Instant::now();
                    let result = self.statement(statement, out).await;
                    out.flush().map_err(output_error)?;
                    result?;
                    if self.settings.timer {
                        writeln!(out, "Run time: {:.3} s", started.elapsed().as_secs_f64())
                            .and_then(|()| out.flush())
                            .map_err(output_error)?;
                    }
                }
                Ok(Flow::Continue)
            }
        }
    }

    /// Called when Ctrl-C dropped the running input; returns what to tell the user.
    ///
    /// The connection is kept. dqlite servers cannot stop a statement part-way: a query
    /// runs to its end (the server reads the INTERRUPT that follows an abandoned query only
    /// after sending its last rows), and a write that reached the server is carried out.
    /// The client drops what the server still sends, and the connection serves the next
    /// statement once the server is done ([`settle`](Self::settle) waits for that).
    ///
    /// Interrupted again while it still waits for an earlier interrupted statement, the
    /// session closes the connection instead (the server stops a query when sending one
    /// of its next batches fails) and the next statement connects again.
    pub fn interrupt(&mut self) -> String {
        let Some(conn) = &self.conn else {
            self.settling = false;
            self.writing = false;
            return "interrupted".to_owned();
        };
        if !self.settling {
            self.settling = true;
            let mut message = "interrupted".to_owned();
            if std::mem::take(&mut self.writing) {
                message.push_str("; a write the server received still takes effect");
            }
            if conn.in_transaction() {
                message.push_str("; the transaction stays open");
            }
            return message;
        }
        self.writing = false;
        let in_transaction = conn.in_transaction();
        self.conn = None;
        self.settling = false;
        let mut message = "interrupted; the connection is closed (it was still finishing the \
                           statement interrupted before), the next statement connects again"
            .to_owned();
        if in_transaction {
            message.push_str("; the open transaction is rolled back");
        }
        message
    }

    /// True while the connection may still be receiving the rest of an interrupted
    /// statement's answer.
    pub fn is_settling(&self) -> bool {
        self.settling
    }

    /// Waits until the server has finished the interrupted statement and the connection
    /// has read the rest of its answer, within the request timeout. A connection that fails
    /// meanwhile is closed: the next statement connects again.
    pub async fn settle(&mut self) {
        if !self.settling {
            return;
        }
        let Some(conn) = &mut self.conn else {
            self.settling = false;
            return;
        };
        // The client reads the answers owed to abandoned requests before the answer to a
        // new one: a harmless question is answered once the connection is clear.
        let in_transaction = conn.in_transaction();
        let result = conn.leader().await;
        self.settling = false;
        if let Err(e) = result {
            if conn.is_broken() {
                self.conn = None;
                let mut notice = format!(
                    "the connection was lost while the server finished the interrupted \
                     statement ({e})"
                );
                if in_transaction {
                    notice.push_str("; the open transaction is rolled back");
                }
                self.notice = Some(notice);
            }
        }
    }

    /// The connection to the leader, made (again) through discovery if there is none.
    async fn connection(&mut self) -> Result<&mut Connection, Error> {
        if self.settling {
            let settle = self.settle();
            tokio::pin!(settle);
            // Said only when the wait is noticeable.
            if tokio::time::timeout(SETTLE_QUIETLY, &mut settle)
                .await
                .is_err()
            {
                eprintln!(
                    "waiting for the server to finish the interrupted statement \
                     (Ctrl-C: close the connection instead)"
                );
                settle.await;
            }
        }
        if let Some(notice) = self.notice.take() {
            eprintln!("{notice}");
        }
        if self.conn.as_ref().is_some_and(|c| c.is_broken()) {
            self.conn = None;
        }
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let addresses: Vec<&str> = self.servers.iter().map(String::as_str).collect();
                let conn = dqlite_tokio::connect_cluster(&addresses, self.config.clone()).await?;
                if self.connected_once {
                    eprintln!("reconnected to the leader at {}", conn.address());
                }
                self.connected_once = true;
                conn
            }
        };
        Ok(self.conn.insert(conn))
    }

    /// Runs one statement. A failure that provably changed nothing because the connection
    /// was lost or its node no longer leads (outside a transaction, before any row was
    /// printed) is tried once more on the leader found again.
    async fn statement(&mut self, sql: &str, out: &mut dyn Write) -> Result<(), String> {
        self.writing = !input::returns_rows(sql);
        let result = self.run_statement(sql, out).await;
        self.writing = false;
        result
    }

    async fn run_statement(&mut self, sql: &str, out: &mut dyn Write) -> Result<(), String> {
        let settings = self.settings;
        let mut retried = false;
        loop {
            let conn = self.connection().await.map_err(|e| e.to_string())?;
            let in_transaction = conn.in_transaction();
            let mut printed = false;
            let result = if input::returns_rows(sql) {
                match query(conn, sql, settings, out, &mut printed).await {
                    // `WITH ... INSERT` and `PRAGMA name = value` start like queries but
                    // return no rows; servers refuse them as queries without running them.
                    Err(Failure::Client(e)) if !printed && returned_no_rows(&e) => {
                        execute(conn, sql, settings, out).await
                    }
                    other => other,
                }
            } else {
                execute(conn, sql, settings, out).await
            };
            let error = match result {
                Ok(()) => return Ok(()),
                Err(Failure::Output(e)) => return Err(output_error(e)),
                Err(Failure::Client(e)) => e,
            };
            let lost = conn.is_broken() || error.is_not_leader();
            if !lost {
                return Err(error.to_string());
            }
            let address = conn.address().to_owned();
            self.conn = None;
            let harmless = matches!(error, Error::Connection(_)) || error.is_not_leader();
            if harmless && !in_transaction && !printed && !retried {
                retried = true;
                continue;
            }
            let mut message = error.to_string();
            if error.is_not_leader() {
                message.push_str(&self.leader_hint(&address).await);
            }
            if in_transaction {
                message.push_str("; the open transaction is lost (rolled back)");
            }
            return Err(message);
        }
    }

    /// "; the leader is at ADDR", as `address` knows it.
    async fn leader_hint(&self, address: &str) -> String {
        let leader = async {
            let mut node = dqlite_tokio::connect_node_with(address, self.config.clone()).await?;
            node.leader().await
        };
        match leader.await {
            Ok(Some(l)) => format!("; the leader is at {}", l.address.as_str()),
            Ok(None) => "; no leader is known right now".to_owned(),
            Err(_) => String::new(),
        }
    }

    async fn command(&mut self, command: Command, out: &mut dyn Write) -> Result<Flow, String> {
        let settings = self.settings;
        let table = |out: &mut dyn Write, columns: &[&str], rows: Vec<Vec<Value>>| {
            let text = render(settings.mode, settings.headers(), columns, &rows);
            out.write_all(text.as_bytes())
        };
        let text = |s: &str| Value::Text(s.into());
        // Node ids use all 64 bits: as text, so that none is clipped.
        let id = |i: u64| Value::Text(i.to_string().into());
        match command {
            Command::Help => writeln!(out, "{}", commands::HELP).map_err(output_error)?,
            Command::Quit => return Ok(Flow::Quit),
            Command::Mode(mode) => self.settings.mode = mode,
            Command::Headers(on) => self.settings.headers = Some(on),
            Command::Timer(on) => self.settings.timer = on,
            Command::Leader => match self.on_leader(|c| Box::pin(c.leader())).await? {
                Some(l) => table(
                    out,
                    &["id", "address"],
                    vec![vec![id(l.id), text(&l.address)]],
                )
                .map_err(output_error)?,
                None => writeln!(out, "no leader known").map_err(output_error)?,
            },
            Command::Cluster => {
                let nodes = self.on_leader(|c| Box::pin(c.cluster())).await?;
                let rows = nodes
                    .iter()
                    .map(|n| {
                        vec![
                            id(n.id),
                            text(&n.address),
                            text(commands::role_name(n.role)),
                        ]
                    })
                    .collect();
                table(out, &["id", "address", "role"], rows).map_err(output_error)?;
            }
            Command::Describe(address) => {
                let mut node = dqlite_tokio::connect_node_with(&address, self.config.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                let m = node.describe().await.map_err(|e| e.to_string())?;
                let _ = node.close().await;
                let number = |n: u64| match i64::try_from(n) {
                    Ok(n) => Value::Integer(n),
                    Err(_) => Value::Text(n.to_string().into()),
                };
                let row = vec![text(&address), number(m.failure_domain), number(m.weight)];
                table(out, &["address", "failure_domain", "weight"], vec![row])
                    .map_err(output_error)?;
            }
            Command::Weight(address, weight) => {
                let mut node = dqlite_tokio::connect_node_with(&address, self.config.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                node.set_weight(weight).await.map_err(|e| e.to_string())?;
                let _ = node.close().await;
            }
            Command::Transfer(target) => {
                self.on_leader(|c| Box::pin(c.transfer_leadership(target)))
                    .await?;
                // That node no longer leads: find the leader again for the next statement.
                self.conn = None;
                eprintln!("leadership handed to node {target}");
            }
            Command::Add(node, address) => {
                self.on_leader(move |c| {
                    let address = address.clone();
                    Box::pin(async move { c.add_node(node, &address).await })
                })
                .await?;
            }
            Command::Assign(node, role) => {
                self.on_leader(|c| Box::pin(c.assign(node, role))).await?;
            }
            Command::Remove(node) => {
                let node = match node {
                    NodeRef::Id(i) => i,
                    NodeRef::Address(address) => self
                        .on_leader(|c| Box::pin(c.cluster()))
                        .await?
                        .into_iter()
                        .find(|n| n.address.as_str() == address)
                        .map(|n| n.id)
                        .ok_or_else(|| format!("no node has the address {address}"))?,
                };
                self.on_leader(|c| Box::pin(c.remove_node(node))).await?;
            }
            Command::Dump(dir) => {
                let files = self.on_leader(|c| Box::pin(c.dump())).await?;
                let dir = dir.unwrap_or_else(|| PathBuf::from("."));
                for file in files {
                    let path = write_dump_file(&dir, &file.name, &file.data)?;
                    writeln!(out, "wrote {} ({} bytes)", path.display(), file.data.len())
                        .map_err(output_error)?;
                }
            }
            Command::Tables => {
                let sql = "SELECT name FROM sqlite_master WHERE type = 'table' \
                           AND name NOT LIKE 'sqlite_%' ORDER BY name";
                let rows = self.rows(sql, vec![]).await?;
                for value in rows.iter().filter_map(|row| row.first()) {
                    writeln!(out, "{}", crate::format::text(value)).map_err(output_error)?;
                }
            }
            Command::Schema(name) => {
                let mut sql = String::from("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL");
                let mut params = vec![];
                if let Some(name) = name {
                    sql.push_str(" AND tbl_name = ? COLLATE NOCASE");
                    params.push(Value::Text(name.into()));
                }
                sql.push_str(" AND name NOT LIKE 'sqlite_%' ORDER BY tbl_name, type DESC, name");
                let rows = self.rows(&sql, params).await?;
                for value in rows.iter().filter_map(|row| row.first()) {
                    writeln!(out, "{};", crate::format::text(value)).map_err(output_error)?;
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// A query's rows, from the leader (tried once more if the connection was lost).
    async fn rows(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<Vec<Value>>, String> {
        self.on_leader(move |c| {
            let (sql, params) = (sql.to_owned(), params.clone());
            Box::pin(async move { c.fetch_all(&sql, params).await })
        })
        .await
    }

    /// Runs a request that changes nothing, or fails harmlessly, on the leader's
    /// connection; after a lost connection or a "not leader" it is tried once more on the
    /// leader found again.
    async fn on_leader<T>(
        &mut self,
        mut f: impl for<'c> FnMut(
            &'c mut Connection,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, Error>> + 'c>,
        >,
    ) -> Result<T, String> {
        let mut retried = false;
        loop {
            let conn = self.connection().await.map_err(|e| e.to_string())?;
            match f(conn).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if conn.is_broken() || e.is_not_leader() {
                        self.conn = None;
                        let harmless = matches!(e, Error::Connection(_)) || e.is_not_leader();
                        if harmless && !retried {
                            retried = true;
                            continue;
                        }
                    }
                    return Err(e.to_string());
                }
            }
        }
    }
}

/// Why a statement failed.
enum Failure {
    Client(Error),
    Output(io::Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Client(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Output(e)
    }
}

/// The server's answer to a statement sent as a query that returns no rows: nothing ran.
fn returned_no_rows(e: &Error) -> bool {
    e.server_failure()
        .is_some_and(|f| f.message.eq_ignore_ascii_case("not an error"))
}

fn output_error(e: io::Error) -> String {
    format!("writing the output: {e}")
}

/// Streams a query's rows into the output, batch by batch. `printed` turns true once
/// anything reached `out`.
async fn query(
    conn: &mut Connection,
    sql: &str,
    settings: Settings,
    out: &mut dyn Write,
    printed: &mut bool,
) -> Result<(), Failure> {
    let mut stream = conn.stream(sql, ()).await?;
    let mut rendering: Option<Rendering> = None;
    while let Some(batch) = stream.next_batch().await? {
        let r = match &mut rendering {
            Some(r) => r,
            None => {
                let columns = batch.columns().iter().map(|c| c.to_string()).collect();
                let r =
                    rendering.insert(Rendering::new(settings.mode, settings.headers(), columns));
                *printed = true;
                r.begin(out)?;
                r
            }
        };
        for row in batch.rows() {
            r.row(out, row)?;
        }
        // When batches arrive faster than they are written, reading them never waits:
        // yield, so that a Ctrl-C raced against this statement is seen.
        tokio::task::yield_now().await;
    }
    if let Some(r) = rendering {
        r.finish(out)?;
    }
    Ok(())
}

async fn execute(
    conn: &mut Connection,
    sql: &str,
    settings: Settings,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let result = conn.execute(sql, ()).await?;
    if settings.report_changes && input::changes_rows(sql) {
        writeln!(
            out,
            "{} row{} affected, last insert id {}",
            result.rows_affected,
            if result.rows_affected == 1 { "" } else { "s" },
            result.last_insert_id
        )?;
    }
    Ok(())
}

/// Writes one dumped file into `dir` (created if missing) under its base name.
fn write_dump_file(dir: &Path, name: &str, data: &[u8]) -> Result<PathBuf, String> {
    let base = Path::new(name)
        .file_name()
        .filter(|b| !name.contains(['/', '\\']) && b.to_str() == Some(name))
        .ok_or_else(|| format!("the server sent a file with an unsafe name: {name:?}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let path = dir.join(base);
    std::fs::write(&path, data).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_files_keep_to_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub");
        let path = write_dump_file(&target, "db", b"abc").unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"abc");
        for bad in ["../x", "/etc/passwd", "a/b", "..", ""] {
            assert!(write_dump_file(&target, bad, b"").is_err(), "{bad}");
        }
    }
}
