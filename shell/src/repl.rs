//! The interactive loop: line editing and history, multi-line statements, Ctrl-C.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use crate::input::{Input, Reader};
use crate::session::{Flow, Session};

const PROMPT: &str = "dqlite> ";
const CONTINUATION: &str = "   ...> ";

/// Reads and runs inputs until `.quit` or Ctrl-D. Errors are printed and the session goes
/// on.
pub fn run(runtime: &tokio::runtime::Runtime, session: &mut Session) -> ExitCode {
    let mut editor = match DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("dqlite-shell: cannot set up line editing: {e}");
            return ExitCode::FAILURE;
        }
    };
    let history = history_path();
    if let Some(path) = &history {
        // A missing history file is the normal first start.
        let _ = editor.load_history(path);
    }
    println!(
        "dqlite-shell {}: .help for help, Ctrl-D to quit",
        env!("CARGO_PKG_VERSION")
    );
    let mut out = BufWriter::new(io::stdout());
    let mut reader = Reader::new();
    loop {
        let prompt = if reader.is_pending() {
            CONTINUATION
        } else {
            PROMPT
        };
        let (returned, read) = read_line(runtime, session, editor, prompt);
        let Some(returned) = returned else {
            eprintln!("dqlite-shell: line editing failed");
            return ExitCode::FAILURE;
        };
        editor = returned;
        let line = match read {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                reader.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("dqlite-shell: reading the input: {e}");
                break;
            }
        };
        let Some(input) = reader.push_line(&line) else {
            continue;
        };
        let entry = match &input {
            Input::Command(c) => c.as_str(),
            Input::Sql(s) => s.trim(),
        };
        let _ = editor.add_history_entry(entry);
        // Ctrl-C while a statement runs drops its future; the session keeps the connection.
        let outcome = runtime.block_on(async {
            tokio::select! {
                result = session.run(&input, &mut out) => Some(result),
                _ = tokio::signal::ctrl_c() => None,
            }
        });
        let _ = out.flush();
        match outcome {
            None => eprintln!("{}", session.interrupt()),
            Some(Ok(Flow::Continue)) => {}
            Some(Ok(Flow::Quit)) => break,
            Some(Err(e)) => eprintln!("Error: {e}"),
        }
    }
    if let Some(path) = &history {
        if let Err(e) = save_history(&mut editor, path) {
            eprintln!(
                "dqlite-shell: cannot save the history to {}: {e}",
                path.display()
            );
        }
    }
    ExitCode::SUCCESS
}

/// Reads a line. Meanwhile the connection reads the rest of an interrupted statement's
/// answer, so that it is ready for the next one. Returns the editor (`None` if the thread
/// reading the line failed) and what was read.
fn read_line(
    runtime: &tokio::runtime::Runtime,
    session: &mut Session,
    mut editor: DefaultEditor,
    prompt: &'static str,
) -> (Option<DefaultEditor>, rustyline::Result<String>) {
    runtime.block_on(async {
        let mut reading = tokio::task::spawn_blocking(move || {
            let read = editor.readline(prompt);
            (editor, read)
        });
        if session.is_settling() {
            tokio::select! {
                done = &mut reading => return finished(done),
                () = session.settle() => {}
            }
        }
        finished(reading.await)
    })
}

fn finished(
    done: Result<(DefaultEditor, rustyline::Result<String>), tokio::task::JoinError>,
) -> (Option<DefaultEditor>, rustyline::Result<String>) {
    match done {
        Ok((editor, read)) => (Some(editor), read),
        Err(e) => (
            None,
            Err(ReadlineError::Io(io::Error::other(e.to_string()))),
        ),
    }
}

fn save_history(editor: &mut DefaultEditor, path: &PathBuf) -> Result<(), ReadlineError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    editor.save_history(path)
}

/// `$XDG_STATE_HOME/dqlite-shell/history`, else `~/.dqlite_shell_history`.
fn history_path() -> Option<PathBuf> {
    let var = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(state) = var("XDG_STATE_HOME") {
        return Some(state.join("dqlite-shell").join("history"));
    }
    var("HOME").map(|home| home.join(".dqlite_shell_history"))
}
